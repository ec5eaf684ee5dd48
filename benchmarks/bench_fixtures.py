"""Section 4: what the plugin costs a test suite: the ``lxd_client`` fixture per test (a pytest
run of N trivial tests that use it against N that use nothing), and the fake's start+stop and
reset (the controls the fixtures are built on).

The per-test figure includes what a run pays once (importing and starting the fake, making the
test project), spread over the N tests; runs of one test each measure that part alone, so the
cost of each further test (the marginal cost) is shown too.
"""

from __future__ import annotations

import os
import resource
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


def _pytest(directory: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_LXD_BACKEND", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=600)


def has_fixture(directory: str, name: str) -> bool:
    """Whether pytest (with the installed plugin) offers fixture ``name``."""
    done = _pytest(directory, "--fixtures", "-q", "test_none.py")
    return any(line.split(" ")[0].split("[")[0] == name for line in done.stdout.splitlines())


def write_suite(directory: str, count: int) -> None:
    Path(directory, "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    for suffix, size in (("", count), ("_one", 1)):
        Path(directory, f"test_none{suffix}.py").write_text(
            "".join(f"def test_{i}():\n    pass\n\n\n" for i in range(size)))
        Path(directory, f"test_client{suffix}.py").write_text(
            "".join(f"def test_{i}(lxd_client):\n    pass\n\n\n" for i in range(size)))


def timed_run(directory: str, module: str, count: int) -> tuple[float, float]:
    """Wall and CPU seconds (the pytest process: user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = _pytest(directory, "--lxd-backend=fake", module)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or f"{count} passed" not in done.stdout:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"pytest {module} failed: {' | '.join(tail)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def run(report: Report, opts: Any) -> None:
    report.begin("4. Fixture cost: the plugin in a pytest run, and the fake's controls")
    count = opts.tests
    with tempfile.TemporaryDirectory(prefix="lxd-bench-") as tmp:
        write_suite(tmp, count)
        label = f"lxd_client overhead per test (x{count})"
        if not has_fixture(tmp, "lxd_client"):
            report.add(Row(label, "", note=f"{NOT_YET}: the plugin has no lxd_client fixture"))
        else:
            runs: dict[str, list[tuple[float, float]]] = {
                name: [] for name in ("test_none.py", "test_client.py", "test_none_one.py",
                                      "test_client_one.py")}
            for _ in range(opts.repeat_pytest):  # taking turns
                for module, got in runs.items():
                    got.append(timed_run(tmp, module, 1 if "_one" in module else count))
            wall = {m: statistics.median(t for t, _ in got) for m, got in runs.items()}
            cpu = {m: statistics.median(c for _, c in got) for m, got in runs.items()}
            per_test = (wall["test_client.py"] - wall["test_none.py"]) / count
            once = wall["test_client_one.py"] - wall["test_none_one.py"]
            once_cpu = cpu["test_client_one.py"] - cpu["test_none_one.py"]
            ratio = per_test * 1000 / TARGET_PER_TEST_MS
            report.add(Row(label, f"{fmt_time(per_test):>10} per test", ratio=ratio,
                           target=f"<= {TARGET_PER_TEST_MS:g} ms", ok=ratio <= 1,
                           note=f"runs {fmt_time(wall['test_client.py'])} vs "
                                f"{fmt_time(wall['test_none.py'])}; ratio to target"))
            if count > 1:
                marginal = (per_test * count - once) / (count - 1)
                marginal_cpu = (cpu["test_client.py"] - cpu["test_none.py"] - once_cpu) / (
                    count - 1)
                ratio = marginal * 1000 / TARGET_PER_TEST_MS
                noise = marginal < 0  # runs this short drown in the machine's noise
                report.add(Row("  of which each test (marginal)",
                               f"{fmt_time(marginal):>10} per test", ratio=ratio,
                               target=f"<= {TARGET_PER_TEST_MS:g} ms",
                               ok=None if noise else ratio <= 1,
                               note=("below zero: noise; " if noise else "")
                               + f"CPU {fmt_time(marginal_cpu)} per test; ratio to target"))
                report.add(Row("  of which once per run", f"{fmt_time(once):>10}",
                               note=f"CPU {fmt_time(once_cpu)}: importing and starting the "
                                    "fake (with HTTPS), the test project; runs of 1 test"))

    results = bench_fake_control.measure(opts.repeat_control)
    for name, value in results.items():
        target = bench_fake_control.TARGETS_MS[name]
        report.add(Row(f"fake {name}", f"{fmt_time(value / 1000):>10}", ratio=value / target,
                       target=f"<= {target:g} ms", ok=value <= target, note="ratio to target"))
    report.note(f"pytest runs: medians of {opts.repeat_pytest} (wall; CPU of the pytest "
                f"process where shown); controls: medians of {opts.repeat_control}")
