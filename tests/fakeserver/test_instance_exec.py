"""``POST /1.0/instances/{name}/exec``: the same requests, frames and results on the fake and on
LXD 5.0.2 (busybox instances on both, see ``tests/instancefixtures.py``).

Websockets are read with a raw client here, so that every frame the server sends (the
``keepalive`` ping, binary output, the empty text barrier, a close frame or none) is seen.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pylxd
import pytest
from pylxd.exceptions import LXDAPIException

from fakeserver import FakeLXD
from tests.compat import ClientCert, client_cert, socket_path
from tests.imagefixtures import Events
from tests.instancefixtures import action, make, shared_project, started
from tests.support import API, unique, wss_connect

HEX64 = re.compile(r"[0-9a-f]{64}")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT_ENV = {"HOME": "/root", "LANG": "C.UTF-8", "PATH": PATH, "USER": "root"}
OP_KEYS = ["id", "class", "description", "created_at", "updated_at", "status", "status_code",
           "resources", "metadata", "may_cancel", "err", "location"]
PING, TEXT, BINARY, CLOSE = 0x9, 0x1, 0x2, 0x8
EOF = "EOF"


@pytest.fixture
def inst(api: API) -> str:
    return started(api)


# -- a raw websocket client -------------------------------------------------------------------


class Raw:
    """One client websocket over the backend's unix socket, frame by frame."""

    def __init__(self, api: API, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(socket_path(api))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.head = head
        self.status = int(head.split(b" ")[1]) if head else 0
        self.body = b""
        match = re.search(rb"(?i)content-length: (\d+)", head)
        if self.status != 101 and match:
            size = int(match.group(1))
            while len(self.body) < size:
                self.body += self.sock.recv(size - len(self.body))

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def frame(self, timeout: float = 10) -> tuple[int, bytes] | str:
        self.sock.settimeout(timeout)
        try:
            first, second = self._exact(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._exact(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._exact(8))[0]
            return first & 0x0F, self._exact(size)
        except (EOFError, ConnectionResetError):
            return EOF
        except TimeoutError:
            return "TIMEOUT"

    def frames(self, timeout: float = 10) -> list[Any]:
        """Frames until the connection ends (or nothing comes for ``timeout`` seconds)."""
        out: list[Any] = []
        while True:
            item = self.frame(timeout)
            out.append(item)
            if item in (EOF, "TIMEOUT"):
                return out

    def until_barrier(self, timeout: float = 15) -> list[Any]:
        """Frames up to the empty text frame (for fd 0 of an interactive exec, which stays
        open after it)."""
        out: list[Any] = []
        while True:
            item = self.frame(timeout)
            out.append(item)
            if item in (EOF, "TIMEOUT", (TEXT, b"")):
                return out

    def send(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x80 | opcode])
        head += bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(
            "!H", size)
        try:
            self.sock.sendall(head + mask + bytes(b ^ mask[i % 4]
                                                  for i, b in enumerate(payload)))
        except OSError:
            pass  # the server already hung up (a command that ended without reading stdin)

    def close(self) -> None:
        self.sock.close()


def data_of(frames: list[Any]) -> bytes:
    return b"".join(payload for item in frames if isinstance(item, tuple)
                    for op, payload in [item] if op == BINARY)


def start(api: API, name: str, command: list[str], **body: Any) -> tuple[dict[str, Any], str]:
    """POST exec with wait-for-websocket: the operation and its websocket URL prefix."""
    reply = api.post(f"/1.0/instances/{name}/exec",
                     {"command": command, "wait-for-websocket": True, **body})
    assert reply.status == 202, reply
    op = reply.metadata
    return op, f"/1.0/operations/{op['id']}/websocket?secret="


def finish(api: API, op: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    reply = api.get(f"/1.0/operations/{op['id']}/wait", params={"timeout": timeout})
    assert reply.status == 200, reply
    return reply.metadata  # type: ignore[no-any-return]


def run(api: API, name: str, command: list[str], stdin: bytes = b"",
        **body: Any) -> tuple[dict[str, Any], bytes, bytes]:
    """Exec over websockets as pylxd does (fds 0, 1, 2): the final op, stdout and stderr."""
    op, url = start(api, name, command, **body)
    fds = op["metadata"]["fds"]
    socks = {key: Raw(api, url + fds[key]) for key in ("0", "1", "2")}
    if stdin:
        socks["0"].send(BINARY, stdin)
    socks["0"].send(TEXT, b"")
    out = socks["1"].frames()
    err = socks["2"].frames()
    final = finish(api, op)
    for sock in socks.values():
        sock.close()
    return final, data_of(out), data_of(err)


def task(api: API, name: str, command: list[str], **body: Any) -> tuple[dict[str, Any], bytes,
                                                                         bytes]:
    """Exec without websockets, recording the output: the final op, stdout and stderr."""
    reply = api.post(f"/1.0/instances/{name}/exec",
                     {"command": command, "record-output": True, **body})
    assert reply.status == 202, reply
    op = finish(api, reply.metadata)
    output = (op["metadata"] or {}).get("output")
    if not output:
        return op, b"", b""
    return op, api.get(output["1"]).raw, api.get(output["2"]).raw


# -- refusals ---------------------------------------------------------------------------------


def test_refused_on_stopped_and_frozen_instances(api: API) -> None:
    name = make(api)
    body = {"command": ["echo", "hi"], "wait-for-websocket": True}
    reply = api.post(f"/1.0/instances/{name}/exec", body)
    assert (reply.status, reply.error) == (400, "Instance is not running")
    assert action(api, name, "start")["status"] == "Success"
    assert action(api, name, "freeze")["status"] == "Success"
    for wait in (True, False):
        reply = api.post(f"/1.0/instances/{name}/exec", {**body, "wait-for-websocket": wait})
        assert (reply.status, reply.error) == (400, "Instance is frozen")
    assert action(api, name, "unfreeze")["status"] == "Success"


def test_bad_requests(api: API, inst: str) -> None:
    path = f"/1.0/instances/{inst}/exec"
    reply = api.request("POST", path, data=b'{"command": "echo"}')
    assert (reply.status, reply.error) == (400, "json: cannot unmarshal string into Go struct "
                                                "field InstanceExecPost.command of type []string")
    reply = api.request("POST", path, data=b'{"command":["echo"],"width":"x"}')
    assert (reply.status, reply.error) == (400, "json: cannot unmarshal string into Go struct "
                                                "field InstanceExecPost.width of type int")
    reply = api.request("POST", path, data=b"{bad")
    assert (reply.status, reply.error) == (
        400, "invalid character 'b' looking for beginning of object key string")
    for user in (-1, 4294967296, 1.5):
        reply = api.post(path, {"command": ["true"], "user": user})
        assert (reply.status, reply.error) == (
            400, f"json: cannot unmarshal number {user} into Go struct field "
                 "InstanceExecPost.user of type uint32")
    reply = api.post("/1.0/instances/nope-pl0000/exec", {"command": ["true"]})
    assert (reply.status, reply.error) == (404, "Instance not found")
    # The body is decoded before the instance is looked up.
    reply = api.request("POST", "/1.0/instances/nope-pl0000/exec", data=b"{bad")
    assert (reply.status, reply.error) == (
        400, "invalid character 'b' looking for beginning of object key string")
    reply = api.post(f"/1.0/virtual-machines/{inst}/exec", {"command": ["true"]})
    assert (reply.status, reply.error) == (404, "Instance not found")
    assert (api.get(path).status, api.get(path).error) == (501, "not implemented")


# -- the websocket operation ------------------------------------------------------------------


def test_websocket_operation(api: API, inst: str) -> None:
    reply = api.post(f"/1.0/instances/{inst}/exec",
                     {"command": ["echo", "hi"], "wait-for-websocket": True,
                      "user": None, "group": None, "cwd": None})  # what pylxd sends
    assert reply.status == 202, reply
    op = reply.metadata
    assert list(op) == OP_KEYS
    assert (op["class"], op["description"], op["status"], op["may_cancel"]) == (
        "websocket", "Executing command", "Running", False)
    assert op["resources"] == {"containers": [f"/1.0/containers/{inst}"],
                               "instances": [f"/1.0/instances/{inst}"]}
    meta = op["metadata"]
    assert list(meta) == ["command", "environment", "fds", "interactive"]
    assert (meta["command"], meta["environment"], meta["interactive"]) == (
        ["echo", "hi"], ROOT_ENV, False)
    assert list(meta["fds"]) == ["0", "1", "2", "control"]
    assert all(HEX64.fullmatch(secret) for secret in meta["fds"].values())
    url = f"/1.0/operations/{op['id']}/websocket?secret="
    socks = [Raw(api, url + meta["fds"][key]) for key in ("0", "1", "2")]
    socks[0].send(TEXT)
    assert data_of(socks[1].frames()) == b"hi\n"
    final = finish(api, op)
    assert (final["status"], final["err"]) == ("Success", "")
    assert final["metadata"] == {**meta, "return": 0}
    assert final["updated_at"] != final["created_at"]


def test_interactive_fds(api: API, inst: str) -> None:
    op, url = start(api, inst, ["true"], interactive=True)
    assert list(op["metadata"]["fds"]) == ["0", "control"]
    assert op["metadata"]["interactive"] is True
    control = Raw(api, url + op["metadata"]["fds"]["control"])
    fd0 = Raw(api, url + op["metadata"]["fds"]["0"])
    assert fd0.until_barrier()[-1] == (TEXT, b"")
    assert fd0.frame(0.5) == "TIMEOUT", "fd 0 stays open after the barrier"
    fd0.close()
    control.close()
    assert finish(api, op)["metadata"]["return"] == 0


def test_environment(api: API) -> None:
    name = started(api, config={"environment.FOO": "inst", "environment.BAR": "b"})
    op, _ = start(api, name, ["true"], environment={"FOO": "mine", "ZED": "1"})
    assert op["metadata"]["environment"] == {**ROOT_ENV, "BAR": "b", "FOO": "mine", "ZED": "1"}
    assert list(op["metadata"]["environment"]) == sorted(op["metadata"]["environment"])
    op, _ = start(api, name, ["true"], user=1000, group=5)
    assert op["metadata"]["environment"] == {"BAR": "b", "FOO": "inst", "LANG": "C.UTF-8",
                                             "PATH": PATH}
    op, _ = start(api, name, ["true"],
                  environment={"PATH": "/x", "HOME": "/home/bob", "USER": "bob", "LANG": "en"})
    assert op["metadata"]["environment"] == {"BAR": "b", "FOO": "inst", "HOME": "/home/bob",
                                             "LANG": "en", "PATH": "/x", "USER": "bob"}
    final, out, _ = run(api, name, ["env"], environment={"ZED": "1"})
    lines = out.decode().splitlines()
    assert lines[:2] == [f"PATH={PATH}", "container=lxc"]  # the rest: in no fixed order
    assert sorted(lines[2:]) == ["BAR=b", "FOO=inst", "HOME=/root", "LANG=C.UTF-8",
                                 "USER=root", "ZED=1"]


def test_framing(api: API, inst: str) -> None:
    """LXD 5.0.2's frames: keepalive ping, binary output, empty text barrier, no close."""
    op, url = start(api, inst, ["sh", "-c", "echo out; echo err >&2; read x; echo got:$x; "
                                            "exit 3"])
    fds = op["metadata"]["fds"]
    fd0, fd1, fd2 = (Raw(api, url + fds[key]) for key in ("0", "1", "2"))
    assert fd0.status == fd1.status == fd2.status == 101
    fd0.send(BINARY, b"hello\n")
    fd0.send(TEXT, b"")
    out, err = fd1.frames(), fd2.frames()
    assert out[0] == (PING, b"keepalive") and err[0] == (PING, b"keepalive")
    assert out[-2:] == [(TEXT, b""), EOF] and err[-2:] == [(TEXT, b""), EOF]
    assert all(op_ == BINARY for op_, _ in out[1:-2])
    assert data_of(out) == b"out\ngot:hello\n" and data_of(err) == b"err\n"
    assert fd0.frames() == [(PING, b"keepalive"), EOF]
    final = finish(api, op)
    assert (final["status"], final["metadata"]["return"]) == ("Success", 3)


def test_stdin_ends_with_a_close_frame(api: API, inst: str) -> None:
    op, url = start(api, inst, ["cat"])
    fds = op["metadata"]["fds"]
    fd0, fd1, _fd2 = (Raw(api, url + fds[key]) for key in ("0", "1", "2"))
    fd0.send(BINARY, b"abc")
    fd0.send(CLOSE, struct.pack("!H", 1000))
    assert data_of(fd1.frames()) == b"abc"
    assert fd0.frames() == [(PING, b"keepalive"), (CLOSE, struct.pack("!H", 1000)), EOF]
    assert finish(api, op)["metadata"]["return"] == 0


@pytest.mark.parametrize(("command", "status", "err", "code"), [
    (["false"], "Success", "", 1),
    (["sh", "-c", "exit 5"], "Success", "", 5),
    (["nonexistent-command"], "Failure", "Command not found", 127),
    (["/nonexistent"], "Failure", "Command not found", 127),
    (["/etc/hostname"], "Failure", "Command not executable", 126),
    (["/etc"], "Failure", "Command not executable", 126),
    (["sh", "-c", "nope"], "Failure", "Command not found", 127),
])
def test_exit_codes(api: API, inst: str, command: list[str], status: str, err: str,
                    code: int) -> None:
    final, _, _ = run(api, inst, command)
    assert (final["status"], final["err"], final["metadata"]["return"]) == (status, err, code)
    assert final["status_code"] == (200 if status == "Success" else 400)


def test_nothing_connects(api: API, inst: str) -> None:
    op, url = start(api, inst, ["echo", "hi"])
    control = Raw(api, url + op["metadata"]["fds"]["control"])  # not one of the required fds
    began = time.monotonic()
    final = finish(api, op)
    assert 4 < time.monotonic() - began < 8
    assert (final["status"], final["err"]) == ("Failure",
                                               "Timed out waiting for websockets to connect")
    assert "return" not in final["metadata"]
    assert final["updated_at"] == final["created_at"]
    assert control.frames() == [(PING, b"keepalive"), EOF]


def test_connection_errors(api: API, inst: str) -> None:
    op, url = start(api, inst, ["cat"])
    fds = op["metadata"]["fds"]
    bad = Raw(api, url + "abc")
    assert bad.status == 500 and json.loads(bad.body)["error"] == "permission denied"
    for path in (url, url.removesuffix("?secret=")):
        missing = Raw(api, path)
        assert missing.status == 500 and json.loads(missing.body)["error"] == "missing secret"
    plain = api.get(url.split("?")[0], params={"secret": fds["1"]})
    assert plain.status == 400
    assert plain.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert plain.raw.startswith(b"Bad Request\n{")
    envelope = json.loads(plain.raw[len(b"Bad Request\n"):])
    assert (envelope["error_code"], envelope["error"]) == (
        500, "websocket: the client is not using the websocket protocol: 'upgrade' token not "
             "found in 'Connection' header")
    plain = api.get(url.split("?")[0], params={"secret": "wrong"})
    assert (plain.status, plain.error) == (500, "permission denied")
    fd0 = Raw(api, url + fds["0"])
    again = Raw(api, url + fds["0"])  # LXD upgrades, then leaves the extra connection idle
    assert again.status == 101 and again.frames(1) == ["TIMEOUT"]
    fd1, fd2 = Raw(api, url + fds["1"]), Raw(api, url + fds["2"])
    fd0.send(TEXT)
    assert fd1.frames()[-1] == EOF and fd2.frames()[-1] == EOF
    finish(api, op)
    late = Raw(api, url + fds["1"])
    assert late.status == 500
    assert json.loads(late.body)["error"] == "Only running operations can be connected"
    again.close()


def test_signals_and_control(api: API, inst: str) -> None:
    def sleeper(seconds: str = "30", control: bool = True) -> tuple[dict[str, Any],
                                                                     dict[str, Raw]]:
        op, url = start(api, inst, ["sleep", seconds])
        fds = op["metadata"]["fds"]
        keys = ("control", "0", "1", "2") if control else ("0", "1", "2")
        socks = {key: Raw(api, url + fds[key]) for key in keys}
        time.sleep(0.3)
        return op, socks

    op, socks = sleeper()
    socks["control"].send(TEXT, json.dumps({"command": "window-resize",
                                            "args": {"width": "100", "height": "30"}}).encode())
    socks["control"].send(TEXT, b"not json")
    socks["control"].send(TEXT, json.dumps({"command": "signal", "signal": 15}).encode())
    assert socks["1"].frames()[-2:] == [(TEXT, b""), EOF]
    assert socks["control"].frames() == [(PING, b"keepalive"), EOF]
    assert finish(api, op)["metadata"]["return"] == 143

    op, socks = sleeper()
    socks["control"].send(CLOSE, struct.pack("!H", 1000))  # closing control kills
    assert socks["1"].frames()[-2:] == [(TEXT, b""), EOF]
    assert finish(api, op)["metadata"]["return"] == 137


def test_writing_on_stdout(api: API, inst: str) -> None:
    """Data sent on fd 1 (or dropping it) kills the command, but only while control is not
    connected; data sent on fd 2 is ignored."""
    for control, code in ((False, 137), (True, 0)):
        op, url = start(api, inst, ["sleep", "2"])
        fds = op["metadata"]["fds"]
        keys = ("control", "0", "1", "2") if control else ("0", "1", "2")
        socks = {key: Raw(api, url + fds[key]) for key in keys}
        time.sleep(0.3)
        began = time.monotonic()
        socks["1"].send(BINARY, b"x")
        assert socks["1"].frames()[-2:] == [(TEXT, b""), EOF]
        assert (time.monotonic() - began < 1) == (code == 137)
        assert finish(api, op)["metadata"]["return"] == code
    op, url = start(api, inst, ["sleep", "1"])
    fds = op["metadata"]["fds"]
    socks = {key: Raw(api, url + fds[key]) for key in ("0", "1", "2")}
    socks["2"].send(BINARY, b"x")
    assert finish(api, op)["metadata"]["return"] == 0
    op, url = start(api, inst, ["sleep", "2"])
    fds = op["metadata"]["fds"]
    socks = {key: Raw(api, url + fds[key]) for key in ("0", "1", "2")}
    time.sleep(0.3)
    socks["1"].close()
    assert finish(api, op)["metadata"]["return"] == 137


def test_interactive_session(api: API, inst: str) -> None:
    op, url = start(api, inst, ["sh", "-c", "echo hi; read x; echo got $x"], interactive=True,
                    width=80, height=24)
    fds = op["metadata"]["fds"]
    control = Raw(api, url + fds["control"])
    fd0 = Raw(api, url + fds["0"])
    # Type only once the shell has printed "hi" (a fixed sleep lost input on a loaded host).
    frames = [fd0.frame()]
    while b"hi\r\n" not in data_of(frames) and frames[-1] not in ("EOF", "TIMEOUT"):
        frames.append(fd0.frame())
    fd0.send(BINARY, b"abc\n")
    frames += fd0.until_barrier()
    assert frames[0] == (PING, b"keepalive")
    assert data_of(frames) == b"hi\r\nabc\r\ngot abc\r\n"
    assert frames[-1] == (TEXT, b"")
    assert fd0.frame(0.5) == "TIMEOUT", "fd 0 stays open after the barrier"
    assert control.frames() == [(PING, b"keepalive"), EOF]
    running = api.get(f"/1.0/operations/{op['id']}").metadata
    assert running["status"] == "Running", "interactive: runs until the client closes fd 0"
    fd0.send(CLOSE, struct.pack("!H", 1000))
    final = finish(api, op)
    assert (final["status"], final["metadata"]["return"]) == ("Success", 0)


def test_interactive_shell(api: API, inst: str) -> None:
    """``sh`` on a terminal: ash's greeting and prompts (with a cursor position query)."""
    op, url = start(api, inst, ["sh"], interactive=True, environment={"TERM": "xterm"},
                    width=80, height=24)
    fds = op["metadata"]["fds"]
    control = Raw(api, url + fds["control"])
    fd0 = Raw(api, url + fds["0"])
    time.sleep(0.5)
    for line in (b"echo hi\n", b"cd /etc\n", b"exit 4\n"):
        fd0.send(BINARY, line)
        time.sleep(0.3)
    frames = fd0.until_barrier()
    assert data_of(frames) == (
        b"\r\n\r\nBusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) built-in shell (ash)\r\n"
        b"Enter 'help' for a list of built-in commands.\r\n\r\n"
        b"~ # \x1b[6necho hi\r\nhi\r\n~ # \x1b[6ncd /etc\r\n/etc # \x1b[6nexit 4\r\n")
    fd0.close()
    control.close()
    assert finish(api, op)["metadata"]["return"] == 4


def test_interactive_ctrl_c(api: API, inst: str) -> None:
    op, url = start(api, inst, ["sleep", "30"], interactive=True)
    fds = op["metadata"]["fds"]
    control = Raw(api, url + fds["control"])
    fd0 = Raw(api, url + fds["0"])
    time.sleep(0.5)
    fd0.send(BINARY, b"\x03")
    frames = fd0.until_barrier()
    assert data_of(frames) == b"^C" and frames[-1] == (TEXT, b"")
    fd0.close()
    control.close()
    assert finish(api, op)["metadata"]["return"] == 130


# -- task operations and record-output --------------------------------------------------------


def test_record_output(api: API, inst: str) -> None:
    reply = api.post(f"/1.0/instances/{inst}/exec",
                     {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"],
                      "record-output": True})
    assert reply.status == 202
    started_op = reply.metadata
    assert (started_op["class"], started_op["metadata"]) == ("task", None)
    op = finish(api, started_op)
    base = f"/1.0/instances/{inst}/logs/exec_{op['id']}"
    assert op["metadata"] == {"output": {"1": f"{base}.stdout", "2": f"{base}.stderr"},
                              "return": 3}
    stdout = api.get(f"{base}.stdout")
    assert stdout.raw == b"out\n"
    assert stdout.headers["Content-Type"] == "application/octet-stream"
    assert api.get(f"{base}.stderr").raw == b"err\n"
    logs = api.get(f"/1.0/instances/{inst}/logs").metadata
    assert {f"{base}.stdout", f"{base}.stderr"} <= set(logs)


def test_task_without_output(api: API, inst: str) -> None:
    reply = api.post(f"/1.0/instances/{inst}/exec", {"command": ["echo", "hi"]})
    op = finish(api, reply.metadata)
    assert (op["status"], op["metadata"]) == ("Success", {"return": 0})
    reply = api.post(f"/1.0/instances/{inst}/exec", {"command": ["nonexistent"]})
    op = finish(api, reply.metadata)
    assert (op["status"], op["err"], op["metadata"]) == ("Failure", "Command not found",
                                                         {"return": 127})
    for empty in ({"command": []}, {}):
        reply = api.post(f"/1.0/instances/{inst}/exec", empty)
        op = finish(api, reply.metadata)
        assert (op["status"], op["err"], op["metadata"]) == (
            "Failure", "Failed to retrieve PID of executing child process", None)


def test_stopping_the_instance_kills_its_commands(api: API, inst: str) -> None:
    reply = api.post(f"/1.0/instances/{inst}/exec", {"command": ["sleep", "30"],
                                                      "record-output": True})
    assert reply.status == 202
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(op=finish(api, reply.metadata)))
    waiter.start()
    time.sleep(0.5)
    began = time.monotonic()
    assert action(api, inst, "stop", force=True)["status"] == "Success"
    waiter.join(20)
    assert time.monotonic() - began < 10
    op = result["op"]
    assert (op["status"], op["metadata"]["return"]) == ("Success", 137)


def test_lifecycle_and_operation_events(api: API, inst: str) -> None:
    events = Events(api)
    try:
        time.sleep(0.2)
        run(api, inst, ["echo", "hi"])
        event = events.wait("instance-exec", f"/1.0/instances/{inst}")
    finally:
        events.close()
    meta = event["metadata"]
    assert meta == {"action": "instance-exec", "source": f"/1.0/instances/{inst}",
                    "context": {"command": ["echo", "hi"]}}


def test_exec_and_files_in_a_project(api: API) -> None:
    papi = shared_project(api, "ep")
    project = papi.project
    name = started(papi)
    events = Events(api, project)
    try:
        time.sleep(0.2)
        reply = papi.post(f"/1.0/instances/{name}/exec",
                          {"command": ["echo", "hi"], "record-output": True})
        assert reply.status == 202, reply
        # The operation's resources carry no ?project= (the events' sources do).
        assert reply.metadata["resources"] == {"containers": [f"/1.0/containers/{name}"],
                                               "instances": [f"/1.0/instances/{name}"]}
        op = finish(papi, reply.metadata)
        stdout = op["metadata"]["output"]["1"]
        assert stdout == f"/1.0/instances/{name}/logs/exec_{op['id']}.stdout"
        assert papi.get(stdout).raw == b"hi\n"
        assert api.get(stdout).status == 404, "the log is the project's"
        papi.request("POST", f"/1.0/instances/{name}/files", params={"path": "/srv/x"},
                     data=b"x")
        source = f"/1.0/instances/{name}?project={project}"
        assert events.wait("instance-exec", source)["metadata"]["source"] == source
        assert events.wait("instance-file-pushed", source)["project"] == project
    finally:
        events.close()
    assert api.post(f"/1.0/instances/{name}/exec", {"command": ["true"]}).status == 404


# -- commands ---------------------------------------------------------------------------------

COMMANDS = [
    (["sh", "-c", "nonexist; echo rc=$?"], 0, "rc=127\n", "sh: nonexist: not found\n"),
    (["cat", "/nope"], 1, "", "cat: can't open '/nope': No such file or directory\n"),
    (["cat", "/etc"], 1, "", "cat: read error: Is a directory\n"),
    (["cat", "/etc/hostname", "/etc/hosts"], 0, "busybox\n127.0.0.1\tlocalhost\n::1\tlocalhost\n",
     ""),
    (["cat"], 0, "", ""),
    (["ls", "/nope"], 1, "", "ls: /nope: No such file or directory\n"),
    (["ls", "/etc"], 0, "group\nhostname\nhosts\ninit.d\ninittab\npasswd\nprofile\nshadow\n", ""),
    (["ls", "-l", "/etc/hostname"], 0,
     "-rw-r--r--    1 root     root             8 Jan  1  1970 /etc/hostname\n", ""),
    (["ls", "-a", "/root"], 0, ".\n..\n", ""),
    (["ls", "/etc/hostname"], 0, "/etc/hostname\n", ""),
    (["ls"], 0, "", ""),
    (["ls", "/"], 0, "bin\ndev\netc\nhome\nmnt\nproc\nroot\nrun\nsbin\nsrv\nsys\ntmp\nusr\nvar\n",
     ""),
    (["mkdir", "/srv"], 1, "", "mkdir: can't create directory '/srv': File exists\n"),
    (["mkdir", "/srv/m1/m2"], 1, "",
     "mkdir: can't create directory '/srv/m1/m2': No such file or directory\n"),
    (["mkdir", "/etc/hostname/x"], 1, "",
     "mkdir: can't create directory '/etc/hostname/x': Not a directory\n"),
    (["mkdir"], 1, "", "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n\n"
     "Usage: mkdir [-m MODE] [-p] DIRECTORY...\n\nCreate DIRECTORY\n\n\t-m MODE\tMode\n\t-p\t"
     "No error if exists; make parent directories as needed\n"),
    (["rm", "/nope"], 1, "", "rm: can't remove '/nope': No such file or directory\n"),
    (["rm", "-f", "/nope"], 0, "", ""),
    (["rm", "/srv"], 1, "", "rm: '/srv' is a directory\n"),
    (["echo", "-n", "a", "b"], 0, "a b", ""),
    (["echo", "-e", "a\\tb"], 0, "a\tb\n", ""),
    (["echo", "a\\tb"], 0, "a\\tb\n", ""),
    (["echo"], 0, "\n", ""),
    (["echo", "--", "x"], 0, "-- x\n", ""),
    (["true", "ignored"], 0, "", ""),
    (["pwd"], 0, "/root\n", ""),
    (["sh", "-c", "echo $HOME $USER $NOPE end"], 0, "/root root end\n", ""),
    (["sh", "-c", "X=1; echo $X ${X}y \"$X\" '$X'"], 0, "1 1y 1 $X\n", ""),
    (["sh", "-c", "exit"], 0, "", ""),
    (["sh", "-c", "false; exit"], 1, "", ""),
    (["sh", "-c", "echo a > /srv/r1; echo b >> /srv/r1; cat < /srv/r1"], 0, "a\nb\n", ""),
    (["sh", "-c", "echo x > /nodir/y"], 1, "",
     "sh: can't create /nodir/y: nonexistent directory\n"),
    (["sh", "-c", "cat < /nope"], 1, "", "sh: can't open /nope: no such file\n"),
    (["sh", "-c", "true && echo yes || echo no"], 0, "yes\n", ""),
    (["sh", "-c", "false && echo yes || echo no"], 0, "no\n", ""),
    (["sh", "-c", "echo err >&2"], 0, "", "err\n"),
    (["sh", "-c", "ls /nope 2>&1"], 1, "ls: /nope: No such file or directory\n", ""),
    (["sh", "-c", "ls /nope 2>/dev/null; echo $?"], 0, "1\n", ""),
    (["sh", "-c", "echo a | cat"], 0, "a\n", ""),
    (["sh", "-c", "if true; then echo x; fi"], 0, "x\n", ""),
    (["sh", "-c", "if false; then echo x; elif true; then echo y; else echo z; fi"], 0, "y\n", ""),
    (["sh", "-c", "for i in 1 2 3; do echo $i; done"], 0, "1\n2\n3\n", ""),
    (["sh", "-c", "echo $(echo sub) $(cat /etc/hostname)"], 0, "sub busybox\n", ""),
    (["sh", "-c", "echo 'unterminated"], 2, "", "sh: syntax error: unterminated quoted string\n"),
    (["sh", "-c", "cd /srv && pwd"], 0, "/srv\n", ""),
    (["sh", "-c", "read x; echo got:$x"], 0, "got:\n", ""),
    (["sh", "-c", "echo $0 $1 $#", "zero", "one"], 0, "zero one 1\n", ""),
    (["sh", "-c"], 2, "", "sh: -c requires an argument\n"),
    (["sh", "-c", ""], 0, "", ""),
    (["sh", "-c", "echo a;;"], 2, "", "sh: syntax error: unexpected \";;\"\n"),
    (["sh", "-c", "&& echo"], 2, "", "sh: syntax error: unexpected \"&&\"\n"),
    (["sh", "-c", "echo $?; false; echo $?"], 0, "0\n1\n", ""),
    (["env", "-i"], 0, "", ""),
    (["env", "FOO=1", "sh", "-c", "echo $FOO"], 0, "1\n", ""),
    (["sleep", "0.1"], 0, "", ""),
    (["sleep", "x"], 1, "", "sleep: invalid number 'x'\n"),
    (["/bin/echo", "abs"], 0, "abs\n", ""),
    (["/bin/busybox", "echo", "bb"], 0, "bb\n", ""),
    (["busybox", "echo", "bb"], 0, "bb\n", ""),
    (["test", "-f", "/etc/hostname"], 0, "", ""),
    (["[", "-d", "/etc", "]"], 0, "", ""),
    (["sh", "-c", "[ -d /etc ] && echo dir"], 0, "dir\n", ""),
    (["sh", "-c", "echo a; # comment"], 0, "a\n", ""),
    (["sh", "-c", "echo \"a  b\"   c"], 0, "a  b c\n", ""),
    (["sh", "-c", "echo a\\ b"], 0, "a b\n", ""),
    (["sh", "-c", "exit 300"], 44, "", ""),
    (["sh", "-c", ":"], 0, "", ""),
    (["sh", "-c", "touch /srv/t1 && ls /srv/t1"], 0, "/srv/t1\n", ""),
    (["sh", "-c", "cd /etc; ls host*"], 0, "hostname\nhosts\n", ""),
    (["sh", "-c", "A=2 env | grep -c ^A=2; echo ${#HOME} ${UNSET:-dflt}"], 0, "1\n5 dflt\n",
     ""),
    (["sh", "-c", "cat > /srv/h <<EOF\na $HOME\n  b\nEOF\ncat /srv/h"], 0, "a /root\n  b\n", ""),
    (["sh", "-c", "cat <<'EOF'\n$HOME\nEOF"], 0, "$HOME\n", ""),
    (["sh", "-c", "cat <<-EOF\n\tindented\n\tEOF"], 0, "indented\n", ""),
    (["sh", "-c", "i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; echo $i $((2*3+1)) "
                  "$(( 7 / 2 )) $((7%3)) $((1<2))"], 0, "3 7 3 1 1\n", ""),
    (["sh", "-c", "echo $((1/0))"], 2, "", "sh: divide by zero\n"),
    (["sh", "-c", "echo `echo a \\`echo b\\``"], 0, "a b\n", ""),
    (["sh", "-c", "echo a\ncd /nope\necho rc=$?"], 0, "a\nrc=2\n",
     "sh: cd: line 1: can't cd to /nope: No such file or directory\n"),
    (["sh", "-c", "exit abc"], 2, "", "sh: exit: line 0: Illegal number: abc\n"),
    (["sh", "-c", "shift 3"], 1, "", ""),
    (["sh", "-c", "for 1 in a; do echo; done"], 2, "", "sh: syntax error: bad for loop variable\n"),
    (["sh", "-c", "{ echo a; } > /srv/g; cat /srv/g; (cd /etc; pwd); pwd"], 0,
     "a\n/etc\n/root\n", ""),
    (["sh", "-c", "set -e; false; echo no"], 1, "", ""),
    (["sh", "-c", "! true; echo $? $#; set -- a b; echo $# $@"], 0, "1 0\n2 a b\n", ""),
    (["sh", "-c", "unset HOME; echo ${HOME-unset}; export X=1; sh -c 'echo $X $SHLVL'"], 0,
     "unset\n1 2\n", ""),
    (["sh", "/nope"], 2, "", "sh: can't open '/nope': No such file or directory\n"),
    (["env", "nope"], 127, "", "env: can't execute 'nope': No such file or directory\n"),
    (["env", "-u", "HOME", "sh", "-c", "echo ${HOME:-none}"], 0, "none\n", ""),
    (["busybox", "nonexistent-applet"], 127, "", "nonexistent-applet: applet not found\n"),
    (["mkdir", "-p", "/etc/hostname/x"], 1, "",
     "mkdir: can't create directory '/etc/hostname/': Not a directory\n"),
    (["mkdir", "-p", "/etc/hostname"], 1, "",
     "mkdir: can't create directory '/etc/hostname': File exists\n"),
    (["grep", "-n", "root", "/etc/passwd"], 0, "1:root:x:0:0:root:/root:/bin/sh\n", ""),
    (["grep", "nope", "/etc/passwd"], 1, "", ""),
    (["test", "1", "-eq", "x"], 2, "", "test: x: bad number\n"),
    (["[", "a"], 2, "", "[: missing ]\n"),
    (["echo", "-e", "a\\cb"], 0, "a", ""),
    (["head", "-n", "2", "/etc/passwd"],
     0, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", ""),
    (["head", "-1", "/etc/hosts"], 0, "127.0.0.1\tlocalhost\n", ""),
    (["tail", "-n", "1", "/etc/hosts"], 0, "::1\tlocalhost\n", ""),
    (["tail", "-n", "+2", "/etc/hosts"], 0, "::1\tlocalhost\n", ""),
    (["sh", "-c", "cat /etc/passwd | head -n 1"], 0, "root:x:0:0:root:/root:/bin/sh\n", ""),
    (["wc", "-l", "/etc/passwd"], 0, "2 /etc/passwd\n", ""),
    (["sh", "-c", "wc -l < /etc/passwd"], 0, "2\n", ""),
    (["sh", "-c", "echo a b c | wc -w"], 0, "3\n", ""),
    (["sh", "-c", "printf 'b\\na\\nc\\n' | sort"], 0, "a\nb\nc\n", ""),
    (["sh", "-c", "printf '10\\n9\\n100\\n' | sort -n"], 0, "9\n10\n100\n", ""),
    (["sh", "-c", "printf 'b\\na\\nb\\n' | sort -u -r"], 0, "b\na\n", ""),
    (["sh", "-c", "echo hi | tee /srv/tee1; cat /srv/tee1"], 0, "hi\nhi\n", ""),
    (["basename", "/a/b/c.txt", ".txt"], 0, "c\n", ""),
    (["basename", "/"], 0, "/\n", ""),
    (["dirname", "/a/b/c"], 0, "/a/b\n", ""),
    (["dirname", "c"], 0, ".\n", ""),
    (["dirname", "/a/"], 0, "/\n", ""),
    (["id", "-u"], 0, "0\n", ""),
    (["whoami"], 0, "root\n", ""),
    (["sh", "-c", "ln -s /etc/hostname /srv/lnk; readlink /srv/lnk; cat /srv/lnk"],
     0, "/etc/hostname\nbusybox\n", ""),
    (["sh", "-c", "cp /etc/hostname /srv/cp1; cat /srv/cp1; cp /etc /srv/e2"],
     1, "busybox\n", "cp: omitting directory '/etc'\n"),
    (["sh", "-c", "mkdir /srv/d; cp /etc/hosts /srv/d; ls /srv/d; "
                  "cp -r /etc/init.d /srv/d/; ls /srv/d"],
     0, "hosts\nhosts\ninit.d\n", ""),
    (["sh", "-c", "echo m > /srv/m1; mv /srv/m1 /srv/m2; cat /srv/m2; ls /srv/m1"],
     1, "m\n", "ls: /srv/m1: No such file or directory\n"),
    (["cp", "/nope", "/srv/"], 1, "", "cp: can't stat '/nope': No such file or directory\n"),
    (["seq", "3"], 0, "1\n2\n3\n", ""),
    (["seq", "2", "5"], 0, "2\n3\n4\n5\n", ""),
    (["seq", "5", "-2", "1"], 0, "5\n3\n1\n", ""),
    (["printf", "%s-%d\\n", "a", "5", "b", "6"], 0, "a-5\nb-6\n", ""),
    (["printf", "%5s|%-3s|\\n", "ab", "c"], 0, "   ab|c  |\n", ""),
    (["printf", "%x %o %c\\n", "255", "8", "xyz"], 0, "ff 10 x\n", ""),
    (["sh", "-c", "readlink -f /bin/sh"], 0, "/bin/busybox\n", ""),
    (["ln", "/etc/hostname", "/srv/hard"], 0, "", ""),
    (["sh", "-c", "ln -s a /srv/sl; ln -s b /srv/sl"], 1, "", "ln: /srv/sl: File exists\n"),
    (["mv", "/nope", "/srv/z"], 1, "", "mv: can't rename '/nope': No such file or directory\n"),
    (["sh", "-c", "mkdir -p /srv/d/x; mv /srv/d /srv/d/e; mv /srv/d /srv/d; ls /srv/d"], 0,
     "x\n", "mv: can't rename '/srv/d': Invalid argument\n" * 2),
    (["sh", "-c", "mkdir -p /srv/d/x; echo hi > /srv/d/x/f; cp -r /srv/d /srv/d/e; "
      "echo rc=$?; cp -r /srv/d /srv/d; echo rc=$?; ls /srv/d /srv/d/d /srv/d/d/e; "
      "cat /srv/d/d/e/x/f"], 0,
     "rc=1\nrc=1\n/srv/d:\nd\ne\nx\n\n/srv/d/d:\ne\nx\n\n/srv/d/d/e:\nx\nhi\n",
     "cp: recursion detected, omitting directory '/srv/d/e'\n"
     "cp: recursion detected, omitting directory '/srv/d/d'\n"),
    (["wc", "/etc/hosts", "/etc/passwd"], 0, "        2         4        34 /etc/hosts\n"
     "        2         2        82 /etc/passwd\n        4         6       116 total\n", ""),
    (["id"], 0, "uid=0(root) gid=0(root)\n", ""),
    (["sh", "-c", "echo 'a b' | while read x y; do echo $y $x; done"], 0, "b a\n", ""),
    (["sh", "-c", "i=; until [ \"$i\" = xxx ]; do i=x$i; done; echo $i"], 0, "xxx\n", ""),
]


@pytest.mark.parametrize(("command", "code", "out", "err"), COMMANDS,
                         ids=[" ".join(c[0])[:40] for c in COMMANDS])
def test_busybox_commands(api: API, inst: str, command: list[str], code: int, out: str,
                          err: str) -> None:
    op, stdout, stderr = task(api, inst, command)
    assert (op["metadata"]["return"], stdout.decode(), stderr.decode()) == (code, out, err)


def test_hostname_is_the_instance_name(api: API, inst: str) -> None:
    _, out, _ = task(api, inst, ["hostname"])
    assert out == f"{inst}\n".encode()


def test_working_directory_and_user(api: API, inst: str) -> None:
    assert task(api, inst, ["pwd"], cwd="/srv")[1] == b"/srv\n"
    assert task(api, inst, ["pwd"], cwd="/nonexistent")[1] == b"/\n"
    assert task(api, inst, ["pwd"], user=1000)[1] == b"/\n"
    _, out, _ = task(api, inst, ["env"], user=1000, group=1000)
    assert out.decode().splitlines() == [f"PATH={PATH}", "container=lxc", "LANG=C.UTF-8"]
    task(api, inst, ["touch", "/tmp/mine"], user=1000, group=1001)
    got = api.get(f"/1.0/instances/{inst}/files", params={"path": "/tmp/mine"})
    assert (got.headers["X-Lxd-Uid"], got.headers["X-Lxd-Gid"]) == ("1000", "1001")


def test_commands_and_the_files_api_share_the_filesystem(api: API, inst: str) -> None:
    files = f"/1.0/instances/{inst}/files"
    api.request("POST", files, params={"path": "/srv/in.txt"}, data=b"pushed\n")
    _, out, _ = task(api, inst, ["sh", "-c", "cat /srv/in.txt; mkdir -p /srv/a/b && "
                                             "echo made > /srv/a/b/f; "
                                             "rm /srv/in.txt"])
    assert out == b"pushed\n"
    assert api.get(files, params={"path": "/srv/a/b/f"}).raw == b"made\n"
    assert api.get(files, params={"path": "/srv/in.txt"}).status == 404
    task(api, inst, ["rm", "-r", "/srv/a"])
    assert api.get(files, params={"path": "/srv"}).metadata == []


def test_scripts_run_through_their_interpreter(api: API, inst: str) -> None:
    files = f"/1.0/instances/{inst}/files"
    api.request("POST", files, params={"path": "/usr/bin/greet"},
                data=b"#!/bin/sh\necho hello $1\nexit 7\n", headers={"X-LXD-mode": "0755"})
    api.request("POST", files, params={"path": "/srv/noexec"}, data=b"#!/bin/sh\necho x\n")
    op, out, _ = task(api, inst, ["greet", "world"])
    assert (op["metadata"]["return"], out) == (7, b"hello world\n")
    op, _, _ = task(api, inst, ["/srv/noexec"])
    assert (op["err"], op["metadata"]["return"]) == ("Command not executable", 126)
    op, out, _ = task(api, inst, ["sh", "/srv/noexec"])
    assert (op["metadata"]["return"], out) == (0, b"x\n")


# -- clients ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pylxd_execute(api: API, inst: str) -> None:
    client = pylxd.Client(endpoint=socket_path(api))
    instance = client.instances.get(inst)
    assert tuple(instance.execute(["echo", "hi"])) == (0, "hi\n", "")
    result = instance.execute(["sh", "-c", "cat; echo oops >&2; exit 4"],
                              stdin_payload="from stdin\n")
    assert (result.exit_code, result.stdout, result.stderr) == (4, "from stdin\n", "oops\n")
    assert instance.execute(["pwd"], cwd="/srv").stdout == "/srv\n"
    assert instance.execute(["sh", "-c", "echo $GREETING"],
                            environment={"GREETING": "hello"}).stdout == "hello\n"
    with pytest.raises(LXDAPIException, match="Command not found"):
        instance.execute(["nonexistent"])  # pylxd raises for the failed operation


@pytest.fixture
def tls_client(tmp_path: Path) -> ClientCert:
    return client_cert(tmp_path, "exec")


def https_base(api: API) -> str:
    if api.is_fake:
        return str(api.server.https_url)  # type: ignore[attr-defined]
    address = api.get("/1.0").metadata["config"].get("core.https_address")
    assert address, "the real host listens on HTTPS (scripts/lxd-host)"
    return f"https://{address}"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_exec_over_tls(api: API, inst: str, tls_client: ClientCert) -> None:
    body = tls_client.pem.decode().split("-----")[2]
    reply = api.post("/1.0/certificates", {"type": "client", "name": unique("exc"),
                                           "certificate": "".join(body.split())})
    assert reply.status in (200, 201), reply
    api.delete_later(f"/1.0/certificates/{tls_client.fingerprint}")
    base = https_base(api)
    tls_api = API.https(api.kind, base, tls_client.pair, False)
    reply = tls_api.post(f"/1.0/instances/{inst}/exec",
                         {"command": ["sh", "-c", "cat; echo done"], "wait-for-websocket": True})
    assert reply.status == 202, reply
    op = reply.metadata
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(*tls_client.pair)
    url = base.replace("https://", "wss://") + f"/1.0/operations/{op['id']}/websocket?secret="
    fds = op["metadata"]["fds"]
    out: list[bytes] = []
    with wss_connect(url + fds["1"], context, open_timeout=10) as fd1, \
            wss_connect(url + fds["2"], context, open_timeout=10), \
            wss_connect(url + fds["0"], context, open_timeout=10) as fd0:
        fd0.send(b"over tls\n")
        fd0.send("")

        def reader() -> None:
            try:
                while True:
                    message = fd1.recv(timeout=10)
                    if message in ("", b""):
                        return
                    out.append(message if isinstance(message, bytes) else message.encode())
            except Exception:  # noqa: BLE001 - the server hangs up after its barrier
                return

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(15)
    final = tls_api.get(f"/1.0/operations/{op['id']}/wait", params={"timeout": 30}).metadata
    assert final["metadata"]["return"] == 0
    assert b"".join(out) == b"over tls\ndone\n"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_pylxd_execute_over_https(api: API, inst: str, tls_client: ClientCert, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """pylxd over HTTPS with a trusted client certificate: its exec websockets are wss."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    body = tls_client.pem.decode().split("-----")[2]
    reply = api.post("/1.0/certificates", {"type": "client", "name": unique("exp"),
                                           "certificate": "".join(body.split())})
    assert reply.status in (200, 201), reply
    api.delete_later(f"/1.0/certificates/{tls_client.fingerprint}")
    server_cert = tmp_path / "server.crt"
    server_cert.write_text(api.get("/1.0").metadata["environment"]["certificate"])
    client = pylxd.Client(endpoint=https_base(api), cert=tls_client.pair,
                          verify=str(server_cert))
    assert client.trusted
    instance = client.instances.get(inst)
    expected = (0, f"secure\n{inst}\n", "")
    results = []
    for _ in range(3):
        try:
            results.append(tuple(instance.execute(["sh", "-c", "cat; hostname"],
                                                  stdin_payload="secure\n")))
        except ssl.SSLEOFError as exc:
            # pylxd's own race, on LXD 5.0.2 as on the fake (about 1 run in 8): once the
            # command ends, the server ends its streams; if ws4py has already read that EOF,
            # pylxd's close_all() writes a close frame on the dead TLS connection and only
            # BrokenPipeError is suppressed there. The same call is tried again.
            results.append(repr(exc))
            continue
        if results[-1] == expected:
            break
        # ws4py over TLS now and then loses the last output frame (pylxd stops its manager
        # as soon as the operation ends; a frame still in the TLS layer is never read): a
        # short stdout, seen once in a CI run. Tried again too.
    assert results[-1] == expected, f"pylxd's races three times in a row: {results}"


# -- handlers (fake only) -----------------------------------------------------------------------


@pytest.mark.fake_only
def test_exec_handlers(api: API, inst: str) -> None:
    fake = api.server  # type: ignore[attr-defined]
    seen: list[Any] = []

    def apt_get(argv: list[str], env: dict[str, str], cwd: str, stdin: bytes,
                instance: Any) -> tuple[int, str, str]:
        seen.append((argv, env.get("FOO"), cwd, stdin, instance.name))
        instance.write_file("/usr/bin/hello", b"#!/bin/sh\necho hello from hello\n",
                            mode=0o755)
        return 0, "installed\n", "warning\n"

    fake.exec_handler("apt-get", apt_get)
    final, out, err = run(api, inst, ["apt-get", "install", "-y", "hello"], stdin=b"yes\n",
                          environment={"FOO": "bar"}, cwd="/srv")
    assert (final["metadata"]["return"], out, err) == (0, b"installed\n", b"warning\n")
    assert seen == [(["apt-get", "install", "-y", "hello"], "bar", "/srv", b"yes\n", inst)]
    assert run(api, inst, ["hello"])[1] == b"hello from hello\n"
    # Handlers are found from sh, env and by basename too.
    _, out, _ = task(api, inst, ["sh", "-c", "/usr/bin/apt-get update && echo ok"])
    assert out == b"installed\nok\n"
    assert task(api, inst, ["env", "apt-get"])[1] == b"installed\n"


@pytest.mark.fake_only
def test_exec_handler_variants(api: API, inst: str) -> None:
    fake = api.server  # type: ignore[attr-defined]

    @fake.exec_handler("stream")
    def stream(argv: list[str], env: dict[str, str], cwd: str, stdin: bytes,
               instance: Any) -> Any:
        yield "one\n"
        yield 2, b"to stderr\n"
        yield b"two\n"
        return 9

    def broken(*args: Any) -> Any:
        raise RuntimeError("handler bug")

    fake.exec_handler("broken", broken)
    final, out, err = run(api, inst, ["stream"])
    assert (final["metadata"]["return"], out, err) == (9, b"one\ntwo\n", b"to stderr\n")
    final, out, err = run(api, inst, ["broken"])
    assert final["metadata"]["return"] == 1 and err == b"broken: RuntimeError: handler bug\n"
    fake.reset()  # handlers are forgotten with the rest
    assert "stream" not in fake.exec_handlers


@pytest.mark.fake_only
def test_unsupported_shell_syntax_says_so(api: API, inst: str) -> None:
    """Constructs the fake's sh does not run end with a clear message and exit 2."""
    for script, what in (("case a in a) echo A;; esac", "'case'"),
                         ("f() { echo fn; }; f", "function definitions"),
                         ("sleep 1 & wait", "background jobs (&)")):
        op, out, err = task(api, inst, ["sh", "-c", script])
        assert (op["metadata"]["return"], out) == (2, b"")
        assert err == f"sh: lxd-fake: unsupported shell syntax: {what}\n".encode()


@pytest.mark.fake_only
def test_unknown_applets_say_so(api: API, inst: str) -> None:
    """Busybox applets the fake has no built-in for end as a missing command (127)."""
    op, _, err = task(api, inst, ["awk", "1"])
    assert (op["err"], op["metadata"]["return"]) == ("Command not found", 127)
    assert b"awk: not a built-in command of the fake" in err


@pytest.mark.fake_only
def test_reset_ends_running_commands(api: API, inst: str) -> None:
    fake = api.server  # type: ignore[attr-defined]
    op, url = start(api, inst, ["sleep", "60"])
    fds = op["metadata"]["fds"]
    socks = [Raw(api, url + fds[key]) for key in ("0", "1", "2")]
    time.sleep(0.2)
    began = time.monotonic()
    fake.reset()
    assert socks[1].frames(5)[-1] == EOF
    assert time.monotonic() - began < 3


def test_stopping_the_server_ends_running_commands(tmp_path: Path) -> None:
    """(Fake only.) ``FakeLXD.stop()`` kills running execs and drops their websockets."""
    with FakeLXD(tmp_path / "lxd") as server:
        api = API.unix("fake", server.socket_path)
        api.server = server  # type: ignore[attr-defined]
        name = started(api)
        op, url = start(api, name, ["sleep", "60"])
        fds = op["metadata"]["fds"]
        socks = [Raw(api, url + fds[key]) for key in ("control", "0", "1", "2")]
        time.sleep(0.2)
        began = time.monotonic()
        server.stop()
        assert all(sock.frames(5)[-1] == EOF for sock in socks)
        assert time.monotonic() - began < 3
        assert not server.handler_errors


def test_script_interpreters_nest_five_levels_deep(api: API, inst: str) -> None:
    """Linux runs a ``#!`` chain five scripts deep; a sixth (or a loop) fails with ELOOP: LXD
    returns 255 for its own exec, busybox sh says so and gives 127."""
    files = f"/1.0/instances/{inst}/files"

    def chain(prefix: str, levels: int) -> None:
        for level in range(1, levels + 1):
            following = f"/bin/sh\necho deep {levels}" if level == levels else \
                f"/srv/{prefix}{level + 1}"
            api.request("POST", files, params={"path": f"/srv/{prefix}{level}"},
                        data=f"#!{following}\n".encode(), headers={"X-LXD-mode": "0755"})

    chain("five", 5)
    chain("six", 6)
    api.request("POST", files, params={"path": "/srv/loop"}, data=b"#!/srv/loop\n",
                headers={"X-LXD-mode": "0755"})
    op, out, _ = task(api, inst, ["/srv/five1"])
    assert (op["metadata"]["return"], out) == (0, b"deep 5\n")
    for path in ("/srv/six1", "/srv/loop"):
        op, out, err = task(api, inst, [path])
        assert (op["status"], op["metadata"]["return"], out) == ("Success", 255, b""), path
    op, out, err = task(api, inst, ["sh", "-c", "/srv/loop; echo rc=$?"])
    assert (out, err) == (b"rc=127\n", b"sh: /srv/loop: Too many levels of symbolic links\n")
