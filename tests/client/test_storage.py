"""Storage pools, volumes and volume snapshots through the client."""

from __future__ import annotations

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import StoragePool, StorageVolume, StorageVolumeSnapshot

from .conftest import LXDEnv


def make_volume(lxd: LXDEnv, **definition: object) -> StorageVolume:
    name = lxd.unique("v")
    pool = lxd.client.storage_pools.get("default")
    volume = pool.volumes.create({"name": name, **definition})
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{name}")
    return volume


def test_pools(lxd: LXDEnv) -> None:
    pools = lxd.client.storage_pools.all()
    assert "default" in [p.name for p in pools]
    pool = lxd.client.storage_pools.get("default")
    assert (pool.driver, pool.status) == ("dir", "Created")
    assert pool.etag is None  # LXD 5.0.2 sends no ETag for pools
    assert "/1.0/profiles/default" in pool.used_by
    assert lxd.client.storage_pools.exists("default")
    assert not lxd.client.storage_pools.exists("nope-pl")
    with pytest.raises(exceptions.NotFound, match="Storage pool not found"):
        lxd.client.storage_pools.get("nope-pl")
    resources = pool.resources.get()
    assert resources.space["total"] > 0 and "inodes" in resources


def test_pool_create_save_delete(lxd: LXDEnv) -> None:
    name = lxd.unique("sp")
    pool = lxd.client.storage_pools.create({"name": name, "driver": "dir",
                                            "description": "test pool"})
    lxd.delete_later(f"/1.0/storage-pools/{name}")
    assert isinstance(pool, StoragePool)
    assert (pool.name, pool.driver, pool.description) == (name, "dir", "test pool")
    pool.description = "changed"
    pool.save()  # no ETag: save() re-reads the pool first
    assert lxd.client.storage_pools.get(name).description == "changed"
    other = lxd.new_client().storage_pools.get(name)
    other.description = "theirs"
    other.save()
    pool.description = "mine"
    with pytest.raises(exceptions.ETagMismatch, match="changed on the server"):
        pool.save()
    assert lxd.client.storage_pools.get(name).description == "theirs"
    pool.sync()
    pool.delete()
    assert not lxd.client.storage_pools.exists(name)


def test_pool_in_use_cannot_be_deleted(lxd: LXDEnv) -> None:
    name = lxd.unique("sp")
    pool = lxd.client.storage_pools.create({"name": name, "driver": "dir"})
    lxd.delete_later(f"/1.0/storage-pools/{name}")
    profile = lxd.client.profiles.create(
        lxd.unique("p"), devices={"root": {"type": "disk", "path": "/", "pool": name}})
    lxd.delete_later(f"/1.0/profiles/{profile.name}")
    with pytest.raises(exceptions.LXDAPIException,
                       match="The storage pool is currently in use") as info:
        pool.delete()
    assert info.value.error_code == 400
    assert lxd.client.storage_pools.exists(name)


def test_volumes(lxd: LXDEnv) -> None:
    volume = make_volume(lxd, config={"size": "10MiB"}, description="v desc")
    assert (volume.type, volume.content_type) == ("custom", "filesystem")
    assert volume.description == "v desc"  # pylxd had description read-only
    assert volume.config["size"] == "10MiB"
    assert volume.etag
    pool = lxd.client.storage_pools.get("default")
    listed = {(v.type, v.name): v for v in pool.volumes.all()}
    assert ("custom", volume.name) in listed
    assert listed[("custom", volume.name)] == volume
    assert pool.volumes.exists("custom", volume.name)
    assert not pool.volumes.exists("custom", "nope-pl")
    with pytest.raises(exceptions.NotFound, match="Storage pool volume not found"):
        pool.volumes.get("custom", "nope-pl")
    volume.description = "changed"
    volume.config["user.k"] = "v"
    volume.save()
    got = pool.volumes.get("custom", volume.name)
    assert got.description == "changed" and got.config["user.k"] == "v"
    full = {v.name: v for v in pool.volumes.all(recursion=1)}[volume.name]
    assert full.description == "changed"


def test_volume_duplicate_is_a_conflict(lxd: LXDEnv) -> None:
    volume = make_volume(lxd)
    with pytest.raises(exceptions.Conflict, match="Volume by that name already exists"):
        lxd.client.storage_pools.get("default").volumes.create("custom", {"name": volume.name})


def test_volume_rename_and_delete(lxd: LXDEnv) -> None:
    volume = make_volume(lxd)
    new = lxd.unique("v")
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{new}")
    assert volume.rename(new) is volume
    assert volume.name == new
    pool = lxd.client.storage_pools.get("default")
    assert pool.volumes.exists("custom", new)
    volume.description = "renamed"
    volume.save()
    assert pool.volumes.get("custom", new).description == "renamed"
    volume.delete()
    assert not pool.volumes.exists("custom", new)


def test_volume_snapshots(lxd: LXDEnv) -> None:
    volume = make_volume(lxd, config={"user.v": "1"})
    snap = volume.snapshots.create("s1")
    assert isinstance(snap, StorageVolumeSnapshot)
    assert snap.name == "s1"  # not "volume/s1"
    assert snap.expires_at is None
    assert snap.config["user.v"] == "1"
    assert volume.snapshots.all() == ["s1"]
    objects = volume.snapshots.all(use_recursion=True)
    assert [s.name for s in objects] == ["s1"]
    assert volume.snapshots.exists("s1") and not volume.snapshots.exists("nope")
    auto = volume.snapshots.create()
    assert isinstance(auto, StorageVolumeSnapshot) and auto.name == "snap0"
    snap.description = "described"
    snap.save()
    assert volume.snapshots.get("s1").description == "described"
    snap.rename("s2")
    assert snap.name == "s2" and sorted(volume.snapshots.all()) == ["s2", "snap0"]
    assert snap.restore(wait=True) is None  # LXD restores the content (config stays)
    assert snap.delete(wait=True) is not None  # a background operation
    assert volume.snapshots.all() == ["snap0"]
    pool_volumes = lxd.client.storage_pools.get("default").volumes.all()
    assert ("custom", f"{volume.name}/snap0") in {(v.type, v.name) for v in pool_volumes}


def test_snapshot_without_wait_returns_the_operation(lxd: LXDEnv) -> None:
    volume = make_volume(lxd)
    op = volume.snapshots.create("s1", wait=False)
    if isinstance(op, StorageVolumeSnapshot):
        pytest.fail("expected the background operation")
    assert op.wait() is op
    assert op.status == "Success" and op.status_code == 200
    assert volume.snapshots.exists("s1")


def test_snapshot_expiry(lxd: LXDEnv) -> None:
    volume = make_volume(lxd)
    snap = volume.snapshots.create("s1", expires_at="2099-01-01T00:00:00Z")
    assert isinstance(snap, StorageVolumeSnapshot)
    assert snap.expires_at is not None and snap.expires_at.startswith("2099-01-01")
    snap.expires_at = None
    snap.save()
    assert volume.snapshots.get("s1").expires_at is None
