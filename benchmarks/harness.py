"""What every benchmark section shares: timing, the report, a raw HTTP client, seeding the fake.

Timings are medians over repetitions; a figure is printed as a ratio next to its target and is
never a pass/fail on an absolute time (machines are noisy).
"""

from __future__ import annotations

import copy
import gc
import gzip
import http.client
import io
import json
import socket
import statistics
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fakeserver import FakeLXD  # noqa: E402

NOT_YET = "not yet available"
NOT_SERVED = "not yet served"


# -- timing -----------------------------------------------------------------------------------


def samples(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None,
            warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` (``before`` runs untimed ahead of each call)."""
    for _ in range(warmup):
        if before is not None:
            before()
        fn()
    out = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None,
           warmup: int = 1) -> float:
    """The median seconds per call of ``fn`` over ``repeat`` calls (after ``warmup`` calls)."""
    return statistics.median(samples(fn, repeat, before, warmup))


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


# -- the report -------------------------------------------------------------------------------


@dataclass
class Row:
    """One printed line: a measured figure, its ratio and (maybe) its target."""

    name: str
    text: str  # the measured values, already formatted
    ratio: float | None = None  # the compared figure (e.g. real/fake, fake/floor, ours/pylxd)
    target: str = ""  # e.g. ">= 20x"
    ok: bool | None = None  # None: no target on this row
    note: str = ""

    def render(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:8.2f}x"
        verdict = {None: "", True: "meets", False: "MISSES"}[self.ok]
        target = f"target {self.target}" if self.target else ""
        line = f"  {self.name:<42} {self.text:<24} {ratio:>9}  {target:<16} {verdict}"
        if self.note:
            line += f"  ({self.note})"
        return line.rstrip()


@dataclass
class Report:
    """Rows grouped by section, printed as they come (a long run shows progress)."""

    rows: list[tuple[str, Row]] = field(default_factory=list)
    section: str = ""

    def begin(self, title: str, header: str = "") -> None:
        self.section = title
        print(f"\n== {title} ==", flush=True)
        if header:
            print(f"  {'':<42} {header}", flush=True)

    def add(self, row: Row) -> Row:
        self.rows.append((self.section, row))
        print(row.render(), flush=True)
        return row

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    @property
    def missed(self) -> list[Row]:
        return [row for _, row in self.rows if row.ok is False]


def check(ratio: float, op: str, bound: float) -> bool:
    return ratio >= bound if op == ">=" else ratio <= bound if op == "<=" else ratio < bound


# -- a raw HTTP client over a unix socket -------------------------------------------------------


class UnixHTTP(http.client.HTTPConnection):
    """``http.client`` over a unix socket: the lightest client, to time the server alone.

    It keeps the connection while the server allows (no ``Connection: close``) and reconnects
    otherwise, as any HTTP/1.1 client does.
    """

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("lxd", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        self.request(method, path, body=data, headers=headers)
        reply = self.getresponse()
        return reply.status, reply.read()

    def get(self, path: str) -> bytes:
        status, raw = self.call("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {raw[:200]!r}")
        return raw


# -- the fake: seeding ------------------------------------------------------------------------


def tiny_image() -> bytes:
    """A minimal unified container image (metadata.yaml + rootfs/): enough for the fake."""
    meta = (b"architecture: x86_64\ncreation_date: 1700000000\nproperties:\n"
            b"  description: benchmark image\n  os: busybox\n  release: bench\ntemplates: {}\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("metadata.yaml", meta), ("rootfs/etc/hostname", b"bench\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
        for name in ("rootfs", "rootfs/bin", "rootfs/etc", "rootfs/tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)


def seed_busybox(fake: FakeLXD) -> None:
    """Give the fake a ``busybox`` alias (a tiny image: the fake never runs anything)."""
    from fakeserver.api import images

    with fake.state.lock:
        if "busybox" not in images.aliases_of(fake.state, "default"):
            images.add_image(fake.state, "default", tiny_image(), filename="busybox.tar.gz",
                             aliases=["busybox"])


def instances_served(fake: FakeLXD) -> bool:
    """Whether the fake has the instances module (and its seeding helper)."""
    try:
        from fakeserver.api import instances
    except ImportError:
        return False
    return hasattr(instances, "store") and route_served(fake, "GET", "/1.0/instances")


def route_served(fake: FakeLXD, method: str, path: str) -> bool:
    """Whether the fake's route table has ``method path``."""
    adapter = fake.app.url_map.bind("lxd")
    try:
        adapter.match(path, method=method)
    except Exception:  # noqa: BLE001 - NotFound, MethodNotAllowed, redirects
        return False
    return True


def exec_served(fake: FakeLXD) -> bool:
    return route_served(fake, "POST", "/1.0/instances/x/exec")


def seed_instances(fake: FakeLXD, count: int, prefix: str = "i", running: bool = False
                   ) -> list[str]:
    """Put ``count`` instances into the fake's state: the first made through the REST API
    (``source: none``), the others deep copies of its record stored straight into the state,
    so every one has exactly the shape the instances module gives its records."""
    from fakeserver.api import instances

    names = [f"{prefix}{index:05d}" for index in range(count)]
    client = UnixHTTP(fake.socket_path)
    try:
        status, raw = client.call("POST", "/1.0/instances",
                                  {"name": names[0], "source": {"type": "none"}})
        if status != 202:
            raise RuntimeError(f"creating instance {names[0]}: {status} {raw[:200]!r}")
        client.get(json.loads(raw)["operation"] + "/wait?timeout=30")
        if running:
            status, raw = client.call("PUT", f"/1.0/instances/{names[0]}/state",
                                      {"action": "start"})
            client.get(json.loads(raw)["operation"] + "/wait?timeout=30")
    finally:
        client.close()
    state = fake.state
    with state.lock:
        record = instances.get_instance(state, "default", names[0])
        pool = instances.pool_of(state, "default", record) or "default"
        for name in names[1:]:
            item = copy.deepcopy(record)
            item["name"] = name
            item["config"]["volatile.uuid"] = str(uuid.uuid4())
            instances.store(state, "default", item, pool)
    return names


# -- servers ----------------------------------------------------------------------------------


@contextmanager
def running_fake(**kwargs: Any) -> Iterator[FakeLXD]:
    fake = FakeLXD(**kwargs)
    fake.start()
    try:
        yield fake
    finally:
        fake.close()


@contextmanager
def floor_server(socket_path: str, bodies: dict[str, bytes], encode: bool = True
                 ) -> Iterator[str]:
    """A bare Werkzeug app on ``socket_path``, served by the fake's own listener class
    (threads, the same request handler): for each path it JSON-encodes the document the fake
    answered there (``bodies``), as any trivial JSON app would, and returns it; with
    ``encode=False`` it returns the fake's bytes as they are (the transport alone)."""
    from werkzeug.wrappers import Request, Response

    from fakeserver.server import _Listener

    documents = {path: json.loads(body) for path, body in bodies.items()}

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        key = request.full_path.rstrip("?")
        if not encode:
            return Response(bodies.get(key, b"{}"), content_type="application/json")
        body = json.dumps(documents.get(key), separators=(",", ":"), ensure_ascii=False)
        return Response(body + "\n", content_type="application/json")

    listener = _Listener(f"unix://{socket_path}", 0, app, "unix")  # type: ignore[arg-type]
    thread = threading.Thread(target=listener.serve, name="bench-floor", daemon=True)
    thread.start()
    try:
        yield socket_path
    finally:
        listener.stop()
        thread.join(2)
        listener.server_close()


@contextmanager
def quiet_ws4py() -> Iterator[list[str]]:
    """Swallow the tracebacks pylxd's ws4py manager thread prints when its poller is closed
    under it (after every exec); yields the list of what was swallowed."""
    swallowed: list[str] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        modules = []
        tb = args.exc_traceback
        while tb is not None:
            modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
            tb = tb.tb_next
        if any(name.startswith("ws4py") for name in modules):
            swallowed.append(f"{args.exc_type.__name__}: {args.exc_value}")
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield swallowed
    finally:
        threading.excepthook = previous


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC during a timed block (it would land on whichever figure is unlucky)."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
