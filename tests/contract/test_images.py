"""Images and aliases, in the test's project (``features.images``): upload, get, all,
exists, change + dirty + save, sync, rollback, alias rename, delete, errors."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, busybox, exceptions
from pytest_lxd.backends import LXDBackend

IMAGE = busybox.placeholder_image()
FINGERPRINT = busybox.fingerprint(IMAGE)


def test_upload_get_all_exists(lxd_client: Client) -> None:
    image = lxd_client.images.create(IMAGE, filename="bb.tar.gz", aliases=["bb"])
    assert image.fingerprint == FINGERPRINT
    assert (image.size, image.filename, image.type) == (len(IMAGE), "bb.tar.gz", "container")
    assert (image.architecture, image.public) == (busybox.architecture(), False)
    assert image.properties["os"] == "busybox"
    assert image.aliases == [{"name": "bb", "description": ""}]
    assert lxd_client.images.get(FINGERPRINT) == image
    assert lxd_client.images.get(FINGERPRINT[:12]) == image  # a prefix
    assert lxd_client.images.get_by_alias("bb") == image
    assert [i.fingerprint for i in lxd_client.images.all()] == [FINGERPRINT]
    assert lxd_client.images.exists(FINGERPRINT) and lxd_client.images.exists("bb", alias=True)
    assert not lxd_client.images.exists("0" * 64)


def test_change_dirty_save_sync_rollback(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    image = lxd_client.images.create(IMAGE)
    image.public = True
    image.properties["user.purpose"] = "tests"
    assert image.dirty_fields == ["properties", "public"]
    image.save()
    assert not image.dirty
    fresh = lxd_client.images.get(FINGERPRINT)
    assert fresh.public and fresh.properties["user.purpose"] == "tests"
    image.public = False
    image.rollback()
    assert image.public and not image.dirty
    theirs = lxd_backend.client().images.get(FINGERPRINT)
    theirs.auto_update = True
    theirs.save()
    image.public = False
    with pytest.raises(exceptions.ETagMismatch):
        image.save()
    image.sync()
    assert image.auto_update and image.public and not image.dirty


def test_aliases_and_delete(lxd_client: Client) -> None:
    image = lxd_client.images.create(IMAGE)
    alias = lxd_client.images.aliases.create("bb", FINGERPRINT, "the busybox image")
    assert (alias.name, alias.target, alias.description) == ("bb", FINGERPRINT,
                                                             "the busybox image")
    assert [a.name for a in lxd_client.images.aliases.all()] == ["bb"]
    alias.description = "changed"
    alias.save()
    assert lxd_client.images.aliases.get("bb").description == "changed"
    assert alias.rename("bb2") is alias and alias.name == "bb2"
    assert not lxd_client.images.aliases.exists("bb")
    assert alias.image == image
    image.delete(wait=True)
    assert not lxd_client.images.exists(FINGERPRINT)
    assert lxd_client.images.aliases.all() == []  # an image's aliases go with it


def test_errors(lxd_client: Client) -> None:
    with pytest.raises(exceptions.NotFound, match="Image not found"):
        lxd_client.images.get("0" * 64)
    lxd_client.images.create(IMAGE, aliases=["bb"])
    with pytest.raises(exceptions.OperationFailed,
                       match="Image with same fingerprint already exists"):
        lxd_client.images.create(IMAGE)
    with pytest.raises(exceptions.Conflict, match='Alias "bb" already exists'):
        lxd_client.images.aliases.create("bb", FINGERPRINT)
    with pytest.raises(exceptions.NotFound, match="Image not found"):
        lxd_client.images.aliases.create("other", "0" * 64)
