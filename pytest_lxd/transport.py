"""Talking to LXD: where the endpoint is, the HTTP session (unix socket or HTTPS), TLS.

``resolve_endpoint()`` turns pylxd's ``endpoint`` argument into an :class:`Endpoint`;
:class:`TLSPolicy` turns ``verify`` into one of four modes (system CAs, a CA bundle, one pinned
server certificate, or none); :class:`Transport` sends requests, maps LXD's error replies to the
client's exceptions and wraps every transport failure into ``ClientConnectionFailed``.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import inspect
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote_plus

import certifi
import requests
import requests_unixsocket
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from requests.adapters import HTTPAdapter
from requests.hooks import dispatch_hook
from requests.models import RequestEncodingMixin
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, requote_uri
from requests_unixsocket.adapters import UnixHTTPConnectionPool

from . import exceptions

#: The unix sockets tried, in order, when no endpoint is given and ``$LXD_DIR`` is not set.
DEFAULT_SOCKET_PATHS = ("/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket")

#: Client certificates used for HTTPS when ``cert`` is None (the ``lxc`` client's, if present).
DEFAULT_CERT_DIRS = ("~/snap/lxd/common/config", "~/.config/lxc")

Timeout = float | tuple[float, float] | None
_NOTHING: Any = object()
_encode_params = RequestEncodingMixin._encode_params
#: The JSON module requests encodes ``json=`` bodies with (simplejson when installed).
_json: Any = vars(requests.compat)["json"]
Verify = bool | str | os.PathLike[str]


@dataclass(frozen=True)
class Endpoint:
    """Where LXD listens: a unix socket, or an ``https://`` (or ``http://``) URL."""

    kind: Literal["unix", "https", "http"]
    url: str  # scheme + authority, no path, no trailing slash
    socket_path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def websocket_url(self) -> str:
        if self.kind == "unix":
            return "ws+unix://" + str(self.socket_path)
        return ("wss://" if self.kind == "https" else "ws://") + self.url.split("://", 1)[1]

    def __str__(self) -> str:
        return str(self.socket_path) if self.kind == "unix" else self.url


def default_socket_path() -> str:
    """``$LXD_DIR/unix.socket`` if ``LXD_DIR`` is set, else the first existing default."""
    lxd_dir = os.environ.get("LXD_DIR")
    if lxd_dir:
        return os.path.join(lxd_dir, "unix.socket")
    for path in DEFAULT_SOCKET_PATHS:
        if os.path.exists(path):
            return path
    return DEFAULT_SOCKET_PATHS[-1]


def resolve_endpoint(endpoint: str | os.PathLike[str] | None) -> Endpoint:
    """pylxd's rules: None → the local socket; a path → that socket; else an http(s) URL."""
    if endpoint is None:
        return _unix(default_socket_path())
    text = os.fspath(endpoint).strip()
    if not text:
        raise exceptions.ClientConnectionFailed("empty LXD endpoint")
    if text.startswith("http+unix://"):
        return _unix(urllib.parse.unquote(text[len("http+unix://"):].split("/", 1)[0]))
    if text.startswith("unix:"):
        return _unix(text[len("unix:"):].removeprefix("//"))
    if text.startswith(("/", "./", "../")) or os.path.exists(text):
        return _unix(text)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("https", "http"):
        raise exceptions.ClientConnectionFailed(
            f"bad LXD endpoint {text!r}: expected a unix socket path or an https:// URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise exceptions.ClientConnectionFailed(f"bad LXD endpoint {text!r}: {exc}") from None
    if not parts.hostname or parts.path.strip("/") or parts.query or parts.fragment:
        raise exceptions.ClientConnectionFailed(
            f"bad LXD endpoint {text!r}: expected scheme://host[:port] with no path")
    kind: Literal["https", "http"] = "https" if parts.scheme == "https" else "http"
    return Endpoint(kind, f"{parts.scheme}://{parts.netloc}", host=parts.hostname,
                    port=port or (8443 if kind == "https" else 80))


def _unix(path: str) -> Endpoint:
    path = os.path.abspath(os.path.expanduser(path))
    return Endpoint("unix", "http+unix://" + urllib.parse.quote(path, safe=""), socket_path=path)


def default_client_cert() -> tuple[str, str] | None:
    """The ``lxc`` client certificate pair, if one exists (looked up now, not at import)."""
    for directory in DEFAULT_CERT_DIRS:
        crt = os.path.expanduser(os.path.join(directory, "client.crt"))
        key = os.path.expanduser(os.path.join(directory, "client.key"))
        if os.path.exists(crt) and os.path.exists(key):
            return crt, key
    return None


def fingerprint_of_der(der: bytes) -> str:
    """LXD's certificate fingerprint: sha256 of the DER, lowercase hex."""
    return hashlib.sha256(der).hexdigest()


def pem_to_der(pem: bytes | str) -> bytes:
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)


