"""The LXD client: ``Client(endpoint, version, cert, verify, timeout, project)`` as in pylxd.

>>> from pytest_lxd import Client
>>> client = Client()                       # the local unix socket       # doctest: +SKIP
>>> client.profiles.get("default").devices  # doctest: +SKIP

Managers (``client.profiles``, ``client.networks``, ...) are plain classes with typed methods;
``client.api`` gives raw fluent REST access (``client.api.profiles["default"].get()``) with the
client's project applied; :meth:`Client.events` opens the event stream.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

from . import exceptions
from .events import EventStream, EventType
from .models.certificate import CertificateManager
from .models.cluster import ClusterManager
from .models.image import ImageManager
from .models.instance import ContainerManager, InstanceManager, VirtualMachineManager
from .models.network import NetworkManager
from .models.network_acl import NetworkACLManager
from .models.network_zone import NetworkZoneManager
from .models.operation import OperationManager
from .models.profile import ProfileManager
from .models.project import ProjectManager
from .models.storage import StoragePoolManager
from .models.warning import WarningManager
from .transport import (
    Endpoint,
    Timeout,
    Transport,
    Verify,
    default_client_cert,
    pem_to_der,
    resolve_endpoint,
)

__all__ = ["APINode", "Client", "EventType"]


class APINode:
    """Fluent raw REST access: ``client.api.instances["c1"].state.get()``.

    Attribute access appends a path segment (``_`` becomes ``-``, so ``api.storage_pools``
    is ``/1.0/storage-pools``); item access appends a name as given. The verbs return the
    ``requests.Response`` after pylxd's checks (GET: 200; POST: 200/201/202; PUT, PATCH,
    DELETE: 200/202) and add the client's ``project`` and ``timeout``.
    """

    def __init__(self, transport: Transport, path: str) -> None:
        self._transport = transport
        self._path = path

    def __getattr__(self, name: str) -> APINode:
        if name.startswith("_"):
            raise AttributeError(name)
        return APINode(self._transport, f"{self._path}/{name.replace('_', '-')}")

    def __getitem__(self, item: str) -> APINode:
        return APINode(self._transport, f"{self._path}/{urllib.parse.quote(str(item), safe='/')}")

    def __repr__(self) -> str:
        return f"APINode({self._api_endpoint!r})"

    @property
    def _api_endpoint(self) -> str:
        return self._transport.url(self._path)

    @property
    def path(self) -> str:
        """The path from the server root, e.g. ``/1.0/profiles/default``."""
        return self._path

    @property
    def scheme(self) -> str:
        return urllib.parse.urlparse(self._api_endpoint).scheme

    @property
    def netloc(self) -> str:
        return urllib.parse.urlparse(self._api_endpoint).netloc

    def _send(self, method: str, allowed: tuple[int, ...], kwargs: dict[str, Any],
              ) -> requests.Response:
        is_api = kwargs.pop("is_api", True)
        return self._transport.request(method, self._path, allowed=allowed, is_api=is_api,
                                       **kwargs)

    def get(self, **kwargs: Any) -> requests.Response:
        """GET; ``is_api=False`` skips the JSON checks (files, exports)."""
        return self._send("GET", (200,), kwargs)

    def head(self, **kwargs: Any) -> requests.Response:
        return self._send("HEAD", (200,), {**kwargs, "is_api": False})

    def post(self, target: str | None = None, **kwargs: Any) -> requests.Response:
        """POST; ``target`` adds ``?target=`` (cluster member)."""
        if target is not None:
            kwargs["params"] = {**kwargs.get("params", {}), "target": target}
        return self._send("POST", (200, 201, 202), kwargs)

    def put(self, **kwargs: Any) -> requests.Response:
        return self._send("PUT", (200, 202), kwargs)

    def patch(self, **kwargs: Any) -> requests.Response:
        return self._send("PATCH", (200, 202), kwargs)

    def delete(self, **kwargs: Any) -> requests.Response:
        return self._send("DELETE", (200, 202), kwargs)


class Client:
    """A connection to LXD, with pylxd's constructor.

    ``endpoint``: None (``$LXD_DIR/unix.socket``, else the snap socket, else
    ``/var/lib/lxd/unix.socket``), a unix socket path, or an ``https://host:port`` URL.
    ``cert``: ``(cert_path, key_path)`` for HTTPS (default: the ``lxc`` client certificate if
    one exists). ``verify``: True, False, a CA bundle path, or the path of the server's own
    certificate to pin it (see :class:`~pytest_lxd.transport.TLSPolicy`). ``timeout``: the
    requests timeout of every call, and the bound of ``wait=True`` waits. ``project``: sent
    as ``?project=`` on every request. ``session``: an existing ``requests.Session`` to use.

    Raises :class:`~pytest_lxd.exceptions.ClientConnectionFailed` when LXD cannot be reached.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, endpoint: str | os.PathLike[str] | None = None, version: str = "1.0",
                 cert: tuple[str, str] | None = None, verify: Verify = True,
                 timeout: Timeout = None, project: str | None = None,
                 session: requests.Session | None = None) -> None:
        self._setup(endpoint, version, cert, verify, timeout, project, session, None)

    @classmethod
    def _with_host_info(cls, host_info_json: str,
                        endpoint: str | os.PathLike[str] | None = None, version: str = "1.0",
                        cert: tuple[str, str] | None = None, verify: Verify = True,
                        timeout: Timeout = None, project: str | None = None,
                        session: requests.Session | None = None) -> Client:
        """A client whose ``GET /1.0`` answer (JSON of its metadata, from a client of the same
        server and project) is already known: no request is sent, and the answer is parsed on
        first use. The plugin's per-test clients on the fake, whose every test starts from
        the same state."""
        client = cls.__new__(cls)
        client._setup(endpoint, version, cert, verify, timeout, project, session,
                      host_info_json)
        return client

    def _setup(self, endpoint: str | os.PathLike[str] | None, version: str,
               cert: tuple[str, str] | None, verify: Verify, timeout: Timeout,
               project: str | None, session: requests.Session | None,
               host_info_json: str | None) -> None:
        self.endpoint: Endpoint = resolve_endpoint(endpoint)
        if self.endpoint.kind == "unix" and not os.path.exists(str(self.endpoint.socket_path)):
            raise exceptions.ClientConnectionFailed(
                f"no LXD unix socket at {self.endpoint.socket_path}")
        if cert is None and self.endpoint.kind == "https":
            cert = default_client_cert()
        self.version = version
        self.project = project
        self.timeout = timeout
        self.transport = Transport(self.endpoint, cert=cert, verify=verify, timeout=timeout,
                                   project=project, session=session)
        self.cert = self.transport.cert
        self.api = APINode(self.transport, f"/{version}")
        self._resources: dict[str, Any] | None = None
        self._host_info: dict[str, Any] | None = None
        self._host_info_json = host_info_json
        try:
            if host_info_json is None:
                self._host_info = self._get_host_info()
        except exceptions.LXDAPIException as exc:
            self.transport.close()
            raise exceptions.ClientConnectionFailed(
                f"LXD at {self.endpoint} answered GET /{version} with "
                f"{exc.error_code}: {exc}") from None
        except BaseException:
            self.transport.close()
            raise
        if (host_info_json is None and project not in (None, "default")
                and not self.has_api_extension("projects")):
            self.transport.close()
            raise exceptions.ClientConnectionFailed(
                "the server does not support projects (no 'projects' API extension)")

        self.certificates = CertificateManager(self)
        self.cluster = ClusterManager(self)
        self.containers = ContainerManager(self)
        self.images = ImageManager(self)
        self.instances = InstanceManager(self)
        self.networks = NetworkManager(self)
        self.network_acls = NetworkACLManager(self)
        self.network_zones = NetworkZoneManager(self)
        self.operations = OperationManager(self)
        self.profiles = ProfileManager(self)
        self.projects = ProjectManager(self)
        self.storage_pools = StoragePoolManager(self)
        self.virtual_machines = VirtualMachineManager(self)
        self.warnings = WarningManager(self)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connections; the client is unusable afterwards. (On a unix socket,
        idle kept-alive connections belong to the process's pool, shared by every client of
        that socket: see :func:`pytest_lxd.transport.unix_pool`.)"""
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        project = f", project={self.project!r}" if self.project else ""
        return f"Client({str(self.endpoint)!r}{project})"

    # -- server information ----------------------------------------------------------------
    @property
    def host_info(self) -> dict[str, Any]:
        """The metadata of ``GET /1.0`` (read when the client was made; see :meth:`refresh`)."""
        if self._host_info is None:
            self._host_info = json.loads(str(self._host_info_json))
        return self._host_info

    @host_info.setter
    def host_info(self, value: dict[str, Any]) -> None:
        self._host_info = value

    def _get_host_info(self) -> dict[str, Any]:
        data = self.api.get().json()["metadata"]
        if not isinstance(data, dict):
            raise exceptions.ClientConnectionFailed(
                f"LXD at {self.endpoint} sent an unexpected GET /{self.version} reply")
        return data

    def refresh(self) -> None:
        """Re-read ``GET /1.0`` into :attr:`host_info`."""
        self.host_info = self._get_host_info()

    @property
    def trusted(self) -> bool:
        return self.host_info.get("auth") == "trusted"

    @property
    def server_clustered(self) -> bool:
        env = self.host_info.get("environment") or {}
        return bool(env.get("server_clustered", False))

    @property
    def api_extensions(self) -> list[str]:
        return list(self.host_info.get("api_extensions") or [])

    def has_api_extension(self, name: str) -> bool:
        return name in self.api_extensions

    def assert_has_api_extension(self, name: str) -> None:
        """Raise :class:`~pytest_lxd.exceptions.LXDAPIExtensionNotAvailable` if it is missing."""
        if not self.has_api_extension(name):
            raise exceptions.LXDAPIExtensionNotAvailable(name)

    @property
    def resources(self) -> dict[str, Any]:
        """``GET /1.0/resources`` (read once, then cached)."""
        if self._resources is None:
            self.assert_has_api_extension("resources")
            self._resources = self.api.resources.get().json()["metadata"]
        return self._resources

    @property
    def websocket_url(self) -> str:
        """``ws+unix:///path``, ``wss://host:port`` or ``ws://host:port``."""
        return self.endpoint.websocket_url

    # -- trust ----------------------------------------------------------------------------------
    def authenticate(self, secret: str, use_token_auth: bool = True) -> None:
        """Get this client's certificate trusted, with a trust password or a trust token.

        A base64 JSON token (``lxc config trust add`` / ``certificates.create_token()``) is
        detected and sent as ``trust_token`` when the server has ``explicit_trust_token``,
        else in ``password`` (which LXD 5.0 accepts for tokens). Does nothing if already
        trusted; refreshes :attr:`host_info` afterwards.
        """
        if self.trusted:
            return
        if self.endpoint.kind == "unix" or self.cert is None:
            raise exceptions.ClientConnectionFailed(
                "authenticate() needs an HTTPS client with a certificate (cert=(crt, key))")
        try:
            pem = Path(self.cert[0]).read_bytes()
        except OSError as exc:
            raise exceptions.ClientConnectionFailed(
                f"cannot read the client certificate {self.cert[0]}: {exc.strerror}") from None
        body: dict[str, Any] = {"type": "client",
                                "certificate": base64.b64encode(pem_to_der(pem)).decode()}
        token = "".join(secret.split()) if is_token(secret) else None
        if token is not None and use_token_auth and self.has_api_extension("explicit_trust_token"):
            body["trust_token"] = token
        else:
            body["password"] = token if token is not None else secret
        self.api.certificates.post(json=body)
        self.refresh()

    # -- events -----------------------------------------------------------------------------
    def events(self, websocket_client: Any = None,
               event_types: Iterable[EventType | str] | None = None, *,
               project: str | None = None, all_projects: bool = False,
               timeout: float | None = None) -> EventStream:
        """The ``/1.0/events`` stream (not yet connected; iterating connects).

        ``event_types``: :class:`EventType` values (default: all). The client's project is
        applied (pylxd forgot it, #484) unless ``project`` or ``all_projects`` says otherwise.
        ``timeout``: iteration ends when no event arrives for that many seconds.
        ``websocket_client`` (a ws4py class in pylxd) is not supported.
        """
        if websocket_client is not None:
            raise TypeError("websocket_client is not supported: pytest_lxd uses 'websockets'; "
                            "iterate the returned EventStream instead")
        return EventStream(self, event_types, project=project, all_projects=all_projects,
                           timeout=timeout)


def is_token(secret: str) -> bool:
    """True if ``secret`` is an LXD trust token: base64 JSON with a ``secret`` key."""
    text = "".join(secret.split())
    if not text:
        return False
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        data = json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "secret" in data
