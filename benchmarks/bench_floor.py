"""Section 2: the floor. The same GETs against a bare Werkzeug app on the same kind of unix
socket, served by the fake's own listener class: what is left is the fake's own cost per
request (routing, trust, context, the handler, the envelope, the request log).

Two floors: one JSON-encodes the same document per request (a trivial JSON app: the target's
comparison), one returns the fake's bytes as they are (the transport alone).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from harness import Report, Row, UnixHTTP, floor_server, fmt_time, gc_paused, running_fake

TARGET = 1.5  # the fake within 1.5x of the floor per GET
PATHS = ("/1.0", "/1.0/profiles?recursion=1")


def paired(clients: dict[str, UnixHTTP], path: str, repeat: int) -> dict[str, float]:
    """Median seconds of ``GET path`` per client, the clients taking turns (same drift)."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(10):
        for client in clients.values():
            client.get(path)
    for _ in range(repeat):
        for name, client in clients.items():
            t0 = time.perf_counter()
            client.get(path)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def run(report: Report, opts: Any) -> None:
    report.begin("2. The floor: the fake against a bare Werkzeug JSON app (raw http.client, "
                 "same listener class, unix socket)",
                 f"{'fake':>10} {'floor':>10}   fake/floor")
    repeat = opts.repeat_get * 3
    with running_fake() as fake:
        probe = UnixHTTP(fake.socket_path)
        bodies = {path: probe.get(path) for path in PATHS}
        probe.close()
        json_path = os.path.join(fake.directory, "floor.socket")
        bytes_path = os.path.join(fake.directory, "floor-bytes.socket")
        with floor_server(json_path, bodies), floor_server(bytes_path, bodies, encode=False), \
                gc_paused():
            clients = {"fake": UnixHTTP(fake.socket_path), "floor": UnixHTTP(json_path),
                       "bytes": UnixHTTP(bytes_path)}
            for path in PATHS:
                got = paired(clients, path, repeat)
                ratio = got["fake"] / got["floor"]
                report.add(Row(f"GET {path}",
                               f"{fmt_time(got['fake']):>10} {fmt_time(got['floor']):>10}",
                               ratio=ratio, target=f"<= {TARGET:g}x", ok=ratio <= TARGET,
                               note=f"{got['fake'] / got['bytes']:.2f}x a floor sending "
                                    f"ready bytes ({fmt_time(got['bytes'])})"))
            for client in clients.values():
                client.close()
    report.note(f"medians of {repeat} GETs each, the three servers taking turns; bodies: "
                f"{', '.join(f'{len(b)} B' for b in bodies.values())}")
    keep_alive(report, opts)


def keep_alive(report: Report, opts: Any) -> None:
    """GET /1.0 on the fake with HTTP/1.1 keep-alive against a close after every response
    (what Werkzeug's dev server does): over the unix socket, and over HTTPS (requests)."""
    import requests

    from fakeserver.server import _Handler

    report.begin("2b. Keep-alive: the fake keeping connections against closing each one "
                 "(Werkzeug's way)", f"{'keep':>10} {'close':>10}   close/keep")
    repeat = max(opts.repeat_get // 3, 5)
    with running_fake(https=True) as fake:
        unix = UnixHTTP(fake.socket_path)
        session = requests.Session()
        session.verify = fake.ca_file
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override the fake's CA
        url = f"{fake.https_url}/1.0"
        jobs = {"unix socket, http.client": lambda: unix.get("/1.0"),
                "HTTPS, requests (TLS handshake)": lambda: session.get(url).raise_for_status()}
        try:
            for label, job in jobs.items():
                times: dict[bool, list[float]] = {True: [], False: []}
                for _ in range(repeat):
                    for keep in (True, False):
                        _Handler.keep_alive = keep
                        job()  # with close, this one opened the connection the next reuses
                        t0 = time.perf_counter()
                        job()
                        times[keep].append(time.perf_counter() - t0)
                kept, closed = (statistics.median(times[k]) for k in (True, False))
                report.add(Row(f"GET /1.0, {label}", f"{fmt_time(kept):>10} {fmt_time(closed):>10}",
                               ratio=closed / kept))
        finally:
            _Handler.keep_alive = True
            unix.close()
            session.close()
    report.note(f"medians of {repeat}; 'close' pays a new connection per request")
