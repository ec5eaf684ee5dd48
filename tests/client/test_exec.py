"""``instance.execute()`` and the interactive calls over LXD's exec websockets (the fds, the
control channel, stdin then end of file, outputs read to their end, the exit code from the
operation), on the fake and the real host, over the unix socket and TLS."""

from __future__ import annotations

import io
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.sync.client import unix_connect

from pytest_lxd import ExecuteResult, ExecuteTimeout, exceptions
from pytest_lxd.models import Instance

from .conftest import HTTPSEnv, LXDEnv
from .instance_helpers import make


@pytest.fixture
def inst(lxd: LXDEnv) -> Instance:
    return make(lxd, start=True)


def test_exit_code_stdout_stderr_and_stdin(inst: Instance) -> None:
    result = inst.execute(["sh", "-c", "echo out; echo err >&2; read x; echo got:$x; exit 3"],
                          stdin_payload="hello\n")
    assert isinstance(result, ExecuteResult) and isinstance(result, tuple)
    exit_code, stdout, stderr = result  # pylxd's _InstanceExecuteResult unpacks so
    assert (exit_code, stdout, stderr) == (3, "out\ngot:hello\n", "err\n")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\ngot:hello\n", "err\n")
    assert inst.execute(["true"]) == (0, "", "")


@pytest.mark.parametrize("payload", [
    lambda: b"line1\nline2\n",
    lambda: "line1\nline2\n",
    lambda: bytearray(b"line1\nline2\n"),
    lambda: io.BytesIO(b"line1\nline2\n"),
    lambda: io.StringIO("line1\nline2\n"),
    lambda: iter([b"line1\n", "line2\n"]),
], ids=["bytes", "str", "bytearray", "binary-file", "text-file", "iterable"])
def test_stdin_payloads(inst: Instance, payload: Callable[[], Any]) -> None:
    result = inst.execute(["cat"], stdin_payload=payload())
    assert result == (0, "line1\nline2\n", "")


def test_no_stdin_is_end_of_file(inst: Instance) -> None:
    assert inst.execute(["cat"]) == (0, "", "")


def test_large_input_and_output_stream_through(inst: Instance) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    result = inst.execute(["cat"], stdin_payload=data, decode=False)
    assert result.exit_code == 0 and result.stderr == b""
    assert result.stdout == data


def test_decoding(inst: Instance) -> None:
    text = "h\u00e9llo w\u00f6rld \u2713\n"
    assert inst.execute(["cat"], stdin_payload=text).stdout == text
    raw = inst.execute(["cat"], stdin_payload=text, decode=False)
    assert raw.stdout == text.encode()
    latin = inst.execute(["cat"], stdin_payload="caf\u00e9", stdin_encoding="latin-1",
                         encoding="latin-1")
    assert latin.stdout == "caf\u00e9"
    assert inst.execute(["cat"], stdin_payload=b"\xff\xfe").stdout == "\ufffd\ufffd"


def test_handlers_get_the_output_as_it_comes(inst: Instance) -> None:
    out: list[str] = []
    err: list[bytes] = []
    result = inst.execute(["sh", "-c", "echo a; echo b >&2; echo c"],
                          stdout_handler=out.append)
    assert result == (0, "", "b\n") and "".join(out) == "a\nc\n"
    raw = inst.execute(["sh", "-c", "echo x >&2"], decode=False, stderr_handler=err.append)
    assert raw == (0, b"", b"") and b"".join(err) == b"x\n"


def test_a_failing_handler_is_raised_in_the_caller(inst: Instance) -> None:
    def boom(chunk: str) -> None:
        raise ValueError(f"handler saw {chunk!r}")

    with pytest.raises(ValueError, match="handler saw"):
        inst.execute(["echo", "hi"], stdout_handler=boom)


def test_environment_cwd_user_group(inst: Instance) -> None:
    env = dict(line.split("=", 1) for line in inst.execute(["env"]).stdout.splitlines())
    assert env["HOME"] == "/root" and env["USER"] == "root"
    assert env["PATH"].startswith("/usr/local/sbin:")
    got = inst.execute(["sh", "-c", "echo $FOO"], environment={"FOO": "bar baz"})
    assert got.stdout == "bar baz\n"
    assert inst.execute(["pwd"], cwd="/tmp").stdout == "/tmp\n"
    env = dict(line.split("=", 1)
               for line in inst.execute(["env"], user=1000, group=1000).stdout.splitlines())
    assert "HOME" not in env and "USER" not in env  # LXD sets them for root only
    assert inst.execute(["touch", "/tmp/owned"], user=1000, group=1001).exit_code == 0
    info = inst.files.stat("/tmp/owned")
    assert (info.uid, info.gid) == (1000, 1001)


def test_missing_and_non_executable_commands_return_their_code(inst: Instance) -> None:
    """LXD 5.0.2 fails the operation for 127/126; pylxd raised, the code is the answer."""
    assert inst.execute(["nonexistent-command"]).exit_code == 127
    assert inst.execute(["/etc/hostname"]).exit_code == 126
    assert inst.execute(["sh", "-c", "nope"]) == (127, "", "sh: nope: not found\n")


