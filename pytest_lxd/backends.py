"""The plugin's backends: the fake LXD and a real LXD host, behind one per-test interface.

Every test that uses the plugin's fixtures gets an :class:`LXDBackend`: where the backend is,
the LXD project the test works in, and clients on it.

* :class:`FakeBackend`: one :class:`~fakeserver.FakeLXD` per pytest session (per xdist
  worker). At start it gets a project named like the real backend's, and that state is
  snapshotted; each test starts with ``reset()`` + ``restore(snapshot)`` (well under 1 ms).
* :class:`RealBackend`: each test gets a fresh LXD project ``pytest-lxd-<worker>-<hex>`` (its
  ``default`` profile a copy of the host's); afterwards the project is emptied and deleted,
  and whatever the test's clients created outside it (networks, storage pools, projects,
  certificates, server config) is deleted or restored, even when the test failed. Objects
  created outside the project are also written into the project's config (a journal), so the
  sweep at the start of the next run removes them when a run was killed. Nothing the plugin
  did not create is ever touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import requests

from . import busybox
from .client import Client
from .exceptions import LXDAPIException, NotFound
from .settings import Settings
from .transport import TLSPolicy, make_session, resolve_endpoint

if TYPE_CHECKING:
    from fakeserver import FakeLXD

__all__ = ["FakeBackend", "LXDBackend", "RealBackend", "Settings", "Tracker", "empty_project",
           "remove_project"]

#: Every project the plugin creates is named ``pytest-lxd-<worker>-<hex>``.
PREFIX = "pytest-lxd-"
#: Config keys the plugin sets on its projects (how the sweep recognises and judges them).
RUN_KEY = "user.pytest-lxd.run"
OWNER_KEY = "user.pytest-lxd.owner"
CREATED_KEY = "user.pytest-lxd.created"
#: ``user.pytest-lxd.cleanup.<n>``: an object the test created outside its project.
JOURNAL_KEY = "user.pytest-lxd.cleanup."
#: The features of a test project (LXD's defaults for a new project, written out).
FEATURES = {"features.images": "true", "features.profiles": "true",
            "features.storage.volumes": "true"}
#: A sweep removes a stale project of another machine only when it is older than this.
FOREIGN_MAX_AGE = 24 * 3600.0
#: The alias ``lxd_image`` gives its image in the test's project.
IMAGE_ALIAS = "busybox"
#: Bounds of the plugin's own requests: (connect, read) seconds.
ADMIN_TIMEOUT = (10.0, 120.0)
#: How long the plugin waits for one of its cleanup operations.
WAIT_TIMEOUT = 120.0


def is_true(value: str | None) -> bool:
    """LXD's reading of a boolean config value."""
    return (value or "").strip().lower() in ("1", "on", "true", "yes")


# -- raw REST helpers on an admin client ----------------------------------------------------------

def _split(url: str) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    return parts.path, dict(urllib.parse.parse_qsl(parts.query))


def _node(client: Client, path: str) -> Any:
    """The client's REST node for an ``/1.0/...`` path (segments unquoted, then requoted)."""
    node = client.api
    for segment in path.split("/")[2:]:
        if segment:
            node = node[urllib.parse.unquote(segment)]
    return node


def _call(client: Client, method: str, url: str, *, body: Any = None,
          params: dict[str, str] | None = None) -> Any:
    """Send a request for ``url`` (``/1.0/...?project=..``); wait for its operation; the
    reply's metadata. Raises the client's exceptions."""
    path, query = _split(url)
    query.update(params or {})
    node = _node(client, path)
    kwargs: dict[str, Any] = {"params": query}
    if body is not None:
        kwargs["json"] = body
    response = getattr(node, method.lower())(**kwargs)
    data = response.json() if response.content else {}
    if response.status_code == 202 and data.get("operation"):
        client.operations.wait_for_operation(data["operation"], timeout=WAIT_TIMEOUT)
    return data.get("metadata")


