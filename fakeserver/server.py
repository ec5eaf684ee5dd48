"""FakeLXD: the fake LXD daemon, on a unix socket and (optionally) HTTPS, over one state."""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import tempfile
import threading
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


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Listener

    def setup(self) -> None:
        super().setup()
        if self.server.tls is not None:
            self.server.tls.handshake(self.connection)

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
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
        self.wfile = _Discard()  # type: ignore[assignment]
        return self.connection, self.rfile

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

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
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

    def stop(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")

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

    def reset(self) -> None:
        """Back to the baseline (plus the constructor's preseed); forget operations and log."""
        self.operations.reset()
        self.state.restore(self._baseline)
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
