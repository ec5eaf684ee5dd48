"""HTTP/1.1 keep-alive: one connection serves many requests, as LXD's Go server does.

Werkzeug's development server closes every connection; the fake's request handler keeps it,
drains a request body the handler left unread, and frames every response (Content-Length or
chunked), so a client's pooled connection (and over HTTPS, its TLS session) is reused.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from fakeserver import FakeLXD
from tests.support import API, unique


class UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket; ``opened`` counts the connections it made."""

    def __init__(self, path: str) -> None:
        super().__init__("lxd", timeout=30)
        self.path = path
        self.opened = 0

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock
        self.opened += 1

    def call(self, method: str, target: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """Send, read the whole reply (kept in ``reply.data``) and return it."""
        self.request(method, target, body=body, headers=headers or {})
        reply = self.getresponse()
        reply.data = reply.read()  # type: ignore[attr-defined]
        return reply


def socket_of(api: API) -> str:
    return urllib.parse.unquote(api.base[len("http+unix://"):])


@pytest.fixture
def conn(api: API) -> Iterator[UnixConnection]:
    connection = UnixConnection(socket_of(api))
    yield connection
    connection.close()


def test_requests_share_one_connection(conn: UnixConnection) -> None:
    for path in ("/1.0", "/1.0/profiles", "/1.0/profiles/default", "/1.0/nothing-here"):
        reply = conn.call("GET", path)
        assert reply.status in (200, 404)
        assert reply.getheader("Connection") is None, path
        # Framed, so the connection can go on: LXD (Go) chunks bodies over its 4 KiB buffer,
        # the fake always sends a Content-Length.
        framing = (reply.getheader("Content-Length"), reply.getheader("Transfer-Encoding"))
        assert framing in ((str(len(reply.data)), None), (None, "chunked")), path  # type: ignore
    assert conn.opened == 1


def test_unread_body_is_drained_before_the_next_request(conn: UnixConnection) -> None:
    """A 404 never reads its body; the connection still serves the next request."""
    body = json.dumps({"name": "x" * 50_000, "config": {}}).encode()
    reply = conn.call("POST", "/1.0/no-such-collection", body,
                      {"Content-Type": "application/json"})
    assert reply.status == 404
    reply = conn.call("GET", "/1.0")
    assert reply.status == 200
    assert conn.opened == 1


def test_unread_chunked_body_is_drained(conn: UnixConnection) -> None:
    conn.putrequest("POST", "/1.0/no-such-collection")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    for piece in (b'{"name":', b'"x"}'):
        conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 404
    assert conn.call("GET", "/1.0").status == 200
    assert conn.opened == 1


def test_a_read_body_keeps_the_connection(api: API, conn: UnixConnection) -> None:
    name = unique("ka")
    api.delete_later(f"/1.0/profiles/{name}")
    reply = conn.call("POST", "/1.0/profiles", json.dumps({"name": name}).encode(),
                      {"Content-Type": "application/json"})
    assert reply.status == 201
    assert conn.call("GET", f"/1.0/profiles/{name}").status == 200
    assert conn.opened == 1


def test_connection_close_is_honoured(conn: UnixConnection) -> None:
    reply = conn.call("GET", "/1.0", headers={"Connection": "close"})
    assert reply.status == 200
    assert reply.will_close
    conn.call("GET", "/1.0")
    assert conn.opened == 2


def test_http_1_0_closes(api: API) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(socket_of(api))
    sock.sendall(b"GET /1.0 HTTP/1.0\r\nHost: lxd\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):  # the server closes: recv ends with b""
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert json.loads(body)["status_code"] == 200


@pytest.mark.fake_only
def test_a_body_too_big_to_drain_closes(fake: FakeLXD) -> None:
    """Over 1 MiB left unread, the fake closes rather than read it (LXD's Go server gives up
    after 256 KiB: the exact limit is the fake's own)."""
    conn = UnixConnection(fake.socket_path)
    body = b"x" * (2 << 20)
    reply = conn.call("PUT", "/1.0/no-such-thing", body, {"Content-Type": "application/json"})
    assert reply.status == 404
    assert reply.will_close
    assert conn.call("GET", "/1.0").status == 200
    assert conn.opened == 2
    conn.close()


@pytest.mark.fake_only
def test_https_reuses_the_tls_connection(fake: FakeLXD) -> None:
    context = ssl.create_default_context(cafile=fake.ca_file)
    host, port = fake.https_address or ("", 0)
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=30)
    for _ in range(3):
        conn.request("GET", "/1.0")
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 200
        assert not reply.will_close
    sock = conn.sock
    conn.request("GET", "/1.0/profiles")
    conn.getresponse().read()
    assert conn.sock is sock
    conn.close()


@pytest.mark.fake_only
def test_stop_ends_kept_connections(tmp_path: object) -> None:
    """An idle kept-alive connection does not outlive the server (nor keep its thread).

    Threads are compared as sets, not counted: threads left by earlier tests (operations,
    other servers) may end at any moment and must not change the outcome.
    """
    existing = set(threading.enumerate())
    server = FakeLXD(str(tmp_path)).start()
    started = {t for t in set(threading.enumerate()) - existing if t.name == "lxd-fake-unix"}
    conn = UnixConnection(server.socket_path)
    assert conn.call("GET", "/1.0").status == 200
    handlers = {t for t in set(threading.enumerate()) - existing - started
                if t.name.endswith("(process_request_thread)")}
    assert len(started) == 1 and len(handlers) == 1  # the connection's handler thread
    server.stop()
    ours = started | handlers
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in ours) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.is_alive() for t in ours)  # the handler and the listener are gone
    assert conn.sock is not None
    assert conn.sock.recv(1) == b""  # closed by the server
    conn.close()
    server.close()
