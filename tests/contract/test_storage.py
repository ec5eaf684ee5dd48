"""Storage pools (global), custom volumes (in the test's project) and volume snapshots."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import StoragePool, StorageVolume, StorageVolumeSnapshot


def test_pool_create_get_all_exists(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("sp")
    created = lxd_client.storage_pools.create({"name": name, "driver": "dir",
                                               "description": "a pool"})
    assert isinstance(created, StoragePool)
    assert (created.name, created.driver, created.description) == (name, "dir", "a pool")
    assert (created.status, created.used_by) == ("Created", None)  # 5.0.2: null, not []
    assert created.etag is None  # LXD 5.0.2 sends no ETag for pools
    assert lxd_client.storage_pools.get(name) == created
    names = [p.name for p in lxd_client.storage_pools.all()]
    assert name in names and "default" in names
    assert lxd_client.storage_pools.exists(name)
    assert not lxd_client.storage_pools.exists("nope")
    assert created.resources.get().space["total"] > 0


def test_pool_change_dirty_save_sync_rollback(lxd_client: Client,
                                              lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("sp")
    pool = lxd_client.storage_pools.create({"name": name, "driver": "dir"})
    pool.description = "changed"
    pool.config["user.purpose"] = "tests"
    assert pool.dirty_fields == ["config", "description"]
    pool.save()
    assert not pool.dirty
    fresh = lxd_client.storage_pools.get(name)
    assert (fresh.description, fresh.config["user.purpose"]) == ("changed", "tests")
    pool.description = "local only"
    pool.rollback()
    assert pool.description == "changed" and not pool.dirty
    theirs = lxd_backend.client().storage_pools.get(name)
    theirs.description = "theirs"
    theirs.save()
    pool.description = "mine"
    with pytest.raises(exceptions.ETagMismatch, match="changed on the server"):
        pool.save()  # no ETag, but the client re-reads before it writes
    pool.sync()
    assert pool.description == "theirs" and not pool.dirty
    pool.delete()
    assert not lxd_client.storage_pools.exists(name)


def test_pool_errors(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    with pytest.raises(exceptions.NotFound, match="Storage pool not found"):
        lxd_client.storage_pools.get("nope")
    name = lxd_backend.unique("sp")
    pool = lxd_client.storage_pools.create({"name": name, "driver": "dir"})
    lxd_client.profiles.create("root", devices={"root": {"type": "disk", "path": "/",
                                                         "pool": name}})
    with pytest.raises(exceptions.LXDAPIException,
                       match="The storage pool is currently in use") as in_use:
        pool.delete()
    assert in_use.value.error_code == 400
    with pytest.raises(exceptions.LXDAPIException) as dup:
        lxd_client.storage_pools.create({"name": name, "driver": "dir"})
    assert dup.value.error_code in (400, 409)
    with pytest.raises(exceptions.LXDAPIException) as bad:
        lxd_client.storage_pools.create({"name": lxd_backend.unique("sp"), "driver": "nope"})
    assert (bad.value.error_code, str(bad.value)) == (500, "Unknown driver")


def _pool(client: Client) -> StoragePool:
    return client.storage_pools.get("default")


def test_volume_lifecycle(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    pool = _pool(lxd_client)
    created = pool.volumes.create({"name": "vol", "description": "data",
                                   "config": {"user.a": "1"}})
    assert isinstance(created, StorageVolume)
    assert (created.name, created.type, created.content_type) == ("vol", "custom",
                                                                  "filesystem")
    assert (created.description, created.config, created.project) == (
        "data", {"user.a": "1"}, lxd_backend.project)
    assert created.etag
    assert pool.volumes.get("custom", "vol") == created
    assert [(v.type, v.name) for v in pool.volumes.all()] == [("custom", "vol")]
    assert pool.volumes.exists("custom", "vol") and not pool.volumes.exists("custom", "nope")

    created.config["user.b"] = "2"
    created.description = "changed"
    assert created.dirty_fields == ["config", "description"]
    created.save()
    fresh = pool.volumes.get("custom", "vol")
    assert (fresh.config, fresh.description) == ({"user.a": "1", "user.b": "2"}, "changed")
    created.config.clear()
    created.rollback()
    assert created.config == fresh.config and not created.dirty
    theirs = _pool(lxd_backend.client()).volumes.get("custom", "vol")
    theirs.config["user.c"] = "theirs"  # a volume's ETag covers its config, not description
    theirs.save()
    created.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        created.save()
    created.sync()
    assert created.config["user.c"] == "theirs" and created.description == "changed"

    assert created.rename("renamed") is created and created.name == "renamed"
    assert pool.volumes.exists("custom", "renamed")
    assert not pool.volumes.exists("custom", "vol")
    created.delete()
    assert pool.volumes.all() == []


def test_volume_errors(lxd_client: Client) -> None:
    pool = _pool(lxd_client)
    with pytest.raises(exceptions.NotFound, match="Storage pool volume not found"):
        pool.volumes.get("custom", "nope")
    pool.volumes.create({"name": "vol"})
    with pytest.raises(exceptions.Conflict, match="Volume by that name already exists"):
        pool.volumes.create({"name": "vol"})
    with pytest.raises(exceptions.LXDAPIException,
                       match='Currently not allowed to create storage volumes of type "nope"'
                       ) as bad:
        pool.volumes.create("nope", {"name": "v2"})
    assert bad.value.error_code == 400
    lxd_client.profiles.create("uses", devices={"data": {"type": "disk", "pool": "default",
                                                         "source": "vol", "path": "/d"}})
    volume = pool.volumes.get("custom", "vol")
    assert volume.used_by == ["/1.0/profiles/uses?project=" + lxd_client.project] or \
        volume.used_by  # see test_volume_used_by
    with pytest.raises(exceptions.LXDAPIException, match="in use"):
        volume.delete()


def test_snapshot_lifecycle(lxd_client: Client) -> None:
    volume = _pool(lxd_client).volumes.create({"name": "vol", "config": {"user.v": "1"}})
    snap = volume.snapshots.create("s1")
    assert isinstance(snap, StorageVolumeSnapshot)
    assert (snap.name, snap.expires_at, snap.config) == ("s1", None, {"user.v": "1"})
    assert volume.snapshots.get("s1") == snap
    assert volume.snapshots.all() == ["s1"]
    assert volume.snapshots.exists("s1") and not volume.snapshots.exists("nope")
    auto = volume.snapshots.create()
    assert isinstance(auto, StorageVolumeSnapshot) and auto.name == "snap0"

    snap.description = "described"
    assert snap.dirty_fields == ["description"]
    snap.save()
    assert volume.snapshots.get("s1").description == "described"
    snap.description = "local"
    snap.rollback()
    assert snap.description == "described"
    snap.description = "other"
    snap.sync()
    assert snap.description == "described" and not snap.dirty

    snap.rename("s2")
    assert sorted(volume.snapshots.all()) == ["s2", "snap0"]
    volume.config["user.v"] = "2"
    volume.save()
    snap.restore(wait=True)
    snap.delete(wait=True)
    assert volume.snapshots.all() == ["snap0"]
    with pytest.raises(exceptions.NotFound):
        volume.snapshots.get("s2")