class TLSPolicy:
    """How the server certificate is checked, from pylxd's ``verify`` argument.

    * ``True``: the usual CA verification (``REQUESTS_CA_BUNDLE`` is honoured, as in requests);
    * ``False``: no verification, whatever the environment says;
    * a PEM path holding exactly **one non-CA certificate**: that certificate is pinned (the
      server must present exactly it; LXD's self-signed server certificate is such a file);
    * any other PEM path (a CA certificate, a bundle): verification against that bundle.
    """

    def __init__(self, verify: Verify) -> None:
        self.mode: Literal["system", "insecure", "ca", "pin"]
        self.path: str | None = None
        self.fingerprint: str | None = None
        if verify is True:
            self.mode = "system"
        elif verify is False:
            self.mode = "insecure"
        elif isinstance(verify, (str, os.PathLike)):
            self.path = os.fspath(verify)
            try:
                data = Path(self.path).read_bytes()
            except OSError as exc:
                raise exceptions.ClientConnectionFailed(
                    f"cannot read the verify file {self.path}: {exc.strerror}") from None
            try:
                certs = x509.load_pem_x509_certificates(data)
            except ValueError:
                raise exceptions.ClientConnectionFailed(
                    f"verify file {self.path} holds no PEM certificate") from None
            if len(certs) == 1 and not _is_ca(certs[0]):
                self.mode = "pin"
                self.fingerprint = fingerprint_of_der(certs[0].public_bytes(Encoding.DER))
            else:
                self.mode = "ca"
        else:
            raise TypeError(f"verify must be a bool or a path, not {type(verify).__name__}")

    @property
    def requests_verify(self) -> bool | str:
        """The ``verify=`` to pass on every request (explicitly, so the env cannot override)."""
        if self.mode == "system":
            return True
        if self.mode == "ca":
            return str(self.path)
        return False  # insecure, or pinned (the adapter checks the fingerprint)

    def ssl_context(self, cert: tuple[str, str] | None) -> ssl.SSLContext:
        """An SSL context for websockets that checks the server as HTTP requests do."""
        if self.mode == "system":
            cafile = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                      or certifi.where())
            context = ssl.create_default_context(cafile=cafile)
        elif self.mode == "ca":
            context = ssl.create_default_context(cafile=self.path)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert is not None:
            context.load_cert_chain(cert[0], cert[1])
        return context

    def check_peer(self, sock: ssl.SSLSocket) -> None:
        """Enforce the pin on an established TLS socket."""
        if self.mode != "pin":
            return
        der = sock.getpeercert(binary_form=True) or b""
        got = fingerprint_of_der(der)
        if got != self.fingerprint:
            raise exceptions.ClientConnectionFailed(
                f"TLS failure: the server certificate {got} is not the pinned {self.fingerprint}")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


