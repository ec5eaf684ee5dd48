"""``/1.0/events``: the websocket event stream, the same on the fake and on real LXD.

The real host is shared with other test runs, so these tests only look at events about objects
they made (unique names) and never assume the stream is otherwise quiet; a server-side filter
(type, project) is checked by asserting that *every* event received passes it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pylxd
import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, unix_connect

from fakeserver import FakeLXD
from fakeserver import websocket as fws
from tests.support import API, poll, unique, wss_connect

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

Event = dict[str, Any]


def socket_path(api: API) -> str:
    return urllib.parse.unquote(api.base[len("http+unix://"):])


@contextmanager
def events(api: API, query: str = "") -> Iterator[ClientConnection]:
    """An ``/1.0/events`` websocket over the backend's unix socket."""
    with unix_connect(socket_path(api), f"ws://localhost/1.0/events{query}",
                      open_timeout=10, close_timeout=2) as ws:
        yield ws


def collect(ws: ClientConnection, until: Callable[[Event], bool], timeout: float = 10.0,
            raw: list[str] | None = None) -> list[Event]:
    """Every event received until one matches ``until`` (which is the last one)."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching event in {timeout}s; got {seen[-5:]}")
        message = ws.recv(timeout=left)
        assert isinstance(message, str), "events are text frames"
        if raw is not None:
            raw.append(message)
        event = json.loads(message)
        seen.append(event)
        if until(event):
            return seen


def about(source: str, action: str | None = None) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        meta = event.get("metadata") or {}
        return (event["type"] == "lifecycle" and meta.get("source", "").startswith(source)
                and (action is None or meta.get("action") == action))

    return match


def make_profile(api: API, name: str | None = None) -> str:
    name = name or unique("ev")
    reply = api.post("/1.0/profiles", {"name": name})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/profiles/{name}")
    return name


def make_project(api: API) -> str:
    name = unique("evp")
    reply = api.post("/1.0/projects", {"name": name, "config": {"features.profiles": "true"}})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{name}")
    return name


UNIX_REQUESTOR = {"username": "root", "protocol": "unix", "address": "@"}


# -- parameters and the handshake ----------------------------------------------------------

def test_without_upgrade_headers_is_gorillas_plain_400(api: API) -> None:
    for query in ["", "?type=", "?type=lifecycle,lifecycle", "?project=", "?all-projects=1",
                  "?all-projects=yes"]:
        reply = api.get(f"/1.0/events{query}")
        assert reply.status == 400, query
        assert reply.raw == b"Bad Request\n"
        assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert reply.headers["Sec-Websocket-Version"] == "13"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_parameters_are_checked_before_the_upgrade(api: API) -> None:
    cases = [
        ("type=bogus", '"bogus" isn\'t a supported event type'),
        ("type=lifecycle,", '"" isn\'t a supported event type'),
        ("type=LIFECYCLE", '"LIFECYCLE" isn\'t a supported event type'),
        ("project=nope", "Project not found"),
        ("project=nope&type=bogus", "Project not found"),
        ("project=default&all-projects=true", "Cannot specify a project when requesting all "
                                              "projects"),
        ("project=nope&all-projects=1", "Cannot specify a project when requesting all "
                                        "projects"),
    ]
    for query, message in cases:
        reply = api.get(f"/1.0/events?{query}")
        assert (reply.status, reply.error) == (500, message), query
        assert reply.body["type"] == "error" and reply.body["error_code"] == 500
        assert reply.raw.endswith(b"}\n\n")
        # the same with a proper handshake: still an error, no upgrade
        with pytest.raises(Exception) as info:
            with events(api, f"?{query}"):
                pass
        assert "500" in str(info.value), query


def test_handshake_first_frame_is_keepalive_ping(api: API) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(socket_path(api))
    try:
        sock.sendall((f"GET /1.0/events?type=lifecycle HTTP/1.1\r\nHost: localhost\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 11:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        assert headers["upgrade"] == "websocket"
        assert headers["connection"] == "Upgrade"
        assert headers["sec-websocket-accept"] == fws.accept_value(key)
        assert rest[:11] == b"\x89\x09keepalive"
    finally:
        sock.close()


# -- what the stream says ------------------------------------------------------------------

def test_profile_created_lifecycle_event(api: API) -> None:
    with events(api) as ws:
        name = make_profile(api)
        raw: list[str] = []
        seen = collect(ws, about(f"/1.0/profiles/{name}"), raw=raw)
    event = seen[-1]
    assert list(event) == ["type", "timestamp", "metadata", "location", "project"]
    assert event["type"] == "lifecycle" and event["project"] == "default"
    assert event["location"] == "none"
    assert event["metadata"] == {"action": "profile-created", "source": f"/1.0/profiles/{name}",
                                 "requestor": UNIX_REQUESTOR}
    assert event["timestamp"].endswith("Z")
    assert raw[-1].endswith("}\n"), "each frame is a JSON line"


def test_events_follow_each_other(api: API) -> None:
    with events(api, "?type=lifecycle") as ws:
        name = make_profile(api)
        assert api.put(f"/1.0/profiles/{name}", {"description": "x"}).status == 200
        assert api.delete(f"/1.0/profiles/{name}").status == 200
        seen = collect(ws, about(f"/1.0/profiles/{name}", "profile-deleted"))
    mine = [e["metadata"]["action"] for e in seen if about(f"/1.0/profiles/{name}")(e)]
    assert mine == ["profile-created", "profile-updated", "profile-deleted"]


def test_type_filter_lifecycle_only(api: API) -> None:
    # all projects: project-renamed is an event of the renamed project
    with events(api, "?type=lifecycle&all-projects=true") as ws:
        project = make_project(api)
        reply = api.post(f"/1.0/projects/{project}", {"name": project + "r"})
        assert reply.status == 202, reply
        api.later(lambda: api.delete(f"/1.0/projects/{project}r"))
        api.wait(reply)
        name = make_profile(api)
        seen = collect(ws, about(f"/1.0/profiles/{name}"))
    assert {e["type"] for e in seen} == {"lifecycle"}
    renamed = [e for e in seen if about(f"/1.0/projects/{project}r", "project-renamed")(e)]
    assert len(renamed) == 1
    assert renamed[0]["project"] == f"{project}r"
    assert renamed[0]["metadata"]["context"] == {"old_name": project}


def test_type_filter_operation_only(api: API) -> None:
    with events(api, "?type=operation") as ws:
        project = make_project(api)
        make_profile(api)
        reply = api.post(f"/1.0/projects/{project}", {"name": project + "r"})
        assert reply.status == 202, reply
        api.later(lambda: api.delete(f"/1.0/projects/{project}r"))
        op_id = reply.body["metadata"]["id"]
        seen = collect(ws, lambda e: e["metadata"]["id"] == op_id
                       and e["metadata"]["status_code"] >= 200)
    assert {e["type"] for e in seen} == {"operation"}
    mine = [e for e in seen if e["metadata"]["id"] == op_id]
    assert {e["metadata"]["status"] for e in mine} >= {"Running", "Success"}
    final = mine[-1]["metadata"]
    assert final["description"] == "Renaming project" and final["err"] == ""


def test_type_filter_several(api: API) -> None:
    with events(api, "?type=operation,lifecycle") as ws:
        name = make_profile(api)
        seen = collect(ws, about(f"/1.0/profiles/{name}"))
    assert {e["type"] for e in seen} <= {"operation", "lifecycle"}


def test_project_filter(api: API) -> None:
    project = make_project(api)
    other = api.in_project(project)
    with events(api, f"?project={project}&type=lifecycle") as in_project, \
            events(api, "?type=lifecycle") as in_default, \
            events(api, "?all-projects=true&type=lifecycle") as everywhere:
        theirs = make_profile(other)
        ours = make_profile(api)
        got_project = collect(in_project, about(f"/1.0/profiles/{theirs}"))
        got_default = collect(in_default, about(f"/1.0/profiles/{ours}"))
        got_all = collect(everywhere, about(f"/1.0/profiles/{ours}"))
    assert all(e["project"] == project for e in got_project)
    assert got_project[-1]["metadata"]["source"] == f"/1.0/profiles/{theirs}?project={project}"
    assert all(e["project"] == "default" for e in got_default)
    assert not any(about(f"/1.0/profiles/{theirs}")(e) for e in got_default)
    sources = [e["metadata"]["source"] for e in got_all]
    assert f"/1.0/profiles/{theirs}?project={project}" in sources
    assert sources.index(f"/1.0/profiles/{theirs}?project={project}") < sources.index(
        f"/1.0/profiles/{ours}")


# -- the websocket itself ------------------------------------------------------------------

def test_pings_are_answered_and_pongs_tolerated(api: API) -> None:
    with events(api, "?type=lifecycle") as ws:
        assert ws.ping(b"are you there").wait(5)
        ws.pong(b"unsolicited")
        name = make_profile(api)
        assert collect(ws, about(f"/1.0/profiles/{name}"))


@pytest.mark.parametrize("message", ["hello server", b"\x00\x01binary",
                                     '{"type":"lifecycle","metadata":{}}'])
def test_client_data_frames_drop_the_connection(api: API, message: str | bytes) -> None:
    """LXD reads no data from an events client: it hangs up, without a close frame."""
    with events(api, "?type=lifecycle") as ws:
        ws.send(message)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=5)
        assert info.value.rcvd is None


def test_client_close_is_answered(api: API) -> None:
    """A client's close ends the stream at once, answered with a close frame (1000).

    On LXD 5.0.2 the answer races the server's own hang-up (gorilla's read loop answers the
    close while the listener, told by that same read that the client went away, closes the
    connection): 11 of 60 closes in a row here got no close frame back. So the real host may
    skip it; the fake always answers."""
    with events(api) as ws:
        start = time.monotonic()
        ws.close()
        assert time.monotonic() - start < 2
        answer = ws.protocol.close_rcvd
        if api.is_fake:
            assert answer is not None, "the server answered with a close frame"
        if answer is not None:
            assert answer.code == 1000


def test_pylxd_events(api: API) -> None:
    client = pylxd.Client(endpoint=socket_path(api))
    ws = client.events(event_types={pylxd.EventType.Lifecycle})
    ws.connect()
    runner = threading.Thread(target=ws.run, daemon=True)
    runner.start()
    try:
        name = make_profile(api)

        def mine() -> list[Event]:
            return [m for m in list(ws.messages) if about(f"/1.0/profiles/{name}")(m)]

        found = poll(mine, timeout=10)
        assert found and found[0]["metadata"]["action"] == "profile-created"
        assert all(m["type"] == "lifecycle" for m in list(ws.messages))
    finally:
        ws.close()
        runner.join(5)
    assert not runner.is_alive()


@pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is not installed")
def test_lxc_waits_for_operations_through_events(api: API, tmp_path: Path) -> None:
    """``lxc`` waits on an operation by its events (no /wait): a rename must complete."""
    env = dict(os.environ, LXD_DIR=os.path.dirname(socket_path(api)),
               LXD_CONF=str(tmp_path / "lxc-conf"))
    name = unique("evl")

    def lxc(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                                  timeout=30, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"lxc {' '.join(args)} hung: {exc.stdout!r} {exc.stderr!r}"
                                 ) from None

    assert lxc("project", "create", name).returncode == 0
    api.delete_later(f"/1.0/projects/{name}")
    api.delete_later(f"/1.0/projects/{name}r")
    done = lxc("project", "rename", name, f"{name}r")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Project {name} renamed to {name}r"
    assert api.get(f"/1.0/projects/{name}r").status == 200


# -- over TLS ------------------------------------------------------------------------------

@pytest.fixture
def client_cert(tmp_path: Path) -> tuple[str, str, str]:
    """(cert file, key file, fingerprint) of a fresh client certificate."""
    ca = trustme.CA()
    leaf = ca.issue_cert("client.invalid", common_name="pytest-events")
    cert_file, key_file = tmp_path / "client.crt", tmp_path / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return str(cert_file), str(key_file), cert.fingerprint(hashes.SHA256()).hex()


def https_address(api: API) -> str:
    if api.is_fake:
        host, port = api.server.https_address  # type: ignore[attr-defined]
        return f"{host}:{port}"
    address = api.get("/1.0").metadata["config"].get("core.https_address")
    assert address, "the real host listens on HTTPS (scripts/lxd-host)"
    return str(address)


def tls_context(cert: tuple[str, str, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def trust(api: API, cert: tuple[str, str, str], **extra: Any) -> None:
    pem = Path(cert[0]).read_bytes()
    der = ssl.PEM_cert_to_DER_cert(pem.decode())
    reply = api.post("/1.0/certificates", {"type": "client", "name": unique("evc"),
                                           "certificate": base64.b64encode(der).decode(),
                                           **extra})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/certificates/{cert[2]}")


def test_events_over_tls(api: API, client_cert: tuple[str, str, str]) -> None:
    trust(api, client_cert)
    address = https_address(api)
    tls_api = API.https(api.kind, f"https://{address}", client_cert[:2], False)
    with wss_connect(f"wss://{address}/1.0/events?type=lifecycle", tls_context(client_cert),
                 open_timeout=10, close_timeout=2) as ws:
        assert ws.ping(b"tls").wait(5)
        name = unique("evt")
        reply = tls_api.post("/1.0/profiles", {"name": name})
        assert reply.status == 201, reply
        api.delete_later(f"/1.0/profiles/{name}")
        event = collect(ws, about(f"/1.0/profiles/{name}"))[-1]
    requestor = event["metadata"]["requestor"]
    assert requestor["username"] == client_cert[2]
    assert requestor["protocol"] == "tls"
    assert requestor["address"].startswith("127.0.0.1:")


def test_logging_events_are_for_admins(api: API, client_cert: tuple[str, str, str]) -> None:
    """A restricted certificate may not ask for logging: LXD 5.0.2 answers 500 ``Forbidden``.

    (It still gets every project's lifecycle and operation events, as 5.0.2 does.)
    """
    project = make_project(api)
    trust(api, client_cert, restricted=True, projects=[project])
    address = https_address(api)
    tls_api = API.https(api.kind, f"https://{address}", client_cert[:2], False)
    for query in ("type=logging", f"type=lifecycle,logging&project={project}"):
        reply = tls_api.get(f"/1.0/events?{query}")
        assert (reply.status, reply.error) == (500, "Forbidden"), query
    reply = tls_api.get("/1.0/events?type=bogus,logging")
    assert (reply.status, reply.error) == (500, '"bogus" isn\'t a supported event type')
    with wss_connect(f"wss://{address}/1.0/events?type=lifecycle", tls_context(client_cert),
                 open_timeout=10, close_timeout=2) as ws:
        name = make_profile(api)  # in default, which the certificate is not restricted to
        assert collect(ws, about(f"/1.0/profiles/{name}"))


def test_events_over_tls_untrusted_is_403(api: API, client_cert: tuple[str, str, str]) -> None:
    address = https_address(api)
    tls_api = API.https(api.kind, f"https://{address}", client_cert[:2], False)
    reply = tls_api.get("/1.0/events")
    assert (reply.status, reply.error) == (403, "not authorized")
    with pytest.raises(Exception) as info:
        with wss_connect(f"wss://{address}/1.0/events", tls_context(client_cert),
                     open_timeout=10):
            pass
    assert "403" in str(info.value)


# -- only the fake: stopping, vanishing clients, bad frames, the ping interval ------------------

@pytest.fixture
def own_fake(tmp_path: Path) -> Iterator[FakeLXD]:
    """A fake of this test's own, so stopping it leaves the session's fake alone."""
    with FakeLXD(tmp_path / "lxd", https=True) as server:
        yield server


def own_events(server: FakeLXD, query: str = "") -> ClientConnection:
    return unix_connect(server.socket_path, f"ws://localhost/1.0/events{query}",
                        open_timeout=5, close_timeout=2)


@pytest.mark.fake_only
def test_stop_ends_every_events_websocket_promptly(
        own_fake: FakeLXD, client_cert: tuple[str, str, str]) -> None:
    trust(API.unix("fake", own_fake.socket_path), client_cert)
    host, port = own_fake.https_address  # type: ignore[misc]
    with ExitStack() as stack:
        clients = [stack.enter_context(own_events(own_fake)) for _ in range(5)]
        clients += [stack.enter_context(wss_connect(
            f"wss://{host}:{port}/1.0/events", tls_context(client_cert), open_timeout=5,
            close_timeout=2)) for _ in range(3)]
        assert poll(lambda: own_fake.events.listeners == 8, timeout=5)
        start = time.perf_counter()
        own_fake.stop()
        assert time.perf_counter() - start < 0.05
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=2)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert own_fake.events.listeners == 0


@pytest.mark.fake_only
def test_vanished_client_is_unsubscribed(own_fake: FakeLXD) -> None:
    with own_events(own_fake) as ws:
        assert poll(lambda: own_fake.events.listeners == 1, timeout=5)
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame
        assert poll(lambda: own_fake.events.listeners == 0, timeout=5)
    # a client that vanishes while events are being sent to it
    with own_events(own_fake) as ws:
        assert poll(lambda: own_fake.events.listeners == 1, timeout=5)
        ws.socket.shutdown(socket.SHUT_RDWR)
        for _ in range(50):
            own_fake.events.lifecycle("profile-updated", "/1.0/profiles/default")
        assert poll(lambda: own_fake.events.listeners == 0, timeout=5)
    assert not own_fake.handler_errors


def raw_ws(server: FakeLXD, query: str = "") -> socket.socket:
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(server.socket_path)
    sock.sendall((f"GET /1.0/events{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1)
    assert data.startswith(b"HTTP/1.1 101 ")
    return sock


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    first, second = exact(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", exact(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", exact(8))[0]
    return first & 0x0F, exact(size)


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    return head + mask + body


@pytest.mark.fake_only
def test_unmasked_client_frame_is_a_protocol_error(own_fake: FakeLXD) -> None:
    sock = raw_ws(own_fake)
    try:
        assert read_frame(sock) == (0x9, b"keepalive")
        sock.sendall(b"\x81\x02hi")  # unmasked
        opcode, payload = read_frame(sock)
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002
        assert sock.recv(10) == b""
    finally:
        sock.close()
    assert poll(lambda: own_fake.events.listeners == 0, timeout=5)


@pytest.mark.fake_only
def test_data_frame_on_events_hangs_up(own_fake: FakeLXD) -> None:
    sock = raw_ws(own_fake, "?type=lifecycle")
    try:
        assert read_frame(sock) == (0x9, b"keepalive")
        sock.sendall(masked(0x9, b"still there?"))
        assert read_frame(sock) == (0xA, b"still there?")
        sock.sendall(masked(0x1, b"frag", fin=False))  # incomplete: nothing happens yet
        own_fake.events.lifecycle("profile-updated", "/1.0/profiles/default")
        opcode, payload = read_frame(sock)
        assert opcode == 0x1 and json.loads(payload)["metadata"]["action"] == "profile-updated"
        sock.sendall(masked(0x0, b"ment"))
        assert sock.recv(10) == b"", "hung up without a close frame"
    finally:
        sock.close()
    assert poll(lambda: own_fake.events.listeners == 0, timeout=5)


class Peer:
    """A server-side :class:`fws.WebSocket` on one end of a socketpair, run in a thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.client, server = socket.socketpair()
        self.client.settimeout(5)
        self.ws = fws.WebSocket(server, **kwargs)
        self.messages: list[fws.Message] = []
        self.thread = threading.Thread(target=self.ws.run,
                                       kwargs={"on_message": self._got}, daemon=True)
        self.thread.start()

    def _got(self, ws: fws.WebSocket, data: fws.Message) -> None:
        self.messages.append(data)
        if data == "echo":
            ws.send_text("echoed")

    def send(self, data: bytes) -> None:
        self.client.sendall(data)

    def frame(self) -> tuple[int, bytes]:
        return read_frame(self.client)

    def close(self) -> None:
        self.client.close()
        self.thread.join(5)
        server_sock = self.ws.sock
        server_sock.close()


def test_websocket_framing() -> None:
    peer = Peer(ping_interval=None)
    try:
        big = os.urandom(70000)
        peer.send(masked(0x1, b"frag", fin=False) + masked(0x9, b"mid")
                  + masked(0x0, b"ment") + masked(0xA, b"unsolicited pong"))
        assert peer.frame() == (0xA, b"mid")
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", len(big))
        mask = os.urandom(4)
        peer.send(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(big)))
        peer.send(masked(0x1, "échø".encode()) + masked(0x1, b"echo"))
        assert peer.frame() == (0x1, b"echoed")
        assert peer.messages == ["fragment", big, "échø", "echo"]
        assert peer.ws.send_binary(b"x" * 300)
        assert peer.frame() == (0x2, b"x" * 300)
        peer.send(masked(0x8, struct.pack("!H", 4000) + b"bye"))
        assert peer.frame() == (0x8, struct.pack("!H", 4000))
        assert peer.client.recv(10) == b""
        peer.thread.join(5)
        assert peer.ws.finished.is_set() and peer.ws.close_code == 4000
        assert not peer.ws.send_text("too late")
    finally:
        peer.close()


