"""A byte-exact HTTP/1.1 client for fuzzing: any request target (NUL, ``%2F``, ``..``, non-UTF-8)
and any header or body, sent as given over a unix socket or TLS, on one kept-alive connection.

``requests`` and ``http.client`` normalise or refuse such targets; the fuzzer must not.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

# LXD's Go server and client take header lines up to 1 MB (a Location naming a 70 kB object
# is possible); http.client stops at 64 kB.
# LXD names an object in its Location header: a 5 MB profile name (test_huge_bodies) makes a
# 5 MB header line, which LXD 5.0.2 sends as it is.
http.client._MAXLINE = max(http.client._MAXLINE, 1 << 24)  # type: ignore[attr-defined]

ENVELOPE_KEYS = ["type", "status", "status_code", "operation", "error_code", "error", "metadata"]


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    raw: bytes
    closed: bool = False  # the server closed the connection without an answer

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))

    def __repr__(self) -> str:
        return f"RawReply({self.status}, {self.raw[:300]!r})"


@dataclass
class RawClient:
    """One connection to a listener: ``unix`` is a socket path, else ``(host, port)`` + TLS."""

    unix: str | None = None
    address: tuple[str, int] | None = None
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0
    _sock: Any = field(default=None, repr=False)

    def _connect(self) -> Any:
        if self.unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.unix)
            return sock
        assert self.address is not None and self.ssl_context is not None
        plain = socket.create_connection(self.address, timeout=self.timeout)
        return self.ssl_context.wrap_socket(plain, server_hostname=self.address[0])

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def send(self, method: bytes | str, target: bytes | str, headers: dict[str, Any] | None = None,
             body: bytes = b"", *, content_length: int | None = None,
             close_after_body: bool = False) -> RawReply:
        """Send one request exactly as given and read the reply.

        ``content_length`` overrides the header (a lie makes a truncated upload when
        ``close_after_body`` shuts the write side down after sending ``body``).
        """
        if isinstance(method, str):
            method = method.encode()
        if isinstance(target, str):
            target = target.encode("utf-8", "surrogateescape")
        hdrs: dict[str, Any] = {"Host": "lxd", **(headers or {})}
        if content_length is None:
            content_length = len(body)
        lines = [method + b" " + target + b" HTTP/1.1"]
        for key, value in hdrs.items():
            value_b = value if isinstance(value, bytes) else str(value).encode("utf-8")
            lines.append(key.encode() + b": " + value_b)
        if "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs:
            lines.append(b"Content-Length: " + str(content_length).encode())
        if close_after_body:
            lines.append(b"Connection: close")
        data = b"\r\n".join(lines) + b"\r\n\r\n" + body
        for attempt in (0, 1):
            if self._sock is None:
                self._sock = self._connect()
            try:
                self._sock.sendall(data)
                if close_after_body and not isinstance(self._sock, ssl.SSLSocket):
                    self._sock.shutdown(socket.SHUT_WR)  # TLS cannot half-close
            except OSError:
                pass  # the server answered early and closed: its reply may still be readable
            try:
                return self._read(method)
            except (ConnectionError, http.client.RemoteDisconnected, ssl.SSLError) as exc:
                self.close()
                if attempt or close_after_body:
                    return RawReply(0, {}, str(exc).encode(), closed=True)
            except (TimeoutError, http.client.HTTPException):
                self.close()
                raise
        raise AssertionError("unreachable")

    def _read(self, method: bytes) -> RawReply:
        resp = http.client.HTTPResponse(self._sock, method=method.decode("latin-1"))
        resp.begin()
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            self.close()
        return RawReply(resp.status, headers, raw)


def check_envelope(reply: RawReply) -> dict[str, Any]:
    """Assert ``reply`` is LXD's JSON envelope (7 keys in order, framing by kind); return it."""
    assert reply.content_type == "application/json", reply
    body = json.loads(reply.raw)
    assert list(body) == ENVELOPE_KEYS, reply
    if reply.status >= 400:
        assert body["type"] == "error", reply
        assert (body["status"], body["status_code"], body["operation"]) == ("", 0, ""), reply
        assert body["error_code"] == reply.status and body["metadata"] is None, reply
        assert isinstance(body["error"], str) and body["error"], reply
        assert reply.raw.endswith(b"}\n\n"), reply
        assert reply.headers.get("x-content-type-options") == "nosniff", reply
    elif reply.status == 202:
        assert (body["type"], body["status_code"]) == ("async", 100), reply
        assert body["operation"] and reply.headers["location"] == body["operation"], reply
        assert reply.raw.endswith(b"}\n") and not reply.raw.endswith(b"\n\n"), reply
    else:
        assert reply.status in (200, 201), reply
        assert (body["type"], body["status"], body["status_code"]) == ("sync", "Success", 200), \
            reply
        assert (body["error_code"], body["error"]) == (0, ""), reply
        assert reply.raw.endswith(b"}\n") and not reply.raw.endswith(b"\n\n"), reply
    return body
