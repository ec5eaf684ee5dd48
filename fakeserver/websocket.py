"""Server-side websockets (RFC 6455) on a hijacked connection: ``/1.0/events`` and, later, exec.

A handler validates its own parameters first (those errors are ordinary LXD replies), then::

    refusal = websocket.refusal(ctx.request)     # gorilla's 400 when it is no handshake
    if refusal is not None:
        return refusal
    ws = websocket.accept(ctx)                    # hijacks the connection, writes the 101
    ws.run(on_message=..., on_wake=...)           # in the request thread, until closed
    return websocket.hijacked()

One thread (the request's) owns the socket: it reads frames, answers pings, sends the
``keepalive`` ping every :data:`PING_INTERVAL` seconds and writes queued frames, all through
non-blocking I/O multiplexed with ``poll``. Other threads hand it frames with
:meth:`WebSocket.send_text` / :meth:`WebSocket.send_binary` and wake it with
:meth:`WebSocket.wake`; nobody ever blocks inside a TLS read while another thread must write.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import math
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .responses import LXDError

if TYPE_CHECKING:
    from .app import Ctx

try:  # the C helper that ships with ``websockets``; the pure fallback is fine for small frames
    from websockets.speedups import apply_mask as _apply_mask  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on how websockets was built
    _apply_mask = None

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PING_INTERVAL = 10.0
KEEPALIVE = b"keepalive"
CLOSE_TIMEOUT = 1.0  # how long a server-initiated close waits for the client's close frame
MAX_MESSAGE = 64 * 1024 * 1024
MAX_BACKLOG = 64 * 1024 * 1024  # queued outgoing bytes before a client that never reads is dropped

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL = 1000, 1001, 1002
CLOSE_BAD_DATA, CLOSE_TOO_BIG = 1007, 1009

Message = str | bytes



def hijacked() -> Response:
    """What a handler returns once it took the connection over: discarded, logged as 101."""
    return Response(b"", status=101)


def _tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def _gorilla_error(status: int, text: str) -> Response:
    resp = Response(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    resp.headers["Sec-Websocket-Version"] = "13"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def refusal(request: Request) -> Response | None:
    """Gorilla's plain-text answer when ``request`` is not a websocket handshake, else None."""
    headers = request.headers
    if "upgrade" not in _tokens(headers.get("Connection", "")):
        return _gorilla_error(400, "Bad Request")
    if "websocket" not in _tokens(headers.get("Upgrade", "")):
        return _gorilla_error(400, "Bad Request")
    if request.method != "GET":
        return _gorilla_error(405, "Method Not Allowed")
    if "13" not in _tokens(headers.get("Sec-WebSocket-Version", "")):
        return _gorilla_error(400, "Bad Request")
    if _key(request) is None:
        return _gorilla_error(400, "Bad Request")
    return None


