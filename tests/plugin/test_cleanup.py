"""Real-host hygiene: a project per test, everything deleted afterwards (even when the test
fails), nothing else touched, and the sweep of what killed runs left.

``host`` (a separate fake LXD) plays the real host; ``test_on_the_real_host`` repeats the core
of it on the machine's LXD when the outer run has it (``--lxd-backend=real|both``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeLXD
from pytest_lxd import Client
from pytest_lxd.backends import (
    CREATED_KEY,
    OWNER_KEY,
    RUN_KEY,
    LXDBackend,
    RealBackend,
    Settings,
    _owner,
)
from tests.plugin.util import plugin_projects, real_args
from tests.tlsutil import self_signed

NO_ADDRESSES = {"ipv4.address": "none", "ipv6.address": "none"}

FAILING = """
import json
from pathlib import Path

def test_makes_a_mess_then_fails(lxd_backend, lxd_client):
    lxd_client.profiles.create("inside")
    pool = lxd_client.storage_pools.get("default")
    pool.volumes.create({{"name": "vol"}})
    lxd_client.storage_pools.create({{"name": "p-made", "driver": "dir"}})
    net = lxd_client.networks.create("n-made", config={no_addresses!r})
    net.rename("n-renamed")
    other = lxd_client.projects.create("pl-made")
    lxd_backend.client(project="pl-made").profiles.create("in-made")
    lxd_backend.client(project=None).profiles.create("in-default")
    lxd_client.certificates.create("", Path({cert!r}).read_bytes(), name="made")
    lxd_client.certificates.create_token(name="token")
    lxd_client.api.patch(json={{"config": {{"images.auto_update_interval": "3"}}}})
    journal = lxd_backend.client(project=None).projects.get(lxd_backend.project).config
    Path("seen.json").write_text(json.dumps({{"project": lxd_backend.project,
                                             "journal": journal}}))
    assert False, "the test fails; the cleanup must still happen"
"""


def _world(client: Client) -> dict[str, Any]:
    """What a host has, as far as these tests can change it."""
    raw = client.api.networks.get(params={"recursion": 1}).json()["metadata"]
    pools = {p.name: sorted(v.name for v in p.volumes.all() if v.type == "custom")
             for p in client.storage_pools.all()}
    return {
        "projects": sorted(p.name for p in client.projects.all()),
        "profiles": sorted(p.name for p in client.profiles.all()),
        "pools": pools,
        "networks": sorted(n["name"] for n in raw if n["managed"]),
        "certificates": sorted(c.fingerprint for c in client.certificates.all()),
        "operations": sorted(op.id for op in client.operations.all() if not op.done),
        "config": client.api.get().json()["metadata"]["config"],
    }


def _furnish(client: Client) -> None:
    """Objects the plugin did not create: they must survive everything below."""
    client.profiles.create("keep")
    client.storage_pools.create({"name": "keep-pool", "driver": "dir"})
    client.networks.create("keepnet", config=NO_ADDRESSES)
    client.projects.create("keep-project")
    Client(client.endpoint.socket_path, project="keep-project").profiles.create("inside")
    client.projects.create("pytest-lxd-not-ours")  # the prefix, but no run key


def test_a_failing_test_leaves_nothing_behind(pytester: pytest.Pytester, host: FakeLXD,
                                              host_client: Client, tmp_path: Path) -> None:
    _furnish(host_client)
    before = _world(host_client)
    cert = self_signed(tmp_path, "made")
    pytester.makepyfile(FAILING.format(cert=cert.cert_file, no_addresses=NO_ADDRESSES))
    result = pytester.runpytest(*real_args(host))
    result.assert_outcomes(failed=1)  # and no teardown error: the cleanup worked
    seen = json.loads((pytester.path / "seen.json").read_text())
    journal = [v for k, v in sorted(seen["journal"].items())
               if k.startswith("user.pytest-lxd.cleanup.")]
    assert journal == [
        "/1.0/storage-pools/p-made", "/1.0/networks/n-renamed", "/1.0/projects/pl-made",
        "/1.0/profiles/in-made?project=pl-made", "/1.0/profiles/in-default",
        f"/1.0/certificates/{cert.fingerprint}", journal[-1]]
    assert journal[-1].startswith("/1.0/operations/")  # the pending trust token
    assert seen["journal"][RUN_KEY] and seen["journal"][OWNER_KEY] == _owner()
    assert _world(host_client) == before
    with Client(host.socket_path, project="keep-project") as inside:
        assert [p.name for p in inside.profiles.all()] == ["default", "inside"]


def test_each_test_gets_its_own_project(pytester: pytest.Pytester, host: FakeLXD,
                                        host_client: Client) -> None:
    pytester.makepyfile("""
