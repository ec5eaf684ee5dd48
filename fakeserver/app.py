"""The Werkzeug WSGI app: one route table, LXD's envelope, trust, and errors as LXD gives them."""

from __future__ import annotations

import functools
import time
import traceback
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request, Response

from . import api, gourl, responses
from .responses import LXDError
from .schema import Body, Struct, decode, first_value

if TYPE_CHECKING:
    from .operations import Operation
    from .server import FakeLXD


@dataclass
class LoggedRequest:
    """One request the fake served (see ``FakeLXD.requests``)."""

    method: str
    path: str
    query: str
    status: int
    protocol: str
    body: bytes = b""
    at: float = field(default_factory=time.time)

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status} ({self.protocol})"


class Ctx:
    """What a handler gets: the request, the server, and who is asking."""

    def __init__(self, server: FakeLXD, request: Request, protocol: str,
                 fingerprint: str | None, trusted: bool, address: str) -> None:
        self.server = server
        self.request = request
        self.protocol = protocol
        self.fingerprint = fingerprint
        self.trusted = trusted
        self.address = address
        self.state = server.state
        self.events = server.events
        self.ops = server.operations
        self.project = request.args.get("project") or "default"
        self.restricted: list[str] | None = None  # a restricted client certificate's projects
        self._body: bytes | None = None

    @property
    def recursion(self) -> int:
        """The recursion level as LXD reads it: Go's ``strconv.Atoi`` (a non-number, ``" 1"``
        or an overflow is 0); a negative level lists objects, like 1 (LXD tests ``!= 0``)."""
        text = self.request.args.get("recursion", "")
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not digits or not digits.isascii() or not digits.isdigit():
            return 0
        value = int(text)
        if not -(1 << 63) <= value < (1 << 63):
            return 0
        return 1 if value < 0 else value

    def raw_body(self) -> bytes:
        """The whole request body, read to EOF (chunked uploads have no Content-Length)."""
        if self._body is None:
            self._body = self.request.get_data(cache=True)
        return self._body

    def body(self, struct: Struct) -> Body:
        """The JSON body decoded into ``struct`` (Go's errors as 400s)."""
        return decode(self.raw_body(), struct)

    def json(self) -> Any:
        """The body's first JSON value as Go's ``json.Decoder`` reads it (trailing bytes
        ignored, Go's syntax errors as 400s): use it rather than ``json.loads``."""
        return first_value(self.raw_body())

    def url(self, path: str, project: str | None = None) -> str:
        """``path`` with the ``?project=`` suffix LXD adds outside the default project."""
        project = self.project if project is None else project
        return path if project == "default" else f"{path}?project={project}"

    @property
    def requestor(self) -> dict[str, str]:
        if self.protocol == "unix":
            return {"username": "root", "protocol": "unix", "address": "@"}
        return {"username": self.fingerprint or "", "protocol": "tls", "address": self.address}

    def lifecycle(self, action: str, source: str, context: dict[str, Any] | None = None,
                  project: str | None = None) -> None:
        self.events.lifecycle(action, source, self.project if project is None else project,
                              context, self.requestor)

    def check_etag(self, current: str) -> None:
        """LXD's If-Match check: quotes stripped, empty skips, ``*`` is not special."""
        sent = self.request.headers.get("If-Match", "").strip('"')
        if sent and sent != current:
            raise LXDError(412, f"ETag doesn't match: {current} vs {sent}")

    def operation(self, description: str, run: Any = None, **kwargs: Any) -> Response:
        """Start a background operation in this request's project and answer 202."""
        kwargs.setdefault("project", self.project)
        op = self.ops.create(description, run, **kwargs)
        return self.async_reply(op)

    def async_reply(self, op: Operation) -> Response:
        return responses.operation(op.reply_json(), op.url)


class _CachedAdapter:
    """A MapAdapter that remembers matches: the route table never changes once built, and
    Werkzeug's matcher was a sixth of a small request's cost. Misses raise as usual."""

    def __init__(self, adapter: Any, cache: dict[Any, Any]) -> None:
        self._adapter = adapter
        self._cache = cache

    def match(self, path_info: str | None = None, method: str | None = None,
              return_rule: bool = False, query_args: Any = None,
              websocket: bool | None = None) -> Any:
        if path_info is None or return_rule or query_args is not None:
            return self._adapter.match(path_info, method, return_rule, query_args, websocket)
        key = (path_info, method, websocket)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._adapter.match(path_info, method, websocket=websocket)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = hit
        return hit[0], dict(hit[1])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