@pytest.mark.parametrize(("data", "code"), [
    (b"\x81\x02hi", 1002),                            # unmasked
    (masked(0x0, b"x"), 1002),                         # continuation of nothing
    (masked(0x1, b"a", fin=False) + masked(0x1, b"b"), 1002),  # new message mid-fragment
    (masked(0x9, b"p" * 126), 1002),                   # control frame too long
    (masked(0x3, b""), 1002),                          # reserved opcode
    (bytes([0xC1, 0x80]) + b"\0\0\0\0", 1002),          # RSV1 without an extension
    (masked(0x1, b"\xff\xfe"), 1007),                  # text that is not UTF-8
    (masked(0x8, b"\x03"), 1002),                      # one-byte close payload
])
def test_websocket_protocol_errors_close_the_connection(data: bytes, code: int) -> None:
    peer = Peer(ping_interval=None)
    try:
        peer.send(data)
        opcode, payload = peer.frame()
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == code
        assert peer.client.recv(10) == b""
        peer.thread.join(5)
        assert not peer.thread.is_alive()
    finally:
        peer.close()


def test_websocket_message_size_limit() -> None:
    peer = Peer(ping_interval=None, max_message=10)
    try:
        peer.send(masked(0x2, b"x" * 11))
        opcode, payload = peer.frame()
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009
    finally:
        peer.close()


