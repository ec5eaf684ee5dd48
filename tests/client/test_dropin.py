"""Drop-in check: the same pylxd-style code runs on pylxd 2.4.2 and on pytest_lxd.

Each test takes ``lib`` (the ``pylxd`` module or the ``pytest_lxd`` package) and does what a
pylxd user writes, using only pylxd 2.4.2's documented API; the assertions hold for both.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pylxd
import pytest

import pytest_lxd
from tests.tlsutil import self_signed

from .conftest import LXDEnv

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pylxd nags about fields

LIBS = pytest.mark.parametrize("lib", [pylxd, pytest_lxd], ids=["pylxd", "pytest_lxd"])


def connect(lib: ModuleType, lxd: LXDEnv) -> Any:
    client = lib.Client(endpoint=lxd.socket_path)
    if lib is pytest_lxd:
        lxd.clients.append(client)
    return client


@LIBS
def test_profiles(lib: ModuleType, lxd: LXDEnv) -> None:
    client = connect(lib, lxd)
    name, new_name = lxd.unique("p"), lxd.unique("p")
    lxd.delete_later(f"/1.0/profiles/{name}")
    lxd.delete_later(f"/1.0/profiles/{new_name}")
    profile = client.profiles.create(name, config={"limits.cpu": "1"},
                                     devices={"d1": {"type": "disk", "path": "/mnt",
                                                     "source": "/srv"}})
    assert profile.name == name and profile.config == {"limits.cpu": "1"}
    assert client.profiles.exists(name)
    assert name in [p.name for p in client.profiles.all()]
    profile = client.profiles.get(name)
    profile.config = {"limits.cpu": "2"}
    profile.description = "edited"
    profile.save()
    got = client.profiles.get(name)
    assert (got.config, got.description) == ({"limits.cpu": "2"}, "edited")
    got.rename(new_name)
    assert client.profiles.exists(new_name) and not client.profiles.exists(name)
    client.profiles.get(new_name).delete()
    with pytest.raises(lib.exceptions.NotFound):
        client.profiles.get(new_name)
    with pytest.raises(lib.exceptions.LXDAPIException):
        client.profiles.create("bad/name")


@LIBS
def test_storage(lib: ModuleType, lxd: LXDEnv) -> None:
    client = connect(lib, lxd)
    pool = client.storage_pools.get("default")
    assert pool.driver == "dir"
    assert client.storage_pools.exists("default")
    name = lxd.unique("v")
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{name}")
    volume = pool.volumes.create({"name": name, "config": {}}, wait=True)
    assert (volume.name, volume.type) == (name, "custom")
    assert name in [v.name for v in pool.volumes.all()]
    volume = pool.volumes.get("custom", name)
    volume.config = {"user.k": "v"}
    volume.save()
    assert pool.volumes.get("custom", name).config == {"user.k": "v"}
    snapshot = volume.snapshots.create("s1")
    assert snapshot.name == "s1"
    assert volume.snapshots.all() == ["s1"]
    assert volume.snapshots.exists("s1")
    volume.snapshots.get("s1").delete(wait=True)
    assert volume.snapshots.all() == []
    volume.delete()
    with pytest.raises(lib.exceptions.NotFound):
        pool.volumes.get("custom", name)


@LIBS
def test_networks_and_projects(lib: ModuleType, lxd: LXDEnv) -> None:
    client = connect(lib, lxd)
    bridge = client.networks.get("lxdbr0")
    assert (bridge.type, bridge.managed) == ("bridge", True)
    assert client.networks.exists("lxdbr0")
    name = lxd.unique("n")[:15]
    lxd.delete_later(f"/1.0/networks/{name}")
    network = client.networks.create(name, description="d", type="bridge",
                                     config={"ipv4.address": "none", "ipv6.address": "none"})
    assert network.description == "d"
    network.delete()
    assert not client.networks.exists(name)
    project_name = lxd.unique("prj")
    lxd.delete_later(f"/1.0/projects/{project_name}")
    project = client.projects.create(project_name, description="p")
    assert project.config["features.profiles"] == "true"
    assert project_name in [p.name for p in client.projects.all()]
    scoped = lib.Client(endpoint=lxd.socket_path, project=project_name)
    if lib is pytest_lxd:
        lxd.clients.append(scoped)
    assert [p.name for p in scoped.profiles.all()] == ["default"]


@LIBS
def test_certificates_and_operations(lib: ModuleType, lxd: LXDEnv, tmp_path: Path) -> None:
    client = connect(lib, lxd)
    cert = self_signed(tmp_path)
    lxd.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    created = client.certificates.create("", Path(cert.cert_file).read_bytes(),
                                         name=lxd.unique("cert"))
    assert created.fingerprint == cert.fingerprint
    assert cert.fingerprint in [c.fingerprint for c in client.certificates.all()]
    client.certificates.get(cert.fingerprint).delete()
    response = client.api.certificates.post(json={"type": "client", "token": True,
                                                  "name": lxd.unique("tok")})
    op_url = response.json()["operation"]
    op = client.operations.get(op_url)
    assert op.status == "Running"
    client.api.operations[op.id].delete()
    with pytest.raises(lib.exceptions.LXDAPIException):
        client.operations.wait_for_operation(op_url)  # a cancelled operation


@LIBS
def test_event_types(lib: ModuleType) -> None:
    assert lib.EventType.Lifecycle.value == "lifecycle"
    assert lib.EventType.All.value == "all"
