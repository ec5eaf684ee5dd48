"""FakeLXD: the fake LXD daemon, on a unix socket and (optionally) HTTPS, over one state."""

from __future__ import annotations

import email.parser
import email.utils
import os
import re
import selectors
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from . import preseed as preseed_mod
from .app import App, LoggedRequest
from .events import EventHub
from .execution import Handlers
from .operations import OperationEngine
from .state import State


class _Discard:
    """Where a hijacked (websocket) request's HTTP response goes: nowhere."""

    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


#: A request body the app left unread is drained (so the connection can serve the next
#: request) up to this many bytes; a longer leftover closes the connection instead.
DRAIN_LIMIT = 1 << 20
LINGER_LIMIT = 64 << 20  # read (and drop) at most this much more before closing
_NO_BODY_STATUS = (204, 304)
_MAX_LINE = 65536  # http.client's limits on request headers
_MAX_HEADERS = 100
_HEADER_NAME = re.compile(r"([\x21-\x39\x3b-\x7e]+):")  # as the email parser reads one


class _Body:
    """``wsgi.input``: the request body, counted, so that what the app did not read can be
    drained before the next request on a kept-alive connection.

    ``length`` is the Content-Length; None for a chunked body (``source`` then ends itself).
    A plain object rather than an ``io`` stream: it is made for every request.
    """

    __slots__ = ("source", "remaining", "done")

    def __init__(self, source: Any, length: int | None) -> None:
        self.source = source
        self.remaining = length
        self.done = length == 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.remaining is not None:
            view = view[: self.remaining]
        if self.done or not len(view):
            return 0
        got = self.source.readinto(view) or 0
        if self.remaining is not None:
            self.remaining -= got
        if got == 0 or self.remaining == 0:
            self.done = True
        return got

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        buffer = bytearray(size)
        got = self.readinto(buffer)
        return bytes(buffer[:got])

    def readline(self, size: int | None = -1) -> bytes:
        if self.done:
            return b""
        if self.remaining is None:  # chunked: werkzeug's dechunker reads no lines itself
            line = bytearray()
            while (size is None or size < 0 or len(line) < size) and not line.endswith(b"\n"):
                byte = self.read(1)
                if not byte:
                    break
                line += byte
            return bytes(line)
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if limit <= 0:
            return b""
        data: bytes = self.source.readline(limit)
        self.remaining -= len(data)
        if not data or self.remaining == 0:
            self.done = True
        return data

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        """Read and drop the rest (up to ``limit`` bytes); True if the body is all read."""
        if self.remaining is not None and self.remaining > limit:
            return False
        buffer = bytearray(65536)
        total = 0
        while not self.done and total <= limit:
            total += self.readinto(buffer)
        return self.done and not self.remaining

    def linger(self, sock: Any, limit: int = LINGER_LIMIT) -> None:
        """Before closing on an unread body: read what the client still sends (briefly), so
        that a client blocked sending it gets to read the reply instead of a broken pipe."""
        buffer = bytearray(65536)
        total = 0
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while not self.done and total < limit and selector.select(0.01):
                got = self.readinto(buffer)
                if not got:
                    break
                total += got


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class _Reply:
    """Writes one WSGI response: head and body in one write when the length is known,
    chunked (streamed) when it is not, and says whether the connection may serve another."""

    def __init__(self, handler: _Handler, environ: dict[str, Any]) -> None:
        self.handler = handler
        self.body: _Body = environ["wsgi.input"]
        self.head_only = environ["REQUEST_METHOD"] == "HEAD"
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self.chunked = False
        self.no_body = False
        self.length: int | None = None
        self.sent = 0
        self.pending = bytearray()

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("Headers already set")
        self.status, self.headers = status, headers
        return self.write

    def _head(self) -> bytes:
        handler = self.handler
        assert self.status is not None, "write() before start_response"
        code = int(self.status.split(None, 1)[0])
        self.no_body = self.head_only or 100 <= code < 200 or code in _NO_BODY_STATUS
        close = (handler.close_connection or not handler.keep_alive
                 or handler.request_version != "HTTP/1.1")
        lines = [f"{handler.protocol_version} {self.status}",
                 f"Server: {handler.version_string()}", f"Date: {_http_date()}"]
        for key, value in self.headers:
            lower = key.lower()
            if lower == "content-length":
                try:
                    self.length = int(value)
                except ValueError:
                    close = True
            elif lower == "connection":
                close = close or value.strip().lower() == "close"
                continue
            elif lower == "transfer-encoding":
                continue  # the framing is the server's to choose
            lines.append(f"{key}: {value}")
        if not self.no_body and self.length is None:
            if handler.request_version == "HTTP/1.1":
                self.chunked = True
                lines.append("Transfer-Encoding: chunked")
            else:
                close = True  # an HTTP/1.0 client reads the body to EOF
        # The rest of a body the app did not read is drained before answering (a client
        # still sending it would not read the reply); too much of it ends the connection.
        if not close and not handler.hijacked and not self.body.drain():
            close = True
        if close:
            handler.close_connection = True
            lines.append("Connection: close")
        self.started = True
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, data: bytes) -> None:
        """Queue ``data``; a known-length body goes out in one write when complete."""
        if not self.started:
            self.pending += self._head()
        if self.no_body:
            data = b""
        if self.chunked:
            if data:
                self.pending += b"%x\r\n%b\r\n" % (len(data), data)
            self._flush()
            return
        self.sent += len(data)
        self.pending += data
        if self.length is None or self.sent >= self.length or len(self.pending) >= 65536:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.handler.wfile.write(bytes(self.pending))
            self.pending.clear()

    def finish(self) -> None:
        if not self.started:
            self.write(b"")
        if self.chunked:
            self.pending += b"0\r\n\r\n"
        self._flush()
        if self.length is not None and not self.no_body and self.sent != self.length:
            self.handler.close_connection = True  # the body did not match its length