class _RouteMap(Map):
    """Werkzeug's Map, binding to :class:`_CachedAdapter` (once per set of arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._matches: dict[Any, Any] = {}
        self._adapters: dict[Any, Any] = {}
        super().__init__(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args, **kwargs)
        self._matches.clear()
        self._adapters.clear()

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        try:
            key = (args, tuple(sorted(kwargs.items())))
            adapter = self._adapters.get(key)
        except TypeError:  # an unhashable argument: no caching
            return super().bind(*args, **kwargs)
        if adapter is None:
            adapter = _CachedAdapter(super().bind(*args, **kwargs), self._matches)
            if len(self._adapters) >= 64:
                self._adapters.clear()
            self._adapters[key] = adapter
        return adapter


class _MatchOnlyRule(Rule):
    """A Rule whose URL builders are compiled on first use: the fake only matches URLs, and
    compiling two builders per rule was most of the cost of making the route map."""

    def _compile_builder(self, append_unknown: bool = True) -> Any:
        compiled: list[Any] = []

        def build(rule: Rule, *args: Any, **kwargs: Any) -> Any:
            if not compiled:
                compiled.append(Rule._compile_builder(rule, append_unknown))
            return compiled[0](rule, *args, **kwargs)

        return build


_route_maps: dict[int, tuple[list[api.Route], _RouteMap]] = {}


def route_map() -> tuple[list[api.Route], _RouteMap]:
    """The route table and its compiled map, made once per process and shared by every fake
    (neither changes once the handler modules are imported)."""
    routes = api.load()
    cached = _route_maps.get(len(routes))
    if cached is None:
        url_map = _RouteMap(strict_slashes=True, merge_slashes=False, redirect_defaults=False)
        for index, item in enumerate(routes):
            url_map.add(_MatchOnlyRule(item.path, methods=list(item.methods), endpoint=index))
        cached = (list(routes), url_map)
        _route_maps.clear()
        _route_maps[len(routes)] = cached
    return cached


class App:
    """The WSGI callable shared by the unix socket and the TLS listener."""

    def __init__(self, server: FakeLXD) -> None:
        self.server = server
        self.routes, self.url_map = route_map()
        self.log: deque[LoggedRequest] = deque(maxlen=10_000)
        self.handler_errors: list[str] = []
        from .api.certificates import check_restricted

        self.check_restricted = check_restricted

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.dispatch(request, environ)
        body = request.get_data(cache=True) if self.server.log_bodies else b""
        self.log.append(LoggedRequest(request.method, request.path,
                                      request.query_string.decode("latin-1"),
                                      response.status_code,
                                      environ.get("fakeserver.protocol", "unix"), body))
        return response(environ, start_response)

    def dispatch(self, request: Request, environ: dict[str, Any]) -> Response:
        try:  # the request target as Go's net/http and gorilla/mux see it
            path, query = gourl.parse_target(_raw_target(environ))
        except gourl.BadTarget:
            return _go_bad_request()
        pairs, failed = gourl.parse_query(query)
        args = MultiDict(pairs)
        if failed:  # LXD's queryParam() gives up on the whole query string
            for key in gourl.STRICT_PARAMS:
                args.poplist(key)
        request.args = args  # type: ignore[misc]
        protocol = environ.get("fakeserver.protocol", "unix")
        fingerprint = environ.get("fakeserver.fingerprint")
        if protocol == "unix":
            trusted = True
        else:  # LXD trusts a known certificate only within its validity period
            trusted = (self.server.is_trusted(fingerprint, request.path)
                       and _valid_now(environ.get("fakeserver.peer_der")))
        ctx = Ctx(self.server, request, protocol, fingerprint, trusted,
                  environ.get("fakeserver.address", "@"))
        if trusted and protocol != "unix":
            ctx.restricted = self.server.restricted_projects(fingerprint)
        try:
            adapter = self.url_map.bind("lxd")
            # Upgrades are handled by handlers; URL variables are unescaped as LXD does.
            index, values = adapter.match(path, request.method, websocket=False)
            values = {k: gourl.unescape_segment(v) for k, v in values.items()}
            item = self.routes[index]
            if not trusted and not item.untrusted:
                raise responses.forbidden()
            if ctx.restricted is not None:
                self.check_restricted(ctx, item)
            return item.handler(ctx, **values)
        except LXDError as exc:
            return responses.error(exc.code, exc.message)
        except MethodNotAllowed:
            return responses.error(501, "not implemented")
        except (NotFound, RequestRedirect):
            return responses.error(404, "not found")
        except HTTPException as exc:
            return responses.error(exc.code or 500, exc.description or "error")
        except Exception as exc:  # noqa: BLE001 - never leak a traceback to the client
            self.handler_errors.append(traceback.format_exc())
            return responses.error(500, f"Internal error in the fake: {exc}")


def _raw_target(environ: dict[str, Any]) -> bytes:
    """The request target's bytes as the client sent them."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is not None:
        try:  # undo the WSGI "encoding dance" of werkzeug's server
            return str(raw).encode("latin-1").decode("utf-8").encode("latin-1")
        except UnicodeError:
            return str(raw).encode("latin-1", "replace")
    path = urllib.parse.quote(environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=")
    query = environ.get("QUERY_STRING", "")
    return (path + ("?" + query if query else "")).encode("latin-1", "replace")


def _go_bad_request() -> Response:
    """What Go's net/http answers to a request target it cannot parse (no envelope)."""
    resp = Response("400 Bad Request", status=400, content_type="text/plain; charset=utf-8")
    resp.headers["Connection"] = "close"
    return resp


@functools.lru_cache(maxsize=256)
def _validity(der: bytes) -> tuple[float, float]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()


def _valid_now(der: bytes | None) -> bool:
    """Whether a client certificate is within its validity period (LXD's CheckTrustState
    refuses an expired or not yet valid one even when its fingerprint is trusted)."""
    if der is None:
        return True  # no certificate: the fingerprint check has already failed
    try:
        start, end = _validity(der)
    except ValueError:
        return False
    return start <= time.time() <= end