def test_timeout_kills_and_raises(inst: Instance) -> None:
    began = time.monotonic()
    with pytest.raises(ExecuteTimeout) as info:
        inst.execute(["sh", "-c", "echo started; sleep 30"], timeout=1)
    assert time.monotonic() - began < 5
    assert isinstance(info.value, TimeoutError)
    assert info.value.result.exit_code == 137 and info.value.result.stdout == "started\n"
    assert info.value.operation is not None and info.value.operation.status == "Success"
    assert inst.execute(["echo", "still fine"]).stdout == "still fine\n"


def test_stop_event_kills_and_returns(inst: Instance) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    result = inst.execute(["sleep", "30"], stop_event=stop)
    assert result.exit_code == 137 and time.monotonic() - began < 5


def test_refusals(lxd: LXDEnv, inst: Instance) -> None:
    with pytest.raises(TypeError, match="list"):
        inst.execute("echo hi")  # type: ignore[call-overload]
    stopped = make(lxd)
    with pytest.raises(exceptions.LXDAPIException, match="Instance is not running") as info:
        stopped.execute(["true"])
    assert info.value.error_code == 400


def test_concurrent_commands(inst: Instance) -> None:
    results: dict[int, ExecuteResult[str]] = {}

    def run(n: int) -> None:
        results[n] = inst.execute(["sh", "-c", f"sleep 0.2; echo {n}"])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {n: r.stdout for n, r in results.items()} == {n: f"{n}\n" for n in range(4)}


def test_interactive_session(inst: Instance) -> None:
    with inst.interactive_execute(["sh"], width=100, height=30) as session:
        session.send("echo interactive-$HOME\n")
        seen = session.read_until("interactive-/root\r\n")
        assert seen.endswith(b"interactive-/root\r\n")  # the rest waits for the next read
        session.resize(120, 40)
        session.send("exit 4\n")
        assert session.wait(timeout=10) == 4
        assert b"interactive-/root\r\n" in session.output
    assert session.exit_code == 4


def test_interactive_signal(inst: Instance) -> None:
    session = inst.interactive_execute(["sleep", "30"])
    try:
        time.sleep(0.3)
        session.signal(signal.SIGTERM)
        assert session.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        session.close()


def test_raw_interactive_execute(lxd: LXDEnv, inst: Instance) -> None:
    """pylxd's low-level call: paths for the caller to connect (here with ``websockets``)."""
    # The command waits for a second line before it exits: LXD 5.0.2 can drop pty output
    # written just before the process ends (seen on the real host under load).
    urls = inst.raw_interactive_execute(["sh", "-c", "read x; echo got:$x; read y; exit 5"])
    assert set(urls) == {"ws", "control", "operation"}
    assert urls["ws"].startswith("/1.0/operations/") and "?secret=" in urls["ws"]
    uri = "ws://localhost"
    with unix_connect(lxd.socket_path, uri + urls["control"]), \
            unix_connect(lxd.socket_path, uri + urls["ws"]) as ws:
        ws.send(b"hi\n")
        output = b""
        for message in iter_messages(ws):
            output += message
            if b"got:hi\r\n" in output:
                ws.send(b"\n")
        assert b"got:hi" in output, output
    op = lxd.client.operations.wait_for_operation(urls["operation"])
    assert op.metadata is not None and op.metadata["return"] == 5


def iter_messages(ws: object) -> Iterator[bytes]:
    from websockets.exceptions import ConnectionClosed

    while True:
        try:
            message = ws.recv(timeout=10)  # type: ignore[attr-defined]
        except ConnectionClosed:
            return
        if message == "":
            return
        yield message if isinstance(message, bytes) else message.encode()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_exec_over_tls_is_verified_like_https(https: HTTPSEnv) -> None:
    lxd = https.lxd
    inst = make(lxd, start=True)
    pinned = https.client(verify=https.server_cert_file)
    remote = pinned.instances.get(inst.name)
    assert remote.execute(["sh", "-c", "cat; echo e >&2"], stdin_payload="tls\n") == (
        0, "tls\n", "e\n")
    insecure = https.client(verify=False)
    assert insecure.instances.get(inst.name).execute(["echo", "x"]).stdout == "x\n"
    with remote.interactive_execute(["sh"]) as session:
        session.send("exit 2\n")
        assert session.wait(timeout=10) == 2


def test_tls_websockets_never_miss_their_handshake(https: HTTPSEnv) -> None:
    """websockets reads on a thread that select()s the raw socket: over a bare SSLSocket about
    1 handshake in 200 never saw LXD's 101 (see ``pytest_lxd.tlssocket``). 300 in a row must
    all open (each takes a few milliseconds)."""
    client = https.client(verify=https.server_cert_file, timeout=5)
    began = time.monotonic()
    for _ in range(300):
        client.transport.websocket(f"/{client.version}/events").close()
    assert time.monotonic() - began < 60
