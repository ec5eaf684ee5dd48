"""Instances (containers from ``lxd_image``, which really boots on a real host) and their
snapshots: create, get, all, exists, change + dirty + save, sync, rollback, start/stop,
rename, delete, errors."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import Instance


def _create(client: Client, image: str, name: str = "c1") -> Instance:
    return client.instances.create({"name": name, "source": {"type": "image",
                                                             "alias": image}}, wait=True)


def test_create_get_all_exists(lxd_client: Client, lxd_backend: LXDBackend,
                               lxd_image: str) -> None:
    created = lxd_client.instances.create(
        {"name": "c1", "source": {"type": "image", "alias": lxd_image},
         "config": {"user.a": "1"}, "description": "a container"}, wait=True)
    assert (created.name, created.type, created.status) == ("c1", "container", "Stopped")
    assert (created.project, created.profiles) == (lxd_backend.project, ["default"])
    assert (created.description, created.config["user.a"]) == ("a container", "1")
    assert created.expanded_devices["root"] == {"path": "/", "pool": "default",
                                                "type": "disk"}
    assert lxd_client.instances.get("c1") == created
    assert [i.name for i in lxd_client.instances.all()] == ["c1"]
    assert lxd_client.instances.exists("c1") and not lxd_client.instances.exists("nope")


def test_change_dirty_save_sync_rollback(lxd_client: Client, lxd_backend: LXDBackend,
                                         lxd_image: str) -> None:
    instance = _create(lxd_client, lxd_image)
    instance.config["user.purpose"] = "tests"
    instance.description = "changed"
    assert instance.dirty_fields == ["config", "description"]
    instance.save(wait=True)
    assert not instance.dirty
    fresh = lxd_client.instances.get("c1")
    assert (fresh.config["user.purpose"], fresh.description) == ("tests", "changed")
    instance.description = "local"
    instance.rollback()
    assert instance.description == "changed" and not instance.dirty
    theirs = lxd_backend.client().instances.get("c1")
    theirs.config["user.who"] = "theirs"  # an instance's ETag covers config, not description
    theirs.save(wait=True)
    instance.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        instance.save(wait=True)
    instance.sync()
    assert instance.config["user.who"] == "theirs" and not instance.dirty


def test_start_stop_rename_delete(lxd_client: Client, lxd_image: str) -> None:
    instance = _create(lxd_client, lxd_image)
    instance.start(wait=True)
    assert instance.state().status == "Running" and instance.status == "Running"
    with pytest.raises(exceptions.OperationFailed,
                       match="Renaming of running container not allowed"):
        instance.rename("c2", wait=True)
    instance.stop(force=True, wait=True)
    assert instance.state().status == "Stopped"
    instance.rename("c2", wait=True)
    assert instance.name == "c2"
    assert lxd_client.instances.exists("c2") and not lxd_client.instances.exists("c1")
    instance.delete(wait=True)
    assert lxd_client.instances.all() == []


def test_snapshots(lxd_client: Client, lxd_image: str) -> None:
    instance = _create(lxd_client, lxd_image)
    snap = instance.snapshots.create("s1", wait=True)
    assert snap.name == "s1" and not snap.stateful
    assert [s.name for s in instance.snapshots.all()] == ["s1"]
    assert instance.snapshots.exists("s1") and not instance.snapshots.exists("nope")
    snap.rename("s2", wait=True)
    assert [s.name for s in instance.snapshots.all()] == ["s2"]
    instance.restore_snapshot("s2", wait=True)
    snap.delete(wait=True)
    assert instance.snapshots.all() == []


def test_errors(lxd_client: Client, lxd_image: str) -> None:
    with pytest.raises(exceptions.NotFound, match="Instance not found"):
        lxd_client.instances.get("nope")
    _create(lxd_client, lxd_image)
    with pytest.raises(exceptions.OperationFailed, match='This "instances" entry already'):
        _create(lxd_client, lxd_image)
    with pytest.raises(exceptions.NotFound, match="Image alias not found"):
        lxd_client.instances.create({"name": "c2", "source": {"type": "image",
                                                              "alias": "nope"}}, wait=True)
    running = lxd_client.instances.get("c1")
    running.start(wait=True)
    with pytest.raises(exceptions.LXDAPIException, match="Instance is running"):
        running.delete(wait=True)
