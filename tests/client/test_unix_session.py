"""The unix-socket session's short path: what it sends and how it reads replies must be what
requests would send and read, on kept-alive connections shared by the process.

A scripted server on a unix socket records the raw requests and answers canned replies; the
same request goes once through the short path and once through requests itself (``stream=True``
always takes requests' path), and the two are compared. No LXD is needed.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from pytest_lxd import Client, exceptions
from pytest_lxd.transport import LXDResponse, UnixSession, unix_pool

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Scripted:
    """A unix-socket HTTP server: records each request, answers the next canned reply.

    A reply ending the connection is given as ``(bytes, "close")``; ``"drop"`` closes the
    connection without answering.
    """

    path: str
    replies: list[Any] = field(default_factory=list)
    default: bytes = OK
    requests: list[bytes] = field(default_factory=list)
    accepted: int = 0
    live: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with self.lock:
            self.live.append(conn)
        reader = conn.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = reader.read(length) if length else b""
                with self.lock:
                    self.requests.append(head + body)
                    reply = self.replies.pop(0) if self.replies else self.default
                if reply == "drop":
                    return
                data, close = reply if isinstance(reply, tuple) else (reply, "")
                conn.sendall(data)
                if close:
                    return
        finally:
            reader.close()
            conn.close()

    def close(self) -> None:
        """Stop listening and end every connection (as a server that stops does)."""
        self.sock.close()
        with self.lock:
            for conn in self.live:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[Scripted]:
    server = Scripted(str(tmp_path / "s.sock"))
    yield server
    server.close()
    unix_pool(server.path).close()


def url(server: Scripted, path: str = "/1.0") -> str:
    return "http+unix://" + server.path.replace("/", "%2F") + path


def parsed(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/1.0", {}),
    ("GET", "/1.0/profiles/a%20b", {"params": {"project": "p q", "recursion": 1}}),
    ("GET", "/1.0/instances/c1/files", {"params": {"path": "/tmp/ä&x=?#"}}),
    ("GET", "/1.0/profiles", {"params": {"project": None, "filter": "name eq x"}}),
    ("GET", "/1.0/profiles?recursion=1", {"params": {"project": "p"}}),
    ("POST", "/1.0/profiles", {"json": {"name": "é", "config": {"a": "1"}, "n": [1.5, None]}}),
    ("PUT", "/1.0/profiles/x", {"json": {}, "headers": {"If-Match": '"abc"'}}),
    ("PATCH", "/1.0/profiles/x", {"data": b"\x00raw", "headers": {"X-Custom": "v"}}),
    ("DELETE", "/1.0/profiles/x", {}),
    ("POST", "/1.0/instances/c1/files", {"data": b"", "headers": {"Content-Type": "a/b"}}),
    ("GET", "/1.0", {"headers": {"Accept": None, "User-Agent": "me"}}),
    ("POST", "/1.0/images", {"data": b"x" * 70000, "json": {"ignored": True}}),
    ("HEAD", "/1.0/images/x/export", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CASES)
def test_short_path_sends_what_requests_sends(scripted: Scripted, method: str, path: str,
                                              kwargs: dict[str, Any]) -> None:
    session = UnixSession()
    short = session.request(method, url(scripted, path), timeout=5, **kwargs)
    assert isinstance(short, LXDResponse)  # the short path served it
    slow = session.request(method, url(scripted, path), timeout=5, stream=True, **kwargs)
    slow.content  # noqa: B018 - read the streamed body
    assert not isinstance(slow, LXDResponse)
    mine, theirs = (parsed(raw) for raw in scripted.requests)
    assert mine == theirs
    assert short.request.url == slow.request.url
    assert short.request.path_url == slow.request.path_url
    assert dict(short.request.headers) == dict(slow.request.headers)
    assert short.request.body == slow.request.body
    session.close()


REPLIES: list[bytes] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\nhello",
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nLocation: /1.0/x\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: application/json"
    b"\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}",
    b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json; charset=latin-1\r\n"
    b"Content-Length: 4\r\n\r\n\"\xe9\"\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(gzip.compress(b"[1, 2]")), gzip.compress(b"[1, 2]")),
    b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s" % (
        len(zlib.compress(b"{}")), zlib.compress(b"{}")),
]


@pytest.mark.parametrize("reply", REPLIES)
def test_short_path_reads_what_requests_reads(scripted: Scripted, reply: bytes) -> None:
    session = UnixSession()
    scripted.replies += [reply, reply]
    short = session.request("GET", url(scripted), timeout=5)
    slow = session.request("GET", url(scripted), timeout=5, stream=True)
    assert (short.status_code, short.reason, short.content, short.encoding) == (
        slow.status_code, slow.reason, slow.content, slow.encoding)
    assert dict(short.headers) == dict(slow.headers)
    assert short.text == slow.text
    session.close()


def test_reply_read_until_close_and_head(scripted: Scripted) -> None:
    session = UnixSession()
    scripted.replies += [(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", "close"),
                         b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"]
    assert session.request("GET", url(scripted), timeout=5).content == b"until the end"
    head = session.request("HEAD", url(scripted), timeout=5)
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", "99")
    assert session.request("GET", url(scripted), timeout=5).json() == {}  # still in step
    session.close()


def test_connections_are_kept_and_shared_by_sessions(scripted: Scripted) -> None:
    first, second = UnixSession(), UnixSession()
    for session in (first, second, first):
        for _ in range(3):
            assert session.request("GET", url(scripted), timeout=5).status_code == 200
    assert scripted.accepted == 1
    first.close()  # a session's close leaves the shared idle connections alone
    assert second.request("GET", url(scripted), timeout=5).status_code == 200
    assert scripted.accepted == 1


def test_connection_the_server_closed_is_replaced(scripted: Scripted) -> None:
    """A kept connection dropped when the next request arrives: that request is sent again
    on a new connection (whatever the method: nothing of it was answered); one the server
    closed while idle is not used at all."""
    session = UnixSession()
    scripted.replies += [OK, "drop"]
    assert session.request("GET", url(scripted), timeout=5).status_code == 200
    assert session.request("POST", url(scripted), json={}, timeout=5).status_code == 200
    scripted.replies += [(OK, "close")]
    assert session.request("PUT", url(scripted), json={}, timeout=5).status_code == 200
    assert session.request("DELETE", url(scripted), timeout=5).status_code == 200
    assert scripted.accepted == 3
    methods = [raw.split(b" ", 1)[0] for raw in scripted.requests]
    assert methods == [b"GET", b"POST", b"POST", b"PUT", b"DELETE"]


def test_connection_close_reply_is_not_reused(scripted: Scripted) -> None:
    session = UnixSession()
    scripted.replies += [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]
    session.request("GET", url(scripted), timeout=5)
    session.request("GET", url(scripted), timeout=5)
    assert scripted.accepted == 2


def test_a_fresh_connection_that_fails_is_an_error(scripted: Scripted) -> None:
    session = UnixSession()
    scripted.replies += ["drop"]
    with pytest.raises(requests.ConnectionError):
        session.request("GET", url(scripted), timeout=5)
    scripted.replies += [(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "close")]
    with pytest.raises(requests.ConnectionError, match="IncompleteRead"):
        session.request("GET", url(scripted), timeout=5)


def test_hooks_see_the_prepared_request(scripted: Scripted) -> None:
    session = UnixSession()
    seen: list[tuple[str, str, Any, dict[str, Any]]] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        seen.append((str(request.method), str(request.url), request.body, kwargs))

    session.hooks["response"].append(hook)
    session.request("POST", url(scripted, "/1.0/profiles"), params={"project": "p"},
                    json={"name": "x"}, timeout=3)
    (method, full, body, kwargs), = seen
    assert (method, full, body) == ("POST", url(scripted, "/1.0/profiles?project=p"),
                                    b'{"name": "x"}')
    assert kwargs["timeout"] == 3


def test_bad_input_is_refused_before_sending(scripted: Scripted) -> None:
    session = UnixSession()
    with pytest.raises(requests.exceptions.InvalidHeader):
        session.request("GET", url(scripted), headers={"X": "a\r\nInjected: 1"})
    with pytest.raises(requests.exceptions.InvalidJSONError):
        session.request("POST", url(scripted), json={"x": float("nan")})
    assert scripted.requests == []


def test_client_errors_through_the_short_path(scripted: Scripted, tmp_path: Path) -> None:
    info = {"type": "sync", "status_code": 200, "metadata": {"api_extensions": ["projects"],
                                                             "auth": "trusted"}}
    body = json.dumps(info).encode()
    scripted.default = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    client = Client(scripted.path, timeout=0.5)
    assert client.host_info["auth"] == "trusted"
    scripted.replies += [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"]  # then silence
    with pytest.raises(exceptions.RequestTimeout, match="did not answer GET /1.0/profiles"):
        client.api.profiles.get()
    scripted.replies += [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[1]"]
    with pytest.raises(exceptions.LXDAPIException, match="not a sync response"):
        client.api.profiles.get()
    scripted.close()
    os.unlink(scripted.path)
    with pytest.raises(exceptions.ClientConnectionFailed, match="cannot connect to LXD"):
        client.api.profiles.get()


def test_json_is_parsed_once_per_caller(scripted: Scripted) -> None:
    session = UnixSession()
    response = session.request("GET", url(scripted), timeout=5)
    assert isinstance(response, LXDResponse)
    first = response.parse_once()
    assert response.json() is first  # the check's parse goes to the first caller
    again = response.json()
    assert again == first and again is not first  # later callers get their own
