"""Section 2: the floor. The same GETs against a bare Werkzeug app that answers the very same
bytes, on the same kind of unix socket and with the fake's own listener class: what is left is
the fake's own cost per request (routing, trust, context, rendering, envelope, log)."""

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
    report.begin("2. The floor: the fake against a bare Werkzeug app (raw http.client, "
                 "same listener class, unix socket)",
                 f"{'fake':>10} {'floor':>10}   fake/floor")
    with running_fake() as fake:
        probe = UnixHTTP(fake.socket_path)
        bodies = {path: probe.get(path) for path in PATHS}
        probe.close()
        floor_path = os.path.join(fake.directory, "floor.socket")
        with floor_server(floor_path, bodies), gc_paused():
            clients = {"fake": UnixHTTP(fake.socket_path), "floor": UnixHTTP(floor_path)}
            for path in PATHS:
                got = paired(clients, path, opts.repeat_get)
                ratio = got["fake"] / got["floor"]
                report.add(Row(f"GET {path}",
                               f"{fmt_time(got['fake']):>10} {fmt_time(got['floor']):>10}",
                               ratio=ratio, target=f"<= {TARGET:g}x", ok=ratio <= TARGET))
            for client in clients.values():
                client.close()
    report.note(f"medians of {opts.repeat_get} GETs each, fake and floor taking turns; "
                f"bodies: {', '.join(f'{len(b)} B' for b in bodies.values())}")
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