SEEN = []

def test_one(lxd_backend, lxd_client):
    SEEN.append(lxd_backend.project)
    lxd_client.profiles.create("mine")

def test_two(lxd_backend, lxd_client):
    assert lxd_backend.project != SEEN[0]
    assert lxd_backend.project.startswith("pytest-lxd-main-")
    assert [p.name for p in lxd_client.profiles.all()] == ["default"]
    admin = lxd_backend.client(project=None)
    assert not admin.projects.exists(SEEN[0])
    project = admin.projects.get(lxd_backend.project)
    assert project.description.startswith("pytest-lxd: test_each_test_gets_its_own_project.py")
""")
    result = pytester.runpytest(*real_args(host))
    result.assert_outcomes(passed=2)
    assert plugin_projects(host_client) == []


def test_a_cleanup_that_fails_is_an_error_and_the_rest_still_happens(
        pytester: pytest.Pytester, host: FakeLXD, host_client: Client) -> None:
    pytester.makepyfile("""
def test_broken_cleanup(lxd_backend, lxd_client):
    lxd_client.storage_pools.create({"name": "p-made", "driver": "dir"})
    def broken():
        raise RuntimeError("boom")
    lxd_backend.later(broken)
""")
    result = pytester.runpytest(*real_args(host))
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*pytest-lxd could not clean up after "
                                 "test_a_cleanup_that_fails*on real:*",
                                 "*cleanup broken: boom*"])
    assert plugin_projects(host_client) == []
    assert [p.name for p in host_client.storage_pools.all()] == ["default"]


def test_objects_created_and_deleted_by_the_test_are_forgotten(
        pytester: pytest.Pytester, host: FakeLXD, host_client: Client) -> None:
    """An object the test deleted is not deleted again at teardown (another test, or
    another run, may have made one with that name since)."""
    pytester.makepyfile(f"""
def test_make_and_delete(lxd_backend, lxd_client):
    lxd_client.networks.create("n-gone", config={NO_ADDRESSES!r}).delete()
    assert lxd_backend.tracker.created == []
""")
    pytester.runpytest(*real_args(host)).assert_outcomes(passed=1)
    deletes = [r.path for r in host.requests if r.method == "DELETE"]
    assert deletes.count("/1.0/networks/n-gone") == 1


KILLED = """
import os, signal
from pathlib import Path

def test_killed(lxd_backend, lxd_client):
    lxd_client.profiles.create("inside")
    lxd_client.networks.create("n-killed", config={"ipv4.address": "none",
                                                   "ipv6.address": "none"})
    lxd_client.storage_pools.create({"name": "p-killed", "driver": "dir"})
    Path("project").write_text(lxd_backend.project)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_is_swept_at_the_start_of_the_next(pytester: pytest.Pytester,
                                                        host: FakeLXD,
                                                        host_client: Client) -> None:
    pytester.makepyfile(test_killed=KILLED)
    killed = pytester.runpytest_subprocess(*real_args(host), "test_killed.py")
    assert killed.ret == -9
    left = (pytester.path / "project").read_text()
    assert plugin_projects(host_client) == [left]
    assert host_client.networks.exists("n-killed")

    pytester.makepyfile(test_next="def test_next(lxd_client):\n    pass\n")
    result = pytester.runpytest(*real_args(host), "test_next.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"pytest-lxd: swept 1 project(s) left by interrupted runs: "
                                 f"{left}"])
    assert plugin_projects(host_client) == []
    assert not host_client.networks.exists("n-killed")
    assert [p.name for p in host_client.storage_pools.all()] == ["default"]


