"""Which LXD endpoints each test exercised, on the fake and on a real LXD: data for the
fidelity table (``docs/fidelity.md``, rendered by ``scripts/gen_fidelity.py``).

:class:`Catalogue` knows every endpoint: LXD 5.0.2's public API
(``lxd-5.0.2-endpoints.txt`` beside this file) and the fake's route table
(``fakeserver.api.load()``). It names a request by its endpoint key, ``"GET /1.0/profiles/{name}"``.

:class:`Recorder` is a pytest plugin (``tests/docs/conftest.py`` registers it, so every run
that collects ``tests/`` records). During each test it notes the endpoints that were called:

* on the fake: every request any :class:`~fakeserver.FakeLXD` served (its WSGI app);
* on the real host: every HTTP request (``requests``) and websocket handshake (``websockets``)
  sent to the real host's unix socket or HTTPS port. The ``lxc`` CLI is not seen there.

At the end of the session the endpoints of each test are stored with the test's outcome in the
pytest cache (``.pytest_cache/v/pytest-lxd/fidelity``), merged with earlier runs by node id,
so a fake-only run followed by a real-only run (as CI does) fills in both columns.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CACHE_KEY = "pytest-lxd/fidelity"
ENDPOINTS_FILE = Path(__file__).with_name("lxd-5.0.2-endpoints.txt")
INSTANCE_ALIASES = ("/1.0/containers", "/1.0/virtual-machines")
#: Instance endpoints LXD 5.0.2 serves under /1.0/instances only (probed: the aliases 404).
NOT_ALIASED = ("/1.0/instances/{name}/sftp",)
_INHERITED = object()  # an attribute the patched class only inherits
_METHODS = {b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD"}


@dataclass(frozen=True)
class Endpoint:
    """One method on one path pattern (``{x}``: a segment, ``{x...}``: the rest)."""

    method: str
    path: str
    in_lxd: bool  # in LXD 5.0.2's public API (else a route only the fake has)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _pattern_regex(path: str) -> str:
    out = []
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            out.append(".*" if part.endswith("...}") else "[^/]+")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _rule_to_pattern(rule: str) -> str:
    """A Werkzeug rule as a pattern: ``<path:name>`` -> ``{name...}``, ``<name>`` -> ``{name}``."""
    def convert(match: re.Match[str]) -> str:
        converter, _, name = match.group(1).rpartition(":")
        return f"{{{name}...}}" if converter == "path" else f"{{{name}}}"

    return re.sub(r"<([^>]+)>", convert, rule)


def _specificity(endpoint: Endpoint) -> tuple[bool, bool, int]:
    """Sort key: LXD's endpoints before the fake's own, literal segments before parameters."""
    segments = endpoint.path.strip("/").split("/")
    literal = sum(1 for s in segments if not s.startswith("{"))
    return (not endpoint.in_lxd, "...}" in endpoint.path, -literal)


def _shape(pattern: str, rest: bool = True) -> str:
    """A pattern without parameter names: ``/a/{x}/{y...}`` -> ``/a/{}/{...}`` (``/a/{}/{}``
    when ``rest`` is false)."""
    return re.sub(r"\{[^}]+?(\.\.\.)?\}",
                  lambda m: "{...}" if m.group(1) and rest else "{}", pattern)


def _sample(pattern: str) -> str:
    """A concrete path the pattern matches (each parameter becomes ``x``)."""
    return re.sub(r"\{[^}]+\}", "x", pattern)


def lxd_endpoints(path: Path = ENDPOINTS_FILE) -> list[Endpoint]:
    """LXD 5.0.2's endpoints from the catalogue file, instance aliases included."""
    found: list[Endpoint] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        *methods, route = line.split()
        routes = [route]
        if route.startswith("/1.0/instances") and route not in NOT_ALIASED:
            routes += [alias + route[len("/1.0/instances"):] for alias in INSTANCE_ALIASES]
        found += [Endpoint(m, r, True) for r in routes for m in methods]
    return found


