"""pytest-xdist: each worker has its own fake (socket directory and port) and its own projects
on the real host; reports still carry the backend section."""

from __future__ import annotations

import json

import pytest

from fakeserver import FakeLXD
from pytest_lxd import Client
from tests.plugin.util import plugin_projects, real_args

WORKERS = """
import json, os, time
import pytest

@pytest.mark.parametrize("n", range(8))
def test_where(n, lxd_backend, lxd_client):
    lxd_client.profiles.create("mine")  # the same name everywhere: isolation, not luck
    time.sleep(0.05)
    record = {"worker": os.environ["PYTEST_XDIST_WORKER"], "backend": lxd_backend.name,
              "endpoint": lxd_backend.endpoint, "project": lxd_backend.project,
              "https": lxd_backend.fake.https_url if lxd_backend.fake else None}
    with open("seen.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\\n")

def test_fails(lxd_client):
    lxd_client.profiles.create("broken")
    assert False
"""


def test_each_worker_has_its_own_fake_and_projects(pytester: pytest.Pytester, host: FakeLXD,
                                                   host_client: Client) -> None:
    pytester.makepyfile(WORKERS)
    result = pytester.runpytest_subprocess("-n", "2", "--dist=load", "-p", "no:hypothesispytest",
                                           *real_args(host, "both"))
    result.assert_outcomes(passed=16, failed=2)
    seen = [json.loads(line) for line in (pytester.path / "seen.jsonl").read_text().splitlines()]
    workers = {r["worker"] for r in seen}
    assert workers == {"gw0", "gw1"}
    for backend in ("fake", "real"):
        assert {r["worker"] for r in seen if r["backend"] == backend} == workers
    fakes = {r["worker"]: (r["endpoint"], r["https"], r["project"])
             for r in seen if r["backend"] == "fake"}
    assert len({f[0] for f in fakes.values()}) == 2  # own socket directory
    assert len({f[1] for f in fakes.values()}) == 2  # own HTTPS port
    for worker, (_, _, project) in fakes.items():
        assert project.startswith(f"pytest-lxd-{worker}-")
    real = [r for r in seen if r["backend"] == "real"]
    assert len({r["project"] for r in real}) == len(real) == 8  # a project per test
    assert all(r["project"].startswith(f"pytest-lxd-{r['worker']}-") for r in real)
    assert plugin_projects(host_client) == []
    result.stdout.fnmatch_lines(["*- lxd backend (call) -*",
                                 "backend: fake (endpoint *, project pytest-lxd-gw*)"])
    result.stdout.fnmatch_lines(["*- lxd backend (call) -*",
                                 f"backend: real (endpoint {host.socket_path}, "
                                 "project pytest-lxd-gw*)"])
