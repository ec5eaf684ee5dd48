"""Section 5: the fake at scale, measured in a child process (so its peak RSS is the fake's and
its client's alone): N instances seeded into the state, M background operations at once."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness import (
    NOT_SERVED,
    Report,
    Row,
    UnixHTTP,
    fmt_time,
    instances_served,
    median,
    running_fake,
    seed_instances,
)

TARGET_LIST_S = 0.5
TARGET_RSS_MB = 300.0
WORKERS = 8  # FakeLXD's default operation workers


def child(instances: int, ops: int, repeat: int) -> dict[str, Any]:
    """Measure in this process; returns the figures (printed as JSON by ``--child``)."""
    out: dict[str, Any] = {"instances": instances, "ops": ops}
    with running_fake() as fake:
        client = UnixHTTP(fake.socket_path)
        client.get("/1.0")
        out["threads_idle"] = threading.active_count()
        engine = fake.operations
        if instances_served(fake):
            t0 = time.perf_counter()
            seed_instances(fake, instances, prefix="s")
            out["seed_s"] = time.perf_counter() - t0
            body = client.get("/1.0/instances?recursion=1")
            if len(json.loads(body)["metadata"]) != instances:
                raise RuntimeError("the list does not hold every seeded instance")
            out["list_bytes"] = len(body)
            out["list_s"] = median(lambda: client.get("/1.0/instances?recursion=1"), repeat)
            out["list_names_s"] = median(lambda: client.get("/1.0/instances"), repeat)

        # M delayed operations: all pending at once, waiting on the engine's timer.
        engine.set_timing(3600.0, kind="Benchmark delayed")
        t0 = time.perf_counter()
        for _ in range(ops):
            engine.create("Benchmark delayed", lambda op: None, may_cancel=True)
        out["create_ops_s"] = time.perf_counter() - t0
        out["threads_delayed"] = threading.active_count()
        out["ops_list_s"] = median(lambda: client.get("/1.0/operations?recursion=1"), repeat)
        if "list_s" in out:
            out["list_with_ops_s"] = median(lambda: client.get("/1.0/instances?recursion=1"),
                                            repeat)

        # M operations released at once, each busy for 1 ms (off the state lock).
        engine.set_timing("manual", kind="Benchmark busy")
        busy = [engine.create("Benchmark busy", lambda op: time.sleep(0.001), locked=False)
                for _ in range(ops)]
        peak = threading.active_count()
        t0 = time.perf_counter()
        engine.release(kind="Benchmark busy")
        while not all(op.done.is_set() for op in busy):
            peak = max(peak, threading.active_count())
            time.sleep(0.0005)
        out["drain_s"] = time.perf_counter() - t0
        out["threads_running_peak"] = peak
        out["engine_threads"] = engine.threads
        client.close()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run(report: Report, opts: Any) -> None:
    report.begin(f"5. Scale: {opts.instances_scale} instances, {opts.ops} background "
                 "operations (child process)")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                           str(opts.instances_scale), str(opts.ops), str(opts.repeat_scale)],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the scale child failed: {done.stderr.strip()[-2000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    n = got["instances"]
    if "list_s" not in got:
        report.add(Row(f"GET /1.0/instances?recursion=1 x{n}", "",
                       note=f"{NOT_SERVED} by the fake"))
    else:
        for key, label in (("list_s", f"GET /1.0/instances?recursion=1 x{n}"),
                           ("list_with_ops_s", f"  same, with {got['ops']} ops pending")):
            ratio = got[key] / TARGET_LIST_S
            report.add(Row(label, f"{fmt_time(got[key]):>10}", ratio=ratio,
                           target=f"< {TARGET_LIST_S:g} s", ok=ratio < 1,
                           note="ratio to target" if key == "list_s" else ""))
        report.add(Row(f"GET /1.0/instances x{n} (names)", f"{fmt_time(got['list_names_s']):>10}",
                       note=f"body of the recursion=1 list: {got['list_bytes'] / 1e6:.1f} MB; "
                            f"seeding took {fmt_time(got['seed_s'])}"))
    report.add(Row(f"GET /1.0/operations?recursion=1 x{got['ops']}",
                   f"{fmt_time(got['ops_list_s']):>10}",
                   note=f"creating them took {fmt_time(got['create_ops_s'])}"))
    rss = got["peak_rss_mb"]
    report.add(Row("peak RSS", f"{rss:>7.0f} MB", ratio=rss / TARGET_RSS_MB,
                   target=f"< {TARGET_RSS_MB:g} MB", ok=rss < TARGET_RSS_MB,
                   note="ratio to target; the whole child: Python, fake, client"))
    bound = got["threads_idle"] + WORKERS + 1
    worst = max(got["threads_delayed"], got["threads_running_peak"])
    report.add(Row("threads", f"idle {got['threads_idle']}, {got['ops']} delayed "
                              f"{got['threads_delayed']}, {got['ops']} running "
                              f"{got['threads_running_peak']}",
                   target=f"<= {bound} (bounded)", ok=worst <= bound,
                   note=f"{got['ops']} busy ops drained in {fmt_time(got['drain_s'])}"))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        result = child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps(result))
    else:
        sys.exit("usage: bench_scale.py --child INSTANCES OPS REPEAT (run benchmarks/run.py)")
