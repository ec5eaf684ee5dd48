"""Interrupted runs leave a host clean: Ctrl-C (once, or again while the teardown runs), a
killed pytest, a killed xdist worker; the next run's sweep removes what was left, and only
that.

Each scenario starts an inner pytest run whose test fills its project (a profile, a custom
volume, a running instance from ``lxd_image``) and makes a bridge outside it (journaled), then
blocks; once all of it is on the host, the run is interrupted. A second run follows (in the
xdist case while the surviving worker still holds its project). Before and after, the outer
test takes the host's inventory: whatever the runs made is gone, the host's own objects
(``default`` project and profile, ``lxdbr0``, pool ``default``, the ``busybox`` image) are
unchanged, and so are sentinels under the same names in ``default``, in a live run's project
and in a young project of another machine.

The stand-in ``host`` (a fake) is ours alone, so there the inventory must come back exactly.
The machine's LXD is shared: there, only what carries this test's tag, or lives in the
projects its runs made, is judged, and every project a sweep removed must have been stale.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import pytest_lxd
from fakeserver import FakeLXD
from pytest_lxd import Client
from pytest_lxd.backends import (
    CREATED_KEY,
    OWNER_KEY,
    RUN_KEY,
    LXDBackend,
    RealBackend,
    Settings,
    _alive,
    _call,
    _owner,
    _q,
    _start_time,
)
from tests.plugin.util import (
    host_objects,
    inventory,
    machine_args,
    plugin_configs,
    pool_leftovers,
    real_args,
    swept,
)

#: The inner test: fills its project, makes a bridge, says so, waits to be released.
HOLDER = '''
import json, os, time
from pathlib import Path

import pytest

TAG = "@TAG@"


def _wait_for(path):
    deadline = time.monotonic() + 90
    while not path.exists():
        assert time.monotonic() < deadline, f"nobody made {path}"
        time.sleep(0.02)


@pytest.mark.parametrize("n", range(@TESTS@))
def test_holds(n, lxd_backend, lxd_client, lxd_image):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    lxd_client.profiles.create(f"{TAG}-p")
    lxd_client.storage_pools.get("default").volumes.create({"name": f"{TAG}-v"})
    instance = lxd_client.instances.create(
        {"name": f"{TAG}-c", "source": {"type": "image", "alias": lxd_image}})
    instance.start(wait=True)
    network = f"{TAG}n{worker[-1]}"
    lxd_client.networks.create(network, config={"ipv4.address": "none",
                                                "ipv6.address": "none"})
    if @SLOW_TEARDOWN@:
        def slow():
            Path(f"teardown-{worker}").touch()
            time.sleep(90)
        lxd_backend.later(slow)
    Path(f"ready-{worker}").write_text(json.dumps(
        {"project": lxd_backend.project, "pid": os.getpid(), "network": network}))
    _wait_for(Path(f"release-{worker}"))
    # released: nobody's sweep took any of it meanwhile
    assert lxd_client.profiles.exists(f"{TAG}-p")
    assert lxd_client.instances.get(f"{TAG}-c").status == "Running"
    assert lxd_backend.client(project=None).networks.exists(network)
'''

#: The next run: one test, so that the plugin sweeps.
NEXT = '''
from pathlib import Path

def test_next(lxd_backend):
    Path("next-project").write_text(lxd_backend.project)
'''


@dataclass
class Host:
    """The host an interrupted run works on, as the outer test sees it."""

    admin: Client
    args: list[str]
    shared: bool  # other runs use it at the same time
    tag: str
    endpoint: str
    #: Projects of live runs that must survive every sweep (the outer test's own).
    live: list[str] = field(default_factory=list)


#: The checkout whose plugin this outer run tests.
CHECKOUT = str(Path(pytest_lxd.__file__).resolve().parents[1])
#: The inner runs of the current test (stopped at its end, whatever happened).
RUNS: list[Run] = []


@pytest.fixture(autouse=True)
def _stop_runs() -> Iterator[None]:
    """An inner run still going when the test ends (it failed) gets Ctrl-C, so that its own
    teardown cleans the host, then SIGKILL."""
    yield
    while RUNS:
        proc = RUNS.pop().proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Run:
    """An inner pytest run in a subprocess, its output in a file."""

    def __init__(self, pytester: pytest.Pytester, args: list[str], name: str) -> None:
        self.path = pytester.path
        self.log = pytester.path / f"{name}.log"
        # this checkout first: the installed pytest_lxd may be another one (pip install -e)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(pytester.path), CHECKOUT, os.environ.get("PYTHONPATH")]))}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:hypothesispytest", *args],
                cwd=pytester.path, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        RUNS.append(self)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, name: str, timeout: float = 60) -> str:
        """The content of file ``name``, once the run made it."""
        path = self.path / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended ({self.proc.returncode}) before making {name}:\n"
                            f"{self.output}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"the run did not make {name} in {timeout} s:\n{self.output}")
            time.sleep(0.02)
        return path.read_text()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the run did not end in {timeout} s:\n{self.output}")


def _furnish(host: Host) -> None:
    """Sentinels the runs must not touch: their objects' names in ``default``, in a live
    run's project, and a young project of another machine."""
    tag, admin = host.tag, host.admin
    admin.profiles.create(f"{tag}-p")
    admin.storage_pools.get("default").volumes.create({"name": f"{tag}-v"})
    now = str(int(time.time()))
    live = f"pytest-lxd-live-{tag}"
    admin.projects.create(live, config={RUN_KEY: "live", OWNER_KEY: _owner(), CREATED_KEY: now})
    _call(admin, "POST", f"/1.0/profiles?project={_q(live)}", body={"name": f"{tag}-p"})
    _call(admin, "POST", f"/1.0/instances?project={_q(live)}",
          body={"name": f"{tag}-c", "source": {"type": "none"},
                "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
    admin.projects.create(f"pytest-lxd-far-{tag}", config={
        RUN_KEY: "far", OWNER_KEY: "elsewhere.invalid/1/1", CREATED_KEY: now})
    host.live.append(live)


@dataclass
class Look:
    """The host at one moment."""

    objects: set[str]
    own: dict[str, Any]
    plugin: dict[str, dict[str, str]]


def _look(host: Host) -> Look:
    return Look(inventory(host.admin), host_objects(host.admin), plugin_configs(host.admin))


def _holding(host: Host, project: str, network: str) -> None:
    """The interrupted test's objects are on the host."""
    objects = inventory(host.admin)
    tag = host.tag
    for item in (f"profiles {project}/{tag}-p", f"instances {project}/{tag}-c",
                 f"volume default/{project}/custom/{tag}-v", f"network {network}"):
        assert item in objects
    state = _call(host.admin, "GET", f"/1.0/instances/{tag}-c/state?project={_q(project)}")
    assert state["status"] == "Running"


def _next_run(host: Host, pytester: pytest.Pytester, name: str) -> tuple[list[str], str]:
    """Run one test (the plugin sweeps first); what it swept, and its own project."""
    pytester.makepyfile(**{f"test_next_{host.tag}": NEXT})
    run = Run(pytester, [*host.args, f"test_next_{host.tag}.py"], name)
    assert run.wait() == 0, run.output
    assert "sweep could not remove" not in run.output, run.output
    return swept(run.output), (pytester.path / "next-project").read_text()


def _judge(host: Host, before: Look, ours: set[str], removed: list[str],
           expected: set[str]) -> None:
    """After the runs: nothing of theirs is left, the rest is as it was, every swept
    project was stale."""
    after = _look(host)
    assert after.own == before.own
    mine = [item for item in after.objects - before.objects
            if host.tag in item or any(f" {p}" in item or f"/{p}/" in item for p in ours)]
    assert mine == []
    assert {item for item in before.objects if host.tag in item} <= after.objects
    for live in host.live:
        assert any(item.startswith(f"project {live}: ") for item in after.objects)
    assert pool_leftovers(host.admin, ours) == []
    _swept(host, removed, expected)
    if not host.shared:
        assert after.objects == before.objects
        return
    judge = RealBackend(Settings(endpoint=host.endpoint))
    for name in set(removed) - ours:
        config = before.plugin.get(name)
        assert config is None or judge.stale(config), f"the sweep removed live {name}"


def _swept(host: Host, removed: list[str], expected: set[str]) -> None:
    """The next run's sweep removed the projects ``expected``. On a shared host another run
    that started meanwhile may have swept one first: then it is at least gone."""
    if not host.shared:
        assert set(removed) == expected
    else:
        assert not set(plugin_configs(host.admin)) & (expected - set(removed))


# -- Ctrl-C, and a killed pytest ------------------------------------------------------------------

def _interrupted(host: Host, pytester: pytest.Pytester, how: str) -> None:
    _furnish(host)
    before = _look(host)
    started = time.monotonic()
    pytester.makepyfile(**{f"test_hold_{host.tag}": HOLDER.replace("@TAG@", host.tag)
                           .replace("@TESTS@", "1")
                           .replace("@SLOW_TEARDOWN@", str(how == "sigint-twice"))})
    run = Run(pytester, [*host.args, f"test_hold_{host.tag}.py"], "interrupted")
    ready = json.loads(run.wait_for("ready-main"))
    project, network = ready["project"], ready["network"]
    _holding(host, project, network)
    if how == "sigkill":
        os.kill(run.proc.pid, signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL
    else:
        run.proc.send_signal(signal.SIGINT)
        if how == "sigint-twice":  # Ctrl-C again while the teardown runs
            run.wait_for("teardown-main")
            run.proc.send_signal(signal.SIGINT)
            assert run.wait() == -signal.SIGINT, run.output  # Python's exit on a 2nd Ctrl-C
        else:
            assert run.wait() == pytest.ExitCode.INTERRUPTED, run.output
            assert "KeyboardInterrupt" in run.output
            assert "could not clean up" not in run.output, run.output
    left = how != "sigint"
    if left:  # nothing ran the teardown (or not to its end): the project is still there
        _holding(host, project, network)
    else:  # pytest's own teardown removed all of it
        assert project not in plugin_configs(host.admin)
        assert not host.admin.networks.exists(network)
    interrupted = time.monotonic() - started
    removed, next_project = _next_run(host, pytester, "next")
    _judge(host, before, {project, next_project}, removed, {project} if left else set())
    print(f"{how}: interrupted run {interrupted:.1f} s, next run swept {removed} "
          f"(total {time.monotonic() - started:.1f} s)")


@pytest.mark.parametrize("how", ["sigint", "sigint-twice"])
def test_an_interrupted_run_leaves_the_host_clean(pytester: pytest.Pytester, host: FakeLXD,
                                                  host_client: Client, how: str) -> None:
    """On the stand-in host (ours alone: the inventory comes back exactly). A killed pytest
    on it: ``test_cleanup.test_a_killed_run_is_swept_at_the_start_of_the_next``."""
    _interrupted(Host(host_client, real_args(host), False, "ir-fake", host.socket_path),
                 pytester, how)


@pytest.mark.lxd_real_only
@pytest.mark.parametrize("how", ["sigint", "sigint-twice", "sigkill"])
def test_an_interrupted_run_leaves_the_real_host_clean(pytester: pytest.Pytester,
                                                       lxd_backend: LXDBackend,
                                                       how: str) -> None:
    _interrupted(_real(lxd_backend), pytester, how)


def _real(env: LXDBackend) -> Host:
    """The machine's LXD; the sentinels made through ``admin`` are deleted after the test."""
    return Host(env.client(project=None), machine_args(env), True,
                env.unique("ir").replace("-", ""), env.endpoint, [env.project])


# -- a killed xdist worker ------------------------------------------------------------------------

def _worker_killed(host: Host, pytester: pytest.Pytester) -> None:
    _furnish(host)
    before = _look(host)
    started = time.monotonic()
    pytester.makepyfile(**{f"test_hold_{host.tag}": HOLDER.replace("@TAG@", host.tag)
                           .replace("@TESTS@", "2").replace("@SLOW_TEARDOWN@", "False")})
    run = Run(pytester, [*host.args, "-n", "2", "--dist=load", f"test_hold_{host.tag}.py"],
              "xdist")
    victim = json.loads(run.wait_for("ready-gw0"))
    survivor = json.loads(run.wait_for("ready-gw1"))
    for worker in (victim, survivor):
        _holding(host, worker["project"], worker["network"])
    os.kill(victim["pid"], signal.SIGKILL)
    # another run starts while gw1 still holds its project: it sweeps gw0's, not gw1's
    removed, next_project = _next_run(host, pytester, "next")
    _swept(host, removed, {victim["project"]})
    assert survivor["project"] not in removed
    _holding(host, survivor["project"], survivor["network"])
    assert not host.admin.networks.exists(victim["network"])
    (pytester.path / "release-gw1").touch()
    assert run.wait() == pytest.ExitCode.TESTS_FAILED, run.output
    output = run.output
    assert "worker 'gw0' crashed while running" in output, output
    assert "1 failed, 1 passed" in output, output
    ours = {victim["project"], survivor["project"], next_project}
    _judge(host, before, ours, removed, {victim["project"]})
    print(f"xdist: killed gw0, next run swept {removed} while gw1 held its project "
          f"(total {time.monotonic() - started:.1f} s)")


def test_a_killed_worker_is_swept_and_the_live_one_kept(pytester: pytest.Pytester,
                                                        host: FakeLXD,
                                                        host_client: Client) -> None:
    _worker_killed(Host(host_client, real_args(host), False, "ix-fake", host.socket_path),
                   pytester)


@pytest.mark.lxd_real_only
def test_a_killed_worker_is_swept_and_the_live_one_kept_on_the_real_host(
        pytester: pytest.Pytester, lxd_backend: LXDBackend) -> None:
    _worker_killed(_real(lxd_backend), pytester)


def test_a_killed_process_not_yet_reaped_is_dead() -> None:
    """A killed xdist worker stays a zombie until its controller ends: its projects are
    stale at once (the sweep of a run started meanwhile removes them)."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        owner = f"{socket.gethostname()}/{child.pid}/{_start_time(child.pid)}"
        assert _alive(owner) is True
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert _alive(owner) is False
    finally:
        child.kill()
        child.wait()
    assert _alive(owner) is False