class _Handler(WSGIRequestHandler):
    """Werkzeug's request handler, with HTTP/1.1 keep-alive (Werkzeug's dev server closes
    every connection, so each HTTPS request would pay a TLS handshake)."""

    protocol_version = "HTTP/1.1"
    server: _Listener
    hijacked = False
    keep_alive = True  # False: close after every response, as Werkzeug does (for comparisons)

    def setup(self) -> None:
        super().setup()
        if self.server.tls is not None:
            self.server.tls.handshake(self.connection)

    def parse_request(self) -> bool:
        """http.server's ``parse_request`` with a faster header reader (the ``email`` parser
        it uses cost more than the rest of a small request); the same checks, limits, error
        replies and ``headers`` object. Anything but HTTP/1.0 or 1.1 goes to http.server."""
        words = self.raw_requestline.split()
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return super().parse_request()
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        command, path, version = (str(word, "iso-8859-1") for word in words)
        self.command, self.path, self.request_version = command, path, version
        self.close_connection = version != "HTTP/1.1" or self.protocol_version < "HTTP/1.1"
        if path.startswith("//"):
            self.path = "/" + path.lstrip("/")  # as http.server does
        lines: list[bytes] = []
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                self.send_error(431, "Line too long", "header line")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            lines.append(line)
            if len(lines) > _MAX_HEADERS:
                self.send_error(431, "Too many headers", f"got more than {_MAX_HEADERS} headers")
                return False
        headers = self._read_headers(lines)
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        if (headers.get("Expect", "").lower() == "100-continue"
                and self.request_version >= "HTTP/1.1"):
            return bool(self.handle_expect_100())
        return True

    def _read_headers(self, lines: list[bytes]) -> Any:
        """The header lines as the email parser reads them (http.client's way)."""
        if any(b"\r" in line.removesuffix(b"\n").removesuffix(b"\r") for line in lines):
            # a lone CR ends a line for the email parser: leave such oddities to it
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=self.MessageClass).parsestr(text)
        headers = self.MessageClass()
        name: str | None = None
        value: list[str] = []
        for line in lines:
            text = str(line, "iso-8859-1")
            if text[0] in " \t":  # a folded continuation of the previous header
                if name is not None:
                    value.append(text)
                continue
            match = _HEADER_NAME.match(text)
            if match is None and not text.startswith(("From ", ":")):
                break  # the email parser takes this line and the rest for a body
            if name is not None:
                headers.set_raw(name, "".join(value).rstrip("\r\n"))
                name = None
            if match is None or text.startswith("From "):
                continue  # the email parser drops these (an mbox "From " line, no name)
            name = match.group(1)
            value = [text[match.end():].lstrip(" \t")]
        if name is not None:
            headers.set_raw(name, "".join(value).rstrip("\r\n"))
        return headers

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked: the dechunker ends by itself
            environ["wsgi.input"] = _Body(environ["wsgi.input"], None)
        else:
            text = environ.get("CONTENT_LENGTH", "").strip()
            length = int(text) if text.isdigit() else 0
            if text and not text.isdigit():
                self.close_connection = True  # no way to tell where the body ends
            environ["wsgi.input"] = _Body(self.rfile, length)
        environ["fakeserver.protocol"] = self.server.protocol
        if self.server.tls is not None:
            environ["wsgi.url_scheme"] = "https"
            environ["fakeserver.fingerprint"] = self.server.tls.peer_fingerprint(self.connection)
            environ["fakeserver.peer_der"] = self.server.tls.peer_der(self.connection)
            host, port = self.client_address[:2]
            environ["fakeserver.address"] = f"{host}:{port}"
        environ["fakeserver.hijack"] = self.hijack
        return environ

    def hijack(self) -> tuple[Any, Any]:
        """Take over the connection (for a websocket); the WSGI response is then discarded."""
        self.close_connection = True
        self.hijacked = True
        self.server.forget(self.request)  # its new owner ends it, not the listener's stop
        self.wfile = _Discard()  # type: ignore[assignment]
        return self.connection, self.rfile

    def run_wsgi(self) -> None:
        """Serve one request; unlike Werkzeug's, leaves the connection open for the next.
        (``Expect: 100-continue`` was answered by ``parse_request``.)"""
        self.environ = environ = self.make_environ()
        reply = _Reply(self, environ)
        try:
            app_iter = self.server.app(environ, reply.start_response)
            try:
                for data in app_iter:
                    reply.write(data)
                reply.finish()
            finally:
                if hasattr(app_iter, "close"):
                    app_iter.close()
            if self.close_connection and not self.hijacked:
                body = environ["wsgi.input"]
                if not body.done:
                    body.linger(self.connection)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away
        except Exception:
            self.close_connection = True
            if not reply.started:  # App answers handler bugs itself; this is the server's
                try:
                    self.wfile.write(b"HTTP/1.1 500 Internal Server Error\r\n"
                                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError):
            pass  # a client that went away, or a TLS handshake that failed

    def log_request(self, *args: Any, **kwargs: Any) -> None:  # quiet by default
        pass

    def log_error(self, *args: Any) -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _BindError(Exception):
    """Carries a bind failure past werkzeug's ``except OSError`` (which exits the process)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Listener(ThreadedWSGIServer):
    """One listening socket served by threads, stoppable at once through a wake-up pipe."""

    def __init__(self, host: str, port: int, app: App, protocol: str, tls: Any = None) -> None:
        self.protocol = protocol
        self.tls = tls
        self._open: set[Any] = set()  # connections a handler serves (kept alive between requests)
        self._open_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        try:
            super().__init__(host, port, app, handler=_Handler)
        except _BindError as exc:  # werkzeug would print and sys.exit(1) on an OSError
            raise exc.error from None

    def server_bind(self) -> None:
        try:
            super().server_bind()
        except OSError as exc:
            raise _BindError(exc) from exc

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that fails the TLS handshake or vanishes is not the fake's bug."""

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap(sock)
        return sock, addr

    def serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._handle_request_noblock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        if self._stopping:  # accepted while stop() ran: end it after this request
            try:
                getattr(request, "sock", request).shutdown(socket.SHUT_RD)
            except OSError:
                pass
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.forget(request)
        super().shutdown_request(request)

    def forget(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)

    def stop(self) -> None:
        """Stop accepting, and end kept-alive connections once their request (if any) is
        answered: shutting their reading side makes the handler's next read see EOF."""
        self._stopping = True
        self._wake_w.send(b"x")
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            try:
                getattr(conn, "sock", conn).shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()


