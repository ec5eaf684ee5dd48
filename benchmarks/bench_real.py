"""Section 1: the fake against real LXD, both driven by pylxd 2.4.2 over their unix sockets."""

from __future__ import annotations

import os
import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from harness import (
    NOT_SERVED,
    Report,
    Row,
    UnixHTTP,
    exec_served,
    fmt_time,
    instances_served,
    quiet_ws4py,
    running_fake,
    samples,
    seed_busybox,
)

TARGET = 20.0  # the fake >= 20x faster than real LXD over the whole workload

GETS = ("GET /1.0", "GET /1.0/profiles?recursion=1")
PROFILE_STEPS = ("profile create", "profile update", "profile delete")
INSTANCE_STEPS = ("instance create", "instance start", "instance exec", "instance stop",
                  "instance delete")


def real_problem(endpoint: str) -> str | None:
    """Why the real host cannot be used (None when it can)."""
    if not os.path.exists(endpoint):
        return f"no LXD socket at {endpoint}"
    try:
        conn = UnixHTTP(endpoint, timeout=10)
        conn.get("/1.0")
        status, _ = conn.call("GET", "/1.0/images/aliases/busybox")
        conn.close()
    except Exception as exc:  # noqa: BLE001
        return f"cannot reach {endpoint}: {exc}"
    if status != 200:
        return "the real host has no 'busybox' image alias (run scripts/lxd-host)"
    return None


def pylxd_client(endpoint: str) -> Any:
    import pylxd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylxd.Client(endpoint=endpoint)


def _unique(prefix: str) -> str:
    return f"{prefix}-bench{uuid.uuid4().hex[:8]}"


def measure(client: Any, reps: dict[str, int], with_exec: bool, with_instances: bool,
            cleanup: Callable[[str], None]) -> dict[str, list[float]]:
    """Seconds per step of the workload on one backend, ``reps`` samples of each kind."""
    out: dict[str, list[float]] = {}
    out["GET /1.0"] = samples(lambda: client.api.get(), reps["get"], warmup=5)
    out["GET /1.0/profiles?recursion=1"] = samples(
        lambda: client.api.profiles.get(params={"recursion": 1}), reps["get"], warmup=5)

    for step in PROFILE_STEPS:
        out[step] = []
    for index in range(reps["profile"] + 1):  # the first round is a warm-up
        name = _unique("p")
        t0 = time.perf_counter()
        profile = client.profiles.create(name, config={"user.bench": "1"})
        t1 = time.perf_counter()
        profile.description = f"update {index}"
        profile.save()
        t2 = time.perf_counter()
        profile.delete()
        t3 = time.perf_counter()
        if index:
            for step, value in zip(PROFILE_STEPS, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                out[step].append(value)

    if not with_instances:
        return out
    for step in INSTANCE_STEPS:
        out[step] = []
    for _ in range(reps["instance"]):
        name = _unique("i")
        try:
            times = []
            t0 = time.perf_counter()
            inst = client.instances.create(
                {"name": name, "source": {"type": "image", "alias": "busybox"}}, wait=True)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            inst.start(wait=True)
            times.append(time.perf_counter() - t0)
            if with_exec:
                t0 = time.perf_counter()
                result = inst.execute(["true"])
                times.append(time.perf_counter() - t0)
                if result.exit_code != 0:
                    raise RuntimeError(f"exec of 'true' exited {result.exit_code}")
            else:
                times.append(float("nan"))
            t0 = time.perf_counter()
            inst.stop(force=True, wait=True)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            inst.delete(wait=True)
            times.append(time.perf_counter() - t0)
        finally:
            cleanup(name)
        for step, value in zip(INSTANCE_STEPS, times, strict=True):
            out[step].append(value)
    return out


def remover(endpoint: str) -> Callable[[str], None]:
    """Force-stop and delete instance ``name`` if it is still there (nothing left behind)."""

    def remove(name: str) -> None:
        conn = UnixHTTP(endpoint)
        try:
            status, raw = conn.call("PUT", f"/1.0/instances/{name}/state",
                                    {"action": "stop", "force": True})
            if status == 202:
                _wait(conn, raw)
            status, raw = conn.call("DELETE", f"/1.0/instances/{name}")
            if status == 202:
                _wait(conn, raw)
        finally:
            conn.close()

    return remove


def _wait(conn: UnixHTTP, raw: bytes) -> None:
    import json

    conn.call("GET", json.loads(raw)["operation"] + "/wait?timeout=60")


def run(report: Report, opts: Any) -> None:
    report.begin("1. The fake against real LXD 5.0.2 (client: pylxd 2.4.2, unix sockets)",
                 f"{'fake':>10} {'real':>10}    real/fake")
    endpoint = opts.lxd_endpoint
    problem = "--no-real given" if opts.no_real else real_problem(endpoint)
    if problem:
        report.note(f"skipped: real LXD host unavailable ({problem})")
        return
    reps = {"get": opts.repeat_get, "profile": opts.repeat_cycle,
            "instance": opts.repeat_instance}
    with running_fake() as fake:
        seed_busybox(fake)
        with_instances = instances_served(fake)
        with_exec = with_instances and exec_served(fake)
        fake_client = pylxd_client(fake.socket_path)
        real_client = pylxd_client(endpoint)
        with quiet_ws4py():
            fake_times = measure(fake_client, reps, with_exec, with_instances,
                                 remover(fake.socket_path))
            real_times = measure(real_client, reps, with_exec, with_instances,
                                 remover(endpoint))

    fake_total = real_total = 0.0
    for step in (*GETS, *PROFILE_STEPS, *INSTANCE_STEPS):
        if step not in fake_times:
            report.add(Row(step, f"{'':>10} {'':>10}", note=NOT_SERVED + " by the fake"))
            continue
        if step == "instance exec" and not with_exec:
            report.add(Row(step, f"{'-':>10} {'-':>10}",
                           note=f"{NOT_SERVED} by the fake: left out of both totals"))
            continue
        fake_s = statistics.median(fake_times[step])
        real_s = statistics.median(real_times[step])
        fake_total += fake_s
        real_total += real_s
        report.add(Row(step, f"{fmt_time(fake_s):>10} {fmt_time(real_s):>10}",
                       ratio=real_s / fake_s))
    ratio = real_total / fake_total
    report.add(Row("whole workload (one of each)",
                   f"{fmt_time(fake_total):>10} {fmt_time(real_total):>10}", ratio=ratio,
                   target=f">= {TARGET:g}x", ok=ratio >= TARGET))
    if with_exec:
        # pylxd's execute() ends by joining ws4py's websocket manager thread, which sits in
        # epoll with ws4py's 0.1 s timeout: about 0.1 s per exec whatever the server. That
        # floor is the client's, so the workload is also shown without it.
        fake_rest = fake_total - statistics.median(fake_times["instance exec"])
        real_rest = real_total - statistics.median(real_times["instance exec"])
        ratio = real_rest / fake_rest
        report.add(Row("whole workload without exec", f"{fmt_time(fake_rest):>10} "
                       f"{fmt_time(real_rest):>10}", ratio=ratio, target=f">= {TARGET:g}x",
                       ok=ratio >= TARGET, note="pylxd waits ~0.1 s in every exec"))
    report.note(f"medians of {reps['get']} GETs, {reps['profile']} profile and "
                f"{reps['instance']} instance cycles per backend; the fake runs in this process")