class _PinnedAdapter(HTTPAdapter):
    """HTTPS adapter that accepts exactly one server certificate (by sha256 fingerprint)."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def make_session(endpoint: Endpoint, cert: tuple[str, str] | None,
                 tls: TLSPolicy | None) -> requests.Session:
    """A requests session for ``endpoint``: unix adapter, or HTTPS with cert and pinning."""
    session: requests.Session
    if endpoint.kind == "unix":
        return UnixSession()
    session = requests.Session()
    if cert is not None:
        session.cert = cert
    if tls is not None:
        session.verify = tls.requests_verify
        if tls.mode == "pin" and tls.fingerprint:
            session.mount("https://", _PinnedAdapter(tls.fingerprint))
    return session


# -- unix sockets: kept-alive connections, and a short path for plain API requests ----------


#: requests' rules for header names and values (it raises InvalidHeader otherwise).
_HEADER_NAME = re.compile(r"^[^:\s][^:\r\n]*$")
_HEADER_VALUE = re.compile(r"^\S[^\r\n]*$|^$")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_MAX_LINE = 65536
_MAX_HEADERS = 100


def _request_bytes(method: str, target: str, headers: Mapping[Any, Any],
                   body: bytes | None) -> bytes:
    """The request head (and body) as one buffer: one write, one wake-up of the server."""
    if _BAD_TARGET.search(target) or _BAD_TARGET.search(method):
        raise requests.exceptions.InvalidURL(f"invalid characters in {method} {target!r}")
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in headers:
        lines.append("Host: localhost")  # what requests-unixsocket sends
    for name, value in headers.items():
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(name, str) or not isinstance(value, str):
            raise requests.exceptions.InvalidHeader(
                f"header part ({name!r}: {value!r}) must be str or bytes")
        if not _HEADER_NAME.match(name) or not _HEADER_VALUE.match(value):
            raise requests.exceptions.InvalidHeader(
                f"invalid leading whitespace, reserved character(s), or return character(s) "
                f"in header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class _Reply:
    """A whole HTTP reply: status, reason, headers (in order), body."""

    __slots__ = ("body", "headers", "reason", "status", "will_close")

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
                 will_close: bool) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        self.body, self.will_close = body, will_close


def _line(fp: Any, what: str) -> bytes:
    line: bytes = fp.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong(what)
    return line


def _read_reply(fp: Any, method: str) -> _Reply:
    """Read one reply as ``http.client`` would (interim 1xx replies skipped)."""
    while True:
        line = _line(fp, "status line")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        parts = line.decode("iso-8859-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise http.client.BadStatusLine(repr(line))
        version, status = parts[0], int(parts[1])
        reason = parts[2].strip() if len(parts) > 2 else ""
        if not 100 <= status <= 999:
            raise http.client.BadStatusLine(repr(line))
        headers: list[tuple[str, str]] = []
        while True:
            line = _line(fp, "header line")
            if line in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= _MAX_HEADERS:
                raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
            text = line.decode("iso-8859-1")
            if text[:1] in (" ", "\t") and headers:  # a folded line: kept as the email
                name, value = headers[-1]             # parser keeps it (CRLF and all)
                headers[-1] = (name, value + text)
                continue
            name, sep, value = text.partition(":")
            if sep:
                headers.append((name, value.lstrip(" \t")))
        headers = [(name, value.rstrip("\r\n")) for name, value in headers]
        if status >= 200 or status == 101:
            break
    fields = {name.lower(): value for name, value in headers}
    connection = fields.get("connection", "").lower()
    will_close = "close" in connection or (version != "HTTP/1.1"
                                           and "keep-alive" not in connection)
    if method == "HEAD" or status in (101, 204, 304) or status < 200:
        return _Reply(status, reason, headers, b"", will_close or status == 101)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _Reply(status, reason, headers, _read_chunked(fp), will_close)
    length = fields.get("content-length")
    if length is None or not length.strip().isdigit():
        return _Reply(status, reason, headers, fp.read(), True)  # until the server closes
    size = int(length)
    body = fp.read(size)
    if len(body) < size:
        raise http.client.IncompleteRead(body, size - len(body))
    return _Reply(status, reason, headers, body, will_close)


def _read_chunked(fp: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        line = _line(fp, "chunk size")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(chunks)) from None
        if size == 0:
            break
        data = fp.read(size)
        if len(data) < size:
            raise http.client.IncompleteRead(b"".join(chunks) + data, size - len(data))
        chunks.append(data)
        fp.read(2)  # the CRLF after the chunk
    while _line(fp, "trailer line") not in (b"\r\n", b"\n", b""):
        pass
    return b"".join(chunks)


class _UnixConnection:
    """One HTTP/1.1 connection to a unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.sock: socket.socket | None = None
        self.reused = False  # taken from the pool (not new)
        self.sent = False  # the last request went out whole

    def connect(self, timeout: float | None) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def exchange(self, data: bytes, method: str, timeout: float | None) -> _Reply:
        """Send a whole request; read the whole reply."""
        if self.sock is None:
            raise http.client.NotConnected()
        self.sock.settimeout(timeout)
        self.sock.sendall(data)
        self.sent = True
        with self.sock.makefile("rb") as fp:
            return _read_reply(fp, method)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def alive(self) -> bool:
        """Whether a kept connection can carry another request (the server has not closed
        it, nor sent anything unasked)."""
        if self.sock is None:
            return False
        try:
            self.sock.settimeout(0)  # a timeout would make recv() wait for data first
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            pass
        return False  # closed (b""), reset, or unasked bytes: not reusable


