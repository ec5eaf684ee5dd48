"""Section 4: what the plugin costs a test suite: the ``lxd_client`` fixture per test (a pytest
run of N trivial tests that use it against N that use nothing), and the fake's start+stop and
reset (the controls the fixtures are built on).

The per-test figure (whole runs, wall) includes what a run pays once (importing and starting the
fake, making the test project), spread over the N tests. A small plugin in the runs times each
test's protocol (setup, call, teardown) and the collection inside the pytest process, so the
cost of each further test (the marginal cost) is shown apart from that, without the noise of
starting and ending a Python process.

The runs are measured twice: compiling every module from source (``PYTHONDONTWRITEBYTECODE=1``,
as this harness always ran them, and as this machine's environment sets), and with a bytecode
cache in a temporary directory (``PYTHONPYCACHEPREFIX``, filled by one run first), as a second
run of an installed package finds it. Nothing is written into the repository either way.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_fake_control
from harness import NOT_YET, Report, Row, fmt_time

TARGET_PER_TEST_MS = 1.0
ROOT = Path(__file__).resolve().parents[1]

#: Loaded into the measured runs (``-p _bench_timing``): per-test protocol and collection times.
TIMING_PLUGIN = """
import json, os, time
import pytest

_times = {"tests": [], "collect": 0.0}

@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    t0 = time.perf_counter()
    try:
        return (yield)
    finally:
        _times["collect"] = time.perf_counter() - t0

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.perf_counter()
    try:
        return (yield)
    finally:
        _times["tests"].append(time.perf_counter() - t0)

def pytest_unconfigure(config):
    with open(os.environ["BENCH_TIMING_OUT"], "w") as handle:
        json.dump(_times, handle)
"""


def _pytest(directory: str, *args: str, timing: str | None = None, pycache: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """Run pytest in ``directory``: compiling every module from source (no bytecode written,
    the default), or with ``pycache`` as the bytecode cache (as an installed package runs)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if pycache:
        env.pop("PYTHONDONTWRITEBYTECODE")
        env["PYTHONPYCACHEPREFIX"] = pycache
    env.pop("PYTEST_LXD_BACKEND", None)
    env.pop("PYTEST_ADDOPTS", None)
    if timing:
        env["BENCH_TIMING_OUT"] = timing
        args = ("-p", "_bench_timing", *args)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=600)


def has_fixture(directory: str, name: str) -> bool:
    """Whether pytest (with the installed plugin) offers fixture ``name``."""
    done = _pytest(directory, "--fixtures", "-q", "test_none.py")
    return any(line.split(" ")[0].split("[")[0] == name for line in done.stdout.splitlines())


