"""Section 4: what the plugin costs a test suite: the ``lxd_client`` fixture per test (a pytest
run of N trivial tests that use it against N that use nothing), and the fake's start+stop and
reset (the controls the fixtures are built on)."""

from __future__ import annotations

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
    Path(directory, "test_none.py").write_text(
        "".join(f"def test_{i}():\n    pass\n\n\n" for i in range(count)))
    Path(directory, "test_client.py").write_text(
        "".join(f"def test_{i}(lxd_client):\n    pass\n\n\n" for i in range(count)))


def timed_run(directory: str, module: str, count: int) -> float:
    t0 = time.perf_counter()
    done = _pytest(directory, "--lxd-backend=fake", module)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0 or f"{count} passed" not in done.stdout:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"pytest {module} failed: {' | '.join(tail)}")
    return elapsed


def run(report: Report, opts: Any) -> None:
    report.begin("4. Fixture cost: the plugin in a pytest run, and the fake's controls")
    count = opts.tests
    with tempfile.TemporaryDirectory(prefix="lxd-bench-") as tmp:
        write_suite(tmp, count)
        label = f"lxd_client overhead per test (x{count})"
        if not has_fixture(tmp, "lxd_client"):
            report.add(Row(label, "", note=f"{NOT_YET}: the plugin has no lxd_client fixture"))
        else:
            with_client: list[float] = []
            without: list[float] = []
            for _ in range(opts.repeat_pytest):
                without.append(timed_run(tmp, "test_none.py", count))
                with_client.append(timed_run(tmp, "test_client.py", count))
            per_test = (statistics.median(with_client) - statistics.median(without)) / count
            ratio = per_test * 1000 / TARGET_PER_TEST_MS
            report.add(Row(label, f"{fmt_time(per_test):>10} per test", ratio=ratio,
                           target=f"<= {TARGET_PER_TEST_MS:g} ms", ok=ratio <= 1,
                           note=f"runs {fmt_time(statistics.median(with_client))} vs "
                                f"{fmt_time(statistics.median(without))}; ratio to target"))

    results = bench_fake_control.measure(opts.repeat_control)
    for name, value in results.items():
        target = bench_fake_control.TARGETS_MS[name]
        report.add(Row(f"fake {name}", f"{fmt_time(value / 1000):>10}", ratio=value / target,
                       target=f"<= {target:g} ms", ok=value <= target, note="ratio to target"))
    report.note(f"pytest runs: medians of {opts.repeat_pytest}; controls: medians of "
                f"{opts.repeat_control}")