class _UnixPool:
    """Idle kept-alive connections to one unix socket, shared by every session of the
    process (thread-safe, newest first; a forked child starts with none)."""

    def __init__(self, socket_path: str, maxsize: int = 8) -> None:
        self.socket_path = socket_path
        self.maxsize = maxsize
        self._idle: list[_UnixConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self) -> _UnixConnection | None:
        """An idle connection the server still keeps, or None."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                conn = self._idle.pop()
                if conn.alive():
                    conn.reused = True
                    return conn
                conn.close()
        return None

    def give(self, conn: _UnixConnection) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections (busy ones are closed when given back, if asked)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_POOLS: dict[str, _UnixPool] = {}
_POOLS_LOCK = threading.Lock()


def unix_pool(socket_path: str) -> _UnixPool:
    """The process's pool of idle connections to ``socket_path``.

    Connections to a unix socket carry no client identity (LXD knows a unix client by its
    peer credentials, the same for the whole process), so every client of the process shares
    them: a new client, or one per test, needs no new connection (nor a new server thread).
    """
    pool = _POOLS.get(socket_path)
    if pool is None:
        with _POOLS_LOCK:
            pool = _POOLS.setdefault(socket_path, _UnixPool(socket_path))
    return pool


class _UnixAdapter(requests_unixsocket.UnixAdapter):  # type: ignore[misc]
    """requests-unixsocket's adapter with one connection pool per socket (it kept one per
    URL, so every new URL cost a new connection)."""

    def get_connection(self, url: str, proxies: Mapping[str, str] | None = None) -> Any:
        if proxies and proxies.get(urllib.parse.urlsplit(url.lower()).scheme):
            raise ValueError(f"{type(self).__name__} does not support specifying proxies")
        netloc = urllib.parse.urlsplit(url).netloc
        with self.pools.lock:
            pool = self.pools.get(netloc)
            if pool is None:
                pool = UnixHTTPConnectionPool("http+unix://" + netloc, self.timeout)
                self.pools[netloc] = pool
        return pool


class LXDResponse(requests.Response):
    """A response whose JSON is parsed once: :func:`check_response` parses it and hands
    that parse to the first ``json()`` call (later calls parse again, so no two callers
    share mutable data)."""

    _parsed: Any = _NOTHING

    def json(self, **kwargs: Any) -> Any:
        if not kwargs and self._parsed is not _NOTHING:
            value, self._parsed = self._parsed, _NOTHING
            return value
        return super().json(**kwargs)

    def parse_once(self) -> Any:
        value = super().json()
        self._parsed = value
        return value


#: The arguments :meth:`UnixSession.request` serves itself (anything else goes to requests).
_SHORT_ARGS = frozenset({"params", "data", "headers", "json", "timeout", "verify", "cert",
                         "allow_redirects"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class UnixSession(requests.Session):
    """A requests session for LXD's unix socket.

    Plain requests (a JSON or bytes body, no streaming, no per-request hooks) skip requests'
    machinery: prepared as requests prepares them, they go out in one write on a kept-alive
    connection (the process's pool for the socket, :func:`unix_pool`), the reply is read as
    ``http.client`` reads it, and they come back as a :class:`requests.Response` built the way
    requests builds it, after the session's ``response`` hooks ran. Everything else (streams,
    file bodies, ...) goes through requests, on one connection pool per socket. Proxies from
    the environment are never used (``trust_env`` is off).
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.mount("http+unix://", _UnixAdapter())

    def request(self, method: str, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        if (args or not _SHORT_ARGS.issuperset(kwargs)
                or not self._short_path_ok(url, kwargs)):
            return super().request(method, url, *args, **kwargs)
        return self._send_short(method.upper(), str(url), kwargs)

    def _short_path_ok(self, url: str | bytes, kwargs: dict[str, Any]) -> bool:
        data = kwargs.get("data")
        return (isinstance(url, str) and url.startswith("http+unix://")
                and (data is None or isinstance(data, bytes))
                and kwargs.get("allow_redirects", True) is True
                and self.auth is None and not self.cookies and not self.params
                and type(self.adapters.get("http+unix://")) is _UnixAdapter
                and all(not v for k, v in self.hooks.items() if k != "response"))

    def _send_short(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        """Prepare the request as requests would (same URL, headers and body), send it."""
        request = requests.PreparedRequest()
        request.method = method
        params = kwargs.get("params")
        if "?" in url or "#" in url:
            request.prepare_url(url, params)
        else:
            query = _encode_query(params) if params else ""
            request.url = requote_uri(url + "?" + query if query else url)
        headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(self.headers)
        for name, value in (kwargs.get("headers") or {}).items():
            headers[name] = value
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]
        body: bytes | None = kwargs.get("data") or None
        content_type = None
        payload = kwargs.get("json")
        if body is None and payload is not None:
            content_type = "application/json"
            try:
                body = _json.dumps(payload, allow_nan=False).encode("utf-8")
            except ValueError as exc:
                raise requests.exceptions.InvalidJSONError(exc, request=request) from None
        if body:
            headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD") and headers.get("Content-Length") is None:
            headers["Content-Length"] = "0"
        if content_type and "content-type" not in headers:
            headers["Content-Type"] = content_type
        request.headers = headers
        request.body = body
        request.hooks = {"response": list(self.hooks["response"])}
        netloc = url[len("http+unix://"):].partition("/")[0]
        timeout = kwargs.get("timeout")
        response = _exchange(unix_pool(urllib.parse.unquote(netloc)), request, timeout)
        hooked = dispatch_hook("response", request.hooks, response, timeout=timeout,
                               verify=kwargs.get("verify", self.verify), proxies={},
                               stream=False, cert=kwargs.get("cert", self.cert))
        return hooked


def _encode_query(params: Any) -> str:
    """``params`` as requests encodes them (a dict of plain values the quick way)."""
    if not isinstance(params, dict):
        return str(_encode_params(params))
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        if not isinstance(key, str) or not isinstance(value, (str, int, float)):
            return str(_encode_params(params))
        parts.append(f"{quote_plus(key)}={quote_plus(str(value))}")
    return "&".join(parts)


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    """requests' ``timeout``: None, one number for both, or ``(connect, read)``."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return connect, read
    return timeout, timeout


def _exchange(pool: _UnixPool, request: requests.PreparedRequest, timeout: Any,
              ) -> LXDResponse:
    """Send ``request`` on a kept connection (or a new one) and read the whole reply.

    A kept connection the server closed meanwhile is replaced once (see below). Failures are
    raised as requests' exceptions (``ConnectTimeout``, ``ReadTimeout``, ``ConnectionError``).
    """
    method = str(request.method)
    data = _request_bytes(method, request.path_url, request.headers,
                          request.body)  # type: ignore[arg-type]
    connect_timeout, read_timeout_ = _timeouts(timeout)
    started = time.perf_counter()
    for attempt in (0, 1):
        conn = pool.take()
        if conn is None:
            conn = _UnixConnection(pool.socket_path)
            try:
                conn.connect(connect_timeout)
            except TimeoutError as exc:
                raise requests.exceptions.ConnectTimeout(exc, request=request) from None
            except OSError as exc:
                raise requests.exceptions.ConnectionError(exc, request=request) from None
        conn.sent = False
        try:
            reply = conn.exchange(data, method, read_timeout_)
        except TimeoutError as exc:
            conn.close()
            raise requests.exceptions.ReadTimeout(exc, request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            # A kept connection the server closed while idle (e.g. a fake that stopped):
            # sending failed, or it closed without a byte of reply. A reset after the
            # request went out is retried for idempotent methods only.
            stale = conn.reused and attempt == 0 and (
                not conn.sent or isinstance(exc, http.client.RemoteDisconnected)
                or (method in _IDEMPOTENT and isinstance(exc, ConnectionResetError)))
            if stale:
                continue
            raise requests.exceptions.ConnectionError(exc, request=request) from None
        except BaseException:
            conn.close()
            raise
        if reply.will_close:
            conn.close()
        else:
            pool.give(conn)
        return _response(request, reply, time.perf_counter() - started)
    raise AssertionError("unreachable")  # pragma: no cover


def _response(request: requests.PreparedRequest, reply: _Reply, elapsed: float,
              ) -> LXDResponse:
    """A requests.Response as requests' adapter builds it (duplicate headers joined)."""
    content = reply.body
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in reply.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    coding = headers.get("Content-Encoding", "").strip().lower()
    if content and coding in ("gzip", "x-gzip", "deflate"):
        # as urllib3: gzip, or deflate with its zlib header or without (raw)
        tries = [16 + zlib.MAX_WBITS] if "gzip" in coding else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
        for wbits in tries:
            try:
                content = zlib.decompress(content, wbits)
                break
            except zlib.error:
                continue
        else:
            raise requests.exceptions.ContentDecodingError(
                f"the reply's {coding} body is corrupt", request=request)
    response = LXDResponse()
    response.status_code = reply.status
    response.headers = headers
    response.encoding = get_encoding_from_headers(headers)
    response.reason = reply.reason
    response.url = str(request.url)
    response.request = request
    response._content = content
    response._content_consumed = True
    response.elapsed = datetime.timedelta(seconds=elapsed)
    return response
_UNSET: Any = object()


def _reason(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 exception chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    best = str(exc)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ssl.SSLError, ssl.CertificateError)):
            return str(current)
        if isinstance(current, OSError) and current.strerror:
            best = current.strerror
        inner = getattr(current, "reason", None)
        if isinstance(inner, BaseException):
            current = inner
            continue
        args = getattr(current, "args", ())
        if args and isinstance(args[0], BaseException):
            current = args[0]
            continue
        current = current.__cause__ or current.__context__
    return best


