"""``instance.backups`` and ``client.instances.create_from_backup``: create (named,
auto-named, duplicate), all, get, exists, rename, export (bytes, path, file object), delete,
and import; ``volume.backups`` and ``pool.volumes.create_from_backup``; on both backends."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import Instance, InstanceBackup, Operation, StorageVolumeBackup

from .conftest import LXDEnv
from .instance_helpers import make, remove_later


@pytest.fixture
def inst(lxd: LXDEnv) -> Instance:
    return make(lxd)


def test_create_get_all_exists_delete(inst: Instance) -> None:
    backup = inst.backups.create("first", instance_only=True)
    assert isinstance(backup, InstanceBackup) and backup.name == "first"
    assert backup.instance is inst
    assert (backup.instance_only, backup.container_only, backup.optimized_storage) == (
        True, True, False)
    assert backup.expires_at is None  # LXD's 0001-01-01 zero time
    assert backup.created_at.endswith("Z") and not backup.dirty and backup.extra == {}
    assert inst.backups.exists("first") and not inst.backups.exists("nope")
    assert inst.backups.get("first") == backup
    assert [b.name for b in inst.backups.all()] == ["first"]
    loaded = inst.backups.all(recursion=1)
    assert [b.name for b in loaded] == ["first"] and loaded[0].created_at == backup.created_at
    with pytest.raises(exceptions.NotFound, match="Instance backup not found"):
        inst.backups.get("nope")
    assert isinstance(backup.delete(wait=True), Operation)
    assert inst.backups.all() == []


def test_auto_names_expiry_and_duplicates(inst: Instance) -> None:
    assert inst.backups.create().name == "backup0"
    timed = inst.backups.create(expires_at="2030-01-02T03:04:05Z")
    assert (timed.name, timed.expires_at) == ("backup1", "2030-01-02T03:04:05Z")
    with pytest.raises(exceptions.OperationFailed, match="already exists"):
        inst.backups.create("backup0")
    with pytest.raises(exceptions.LXDAPIException, match="may not contain slashes"):
        inst.backups.create("a/b")
    with pytest.raises(exceptions.LXDAPIException, match="Invalid compression algorithm"):
        inst.backups.create("c", compression_algorithm="bogus")
    assert sorted(b.name for b in inst.backups.all()) == ["backup0", "backup1"]


def test_embedded_backups(lxd: LXDEnv, inst: Instance) -> None:
    assert inst.embedded_backups is None
    inst.backups.create("b")
    full = {i.name: i for i in lxd.client.instances.all(recursion=2)}[inst.name]
    embedded = full.embedded_backups
    assert embedded is not None and [b.name for b in embedded] == ["b"]
    assert embedded[0].instance is full and embedded[0].instance_only is False


def test_rename(inst: Instance) -> None:
    backup = inst.backups.create("old")
    op = backup.rename("new")
    assert isinstance(op, Operation) and backup.name == "new"
    assert inst.backups.exists("new") and not inst.backups.exists("old")
    with pytest.raises(exceptions.OperationFailed, match="file exists"):
        backup.rename("")
    assert backup.name == "new"


def test_export_bytes_path_and_file(inst: Instance, tmp_path: Path) -> None:
    inst.snapshots.create("s1")
    backup = inst.backups.create("b", compression_algorithm="xz")
    data = backup.export()
    assert data.startswith(b"\xfd7zXZ")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert names[0] == "backup/index.yaml"
    assert "backup/container/rootfs/bin/busybox" in names
    assert "backup/snapshots/s1/rootfs/bin/busybox" in names
    target = tmp_path / "backup.tar.xz"
    assert backup.export(target) is None
    assert target.read_bytes()[:6] == data[:6] and target.stat().st_size > 1000
    buffer = io.BytesIO()
    backup.export(buffer)
    assert buffer.getvalue()[:6] == data[:6]


def test_create_from_backup(lxd: LXDEnv, inst: Instance, tmp_path: Path) -> None:
    inst.config["user.mark"] = "1"
    inst.save(wait=True)
    inst.files.put("/root/note", b"hello\n")
    inst.snapshots.create("s1")
    data = inst.backups.create("b").export()
    copy = lxd.unique("imp")
    remove_later(lxd, copy)
    restored = lxd.client.instances.create_from_backup(data, name=copy)
    assert isinstance(restored, Instance) and restored.name == copy
    assert restored.config["user.mark"] == "1" and restored.status == "Stopped"
    assert restored.files.get("/root/note") == b"hello\n"
    assert [s.name for s in restored.snapshots.all()] == ["s1"]
    # From a path and a file object too; a taken name fails the restore.
    path = tmp_path / "b.tar.gz"
    path.write_bytes(data)
    with pytest.raises(exceptions.OperationFailed, match="already exists on target"):
        lxd.client.instances.create_from_backup(path, name=copy)
    other = lxd.unique("imp")
    remove_later(lxd, other)
    with open(path, "rb") as handle:
        assert lxd.client.instances.create_from_backup(handle, name=other,
                                                       pool="default").name == other
    # Without a name, the backup's own (taken here) is used.
    with pytest.raises(exceptions.OperationFailed, match="already exists on target"):
        lxd.client.instances.create_from_backup(data)
    with pytest.raises(exceptions.LXDAPIException, match="Storage pool not found"):
        lxd.client.instances.create_from_backup(data, name=lxd.unique("imp"), pool="nopool")
    with pytest.raises(exceptions.LXDAPIException, match="Unsupported compression"):
        lxd.client.instances.create_from_backup(b"garbage" * 10, name=lxd.unique("imp"))


# -- custom volumes ------------------------------------------------------------------------------


def test_volume_backups(lxd: LXDEnv, tmp_path: Path) -> None:
    pool = lxd.client.storage_pools.get("default")
    name = lxd.unique("v")
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{name}")
    volume = pool.volumes.create({"name": name, "config": {"user.k": "v"}})
    snap = volume.snapshots.create("vs1")
    lxd.later(lambda: snap.delete(wait=True))
    first = volume.backups.create()
    assert isinstance(first, StorageVolumeBackup) and first.name == "backup0"
    assert (first.volume_only, first.optimized_storage, first.expires_at) == (
        False, False, None)
    only = volume.backups.create("only", volume_only=True, compression_algorithm="none",
                                 expires_at="2030-01-01T00:00:00Z")
    assert (only.volume_only, only.expires_at) == (True, "2030-01-01T00:00:00Z")
    assert [b.name for b in volume.backups.all()] == ["backup0", "only"]
    assert volume.backups.exists("only") and not volume.backups.exists("nope")
    assert volume.backups.get("only") == only
    with pytest.raises(exceptions.NotFound, match="Storage volume backup not found"):
        volume.backups.get("nope")
    with pytest.raises(exceptions.OperationFailed, match="already exists"):
        volume.backups.create("only")
    first.rename("full")
    assert first.name == "full" and [b.name for b in volume.backups.all(recursion=1)] == [
        "full", "only"]
    data = first.export()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["backup/index.yaml", "backup/volume-snapshots/vs1",
                                  "backup/volume"]
    path = tmp_path / "v.tar.gz"
    first.export(path)
    copy = lxd.unique("v")
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{copy}")
    lxd.delete_later(f"/1.0/storage-pools/default/volumes/custom/{copy}/snapshots/vs1")
    restored = pool.volumes.create_from_backup(path, name=copy)
    assert (restored.name, restored.config) == (copy, {"user.k": "v"})
    assert restored.snapshots.all() == ["vs1"]
    with pytest.raises(exceptions.OperationFailed, match="UNIQUE constraint failed"):
        pool.volumes.create_from_backup(data)  # the backup's own name is taken
    only.delete(wait=True)
    assert [b.name for b in volume.backups.all()] == ["full"]
