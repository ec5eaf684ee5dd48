"""Isolation on the fake: each test starts from the session's clean (or seeded) state, and the
session fake's override points (directory, HTTPS, TLS material, seed data, factory)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from fakeserver import FakeLXD
from pytest_lxd.backends import FakeBackend
from pytest_lxd.settings import Settings

LEAK_THEN_CHECK = """
import pytest

STATE = {}

def test_a_changes_everything(lxd_client, lxd_backend):
    STATE["project"] = lxd_backend.project
    lxd_client.profiles.create("leak", config={"limits.cpu": "1"})
    default = lxd_client.profiles.get("default")
    default.config["user.leak"] = "yes"
    default.save()
    lxd_client.storage_pools.create({"name": "leakpool", "driver": "dir"})
    lxd_client.networks.create("leaknet", config={"ipv4.address": "none",
                                                  "ipv6.address": "none"})
    lxd_client.projects.create("leakproject")
    admin = lxd_backend.client(project=None)
    admin.profiles.create("leak-in-default")
    admin.api.patch(json={"config": {"images.auto_update_interval": "3"}})

def test_b_sees_none_of_it(lxd_client, lxd_backend):
    assert lxd_backend.project == STATE["project"]  # one project per session on the fake
    assert [p.name for p in lxd_client.profiles.all()] == ["default"]
    assert "user.leak" not in lxd_client.profiles.get("default").config
    assert not lxd_client.storage_pools.exists("leakpool")
    assert not lxd_client.networks.exists("leaknet")
    assert not lxd_client.projects.exists("leakproject")
    admin = lxd_backend.client(project=None)
    assert [p.name for p in admin.profiles.all()] == ["default"]
    assert "images.auto_update_interval" not in admin.host_info["config"]
"""


def test_state_of_one_test_is_invisible_in_the_next(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAK_THEN_CHECK)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_the_test_project_is_like_the_host(pytester: pytest.Pytester) -> None:
    """The test's project has LXD's default features and the host's default profile devices
    (so instances can start there), and nothing else."""
    pytester.makepyfile("""
def test_project(lxd_client, lxd_backend):
    assert lxd_backend.project.startswith("pytest-lxd-main-")
    project = lxd_client.projects.get(lxd_backend.project)
    assert {k: v for k, v in project.config.items() if k.startswith("features.")} == {
        "features.images": "true", "features.profiles": "true",
        "features.storage.volumes": "true"}
    assert project.config["user.pytest-lxd.run"]
    default = lxd_client.profiles.get("default")
    assert default.devices == {"root": {"path": "/", "pool": "default", "type": "disk"}}
    assert lxd_client.api.images.get().json()["metadata"] == []
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_seed_data_is_the_state_every_test_starts_from(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
import pytest

@pytest.fixture(scope="session")
def lxd_fake_seed():
    return {"storage_pools": [{"name": "seeded", "driver": "dir"}],
            "config": {"images.auto_update_interval": "7"}}
""")
    pytester.makepyfile("""
def test_one(lxd_client, lxd_backend):
    assert lxd_client.storage_pools.exists("seeded")
    assert lxd_client.host_info["config"]["images.auto_update_interval"] == "7"
    lxd_client.storage_pools.get("seeded").delete()

def test_two(lxd_client):
    assert lxd_client.storage_pools.exists("seeded")
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_socket_directory_https_and_tls_are_overridable(pytester: pytest.Pytester,
                                                        tmp_path: Path) -> None:
    pytester.makeconftest(f"""
import pytest
from fakeserver.tls import ServerTLS

@pytest.fixture(scope="session")
def lxd_fake_dir():
    return {str(tmp_path / "fake")!r}

@pytest.fixture(scope="session")
def lxd_fake_https():
    return "127.0.0.1:0"

@pytest.fixture(scope="session")
def lxd_fake_tls(tmp_path_factory):
    return ServerTLS(tmp_path_factory.mktemp("tls"))
""")
    pytester.makepyfile(f"""
import requests

def test_where(lxd_fake, lxd_backend, lxd_fake_tls):
    assert lxd_backend.endpoint == {str(tmp_path / "fake" / "unix.socket")!r}
    assert lxd_fake.tls is lxd_fake_tls
    reply = requests.get(lxd_fake.https_url + "/1.0", verify=str(lxd_fake_tls.ca_file))
    assert reply.json()["metadata"]["auth"] == "untrusted"
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_https_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
import pytest

@pytest.fixture(scope="session")
def lxd_fake_https():
    return False
""")
    pytester.makepyfile("""
def test_no_https(lxd_fake):
    assert lxd_fake.https_url is None
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_factory_makes_more_fakes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
from pytest_lxd import Client

SEEN = []

def test_second_server(lxd_fake_factory, lxd_fake):
    other = lxd_fake_factory(preseed={"profiles": [{"name": "remote"}]})
    assert other.running and other.socket_path != lxd_fake.socket_path
    with Client(other.socket_path) as client:
        assert client.profiles.exists("remote")
    SEEN.append(other)

def test_closed_at_session_end_not_before(lxd_fake_factory):
    assert SEEN[0].running
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_reset_before_each_test_is_fast(tmp_path: Path) -> None:
    """What each fake test costs before it starts: well under 1 ms (median)."""
    with FakeLXD(tmp_path, https=True) as server:
        backend = FakeBackend(server, Settings(endpoint="unused"))
        client = backend.begin().client()
        for index in range(50):  # a state worth resetting
            client.profiles.create(f"p{index}", config={"user.i": str(index)})
        client.close()
        samples = []
        for _ in range(200):
            start = time.perf_counter()
            env = backend.begin()
            samples.append(time.perf_counter() - start)
            backend.end(env)
        assert statistics.median(samples) < 0.001, statistics.median(samples)
        env = backend.begin()
        assert [p.name for p in env.client().profiles.all()] == ["default"]
        backend.end(env)