def write_suite(directory: str, count: int) -> None:
    Path(directory, "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    Path(directory, "_bench_timing.py").write_text(TIMING_PLUGIN)
    Path(directory, "test_none.py").write_text(
        "".join(f"def test_{i}():\n    pass\n\n\n" for i in range(count)))
    Path(directory, "test_client.py").write_text(
        "".join(f"def test_{i}(lxd_client):\n    pass\n\n\n" for i in range(count)))


def timed_run(directory: str, module: str, count: int, pycache: str | None = None,
              ) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one whole run, and the per-test and collection times inside it."""
    out = str(Path(directory, f"timing-{module}.json"))
    t0 = time.perf_counter()
    done = _pytest(directory, "--lxd-backend=fake", module, timing=out, pycache=pycache)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0 or f"{count} passed" not in done.stdout:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"pytest {module} failed: {' | '.join(tail)}")
    timing: dict[str, Any] = json.loads(Path(out).read_text())
    return elapsed, timing


def marginal_cost(client: dict[str, Any], none: dict[str, Any], count: int) -> float:
    """Seconds each test with ``lxd_client`` costs over a trivial one once the fake runs:
    the mean protocol time of every test but the first (which starts the fake), plus the
    collection's share."""
    def mean_rest(timing: dict[str, Any]) -> float:
        tests = timing["tests"]
        return statistics.fmean(tests[1:]) if len(tests) > 1 else 0.0

    return (mean_rest(client) - mean_rest(none)
            + (client["collect"] - none["collect"]) / count)


def pytest_rows(report: Report, directory: str, count: int, repeat: int,
                pycache: str | None = None) -> None:
    """The per-test rows: whole runs taking turns, medians of ``repeat``."""
    cached = " (bytecode cached)" if pycache else ""
    if pycache:  # fill the cache first: what a second run of an installed package finds
        for module in ("test_none.py", "test_client.py"):
            timed_run(directory, module, count, pycache)
    runs: dict[str, list[tuple[float, dict[str, Any]]]] = {
        "test_none.py": [], "test_client.py": []}
    for _ in range(repeat):  # taking turns
        for module, got in runs.items():
            got.append(timed_run(directory, module, count, pycache))
    wall = {m: statistics.median(t for t, _ in got) for m, got in runs.items()}
    per_test = (wall["test_client.py"] - wall["test_none.py"]) / count
    ratio = per_test * 1000 / TARGET_PER_TEST_MS
    report.add(Row(f"lxd_client overhead per test (x{count}){cached}",
                   f"{fmt_time(per_test):>10} per test", ratio=ratio,
                   target=f"<= {TARGET_PER_TEST_MS:g} ms", ok=ratio <= 1,
                   note=f"runs {fmt_time(wall['test_client.py'])} vs "
                        f"{fmt_time(wall['test_none.py'])}; ratio to target"))
    marginal = statistics.median(
        marginal_cost(client[1], none[1], count)
        for client, none in zip(runs["test_client.py"], runs["test_none.py"], strict=True))
    first = statistics.median(t[1]["tests"][0] for t in runs["test_client.py"])
    ratio = marginal * 1000 / TARGET_PER_TEST_MS
    report.add(Row("  of which each test (marginal)",
                   f"{fmt_time(marginal):>10} per test", ratio=ratio,
                   target=f"<= {TARGET_PER_TEST_MS:g} ms", ok=ratio <= 1,
                   note="timed inside pytest: setup+call+teardown and collection, "
                        "every test but the first; ratio to target"))
    once = per_test * count - marginal * count
    how = ("modules loaded from cached bytecode" if pycache
           else "every module compiled from source, as PYTHONDONTWRITEBYTECODE=1 makes it")
    report.add(Row("  of which once per run", f"{fmt_time(once):>10}",
                   note=f"the rest: importing and starting the fake (with HTTPS), "
                        f"the test project, a larger heap at exit ({how}); first test's "
                        f"setup alone {fmt_time(first)}"))


#: A fresh process's first fake, as the session fixture makes it (HTTPS on, and the TLS
#: material GET /1.0 shows); prints the seconds of import, FakeLXD(), start.
FIRST_START = """
import sys, time
t0 = time.perf_counter()
from fakeserver import FakeLXD
t1 = time.perf_counter()
fake = FakeLXD(https=True)
t2 = time.perf_counter()
fake.start()
fake.tls.certificate_pem
t3 = time.perf_counter()
fake.close()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def first_start(directory: str, repeat: int, pycache: str | None = None,
                ) -> tuple[float, float, float]:
    """Medians of a fresh process's import, ``FakeLXD()`` and start (seconds)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if pycache:
        env.pop("PYTHONDONTWRITEBYTECODE")
        env["PYTHONPYCACHEPREFIX"] = pycache
    got = []
    for index in range(repeat + (1 if pycache else 0)):
        done = subprocess.run([sys.executable, "-c", FIRST_START], env=env, cwd=directory,
                              capture_output=True, text=True, timeout=120, check=True)
        if pycache and index == 0:
            continue  # fills the cache
        got.append(tuple(float(x) for x in done.stdout.split()))
    parts = tuple(statistics.median(row[i] for row in got) for i in range(3))
    return parts[0], parts[1], parts[2]


def first_start_rows(report: Report, directory: str, repeat: int,
                     pycache: str | None = None) -> None:
    imp, make, start = first_start(directory, repeat, pycache)
    how = "bytecode cached" if pycache else "compiled from source"
    report.add(Row(f"fake's first start, fresh process ({how})",
                   f"{fmt_time(imp + make + start):>10}",
                   note=f"import {fmt_time(imp)}, FakeLXD() {fmt_time(make)}, "
                        f"start with HTTPS and its certificate {fmt_time(start)}"))


def run(report: Report, opts: Any) -> None:
    report.begin("4. Fixture cost: the plugin in a pytest run, and the fake's controls")
    count = opts.tests
    with tempfile.TemporaryDirectory(prefix="lxd-bench-") as tmp:
        write_suite(tmp, count)
        if not has_fixture(tmp, "lxd_client"):
            report.add(Row(f"lxd_client overhead per test (x{count})", "",
                           note=f"{NOT_YET}: the plugin has no lxd_client fixture"))
        else:
            pytest_rows(report, tmp, count, opts.repeat_pytest)
            pytest_rows(report, tmp, count, opts.repeat_pytest,
                        pycache=str(Path(tmp, "pycache")))
        first_start_rows(report, tmp, opts.repeat_pytest * 2)
        first_start_rows(report, tmp, opts.repeat_pytest * 2, pycache=str(Path(tmp, "pycache")))

    results = bench_fake_control.measure(opts.repeat_control)
    for name, value in results.items():
        target = bench_fake_control.TARGETS_MS[name]
        report.add(Row(f"fake {name}", f"{fmt_time(value / 1000):>10}", ratio=value / target,
                       target=f"<= {target:g} ms", ok=value <= target, note="ratio to target"))
    report.note(f"pytest runs: medians of {opts.repeat_pytest}; controls: medians of "
                f"{opts.repeat_control}")