def _names(client: Client, path: str, project: str | None = None) -> list[str]:
    """The last path segments of a collection's URLs (empty if the collection is missing)."""
    try:
        urls = _call(client, "GET", path, params={"project": project} if project else None)
    except NotFound:
        return []
    return [urllib.parse.unquote(_split(url)[0].rsplit("/", 1)[-1]) for url in urls or []]


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _with_project(path: str, project: str | None) -> str:
    return f"{path}?project={_q(project)}" if project and project != "default" else path


def delete_object(client: Client, url: str) -> str | None:
    """Delete one object by URL (stopping an instance, emptying a project first). Returns a
    problem, or None when the object is gone (or was never there)."""
    path, query = _split(url)
    project = query.get("project")
    try:
        if re.fullmatch(r"/1\.0/projects/[^/]+", path):
            return remove_project(client, urllib.parse.unquote(path.rsplit("/", 1)[1]))
        if re.fullmatch(r"/1\.0/instances/[^/]+", path):
            with contextlib.suppress(LXDAPIException):  # already stopped
                _call(client, "PUT", f"{path}/state", body={"action": "stop", "force": True},
                      params=query)
        if path.startswith("/1.0/operations/"):
            with contextlib.suppress(LXDAPIException):  # finished, or not cancellable
                _call(client, "DELETE", url)
            return None
        _call(client, "DELETE", url)
    except NotFound:
        return None
    except LXDAPIException as exc:
        where = f" (project {project})" if project else ""
        return f"DELETE {path}{where}: {exc}"
    return None


def empty_project(client: Client, name: str) -> list[str]:
    """Delete everything in project ``name`` that belongs to it (per its ``features.*``):
    instances, profiles but ``default``, images and aliases, custom volumes, networks. What
    one object still holds (a profile using a volume...) is tried again at the end."""
    if name == "default":
        raise ValueError("the default project is never emptied")
    try:
        config = _call(client, "GET", f"/1.0/projects/{_q(name)}").get("config") or {}
    except NotFound:
        return []
    urls = [f"/1.0/instances/{_q(i)}" for i in _names(client, "/1.0/instances", name)]
    if is_true(config.get("features.profiles")):
        urls += [f"/1.0/profiles/{_q(p)}" for p in _names(client, "/1.0/profiles", name)
                 if p != "default"]
    if is_true(config.get("features.images")):
        urls += [f"/1.0/images/aliases/{_q(a)}"
                 for a in _names(client, "/1.0/images/aliases", name)]
        urls += [f"/1.0/images/{_q(i)}" for i in _names(client, "/1.0/images", name)]
    if is_true(config.get("features.storage.volumes")):
        for pool in _names(client, "/1.0/storage-pools"):
            try:
                listed = _call(client, "GET", f"/1.0/storage-pools/{_q(pool)}/volumes/custom",
                               params={"project": name}) or []
            except LXDAPIException:
                continue
            urls += [path for path in (_split(url)[0] for url in listed)
                     if "/snapshots/" not in path]  # snapshots go with their volume
    if is_true(config.get("features.networks")):
        for kind in ("network-acls", "network-zones"):
            urls += [f"/1.0/{kind}/{_q(item)}" for item in _names(client, f"/1.0/{kind}", name)]
        with contextlib.suppress(LXDAPIException):
            urls += [f"/1.0/networks/{_q(n['name'])}"
                     for n in _call(client, "GET", "/1.0/networks",
                                    params={"project": name, "recursion": "1"}) or []
                     if n.get("managed")]
    failed = [url for url in urls if delete_object(client, _with_project(url, name))]
    return [problem for url in failed
            if (problem := delete_object(client, _with_project(url, name)))]