def _key(request: Request) -> str | None:
    key = request.headers.get("Sec-WebSocket-Key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    return key


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def switch_protocols(ctx: Ctx, protocol: str, *extra: str) -> tuple[Any, Any, bool]:
    """Take over the request's connection and answer ``101 Switching Protocols`` with
    ``Upgrade: <protocol>`` (and ``extra`` header lines): the connection, its reader, and
    whether the answer went out (False: the client is gone)."""
    hijack = ctx.request.environ.get("fakeserver.hijack")
    if hijack is None:
        raise LXDError(500, "Websocket upgrade is not possible on this connection")
    sock, rfile = hijack()
    lines = ["HTTP/1.1 101 Switching Protocols", f"Upgrade: {protocol}", "Connection: Upgrade",
             *extra]
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    except OSError:
        return sock, rfile, False
    return sock, rfile, True


def accept(ctx: Ctx, *, ping_interval: float | None = PING_INTERVAL) -> WebSocket:
    """Take over the request's connection and complete the handshake (after :func:`refusal`)."""
    key = _key(ctx.request)
    if key is None:
        raise LXDError(500, "Websocket upgrade is not possible on this connection")
    sock, rfile, sent = switch_protocols(ctx, "websocket",
                                         f"Sec-WebSocket-Accept: {accept_value(key)}")
    ws = WebSocket(sock, rfile, ping_interval=ping_interval)
    ws.gone = not sent
    return ws


def _mask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    if _apply_mask is not None:
        return bytes(_apply_mask(payload, mask))
    size = len(payload)
    repeated = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One unmasked (server-to-client) frame."""
    head = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", head, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", head, 126, size) + payload
    return struct.pack("!BBQ", head, 127, size) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:123]


class _Gone(Exception):
    """The peer went away (EOF, reset, or a write that can never finish)."""


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocket:
    """One server-side websocket, driven by :meth:`run` in the thread that owns it."""

    def __init__(self, sock: Any, rfile: Any = None, *,
                 ping_interval: float | None = PING_INTERVAL,
                 max_message: int = MAX_MESSAGE) -> None:
        self.sock = sock
        self.rfile = rfile  # unused once hijacked: clients send nothing before our 101
        self.ping_interval = ping_interval
        self.max_message = max_message
        self.gone = False
        self.close_code: int | None = None  # what the client's close frame said
        self.finished = threading.Event()
        self._tls = hasattr(sock, "conn") and hasattr(sock, "pending")
        self._raw: socket.socket = sock.sock if self._tls else sock
        self._out: collections.deque[bytes] = collections.deque()
        self._out_lock = threading.Lock()
        self._backlog = 0
        self._buf = bytearray()
        self._frag_op: int | None = None
        self._frag: list[bytes] = []
        self._close_wanted: tuple[int, str] | None = None
        self._close_sent = False
        self._close_received = False
        self._close_deadline = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._woken = False
        self._done = False
        self._aborted = False
        self._hangup = False  # end the stream once the queue is sent (see hangup())
        self.hung_up = threading.Event()  # set when hangup() has sent everything
        self.ponged = threading.Event()  # set by the client's first pong (it reads us)
        self._owner: int | None = None

    # -- any thread ------------------------------------------------------------------------
    def send_text(self, text: str) -> bool:
        """Queue a text frame; False once the websocket is closing or gone."""
        return self._enqueue(encode_frame(OP_TEXT, text.encode()))

    def send_binary(self, data: bytes) -> bool:
        """Queue a binary frame; False once the websocket is closing or gone."""
        return self._enqueue(encode_frame(OP_BINARY, bytes(data)))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake (frames already queued are sent first)."""
        with self._out_lock:
            if self._close_wanted is None:
                self._close_wanted = (code, reason)
        self.wake()

    def abort(self) -> None:
        """Drop the connection at once, without a close frame (what LXD does to a client
        that sends data on ``/1.0/events``). Queued frames are not sent."""
        self._aborted = True
        self.wake()

    def hangup(self) -> None:
        """Send the frames already queued, then end the connection without a close frame
        (how LXD ends an exec stream after its end-of-stream barrier).

        The write side is shut at once (the client reads EOF after the last frame) and
        :attr:`hung_up` is set; the connection is dropped when the client closes its side or
        after :data:`CLOSE_TIMEOUT`, so that a client still answering our keepalive ping
        does not get a reset before it has read what we sent.
        """
        self._hangup = True
        self.wake()

    def wake(self) -> None:
        """Make :meth:`run` call its ``on_wake`` (e.g. new events are waiting)."""
        with self._wake_lock:
            if self._done or self._woken:
                return
            self._woken = True
            try:
                os.write(self._wake_w, b"w")
            except OSError:
                pass

    @property
    def closing(self) -> bool:
        return (self._close_wanted is not None or self._close_sent or self.gone
                or self._aborted)

    def _enqueue(self, frame: bytes) -> bool:
        with self._out_lock:
            if self._close_wanted is not None or self._close_sent or self.gone:
                return False
            self._out.append(frame)
            self._backlog += len(frame)
        if threading.get_ident() != self._owner:
            self.wake()
        return True

    # -- the owning thread -----------------------------------------------------------------
    def run(self, on_message: Callable[[WebSocket, Message], None] | None = None,
            on_wake: Callable[[WebSocket], None] | None = None) -> None:
        """Serve the websocket until it is closed or the client vanishes.

        ``on_message(ws, data)`` gets every complete text (``str``) or binary (``bytes``)
        message; ``on_wake(ws)`` runs after each :meth:`wake`. Both run in this thread.
        """
        self._owner = threading.get_ident()
        poller = select.poll()
        try:
            if self.gone:
                return
            self._raw.setblocking(False)
            fd = self._raw.fileno()
            poller.register(self._wake_r, select.POLLIN)
            poller.register(fd, select.POLLIN)
            next_ping = time.monotonic()
            while True:
                if self._aborted:
                    raise _Gone()
                now = time.monotonic()
                self._start_close_if_wanted(now)
                if self.ping_interval is not None and now >= next_ping and not self.closing:
                    self._push(encode_frame(OP_PING, KEEPALIVE))
                    next_ping = now + self.ping_interval
                self._flush()
                if self._hangup and not self._out and not self.hung_up.is_set():
                    try:
                        self._raw.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    self._close_deadline = now + CLOSE_TIMEOUT
                    self.hung_up.set()
                if self.hung_up.is_set() and now >= self._close_deadline:
                    return
                if self._close_sent and (self._close_received or now >= self._close_deadline):
                    return
                poller.modify(fd, select.POLLIN | (select.POLLOUT if self._out else 0))
                lingering = self._close_sent or self.hung_up.is_set()
                deadlines = [self._close_deadline] if lingering else []
                if self.ping_interval is not None and not self.closing:
                    deadlines.append(next_ping)
                wait = max(0.0, min(deadlines) - now) if deadlines else None
                for ready, _ in poller.poll(None if wait is None else math.ceil(wait * 1000)):
                    if ready == self._wake_r:
                        self._drain_wake()
                        if on_wake is not None:
                            on_wake(self)
                    else:
                        self._read(on_message)
        except _Gone:
            self.gone = True
        finally:
            self.hung_up.set()
            self._finish()

    def _start_close_if_wanted(self, now: float) -> None:
        with self._out_lock:
            wanted = self._close_wanted
        if wanted is not None and not self._close_sent:
            self._send_close(*wanted)
            self._close_deadline = now + CLOSE_TIMEOUT

    def _send_close(self, code: int, reason: str = "") -> None:
        self._push(encode_frame(OP_CLOSE, close_payload(code, reason)))
        self._close_sent = True
        with self._out_lock:
            if self._close_wanted is None:
                self._close_wanted = (code, reason)

    def _push(self, frame: bytes) -> None:
        with self._out_lock:
            self._out.append(frame)
            self._backlog += len(frame)

    def _drain_wake(self) -> None:
        with self._wake_lock:
            self._woken = False
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except OSError:
                pass

    # -- reading ---------------------------------------------------------------------------
    def _read(self, on_message: Callable[[WebSocket, Message], None] | None) -> None:
        eof = False
        while True:
            chunk = self._recv_some()
            if chunk is None:
                break
            if not chunk:
                eof = True
                break
            self._buf += chunk
        try:
            self._parse(on_message)
        except _ProtocolError as exc:
            if not self._close_sent:
                self._send_close(exc.code, exc.reason)
                self._close_deadline = time.monotonic()  # no point waiting for a reply
            self._flush()
            raise _Gone() from None
        if eof:
            # What came with the EOF is still served: a client that sends its close frame and
            # then shuts its side down gets the answer to it.
            self._flush()
            raise _Gone()

    def _recv_some(self) -> bytes | None:
        """Bytes available now, None when none are, b"" at EOF."""
        if self._tls:
            from OpenSSL import SSL

            try:
                return bytes(self.sock.conn.recv(65536))
            except (SSL.WantReadError, SSL.WantWriteError):
                return None
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return b""
            except SSL.Error as exc:
                raise _Gone() from exc
        try:
            return self._raw.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise _Gone() from exc

    def _parse(self, on_message: Callable[[WebSocket, Message], None] | None) -> None:
        buf = self._buf
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            fin, opcode, size = bool(first & 0x80), first & 0x0F, second & 0x7F
            pos = 2
            if first & 0x70:
                raise _ProtocolError(CLOSE_PROTOCOL, "reserved bits set")
            if not second & 0x80:
                raise _ProtocolError(CLOSE_PROTOCOL, "client frames must be masked")
            if size == 126:
                if len(buf) < 4:
                    return
                size = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            if opcode >= 0x8 and (not fin or size > 125):
                raise _ProtocolError(CLOSE_PROTOCOL, "bad control frame")
            if size > self.max_message:
                raise _ProtocolError(CLOSE_TOO_BIG, "message too big")
            end = pos + 4 + size
            if len(buf) < end:
                return
            payload = _mask(bytes(buf[pos + 4:end]), bytes(buf[pos:pos + 4]))
            del buf[:end]
            self._frame(fin, opcode, payload, on_message)
            if self._close_received or self._aborted:
                return

    def _frame(self, fin: bool, opcode: int, payload: bytes,
               on_message: Callable[[WebSocket, Message], None] | None) -> None:
        if opcode == OP_PING:
            if not self._close_sent:
                self._push(encode_frame(OP_PONG, payload))
        elif opcode == OP_PONG:
            self.ponged.set()
        elif opcode == OP_CLOSE:
            self._on_close(payload)
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._frag_op is not None:
                raise _ProtocolError(CLOSE_PROTOCOL, "expected a continuation frame")
            if fin:
                self._deliver(opcode, payload, on_message)
            else:
                self._frag_op, self._frag = opcode, [payload]
        elif opcode == OP_CONT:
            if self._frag_op is None:
                raise _ProtocolError(CLOSE_PROTOCOL, "unexpected continuation frame")
            self._frag.append(payload)
            if sum(len(part) for part in self._frag) > self.max_message:
                raise _ProtocolError(CLOSE_TOO_BIG, "message too big")
            if fin:
                op, parts = self._frag_op, self._frag
                self._frag_op, self._frag = None, []
                self._deliver(op, b"".join(parts), on_message)
        else:
            raise _ProtocolError(CLOSE_PROTOCOL, f"unknown opcode {opcode}")

    def _on_close(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise _ProtocolError(CLOSE_PROTOCOL, "bad close frame")
        code = struct.unpack("!H", payload[:2])[0] if payload else None
        self.close_code = code
        self._close_received = True
        if not self._close_sent:
            self._send_close(code if code is not None and code < 5000 else CLOSE_NORMAL)
            self._close_deadline = time.monotonic()

    def _deliver(self, opcode: int, payload: bytes,
                 on_message: Callable[[WebSocket, Message], None] | None) -> None:
        if self._close_sent:
            return  # data after our close frame is dropped (RFC 6455 5.5.1)
        data: Message = payload
        if opcode == OP_TEXT:
            try:
                data = payload.decode()
            except UnicodeDecodeError:
                raise _ProtocolError(CLOSE_BAD_DATA, "invalid UTF-8") from None
        if on_message is not None:
            on_message(self, data)

    # -- writing ---------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write queued frames until done or the socket would block."""
        if self._backlog > MAX_BACKLOG:
            raise _Gone()
        while self._out:
            data = self._out[0]
            sent = self._send_some(data)
            if sent is None:
                return
            with self._out_lock:
                self._backlog -= sent
                if sent >= len(data):
                    self._out.popleft()
                else:
                    self._out[0] = data[sent:]

    def _send_some(self, data: bytes) -> int | None:
        """How many bytes the socket took; None when it would block."""
        if self._tls:
            from OpenSSL import SSL

            try:
                return int(self.sock.conn.send(data))
            except (SSL.WantWriteError, SSL.WantReadError):
                return None
            except SSL.Error as exc:
                raise _Gone() from exc
        try:
            return self._raw.send(data)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise _Gone() from exc

    # -- the end ---------------------------------------------------------------------------
    def _finish(self) -> None:
        with self._wake_lock:
            self._done = True
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            # Shut the raw socket down (no TLS close_notify): the server's drain after the
            # (discarded) response then sees EOF at once instead of waiting for the client.
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone
        self.finished.set()