class Catalogue:
    """LXD's endpoints plus the fake's own routes, and which of them the fake serves."""

    def __init__(self) -> None:
        from werkzeug.routing import Map, Rule

        from fakeserver import api

        self.routes = api.load()
        self.url_map = Map(strict_slashes=True, merge_slashes=False, redirect_defaults=False)
        for index, item in enumerate(self.routes):
            self.url_map.add(Rule(item.path, methods=list(item.methods), endpoint=index))
        self.endpoints = lxd_endpoints()
        known = {e.key for e in self.endpoints}
        self.extra_routes: dict[str, Any] = {}  # key -> Route, for fake routes outside LXD's
        for item in self.routes:
            for method in item.methods:
                endpoint = self._lxd_endpoint(method, _sample(_rule_to_pattern(item.path)))
                if endpoint is None:
                    key = f"{method} {_rule_to_pattern(item.path)}"
                    if key not in known:
                        self.endpoints.append(Endpoint(method, _rule_to_pattern(item.path), False))
                        known.add(key)
                    self.extra_routes[key] = item
        by_method: dict[str, list[Endpoint]] = {}
        for endpoint in sorted(self.endpoints, key=_specificity):
            by_method.setdefault(endpoint.method, []).append(endpoint)
        self._regex = {
            method: (re.compile("|".join(f"(?:{_pattern_regex(e.path)})$" for e in items)),
                     [re.compile(_pattern_regex(e.path) + "$") for e in items], items)
            for method, items in by_method.items()
        }

    def _lxd_endpoint(self, method: str, path: str) -> Endpoint | None:
        for endpoint in self.endpoints:
            if (endpoint.in_lxd and endpoint.method == method
                    and re.fullmatch(_pattern_regex(endpoint.path), path)):
                return endpoint
        return None

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one catalogue per process
    def _match_shape(self, method: str, path: str) -> str | None:
        entry = self._regex.get(method)
        if entry is None or not entry[0].match(path):
            return None
        for regex, endpoint in zip(entry[1], entry[2], strict=True):
            if regex.match(path):
                return endpoint.key
        return None

    def key(self, method: str, raw_path: str) -> str | None:
        """The endpoint key of a request (path as sent, still percent-encoded), or None."""
        path = raw_path.split("?", 1)[0]
        return self._match_shape(method.upper(), path)

    def route_of(self, endpoint: Endpoint) -> Any:
        """The fake's route for ``endpoint`` (None when the fake does not serve it).

        The route must have the endpoint's shape: a catch-all route that happens to match a
        sample path (``…/volumes/<vtype>/<name>/<snap>`` for ``…/backups``) does not count.
        """
        from werkzeug.exceptions import HTTPException

        adapter = self.url_map.bind("localhost")
        try:
            index, _ = adapter.match(_sample(endpoint.path), method=endpoint.method)
        except HTTPException:
            return None
        route = self.routes[index]
        if _shape(_rule_to_pattern(route.path), rest=False) != _shape(endpoint.path, rest=False):
            return None
        return route

    def serves(self, endpoint: Endpoint) -> bool:
        """Whether the fake has a route for ``endpoint`` (else it answers 404 or 501)."""
        return self.route_of(endpoint) is not None


# -- the recorder ---------------------------------------------------------------------------