def remove_project(client: Client, name: str) -> str | None:
    """Delete a project the plugin (or a test) created: its journal, its content, itself."""
    if name == "default":
        return "the default project is never removed"
    try:
        config = _call(client, "GET", f"/1.0/projects/{_q(name)}").get("config") or {}
    except NotFound:
        return None
    except LXDAPIException as exc:
        return f"GET project {name}: {exc}"
    problems = [p for url in reversed(journal_of(config))
                if (p := delete_object(client, url))]
    problems += empty_project(client, name)
    try:
        _call(client, "DELETE", f"/1.0/projects/{_q(name)}")
    except NotFound:
        pass
    except LXDAPIException as exc:
        problems.append(f"DELETE project {name}: {exc}")
    return "; ".join(problems) or None


def journal_of(config: dict[str, str]) -> list[str]:
    """The objects recorded in a project's journal, oldest first."""
    entries = []
    for key, value in config.items():
        if key.startswith(JOURNAL_KEY) and key[len(JOURNAL_KEY):].isdigit():
            entries.append((int(key[len(JOURNAL_KEY):]), value))
    return [value for _, value in sorted(entries)]


# -- who created what: a requests response hook ---------------------------------------------------

_GLOBAL = ("projects", "storage-pools", "certificates")
_NETWORKISH = ("networks", "network-acls", "network-zones")
_COLLECTION = re.compile(r"/1\.0/(projects|storage-pools|networks|network-acls|network-zones|"
                         r"profiles|instances|certificates|images/aliases)")
_OBJECT = re.compile(r"/1\.0/(projects|storage-pools|networks|network-acls|network-zones|"
                     r"profiles|instances|images/aliases)/([^/]+)")
_VOLUMES = re.compile(r"/1\.0/storage-pools/([^/]+)/volumes(?:/([^/]+))?")
_VOLUME = re.compile(r"/1\.0/storage-pools/([^/]+)/volumes/([^/]+)/([^/]+)")
_FORWARDS = re.compile(r"/1\.0/networks/([^/]+)/forwards")
_OPERATION = re.compile(r"/1\.0/operations/([^/]+)(?:/wait)?")


