"""pylxd's "Getting started" flow, unchanged but for the import: profiles, storage, instances.

A pylxd user switches with ``from pytest_lxd import Client``: the same calls, the same
attribute names, ``dirty``/``rollback()``/``save(wait=True)`` behaving as the docs say.
"""

from __future__ import annotations

from pytest_lxd import Client

from .conftest import LXDEnv


def test_getting_started(lxd: LXDEnv) -> None:
    client = Client(endpoint=lxd.socket_path)  # pylxd: Client() on the local socket
    lxd.clients.append(client)
    assert client.trusted

    # Managers: all() / exists() / get() / create()
    profiles = client.profiles.all()
    assert "default" in [p.name for p in profiles]
    assert client.profiles.exists("default")
    assert [n.name for n in client.networks.all() if n.name == "lxdbr0"] == ["lxdbr0"]
    assert "default" in [p.name for p in client.storage_pools.all()]
    assert "default" in [p.name for p in client.projects.all()]
    assert isinstance(client.certificates.all(), list)
    assert isinstance(client.operations.all(), list)

    name = lxd.unique("gs")
    profile = client.profiles.create(name, config={"limits.memory": "64MB"},
                                     devices={"root": {"path": "/", "pool": "default",
                                                       "type": "disk"}})
    lxd.delete_later(f"/1.0/profiles/{name}")

    # Change attributes, see them dirty, roll back.
    profile.config["limits.cpu"] = "2"
    profile.description = "getting started"
    assert profile.dirty
    profile.rollback()
    assert not profile.dirty
    assert profile.config == {"limits.memory": "64MB"} and profile.description == ""

    # Change again and save (wait=True waits for any background operation).
    profile.config.update({"security.nesting": "true"})
    profile.devices.update({"eth0": {"parent": "lxdbr0", "nictype": "bridged",
                                     "type": "nic", "name": "eth0"}})
    profile.save(wait=True)
    assert not profile.dirty
    again = client.profiles.get(name)
    assert again.config == {"limits.memory": "64MB", "security.nesting": "true"}
    assert set(again.devices) == {"root", "eth0"}

    # The same with a storage volume, whose operations are background ones.
    pool = client.storage_pools.get("default")
    volume = pool.volumes.create({"name": lxd.unique("gsv"), "config": {}}, wait=True)
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{volume.name}")
    volume.description = "getting started volume"
    volume.save(wait=True)
    snapshot = volume.snapshots.create("first", wait=True)
    assert pool.volumes.get("custom", volume.name).description == "getting started volume"
    assert volume.snapshots.all() == ["first"]
    snapshot.delete(wait=True)
    volume.delete(wait=True)
    profile.delete(wait=True)
    assert not client.profiles.exists(name)


def test_getting_started_instances(lxd: LXDEnv) -> None:
    """The instance half of pylxd's "Getting started" page."""
    from .instance_helpers import remove_later, with_busybox

    with_busybox(lxd)
    client = Client(endpoint=lxd.socket_path)
    lxd.clients.append(client)
    assert isinstance(client.containers.all(), list)

    name = lxd.unique("gs")
    remove_later(lxd, name)
    config = {"name": name, "source": {"type": "image", "alias": "busybox"}}
    container = client.containers.create(config, wait=True)
    assert container in client.containers.all()
    assert client.containers.get(name).status == "Stopped"

    # Background operations: wait=True returns once LXD is done.
    container.start(wait=True)
    assert container.status == "Running"
    container.freeze(wait=True)
    assert container.status == "Frozen"
    container.unfreeze(wait=True)

    # Change attributes, see them dirty, roll back.
    container.description = "getting started"
    container.config["user.note"] = "hello"
    assert container.dirty
    container.rollback()
    assert not container.dirty and container.description == ""
    assert "user.note" not in container.config

    # Change again and save (instance updates run in the background: wait=True).
    container.description = "getting started"
    container.config["user.note"] = "hello"
    container.save(wait=True)
    assert not container.dirty
    again = client.containers.get(name)
    assert again.description == "getting started" and again.config["user.note"] == "hello"

    exit_code, stdout, stderr = container.execute(["echo", "hello"])
    assert (exit_code, stdout, stderr) == (0, "hello\n", "")
    container.stop(wait=True)
    container.delete(wait=True)
    assert not client.containers.exists(name)
