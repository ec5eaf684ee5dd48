"""Raw LXD REST access for the tests: the same calls on the fake and on a real host."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import requests_unixsocket


def unique(prefix: str = "t") -> str:
    """A name no other test (or run) uses: real hosts keep what a crashed run left."""
    return f"{prefix}-pl{uuid.uuid4().hex[:8]}"


@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def metadata(self) -> Any:
        return self.body["metadata"]

    @property
    def error(self) -> str:
        return self.body["error"]

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.raw[:300]!r})"


class API:
    """One connection to an LXD (fake or real): ``get``/``post``/... return :class:`Reply`."""

    def __init__(self, kind: str, base: str, session: requests.Session,
                 project: str | None = None) -> None:
        self.kind = kind
        self.base = base
        self.session = session
        self.project = project
        self.cleanups: list[Callable[[], Any]] = []

    @classmethod
    def unix(cls, kind: str, socket_path: str) -> API:
        base = "http+unix://" + urllib.parse.quote(socket_path, safe="")
        return cls(kind, base, requests_unixsocket.Session())

    @classmethod
    def https(cls, kind: str, url: str, cert: tuple[str, str] | None,
              verify: bool | str) -> API:
        session = requests.Session()
        session.cert = cert
        session.verify = verify
        session.trust_env = False
        return cls(kind, url, session)

    @property
    def is_fake(self) -> bool:
        return self.kind == "fake"

    def in_project(self, project: str) -> API:
        other = API(self.kind, self.base, self.session, project)
        other.cleanups = self.cleanups
        if hasattr(self, "server"):  # the fake behind it, for the fake-only helpers
            other.server = self.server  # type: ignore[attr-defined]
        return other

    def request(self, method: str, path: str, *, json_body: Any = None, data: Any = None,
                headers: dict[str, str] | None = None, params: dict[str, Any] | None = None,
                timeout: float = 60) -> Reply:
        params = dict(params or {})
        if self.project and "project" not in params and "project=" not in path:
            params["project"] = self.project
        body = data
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        resp = self.session.request(method, self.base + path, data=body, headers=hdrs,
                                    params=params, timeout=timeout)
        return Reply(resp.status_code, resp.headers, resp.content)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, json_body=body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, json_body=body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PATCH", path, json_body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def wait(self, reply: Reply | str, timeout: float = 60) -> dict[str, Any]:
        """Wait for an operation (a 202 reply or an operation URL) and return it."""
        url = reply if isinstance(reply, str) else reply.body["operation"]
        assert url, f"not an operation: {reply!r}"
        got = self.get(url.split("?")[0] + "/wait", params={"timeout": timeout})
        assert got.status == 200, got
        return got.metadata

    def later(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` at teardown (newest first), even when the test fails."""
        self.cleanups.append(fn)

    def delete_later(self, path: str) -> None:
        def remove() -> None:
            reply = self.delete(path)
            if reply.status == 202:
                self.wait(reply)

        self.later(remove)

    def run_cleanups(self) -> None:
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass


def poll(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Call ``fn`` until it returns something truthy (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wss_connect(url: str, context: Any, **options: Any) -> Any:
    """A ``websockets`` sync client over TLS that does not hang its handshake.

    ``websockets`` 17 ``select()``\\ s a bare ``ssl.SSLSocket`` from its reader thread, and
    now and then never sees the ``101`` (``timed out while waiting for handshake response``)
    on LXD 5.0.2 and the fake alike; the client library reads through
    :class:`pytest_lxd.tlssocket.SerializedTLSSocket` for that reason, and so do the tests.
    """
    import socket

    from websockets.sync.client import connect

    from pytest_lxd.tlssocket import SerializedTLSSocket

    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    timeout = options.get("open_timeout", 10)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return connect(f"ws://{parts.netloc}{target}", sock=SerializedTLSSocket(tls), **options)


@contextmanager
def lifecycle_events(api: API) -> Iterator[list[dict[str, Any]]]:
    """Collect lifecycle events from ``/1.0/events`` (unix socket) while the block runs."""
    import threading

    from websockets.sync.client import unix_connect

    socket_path = urllib.parse.unquote(api.base[len("http+unix://"):])
    got: list[dict[str, Any]] = []
    with unix_connect(socket_path, "ws://localhost/1.0/events?type=lifecycle",
                      open_timeout=10, close_timeout=2) as ws:
        def read() -> None:
            try:
                while True:
                    got.append(json.loads(ws.recv()))
            except Exception:  # noqa: BLE001 - the socket closes at the end
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        yield got
        time.sleep(0.3)
    reader.join(2)