class Tracker:
    """Watches the responses of a test's clients (a ``requests`` response hook).

    Keeps the last requests (for the failure report) and the objects created *outside* the
    test's project, oldest first, following renames and deletions; notes a change of the
    server config. ``journal`` is called with the new list whenever it changes.
    """

    def __init__(self, project: str, log_size: int = 20,
                 journal: Callable[[list[str]], None] | None = None) -> None:
        self.project = project
        self.created: list[str] = []
        self.config_changed = False
        self.log: deque[str] = deque(maxlen=max(1, log_size))
        self.count = 0
        self.journal = journal
        self._images: dict[str, str] = {}  # upload operation id -> project
        self._lock = threading.Lock()

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """The ``requests`` hook: never raises, never changes the response."""
        try:
            self._see(response)
        except Exception:  # noqa: BLE001 - bookkeeping must not break the test's request
            pass

    def _see(self, response: requests.Response) -> None:
        request = response.request
        parts = urllib.parse.urlsplit(str(request.url))
        path = parts.path.rstrip("/") or "/"
        project = dict(urllib.parse.parse_qsl(parts.query)).get("project", "default")
        method = str(request.method)
        status = response.status_code
        shown = f"{path}?{parts.query}" if parts.query else path
        with self._lock:
            self.count += 1
            self.log.append(f"{method} {shown} -> {status}")
            if status >= 400:
                return
            before = list(self.created)
            if method == "POST":
                self._post(path, project, _json(request.body), response)
            elif method in ("PUT", "PATCH") and path == "/1.0":
                self.config_changed = True
            elif method == "DELETE":
                self._forget(self.url(path, project))
            elif method == "GET" and _OPERATION.fullmatch(path):
                self._image_done(response)
            changed = self.created != before
        if changed and self.journal is not None:
            self.journal(list(self.created))

    def url(self, path: str, project: str) -> str:
        """How an object is recorded: its path, with ``?project=`` where the project matters
        (networks asked for in the test's project are the host's: it has no
        ``features.networks``)."""
        family = path.split("/")[2] if path.count("/") >= 2 else ""
        if family == "storage-pools" and "/volumes/" in path:
            return _with_project(path, project)
        if family in _GLOBAL or family == "operations":
            return path
        if family in _NETWORKISH and project == self.project:
            return path
        return _with_project(path, project)

    def _outside(self, family: str, project: str) -> bool:
        if family in _GLOBAL or family in _NETWORKISH:
            return True  # test projects have no features.networks: networks are the host's
        return project != self.project

    def _record(self, url: str) -> None:
        if url not in self.created:
            self.created.append(url)

    def _forget(self, url: str) -> None:
        if url in self.created:
            self.created.remove(url)

    def _replace(self, old: str, new: str) -> None:
        if old in self.created:
            self.created[self.created.index(old)] = new

    def _post(self, path: str, project: str, body: dict[str, Any],
              response: requests.Response) -> None:
        name = str(body.get("name") or "")
        if match := _COLLECTION.fullmatch(path):
            family = match.group(1)
            if family == "certificates":
                self._certificate(response)
            elif name and self._outside(family, project):
                self._record(self.url(f"/1.0/{family}/{_q(name)}", project))
        elif path == "/1.0/images":
            operation = _json(response.content).get("operation") or ""
            if project != self.project and operation:
                self._images[operation.rsplit("/", 1)[-1]] = project
        elif match := _VOLUMES.fullmatch(path):
            kind = match.group(2) or str(body.get("type") or "custom")
            if name and project != self.project:
                self._record(self.url(f"/1.0/storage-pools/{match.group(1)}/volumes/{kind}/"
                                      f"{_q(name)}", project))
        elif _FORWARDS.fullmatch(path):
            address = str(body.get("listen_address") or "")
            if address:
                self._record(self.url(f"{path}/{_q(address)}", project))
        elif (match := _OBJECT.fullmatch(path)) and name:
            if (match.group(1) == "projects"
                    and urllib.parse.unquote(match.group(2)) == self.project):
                self.project = name  # the test renamed its own project
                return
            self._replace(self.url(path, project),
                          self.url(f"{path.rsplit('/', 1)[0]}/{_q(name)}", project))
        elif (match := _VOLUME.fullmatch(path)) and name:
            pool = str(body.get("pool") or urllib.parse.unquote(match.group(1)))
            target = str(body.get("project") or project)
            self._replace(self.url(path, project), self.url(
                f"/1.0/storage-pools/{_q(pool)}/volumes/{match.group(2)}/{_q(name)}", target))

    def _certificate(self, response: requests.Response) -> None:
        location = response.headers.get("Location", "")
        if response.status_code == 201 and location:
            self._record(_split(location)[0])
        elif response.status_code == 202:
            operation = _json(response.content).get("operation") or ""
            if operation:
                self._record(_split(operation)[0])  # a pending trust token: cancel it

    def _image_done(self, response: requests.Response) -> None:
        data = _json(response.content).get("metadata") or {}
        project = self._images.get(str(data.get("id") or ""))
        fingerprint = (data.get("metadata") or {}).get("fingerprint")
        if project is not None and fingerprint and data.get("status_code") == 200:
            self._record(self.url(f"/1.0/images/{fingerprint}", project))
            self._images.pop(str(data["id"]), None)