def test_websocket_close_from_the_server_waits_for_the_reply() -> None:
    peer = Peer(ping_interval=None)
    try:
        assert peer.ws.send_text("last words")
        peer.ws.close(1001, "going")
        assert peer.frame() == (0x1, b"last words")
        assert peer.frame() == (0x8, struct.pack("!H", 1001) + b"going")
        assert not peer.ws.send_text("after close")
        assert peer.thread.is_alive(), "waiting for the client's close frame"
        peer.send(masked(0x8, struct.pack("!H", 1001)))
        peer.thread.join(5)
        assert not peer.thread.is_alive()
        assert peer.client.recv(10) == b""
    finally:
        peer.close()


def test_websocket_close_gives_up_on_a_silent_client() -> None:
    peer = Peer(ping_interval=None)
    try:
        start = time.monotonic()
        peer.ws.close()
        assert peer.frame()[0] == 0x8
        peer.thread.join(5)
        assert 0.5 <= time.monotonic() - start < 3
    finally:
        peer.close()


def test_websocket_send_from_other_threads() -> None:
    peer = Peer(ping_interval=None)
    try:
        senders = [threading.Thread(target=lambda n=n: [peer.ws.send_text(f"{n}:{i}")
                                                        for i in range(50)])
                   for n in range(4)]
        for thread in senders:
            thread.start()
        got = [peer.frame() for _ in range(200)]
        assert {op for op, _ in got} == {0x1}
        for n in range(4):
            mine = [int(p.split(b":")[1]) for _, p in got if p.startswith(f"{n}:".encode())]
            assert mine == list(range(50)), "each sender's frames stay in order"
    finally:
        peer.close()