class FakeLXD:
    """An in-memory LXD on ``<directory>/unix.socket`` and, if asked, HTTPS on 127.0.0.1.

    ``https`` is False, True (127.0.0.1, a free port) or ``"HOST:PORT"``. ``preseed`` is an
    ``lxd init --preseed`` document (YAML text, a path or a dict) laid over the baseline (a host
    as ``scripts/lxd-host`` sets it up: pool ``default``, bridge ``lxdbr0``, a root disk on
    profile ``default``); ``baseline=False`` starts from a freshly installed, uninitialised LXD.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 https: bool | str = False, preseed: Any = None, baseline: bool = True,
                 workers: int = 8, op_retention: float = 5.0, log_bodies: bool = False) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="lxd-fake-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(self.directory / "unix.socket")
        self.https = https
        self.log_bodies = log_bodies
        self.exec_handlers = Handlers()  # commands tests add to exec (see execution)
        self.sftp_sessions: set[Any] = set()  # open /sftp sessions: reset() ends them
        self.state = State()
        self.events = EventHub()
        self.operations = OperationEngine(self.events, self.state.lock, workers, op_retention)
        self._tls: Any = None
        self.app = App(self)
        self._listeners: list[tuple[_Listener, threading.Thread]] = []
        self._https_address: tuple[str, int] | None = None
        self._baseline_preseed = preseed
        self._use_baseline = baseline
        self._baseline = self._build_baseline()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeLXD:
        """Start listening (unix socket, and HTTPS when configured). Returns self."""
        if self._listeners:
            return self
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        unix = _Listener(f"unix://{self.socket_path}", 0, self.app, "unix")
        os.chmod(self.socket_path, 0o660)
        self._run(unix)
        if self.https:
            host, port = "127.0.0.1", 0
            if isinstance(self.https, str):
                host, _, port_text = self.https.rpartition(":")
                port = int(port_text)
            tls = self.tls
            try:
                listener = _Listener(host, port, self.app, "tls", tls.server_side())
            except BaseException:
                self.stop()  # no half-started server
                raise
            self._https_address = (host, listener.server_address[1])
            self._run(listener)
            self._publish_https_address()
        return self

    def _publish_https_address(self) -> None:
        """Show the HTTPS listener in ``core.https_address``, as LXD's config says where it
        listens (GET /1.0 ``environment.addresses``, certificate add tokens)."""
        if self._https_address is None:
            return
        host, port = self._https_address
        with self.state.lock:
            self.state.config["core.https_address"] = (f"[{host}]:{port}" if ":" in host
                                                       else f"{host}:{port}")

    def _run(self, listener: _Listener) -> None:
        thread = threading.Thread(target=listener.serve, name=f"lxd-fake-{listener.protocol}",
                                  daemon=True)
        thread.start()
        self._listeners.append((listener, thread))

    def stop(self) -> None:
        """Stop listening and end every background activity; state is kept."""
        listeners, self._listeners = self._listeners, []
        for listener, _ in listeners:
            listener.stop()
        for listener, thread in listeners:
            thread.join(1.0)
            listener.server_close()
        self.events.close()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def close(self) -> None:
        """Stop, end the worker threads, and remove the directory if the fake made it."""
        self.stop()
        self.operations.close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> FakeLXD:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return bool(self._listeners)

    # -- addresses and TLS -----------------------------------------------------------------
    @property
    def https_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the HTTPS listener once started, else None."""
        return self._https_address

    @property
    def https_url(self) -> str | None:
        if self._https_address is None:
            return None
        host, port = self._https_address
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    @property
    def tls(self) -> Any:
        """The server's TLS material (:class:`fakeserver.tls.ServerTLS`), made on first use."""
        if self._tls is None:
            from .tls import ServerTLS

            self._tls = ServerTLS(self.directory)
        return self._tls

    @property
    def ca_file(self) -> str:
        """Path of the PEM CA bundle that verifies the server's certificate."""
        return str(self.tls.ca_file)

    def is_trusted(self, fingerprint: str | None, path: str | None = None) -> bool:
        """Whether a TLS client certificate is in the trust store: ``client`` certificates
        everywhere, ``metrics`` ones only on ``/1.0/metrics`` (as LXD 5.0.2)."""
        if not fingerprint:
            return False
        with self.state.lock:
            cert = self.state.family("certificates").get(fingerprint)
        if cert is None:
            return False
        return cert.get("type", "client") == "client" or path == "/1.0/metrics"

    def restricted_projects(self, fingerprint: str | None) -> list[str] | None:
        """The projects a restricted client certificate is confined to (None: unrestricted)."""
        with self.state.lock:
            cert = self.state.family("certificates").get(fingerprint or "")
            if cert is None or not cert.get("restricted"):
                return None
            return list(cert.get("projects", []))

    # -- state control ---------------------------------------------------------------------
    def _build_baseline(self) -> dict[str, Any]:
        self.state.clear()
        preseed_mod.apply(self.state, preseed_mod.FRESH)
        if self._use_baseline:
            preseed_mod.apply(self.state, preseed_mod.BASELINE)
        if self._baseline_preseed is not None:
            preseed_mod.apply(self.state, preseed_mod.load(self._baseline_preseed))
        return self.state.snapshot()

    def reset(self, snapshot: dict[str, Any] | None = None) -> None:
        """Back to the baseline (plus the constructor's preseed), or to ``snapshot`` (from
        :meth:`snapshot`); forget operations, the request log and exec handlers."""
        self.operations.reset()
        for session in list(self.sftp_sessions):
            session.end()
        self.state.restore(self._baseline if snapshot is None else snapshot)
        self._publish_https_address()
        self.app.log.clear()
        self.app.handler_errors.clear()
        self.exec_handlers.clear()

    def exec_handler(self, name: str, fn: Any = None) -> Any:
        """Run ``fn(argv, env, cwd, stdin, instance) -> (code, stdout, stderr)`` for the command
        ``name`` in every exec (a decorator without ``fn``); see :mod:`fakeserver.execution`.
        Handlers are forgotten by :meth:`reset`."""
        return self.exec_handlers.register(name, fn)

    def seed(self, preseed: Any) -> None:
        """Apply an ``lxd init --preseed`` document (YAML text, path or dict) now."""
        preseed_mod.apply(self.state, preseed_mod.load(preseed))

    def snapshot(self) -> dict[str, Any]:
        """A copy of the whole state, for :meth:`restore`."""
        return self.state.snapshot()

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.state.restore(snapshot)

    @property
    def requests(self) -> list[LoggedRequest]:
        """The requests served since the last reset, oldest first."""
        return list(self.app.log)

    @property
    def handler_errors(self) -> list[str]:
        """Tracebacks of bugs in the fake (each answered as a 500); empty when all is well."""
        return self.app.handler_errors + self.operations.handler_errors