def _error_for(response: requests.Response) -> exceptions.LXDAPIException:
    status = response.status_code
    cls: type[exceptions.LXDAPIException] = {
        403: exceptions.Forbidden,
        404: exceptions.NotFound,
        409: exceptions.Conflict,
        412: exceptions.ETagMismatch,
    }.get(status, exceptions.LXDAPIException)
    return cls(response)


class Transport:
    """One connection setting: endpoint, session, project, timeout and TLS policy."""

    def __init__(self, endpoint: Endpoint, *, cert: tuple[str, str] | None = None,
                 verify: Verify = True, timeout: Timeout = None,
                 project: str | None = None, session: requests.Session | None = None) -> None:
        self.endpoint = endpoint
        self.cert = cert if endpoint.kind != "unix" else None
        self.tls = TLSPolicy(verify) if endpoint.kind == "https" else None
        self.timeout = timeout
        self.project = project
        self._own_session = session is None
        self.session = session if session is not None else make_session(endpoint, self.cert,
                                                                         self.tls)
        self.closed = False

    # -- HTTP --------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.endpoint.url + path

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                allowed: Iterable[int] = (200,), is_api: bool = True,
                timeout: Timeout = _UNSET, project: str | None = _UNSET,
                **kwargs: Any) -> requests.Response:
        """Send a request; raise the client's exception for anything but ``allowed``."""
        if self.closed:
            raise exceptions.ClientConnectionFailed("the client is closed")
        query = dict(params or {})
        project = self.project if project is _UNSET else project
        if project is not None:
            query.setdefault("project", project)
        if timeout is _UNSET:
            timeout = self.timeout
        if self.tls is not None:
            # Explicitly, so REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE cannot turn verify=False
            # back on (requests merges them in when a request's verify is left unset).
            kwargs.setdefault("verify", self.tls.requests_verify if self._own_session
                              else self.session.verify)
        try:
            response = self.session.request(method, self.url(path), params=query or None,
                                            timeout=timeout, **kwargs)
        except requests.exceptions.Timeout as exc:
            raise exceptions.RequestTimeout(
                f"LXD at {self.endpoint} did not answer {method} {path} within "
                f"{timeout} s: {_reason(exc)}") from None
        except requests.exceptions.SSLError as exc:
            raise exceptions.ClientConnectionFailed(
                f"TLS failure talking to LXD at {self.endpoint}: {_reason(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            raise exceptions.ClientConnectionFailed(
                f"cannot connect to LXD at {self.endpoint}: {_reason(exc)}") from None
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise exceptions.ClientConnectionFailed(
                f"cannot send {method} {path} to LXD at {self.endpoint}: {exc}") from None
        check_response(response, allowed, is_api=is_api and not kwargs.get("stream", False))
        return response

    # -- websockets ----------------------------------------------------------------------------
    def websocket(self, path: str, params: Mapping[str, Any] | None = None,
                  open_timeout: float | None = None, use_project: bool = True) -> Any:
        """Open a websocket (``websockets`` sync client) to ``path`` with the same TLS rules.

        ``use_project=False``: do not add the client's project (the caller chose the query).
        """
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect, unix_connect

        from .tlssocket import SerializedTLSSocket

        if self.closed:
            raise exceptions.ClientConnectionFailed("the client is closed")
        query = dict(params or {})
        if use_project and self.project is not None:
            query.setdefault("project", self.project)
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        if open_timeout is None:
            open_timeout = _connect_timeout(self.timeout)
        options: dict[str, Any] = {"open_timeout": open_timeout, "compression": None,
                                   "max_size": None, "ping_interval": None}
        if "legacy" in inspect.signature(connect).parameters:
            options["legacy"] = True  # websockets >= 17: a plain connection, not a manager
        try:
            if self.endpoint.kind == "unix":
                return unix_connect(self.endpoint.socket_path, uri="ws://localhost" + target,
                                    **options)
            host = str(self.endpoint.host)
            port = int(self.endpoint.port or 0)
            sock = socket.create_connection((host, port), timeout=open_timeout)
            if self.tls is not None:
                context = self.tls.ssl_context(self.cert)
                try:
                    sock = context.wrap_socket(sock, server_hostname=host)
                    self.tls.check_peer(sock)
                except BaseException:
                    sock.close()
                    raise
                # websockets reads on a thread with select(): unsafe on a bare SSLSocket.
                sock = SerializedTLSSocket(sock)  # type: ignore[assignment]
            netloc = self.endpoint.url.split("://", 1)[1]
            return connect("ws://" + netloc + target, sock=sock, proxy=None, **options)
        except InvalidStatus as exc:
            response = exc.response
            body = response.body.decode("utf-8", "replace") if response.body else ""
            raise exceptions.LXDAPIException(
                None, _ws_error(body) or f"websocket refused: HTTP {response.status_code}",
                error_code=response.status_code) from None
        except exceptions.ClientConnectionFailed:
            raise
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            what = "TLS failure" if isinstance(exc, ssl.SSLError) else "cannot connect"
            raise exceptions.ClientConnectionFailed(
                f"{what} (websocket {path}) to LXD at {self.endpoint}: {exc}") from None

    def close(self) -> None:
        if not self.closed and self._own_session:
            self.session.close()
        self.closed = True


def _ws_error(body: str) -> str:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    return str(data.get("error") or "") if isinstance(data, dict) else body.strip()


def _connect_timeout(timeout: Timeout) -> float:
    if isinstance(timeout, tuple):
        return float(timeout[0])
    return float(timeout) if timeout is not None else 30.0


def read_timeout(timeout: Timeout) -> float | None:
    """The read part of a requests-style timeout (None: no bound)."""
    if isinstance(timeout, tuple):
        return float(timeout[1])
    return None if timeout is None else float(timeout)


def check_response(response: requests.Response, allowed: Iterable[int] = (200,), *,
                   is_api: bool = True) -> None:
    """pylxd's checks: an unexpected status raises; a 200 API reply must be ``type: sync``."""
    if response.status_code not in tuple(allowed):
        raise _error_for(response)
    if not is_api or response.status_code != 200:
        return
    try:
        data = response.parse_once() if isinstance(response, LXDResponse) else response.json()
    except ValueError:
        return
    if not isinstance(data, dict) or data.get("type") != "sync":
        raise exceptions.LXDAPIException(response, "unexpected reply: not a sync response")