@pytest.mark.fake_only
def test_keepalive_ping_is_periodic(own_fake: FakeLXD, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fws, "PING_INTERVAL", 0.2)
    sock = raw_ws(own_fake, "?type=logging")
    try:
        start = time.monotonic()
        frames = [read_frame(sock) for _ in range(3)]
        elapsed = time.monotonic() - start
        assert frames == [(0x9, b"keepalive")] * 3
        assert 0.35 <= elapsed < 2
    finally:
        sock.close()


@pytest.mark.fake_only
def test_events_before_the_upgrade_completes_are_not_lost(own_fake: FakeLXD) -> None:
    """Subscribed before the 101: what happens right after the handshake is delivered."""
    with own_events(own_fake, "?type=lifecycle") as ws:
        own_fake.events.lifecycle("profile-created", "/1.0/profiles/x")
        event = json.loads(ws.recv(timeout=5))
        assert event["metadata"]["source"] == "/1.0/profiles/x"
    assert poll(lambda: own_fake.events.listeners == 0, timeout=5)


@pytest.mark.fake_only
def test_request_log_records_101(own_fake: FakeLXD) -> None:
    with own_events(own_fake):
        pass
    assert poll(lambda: [r.status for r in own_fake.requests if r.path == "/1.0/events"]
                == [101], timeout=5)