def _plugin_project(client: Client, name: str, owner: str, created: float,
                    run: str | None = "r1") -> None:
    config = {OWNER_KEY: owner, CREATED_KEY: str(int(created))}
    if run:
        config[RUN_KEY] = run
    client.projects.create(name, config=config)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_sweep_removes_only_what_dead_runs_left(host: FakeLXD,
                                                    host_client: Client) -> None:
    here, now = socket.gethostname(), time.time()
    _plugin_project(host_client, "pytest-lxd-dead", f"{here}/{_dead_pid()}/1", now)
    _plugin_project(host_client, "pytest-lxd-live", _owner(), now)
    _plugin_project(host_client, "pytest-lxd-parent", f"{here}/{os.getppid()}/", now)
    _plugin_project(host_client, "pytest-lxd-recycled", f"{here}/{os.getpid()}/999999", now)
    _plugin_project(host_client, "pytest-lxd-far-new", "elsewhere/1/1", now - 3600)
    _plugin_project(host_client, "pytest-lxd-far-old", "elsewhere/1/1", now - 2 * 86400)
    _plugin_project(host_client, "pytest-lxd-no-run", f"{here}/{_dead_pid()}/1", now, run=None)
    _plugin_project(host_client, "other-dead", f"{here}/{_dead_pid()}/1", now)
    Client(host.socket_path, project="pytest-lxd-dead").profiles.create("inside")
    backend = RealBackend(Settings(endpoint=host.socket_path))
    try:
        assert sorted(backend.sweep()) == ["pytest-lxd-dead", "pytest-lxd-far-old",
                                           "pytest-lxd-recycled"]
        assert backend.sweep_problems == []
    finally:
        backend.close()
    assert sorted(plugin_projects(host_client)) == [
        "pytest-lxd-far-new", "pytest-lxd-live", "pytest-lxd-no-run", "pytest-lxd-parent"]
    assert host_client.projects.exists("other-dead")


def test_the_default_project_is_never_removed(host_client: Client) -> None:
    from pytest_lxd.backends import empty_project, remove_project

    with pytest.raises(ValueError, match="never emptied"):
        empty_project(host_client, "default")
    assert remove_project(host_client, "default") == "the default project is never removed"


def test_objects_of_projects_without_their_feature_are_not_the_projects(
        host: FakeLXD, host_client: Client) -> None:
    """A project without ``features.profiles`` shows the default project's profiles: removing
    such a project must not delete them."""
    host_client.profiles.create("keep")
    host_client.projects.create("pl-shared", config={"features.profiles": "false",
                                                     "features.storage.volumes": "false"})
    host_client.storage_pools.get("default").volumes.create({"name": "keepvol"})
    from pytest_lxd.backends import remove_project

    assert remove_project(host_client, "pl-shared") is None
    assert not host_client.projects.exists("pl-shared")
    assert [p.name for p in host_client.profiles.all()] == ["default", "keep"]
    assert host_client.storage_pools.get("default").volumes.exists("custom", "keepvol")


