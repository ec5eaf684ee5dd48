"""``instance.snapshots``: create (named, auto-named, duplicate), all, get, exists, rename,
``expires_at`` saves, restore (both ways), publish, copy and delete, on both backends."""

from __future__ import annotations

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import Image, Instance, Operation, Snapshot

from .conftest import LXDEnv
from .instance_helpers import delete_image_later, make, remove_later


@pytest.fixture
def inst(lxd: LXDEnv) -> Instance:
    return make(lxd)


def test_create_get_all_exists_delete(lxd: LXDEnv, inst: Instance) -> None:
    snap = inst.snapshots.create("first")
    assert isinstance(snap, Snapshot) and snap.name == "first"  # no "inst/" prefix
    assert snap.instance is inst and snap.stateful is False
    assert snap.expires_at is None  # LXD's 0001-01-01 zero time
    assert snap.config["image.os"] == "busybox" and snap.profiles == ["default"]
    assert snap.created_at and snap.etag and not snap.dirty
    assert set(snap.extra) <= {"description"}  # every 5.0.2 field is declared
    assert inst.snapshots.exists("first") and not inst.snapshots.exists("nope")
    assert inst.snapshots.get("first") == snap
    assert [s.name for s in inst.snapshots.all()] == ["first"]
    loaded = inst.snapshots.all(recursion=1)
    assert [s.name for s in loaded] == ["first"] and loaded[0].created_at == snap.created_at
    with pytest.raises(exceptions.NotFound):
        inst.snapshots.get("nope")
    assert isinstance(snap.delete(wait=True), Operation)
    assert inst.snapshots.all() == []


def test_auto_names_and_duplicates(inst: Instance) -> None:
    auto = inst.snapshots.create()
    assert auto.name == "snap0"
    assert inst.snapshots.create(None).name == "snap1"
    with pytest.raises(exceptions.OperationFailed):  # LXD accepts it, then fails the op
        inst.snapshots.create("snap0")
    assert sorted(s.name for s in inst.snapshots.all()) == ["snap0", "snap1"]


def test_rename_and_expiry(inst: Instance) -> None:
    snap = inst.snapshots.create("old")
    assert snap.rename("new") is snap
    assert snap.name == "new" and inst.snapshots.exists("new")
    assert not inst.snapshots.exists("old")
    snap.expires_at = "2030-01-02T03:04:05Z"
    assert snap.dirty
    assert isinstance(snap.save(wait=True), Operation)  # LXD updates it in the background
    assert inst.snapshots.get("new").expires_at == "2030-01-02T03:04:05Z"
    snap.expires_at = None
    snap.save(wait=True)
    assert inst.snapshots.get("new").expires_at is None
    created = inst.snapshots.create("timed", expires_at="2031-01-01T00:00:00Z")
    assert created.expires_at == "2031-01-01T00:00:00Z"


def test_restore(lxd: LXDEnv, inst: Instance) -> None:
    inst.files.put("/root/state", b"before")
    inst.config["user.when"] = "before"
    inst.save(wait=True)
    snap = inst.snapshots.create("s1")
    inst.files.put("/root/state", b"after")
    inst.config["user.when"] = "after"
    inst.save(wait=True)
    op = snap.restore()
    assert isinstance(op, Operation) and op.description == "Restoring snapshot"
    op.wait()
    assert inst.files.get("/root/state") == b"before"
    assert lxd.client.instances.get(inst.name).config["user.when"] == "before"
    inst.files.put("/root/state", b"again")
    inst.restore_snapshot("s1", wait=True)
    assert inst.config["user.when"] == "before" and not inst.dirty  # reloaded
    assert inst.files.get("/root/state") == b"before"
    with pytest.raises(exceptions.LXDAPIException):
        inst.restore_snapshot("missing", wait=True)


def test_publish_and_copy(lxd: LXDEnv, inst: Instance) -> None:
    inst.files.put("/root/test-id", lxd.unique("id").encode())  # an image of our own
    snap = inst.snapshots.create("s1")
    image = snap.publish(wait=True, properties={"os": "from-snapshot"})
    delete_image_later(lxd, image)
    assert isinstance(image, Image) and image.properties["os"] == "from-snapshot"
    inst.files.put("/root/test-id", lxd.unique("id").encode())
    second = inst.snapshots.create("s2").publish()
    assert isinstance(second, Operation)
    second.wait()
    assert second.metadata is not None
    delete_image_later(lxd, second.metadata["fingerprint"])
    assert second.metadata["fingerprint"] != image.fingerprint
    name = lxd.unique("c")
    remove_later(lxd, name)
    copied = snap.copy(name)
    assert copied.name == name and copied.files.get("/root/test-id") != b""
    assert copied.snapshots.all() == []  # a copy of a snapshot has none


def test_copy_of_an_instance_takes_its_snapshots(lxd: LXDEnv, inst: Instance) -> None:
    inst.snapshots.create("s1")
    with_snaps, without = lxd.unique("c"), lxd.unique("c")
    remove_later(lxd, with_snaps)
    remove_later(lxd, without)
    assert [s.name for s in inst.copy(with_snaps).snapshots.all()] == ["s1"]
    assert inst.copy(without, instance_only=True).snapshots.all() == []
