"""The benchmark script runs (at a tiny size): every section prints its figures or says why not.

The figures themselves are not checked: at ``--quick`` sizes they mean nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_lxd.plugin import real_endpoint

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([sys.executable, str(RUN), "--quick", *args], capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAILED" not in done.stdout, done.stdout
    return done.stdout


def test_quick_run_without_the_real_host() -> None:
    out = run("--no-real")
    for title in ("== 1.", "== 2.", "== 2b.", "== 3.", "== 4.", "== 5."):
        assert title in out, out
    assert "skipped: real LXD host unavailable (--no-real given)" in out
    assert "GET /1.0/profiles?recursion=1" in out
    assert "fake start+stop" in out and "fake reset" in out
    assert "of which each test (marginal)" in out and "of which once per run" in out
    assert "peak RSS" in out and "threads" in out
    assert "target(s) missed" in out


def test_one_section_only() -> None:
    out = run("--section", "4", "--repeat", "2")
    assert "== 4." in out and "== 2." not in out and "== 5." not in out


@pytest.mark.real_only
def test_quick_run_against_the_real_host(backend: str, request: pytest.FixtureRequest) -> None:
    """Section 1 with the real host: one of each step on both backends, then the ratio."""
    endpoint = real_endpoint(request.config)
    out = run("--section", "1", "--lxd-endpoint", endpoint)
    assert "whole workload" in out or "skipped: real LXD host unavailable" in out, out