def _unix_path(url: str) -> tuple[str | None, str]:
    """``(socket path, request path)`` of an ``http+unix://`` URL, else ``(None, path)``."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "http+unix":
        return urllib.parse.unquote(parts.netloc), path
    return None, path


class Recorder:
    """Notes the endpoints each test calls on each backend (see the module docstring)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.catalogue: Catalogue | None = None
        self.current: str | None = None
        self.hits: dict[str, dict[str, set[str]]] = {}
        self.outcomes: dict[str, str] = {}
        self.real_sockets: set[str] = set()
        self.real_ports: set[int] = set()
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []
        self._pending: list[dict[str, Any]] = []  # xdist workers' results

    def start(self) -> None:
        """Learn the endpoints and the real host, and start watching requests."""
        self.catalogue = Catalogue()
        self._find_real_host()
        self._patch()

    # -- pytest hooks ----------------------------------------------------------------------
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._unpatch()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.current = item.nodeid
        yield
        self.current = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Iterator[None]:
        outcome = yield
        report = outcome.get_result()
        previous = self.outcomes.get(item.nodeid, "passed")
        if report.failed:
            self.outcomes[item.nodeid] = "failed"
        elif report.skipped and previous != "failed":
            self.outcomes[item.nodeid] = "skipped"
        elif report.when == "call" and previous != "failed" and not hasattr(report, "wasxfail"):
            self.outcomes[item.nodeid] = "passed"
        elif hasattr(report, "wasxfail"):
            self.outcomes[item.nodeid] = "skipped"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._unpatch()
        data = self.results()
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller stores it
            workeroutput["lxd_fidelity"] = json.dumps(data)
            return
        self.store(data)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: take over a worker's results."""
        raw = getattr(node, "workeroutput", {}).get("lxd_fidelity")
        if raw:
            self._pending.append(json.loads(raw))

    # -- results -------------------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        now = time.time()
        tests = {}
        with self._lock:
            for nodeid, backends in self.hits.items():
                tests[nodeid] = {"outcome": self.outcomes.get(nodeid, "unknown"), "at": now,
                                 **{b: sorted(keys) for b, keys in backends.items()}}
        return {"version": 1, "tests": tests}

    def store(self, data: dict[str, Any]) -> None:
        cache = getattr(self.config, "cache", None)
        merged_tests: dict[str, Any] = {}
        for extra in self._pending:
            merged_tests.update(extra.get("tests", {}))
        merged_tests.update(data["tests"])
        if cache is None or not merged_tests:
            return
        old = cache.get(CACHE_KEY, None) or {}
        tests = old.get("tests", {}) if old.get("version") == 1 else {}
        tests.update(merged_tests)
        cache.set(CACHE_KEY, {"version": 1, "tests": tests})

    # -- recording -----------------------------------------------------------------------
    def note(self, backend: str, method: str, raw_path: str) -> None:
        nodeid = self.current
        if nodeid is None or self.catalogue is None:
            return
        key = self.catalogue.key(method, raw_path)
        if key is None:
            return
        with self._lock:
            self.hits.setdefault(nodeid, {}).setdefault(backend, set()).add(key)

    def _find_real_host(self) -> None:
        """The real host's socket and HTTPS port, when this run may use it."""
        try:
            from pytest_lxd.plugin import real_endpoint, selected_backend

            if selected_backend(self.config) == "fake":
                return
            endpoint = real_endpoint(self.config)
        except Exception:  # noqa: BLE001 - the plugin is optional for the recorder
            return
        if endpoint.startswith("https://"):
            port = urllib.parse.urlsplit(endpoint).port or 8443
            self.real_ports.add(port)
            return
        if not os.path.exists(endpoint):
            return
        self.real_sockets.add(os.path.realpath(endpoint))
        try:
            import requests_unixsocket

            url = "http+unix://" + urllib.parse.quote(endpoint, safe="") + "/1.0"
            with requests_unixsocket.Session() as session:
                config = session.get(url, timeout=5).json()["metadata"]["config"]
            address = config.get("core.https_address", "")
            if address:
                self.real_ports.add(int(address.rpartition(":")[2]))
        except Exception:  # noqa: BLE001 - no HTTPS on the real host: only the socket counts
            pass

    def _is_real(self, socket_path: str | None, port: int | None) -> bool:
        if socket_path is not None:
            return os.path.realpath(socket_path) in self.real_sockets
        return port is not None and port in self.real_ports

    def _patch(self) -> None:
        recorder = self

        from requests.adapters import HTTPAdapter

        send = HTTPAdapter.send

        def recording_send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                socket_path, path = _unix_path(request.url)
                port = None if socket_path else urllib.parse.urlsplit(request.url).port
                if recorder._is_real(socket_path, port):
                    recorder.note("real", request.method, path)
            except Exception:  # noqa: BLE001 - recording must never break a request
                pass
            return send(adapter, request, *args, **kwargs)

        self._set(HTTPAdapter, "send", recording_send)

        from fakeserver.app import App

        call = App.__call__

        def recording_call(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or \
                urllib.parse.quote(environ.get("PATH_INFO", ""))
            recorder.note("fake", environ.get("REQUEST_METHOD", "GET"), raw)
            return call(app, environ, start_response)

        self._set(App, "__call__", recording_call)

        import socket

        sendall = socket.socket.sendall

        def recording_sendall(sock: Any, data: Any, *args: Any) -> Any:
            # Raw HTTP written straight to a socket (the SFTP upgrade: tests/sftpwire.py and
            # the client's Instance.sftp()) is seen here; requests' are seen (again) too.
            try:
                if bytes(data[:8]).split(b" ", 1)[0] in _METHODS:
                    line = bytes(data[:4096]).split(b"\r\n", 1)[0].decode("latin-1")
                    method, target, _ = line.split(" ", 2)
                    peer = sock.getpeername()
                    socket_path = peer if isinstance(peer, str) else None
                    port = None if socket_path else peer[1]
                    if recorder._is_real(socket_path, port):
                        recorder.note("real", method, target)
            except Exception:  # noqa: BLE001 - recording must never break a request
                pass
            return sendall(sock, data, *args)

        self._set(socket.socket, "sendall", recording_sendall)

        try:
            from websockets.sync.client import ClientConnection
        except ImportError:  # pragma: no cover
            return
        handshake = ClientConnection.handshake

        def recording_handshake(conn: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return handshake(conn, *args, **kwargs)
            finally:
                try:
                    peer = conn.socket.getpeername()
                    socket_path = peer if isinstance(peer, str) else None
                    port = None if socket_path else peer[1]
                    if recorder._is_real(socket_path, port):
                        recorder.note("real", "GET", conn.request.path)
                except Exception:  # noqa: BLE001
                    pass

        self._set(ClientConnection, "handshake", recording_handshake)

    def _set(self, owner: Any, name: str, value: Any) -> None:
        self._undo.append((owner, name, owner.__dict__.get(name, _INHERITED)))
        setattr(owner, name, value)

    def _unpatch(self) -> None:
        while self._undo:
            owner, name, value = self._undo.pop()
            if value is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def register(config: pytest.Config) -> None:
    """Register the recorder once per pytest process (``tests/docs/conftest.py`` does, when the
    run collects ``tests/``; ``-p tests.docs.fidelity`` does in any run)."""
    if config.pluginmanager.has_plugin("lxd-fidelity"):
        return
    config.addinivalue_line("markers", "divergence(why): the fake deliberately differs from "
                            "LXD 5.0.2 here, and why (listed in docs/fidelity)")
    recorder = Recorder(config)
    recorder.start()
    config.pluginmanager.register(recorder, "lxd-fidelity")


def load_results(path: Path | None = None, root: Path | None = None) -> dict[str, Any]:
    """The stored results (``{"tests": {nodeid: {...}}}``); empty when none were recorded."""
    root = root or Path(__file__).resolve().parents[2]
    path = path or root / ".pytest_cache" / "v" / CACHE_KEY
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"version": 1, "tests": {}}
    if data.get("version") != 1:
        return {"version": 1, "tests": {}}
    return data


def pytest_configure(config: pytest.Config) -> None:
    """Also usable as ``-p tests.docs.fidelity``."""
    register(config)