def _json(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


# -- what a test gets ---------------------------------------------------------------------------

class LXDBackend:
    """The backend of one test (what the ``lxd_backend`` fixture gives).

    ``name`` (``"fake"`` or ``"real"``), ``endpoint`` (unix socket path or https URL),
    ``project`` (the LXD project the test works in), ``api_extensions``, ``api_version``,
    ``fake`` (the :class:`~fakeserver.FakeLXD`, None on a real host). :meth:`client` makes more
    clients (closed, and on a real host cleaned up after, at teardown); :meth:`later` registers
    a cleanup; :meth:`unique` makes names no other test or run uses.
    """

    def __init__(self, name: str, endpoint: str, project: str, info: dict[str, Any], *,
                 fake: FakeLXD | None = None, cert: tuple[str, str] | None = None,
                 verify: bool | str = True, tracker: Tracker | None = None,
                 nodeid: str = "", host_infos: HostInfoCache | None = None) -> None:
        self.name = name
        self.endpoint = endpoint
        self.info = info
        self.fake = fake
        self.cert = cert
        self.verify = verify
        self.nodeid = nodeid
        self.tracker = tracker or Tracker(project)
        #: The server config when the test began (real host: restored if the test changed it).
        self.server_config: dict[str, str] = {}
        self.cleanups: list[Callable[[], Any]] = []
        self.clients: list[tuple[Client, requests.Session]] = []
        self._host_infos = host_infos

    def __repr__(self) -> str:
        return f"LXDBackend({self.name!r}, endpoint={self.endpoint!r}, project={self.project!r})"

    @property
    def project(self) -> str:
        """The test's LXD project (follows a rename of it)."""
        return self.tracker.project

    @property
    def is_fake(self) -> bool:
        return self.name == "fake"

    @property
    def is_real(self) -> bool:
        return self.name == "real"

    @property
    def api_extensions(self) -> list[str]:
        return list(self.info.get("api_extensions") or [])

    @property
    def api_version(self) -> str:
        return str(self.info.get("api_version") or "")

    @property
    def server_version(self) -> str:
        return str((self.info.get("environment") or {}).get("server_version") or "")

    def has_extension(self, name: str) -> bool:
        return name in self.api_extensions

    def client(self, project: str | None = "", **kwargs: Any) -> Client:
        """A new :class:`~pytest_lxd.Client` on this backend, in the test's project by default
        (``project=None``: no project, i.e. ``default``). Closed at teardown; what it creates
        outside the test's project is deleted at teardown on a real host too."""
        if project == "":
            project = self.project
        endpoint = kwargs.pop("endpoint", self.endpoint)
        cert = kwargs.pop("cert", self.cert)
        verify = kwargs.pop("verify", self.verify)
        session = kwargs.pop("session", None) or self._session(endpoint, cert, verify)
        session.hooks["response"].append(self.tracker.hook)
        infos = self._host_infos
        if infos is not None and (endpoint != self.endpoint
                                  or kwargs.get("version", "1.0") != "1.0"):
            infos = None  # only the fake's own socket, API 1.0
        try:
            known = infos.get(project) if infos is not None else None
            if known is not None:
                client = Client._with_host_info(known, endpoint, cert=cert, verify=verify,
                                                project=project, session=session, **kwargs)
            else:
                client = Client(endpoint, cert=cert, verify=verify, project=project,
                                session=session, **kwargs)
                if infos is not None:
                    infos.put(project, client.host_info)
        except BaseException:
            session.close()
            raise
        self.clients.append((client, session))
        return client

    @staticmethod
    def _session(endpoint: str, cert: tuple[str, str] | None,
                 verify: bool | str) -> requests.Session:
        where = resolve_endpoint(endpoint)
        tls = TLSPolicy(verify) if where.kind == "https" else None
        return make_session(where, cert, tls)

    def later(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` at teardown (newest first), even when the test failed."""
        self.cleanups.append(fn)

    @staticmethod
    def unique(prefix: str = "t") -> str:
        """A short name no other test or run uses (``<prefix>-<8 hex>``; fits a bridge)."""
        return f"{prefix}-{secrets.token_hex(4)}"

    def object_url(self, path: str, project: str | None = "") -> str:
        """``path`` as LXD shows it in ``used_by`` (with ``?project=`` outside ``default``)."""
        return _with_project(path, self.project if project == "" else project)

    @property
    def requests(self) -> list[str]:
        """The last requests: served by the fake, or sent by the test's clients (real)."""
        if self.fake is not None:
            return [str(r) for r in self.fake.requests]
        return list(self.tracker.log)

    def describe(self, limit: int = 20) -> str:
        """The failure-report text: the backend, and the last requests."""
        lines = [f"backend: {self.name} (endpoint {self.endpoint}, project {self.project})"]
        if self.fake is not None:
            served = [str(r) for r in self.fake.requests]
            shown = served[-limit:] if limit else []
            lines.append(f"last {len(shown)} of {len(served)} requests served by the fake:")
        else:
            shown = list(self.tracker.log)[-limit:] if limit else []
            lines.append(f"last {len(shown)} of {self.tracker.count} requests sent by the "
                         "test's clients:")
        lines += [f"  {line}" for line in shown]
        return "\n".join(lines)

    def _teardown(self) -> list[str]:
        """Run the cleanups and close the clients; the problems met."""
        problems = []
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - every cleanup must run
                problems.append(f"cleanup {getattr(fn, '__name__', fn)!s}: {exc}")
        for client, session in self.clients:
            client.close()
            session.close()
        self.clients.clear()
        return problems


# -- the fake ------------------------------------------------------------------------------------

def _project_config(settings: Settings, owner: str) -> dict[str, str]:
    return {**FEATURES, RUN_KEY: settings.run_id, OWNER_KEY: owner,
            CREATED_KEY: str(int(time.time()))}


def _owner() -> str:
    """``<host>/<pid>/<process start>``: whether the process that made a project still runs."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_time(pid)}"


def _start_time(pid: int, stat: list[str] | None = None) -> str:
    stat = _stat(pid) if stat is None else stat
    return stat[19] if len(stat) > 19 else "0"


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command (state first; empty if none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(owner: str) -> bool | None:
    """Whether the owner process still runs (None: another machine, cannot tell)."""
    host, _, rest = owner.partition("/")
    pid_text, _, start = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _stat(pid)
    if stat and stat[0] in ("Z", "X"):
        return False  # a zombie (a killed xdist worker its controller has not reaped yet)
    return start in ("", "0") or _start_time(pid, stat) == start


def _copy_default_profile(client: Client, project: str, source: dict[str, Any]) -> None:
    """Give the project's ``default`` profile the host's config and devices (a root disk,
    a nic...), so instances in the project can start as on the host."""
    if source.get("config") or source.get("devices"):
        _call(client, "PATCH", f"/1.0/profiles/default?project={_q(project)}",
              body={"config": source.get("config") or {}, "devices": source.get("devices") or {}})


class HostInfoCache:
    """The session fake's ``GET /1.0`` answers, by project and server config.

    The answer depends on nothing else for a unix client (always trusted; LXD answers for a
    project that does not exist too), and every test starts from the same snapshot: so the
    plugin's clients reuse an answer read before for the same project and config instead of
    asking again. Each client parses its own copy (when it first reads ``host_info``).
    """

    LIMIT = 64

    def __init__(self, server: FakeLXD) -> None:
        self.server = server
        self._known: dict[tuple[str | None, tuple[tuple[str, str], ...]], str] = {}

    def _key(self, project: str | None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        state = self.server.state
        with state.lock:
            return project, tuple(sorted(state.config.items()))

    def get(self, project: str | None) -> str | None:
        """The answer's JSON, if one was read for this project and config."""
        return self._known.get(self._key(project))

    def put(self, project: str | None, info: dict[str, Any]) -> None:
        if len(self._known) >= self.LIMIT:
            self._known.pop(next(iter(self._known)))
        self._known[self._key(project)] = json.dumps(info)


class FakeBackend:
    """The session's fake: a project like the real backend's, restored before each test."""

    name = "fake"

    def __init__(self, server: FakeLXD, settings: Settings) -> None:
        self.server = server
        self.settings = settings
        self.project = f"{PREFIX}{settings.worker}-{secrets.token_hex(4)}"
        server.reset()
        with Client(server.socket_path, timeout=ADMIN_TIMEOUT) as admin:
            _call(admin, "POST", "/1.0/projects",
                  body={"name": self.project, "description": "pytest-lxd (fake)",
                        "config": _project_config(settings, _owner())})
            _copy_default_profile(admin, self.project,
                                  _call(admin, "GET", "/1.0/profiles/default"))
            self.info = admin.host_info
        self.snapshot = server.snapshot()
        self.host_infos = HostInfoCache(server)
        self._image = b""

    def begin(self, nodeid: str = "") -> LXDBackend:
        """Back to the session's clean (or seeded) state, with the test project in it."""
        self.server.reset(self.snapshot)
        return LXDBackend("fake", self.server.socket_path, self.project, self.info,
                          fake=self.server, tracker=Tracker(self.project, self.settings.log_size),
                          nodeid=nodeid, host_infos=self.host_infos)

    def end(self, env: LXDBackend) -> list[str]:
        problems = env._teardown()
        problems += [f"the fake failed (answered 500):\n{error}"
                     for error in self.server.handler_errors]
        return problems

    def image(self, env: LXDBackend) -> str:
        """Upload the placeholder image into the test's project; its alias."""
        if not self._image:
            self._image = busybox.placeholder_image()
        return _upload_image(self.server.socket_path, env, self._image)


def _upload_image(endpoint: str, env: LXDBackend, data: bytes,
                  cert: tuple[str, str] | None = None, verify: bool | str = True) -> str:
    with Client(endpoint, cert=cert, verify=verify, project=env.project,
                timeout=ADMIN_TIMEOUT) as client:
        response = client.api.images.post(data=data, headers={
            "Content-Type": "application/octet-stream", "X-LXD-filename": "busybox.tar.gz"})
        client.operations.wait_for_operation(response.json()["operation"],
                                             timeout=WAIT_TIMEOUT)
        client.api.images.aliases.post(json={"name": IMAGE_ALIAS,
                                             "target": busybox.fingerprint(data),
                                             "description": "pytest-lxd busybox"})
    return IMAGE_ALIAS


# -- a real host ---------------------------------------------------------------------------------

class RealBackend:
    """A real LXD host: a project per test, everything deleted after, stale runs swept."""

    name = "real"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: Client | None = None
        self._problem: str | None = None
        self._probed = False
        self._default_profile: dict[str, Any] | None = None
        self._image = b""
        self.swept: list[str] | None = None
        self.sweep_problems: list[str] = []
        self.owner = _owner()

    # -- reachability ---------------------------------------------------------------------
    @property
    def problem(self) -> str | None:
        """Why the host cannot be used (None when it can); probed once."""
        if not self._probed:
            self._probed = True
            try:
                self._admin = Client(self.settings.endpoint, cert=self.settings.cert,
                                     verify=self.settings.verify, timeout=ADMIN_TIMEOUT)
                if not self._admin.trusted:
                    self._problem = (f"LXD at {self.settings.endpoint} does not trust this "
                                     "client (give --lxd-cert/--lxd-key of a trusted "
                                     "certificate)")
            except Exception as exc:  # noqa: BLE001 - any failure means "unusable"
                self._problem = f"cannot reach LXD at {self.settings.endpoint}: {exc}"
        return self._problem

    @property
    def admin(self) -> Client:
        if self.problem is not None or self._admin is None:
            raise RuntimeError(f"real LXD host unavailable: {self.problem}")
        return self._admin

    @property
    def info(self) -> dict[str, Any]:
        return self.admin.host_info

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()

    # -- the sweep -----------------------------------------------------------------------
    def stale(self, config: dict[str, str], now: float | None = None) -> bool:
        """Whether a plugin project was left behind: its process is gone (this machine), or
        it is older than a day (another machine)."""
        owner = config.get(OWNER_KEY, "")
        if owner == self.owner:
            return False
        alive = _alive(owner)
        if alive is not None:
            return not alive
        try:
            created = float(config.get(CREATED_KEY, "0"))
        except ValueError:
            created = 0.0
        return (now or time.time()) - created > FOREIGN_MAX_AGE

    def sweep(self) -> list[str]:
        """Remove the projects (and what their journals list) that killed runs left."""
        removed = []
        for name in _names(self.admin, "/1.0/projects"):
            if not name.startswith(PREFIX):
                continue
            try:
                config = _call(self.admin, "GET", f"/1.0/projects/{_q(name)}").get("config")
            except LXDAPIException:
                continue
            if not config or RUN_KEY not in config or not self.stale(config):
                continue
            problem = remove_project(self.admin, name)
            if problem:
                self.sweep_problems.append(f"{name}: {problem}")
            else:
                removed.append(name)
        return removed

    # -- per test ------------------------------------------------------------------------
    def begin(self, nodeid: str = "") -> LXDBackend:
        """Create the test's project (swept once before the first)."""
        admin = self.admin
        if self.swept is None:
            self.swept = self.sweep()
        if self._default_profile is None:
            self._default_profile = _call(admin, "GET", "/1.0/profiles/default")
        server_config = dict(_call(admin, "GET", "/1.0").get("config") or {})
        project = f"{PREFIX}{self.settings.worker}-{secrets.token_hex(4)}"
        _call(admin, "POST", "/1.0/projects",
              body={"name": project, "description": f"pytest-lxd: {nodeid}"[:200],
                    "config": _project_config(self.settings, self.owner)})
        tracker = Tracker(project, self.settings.log_size)
        env = LXDBackend("real", self.settings.endpoint, project, self.info,
                         cert=self.settings.cert, verify=self.settings.verify,
                         tracker=tracker, nodeid=nodeid)
        env.server_config = server_config
        try:
            _copy_default_profile(admin, project, self._default_profile)
        except BaseException:
            self.end(env)
            raise
        tracker.journal = lambda created: self._write_journal(tracker, created)
        return env

    def _write_journal(self, tracker: Tracker, created: Iterable[str]) -> None:
        url = f"/1.0/projects/{_q(tracker.project)}"
        with contextlib.suppress(LXDAPIException):
            current = _call(self.admin, "GET", url)
            config = {k: v for k, v in (current.get("config") or {}).items()
                      if not k.startswith(JOURNAL_KEY)}
            config.update({f"{JOURNAL_KEY}{i}": entry for i, entry in enumerate(created)})
            _call(self.admin, "PUT", url,
                  body={"config": config, "description": current.get("description", "")})

    def end(self, env: LXDBackend) -> list[str]:
        """Delete the test's project and what the test created outside it; the problems."""
        problems = env._teardown()
        admin = self.admin
        problems += empty_project(admin, env.project)
        failed = [url for url in reversed(env.tracker.created) if delete_object(admin, url)]
        for url in failed:  # once more: something deleted since may have held it
            if problem := delete_object(admin, url):
                problems.append(problem)
        problems += self._restore_config(env)
        try:
            _call(admin, "DELETE", f"/1.0/projects/{_q(env.project)}")
        except NotFound:
            pass
        except LXDAPIException as exc:
            problems.append(f"DELETE project {env.project}: {exc}")
        return problems

    def _restore_config(self, env: LXDBackend) -> list[str]:
        if not env.tracker.config_changed:
            return []
        before = env.server_config
        now = dict(_call(self.admin, "GET", "/1.0").get("config") or {})
        patch = {key: before.get(key, "") for key in set(before) | set(now)
                 if before.get(key) != now.get(key)}
        if "core.trust_password" in patch and before.get("core.trust_password"):
            patch.pop("core.trust_password")  # LXD shows the password hidden: cannot restore
            problems = ["core.trust_password was changed and cannot be restored"]
        else:
            problems = []
        if patch:
            try:
                _call(self.admin, "PATCH", "/1.0", body={"config": patch})
            except LXDAPIException as exc:
                problems.append(f"restoring the server config {sorted(patch)}: {exc}")
        return problems

    def image(self, env: LXDBackend) -> str:
        """Import the session's busybox image (built once) into the test's project."""
        if not self._image:
            self._image = busybox.busybox_image()
        return _upload_image(self.settings.endpoint, env, self._image, self.settings.cert,
                             self.settings.verify)
