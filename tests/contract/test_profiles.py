"""Profiles: create, get, all, exists, change + dirty + save, sync, rollback, rename, delete,
errors. The test's project is its own (``features.profiles``), so lists are exact."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import Profile

DEVICES = {"data": {"type": "disk", "path": "/data", "source": "/tmp"}}


def test_create_get_all_exists(lxd_client: Client) -> None:
    created = lxd_client.profiles.create("web", config={"limits.cpu": "2"}, devices=DEVICES,
                                         description="web servers")
    assert isinstance(created, Profile)
    assert (created.name, created.description) == ("web", "web servers")
    assert (created.config, created.devices, created.used_by) == ({"limits.cpu": "2"},
                                                                  DEVICES, [])
    got = lxd_client.profiles.get("web")
    assert got == created and got.etag and not got.dirty
    assert [p.name for p in lxd_client.profiles.all()] == ["default", "web"]
    loaded = {p.name: p for p in lxd_client.profiles.all(recursion=1)}
    assert loaded["web"].config == {"limits.cpu": "2"}
    assert lxd_client.profiles.exists("web")
    assert not lxd_client.profiles.exists("nope")


def test_change_dirty_save_sync_rollback(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    profile = lxd_client.profiles.create("web", config={"limits.cpu": "2"})
    profile.config["limits.memory"] = "1GiB"  # an in-place edit counts
    profile.description = "changed"
    assert profile.dirty and profile.dirty_fields == ["config", "description"]
    profile.save()
    assert not profile.dirty
    fresh = lxd_client.profiles.get("web")
    assert fresh.config == {"limits.cpu": "2", "limits.memory": "1GiB"}
    assert fresh.description == "changed"

    profile.config = {"user.x": "1"}
    profile.rollback()
    assert not profile.dirty and profile.config == fresh.config

    theirs = lxd_backend.client().profiles.get("web")
    theirs.description = "theirs"
    theirs.save()
    profile.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        profile.save()  # a concurrent change is never overwritten
    profile.sync()
    assert profile.description == "theirs" and not profile.dirty
    assert profile.save() is None  # nothing to save


def test_rename_and_delete(lxd_client: Client) -> None:
    profile = lxd_client.profiles.create("web")
    assert profile.rename("www") is profile and profile.name == "www"
    assert lxd_client.profiles.exists("www") and not lxd_client.profiles.exists("web")
    profile.description = "after the rename"
    profile.save()
    assert lxd_client.profiles.get("www").description == "after the rename"
    profile.delete()
    assert [p.name for p in lxd_client.profiles.all()] == ["default"]


def test_errors(lxd_client: Client) -> None:
    with pytest.raises(exceptions.NotFound, match="Profile not found"):
        lxd_client.profiles.get("nope")
    lxd_client.profiles.create("web")
    with pytest.raises(exceptions.LXDAPIException, match="The profile already exists") as dup:
        lxd_client.profiles.create("web")
    assert dup.value.error_code == 500  # LXD 5.0.2: not a 409
    default = lxd_client.profiles.get("default")
    with pytest.raises(exceptions.LXDAPIException,
                       match='The "default" profile cannot be deleted') as info:
        default.delete()
    assert info.value.error_code == 403
    with pytest.raises(exceptions.LXDAPIException,
                       match='The "default" profile cannot be renamed'):
        default.rename("other")
    web = lxd_client.profiles.get("web")
    web.config["limits.cpu"] = "lots"
    with pytest.raises(exceptions.LXDAPIException, match="Invalid CPU limit syntax") as bad:
        web.save()
    assert bad.value.error_code == 500  # LXD 5.0.2 checks limits.cpu late: a 500
    assert lxd_client.profiles.get("web").config == {}
