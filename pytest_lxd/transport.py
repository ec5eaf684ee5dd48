"""Talking to LXD: where the endpoint is, the HTTP session (unix socket or HTTPS), TLS.

``resolve_endpoint()`` turns pylxd's ``endpoint`` argument into an :class:`Endpoint`;
:class:`TLSPolicy` turns ``verify`` into one of four modes (system CAs, a CA bundle, one pinned
server certificate, or none); :class:`Transport` sends requests, maps LXD's error replies to the
client's exceptions and wraps every transport failure into ``ClientConnectionFailed``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import socket
import ssl
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import certifi
import requests
import requests_unixsocket
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from requests.adapters import HTTPAdapter

from . import exceptions

#: The unix sockets tried, in order, when no endpoint is given and ``$LXD_DIR`` is not set.
DEFAULT_SOCKET_PATHS = ("/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket")

#: Client certificates used for HTTPS when ``cert`` is None (the ``lxc`` client's, if present).
DEFAULT_CERT_DIRS = ("~/snap/lxd/common/config", "~/.config/lxc")

Timeout = float | tuple[float, float] | None
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
        session = requests_unixsocket.Session()
        session.trust_env = False  # proxies in the environment make no sense on a socket
        return session
    session = requests.Session()
    if cert is not None:
        session.cert = cert
    if tls is not None:
        session.verify = tls.requests_verify
        if tls.mode == "pin" and tls.fingerprint:
            session.mount("https://", _PinnedAdapter(tls.fingerprint))
    return session


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
        data = response.json()
    except ValueError:
        return
    if not isinstance(data, dict) or data.get("type") != "sync":
        raise exceptions.LXDAPIException(response, "unexpected reply: not a sync response")