@pytest.mark.lxd_real_only
def test_on_the_real_host(pytester: pytest.Pytester, lxd_backend: LXDBackend,
                          tmp_path: Path) -> None:
    """The machine's LXD: a failing test's project and what it created outside are gone."""
    admin = lxd_backend.client(project=None)
    network = lxd_backend.unique("n")
    pytester.makepyfile(f"""
from pathlib import Path

def test_fails(lxd_backend, lxd_client):
    Path("project").write_text(lxd_backend.project)
    lxd_client.profiles.create("inside")
    lxd_client.storage_pools.get("default").volumes.create({{"name": "vol"}})
    lxd_client.networks.create({network!r}, config={NO_ADDRESSES!r})
    assert False
""")
    args = ["-p", "no:cacheprovider", "--lxd-backend=real",
            f"--lxd-endpoint={lxd_backend.endpoint}"]
    if lxd_backend.cert:
        args += [f"--lxd-cert={lxd_backend.cert[0]}", f"--lxd-key={lxd_backend.cert[1]}"]
    result = pytester.runpytest(*args, f"--lxd-verify={lxd_backend.verify}")
    result.assert_outcomes(failed=1)
    project = (pytester.path / "project").read_text()
    assert project.startswith("pytest-lxd-main-")
    assert not admin.projects.exists(project)
    assert not admin.networks.exists(network)


def test_what_the_tracker_follows(host: FakeLXD, host_client: Client) -> None:
    """Objects made in another project (volumes, images, aliases, instances), moved or
    renamed, the test's own project renamed, the server config changed: all undone."""
    from pytest_lxd import busybox

    host_client.storage_pools.create({"name": "keep-pool", "driver": "dir"})
    before = _world(host_client)
    backend = RealBackend(Settings(endpoint=host.socket_path))
    try:
        env = backend.begin("tracker")
        own = env.client()
        own.projects.create("pl-other")
        other = env.client(project="pl-other")
        volume = other.storage_pools.get("default").volumes.create({"name": "v1"})
        volume.rename({"name": "v2", "pool": "keep-pool"})
        image = busybox.placeholder_image()
        upload = other.api.images.post(data=image, headers={
            "Content-Type": "application/octet-stream"})
        other.operations.wait_for_operation(upload.json()["operation"])
        fingerprint = busybox.fingerprint(image)
        other.api.images.aliases.post(json={"name": "bb", "target": fingerprint})
        made = other.api.instances.post(json={
            "name": "c1", "source": {"type": "image", "fingerprint": fingerprint},
            "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
        other.operations.wait_for_operation(made.json()["operation"])
        renamed = other.api.instances["c1"].post(json={"name": "c2"})
        other.operations.wait_for_operation(renamed.json()["operation"])
        started = other.api.instances["c2"].state.put(json={"action": "start"})
        other.operations.wait_for_operation(started.json()["operation"])
        assert other.api.instances["c2"].get().json()["metadata"]["status"] == "Running"
        own.api.put(json={"config": {"images.auto_update_interval": "9"}})
        own.projects.get(env.project).rename("pytest-lxd-renamed")
        assert env.project == "pytest-lxd-renamed"
        assert env.tracker.created == [
            "/1.0/projects/pl-other", "/1.0/storage-pools/keep-pool/volumes/custom/v2"
            "?project=pl-other", f"/1.0/images/{fingerprint}?project=pl-other",
            "/1.0/images/aliases/bb?project=pl-other", "/1.0/instances/c2?project=pl-other"]
        assert env.tracker.config_changed
        assert backend.end(env) == []
    finally:
        backend.close()
    assert _world(host_client) == before


@pytest.mark.lxd_real_only
def test_the_sweep_on_the_real_host(lxd_backend: LXDBackend) -> None:
    """A project a dead run left (with a profile in it) is swept; the live test's is not."""
    admin = lxd_backend.client(project=None)
    name = f"pytest-lxd-dead-{lxd_backend.unique('x')[2:]}"
    _plugin_project(admin, name, f"{socket.gethostname()}/{_dead_pid()}/1", time.time())
    lxd_backend.client(project=name).profiles.create("inside")
    backend = RealBackend(Settings(endpoint=lxd_backend.endpoint, cert=lxd_backend.cert,
                                   verify=lxd_backend.verify))
    try:
        assert name in backend.sweep()
    finally:
        backend.close()
    assert not admin.projects.exists(name)
    assert admin.projects.exists(lxd_backend.project)
