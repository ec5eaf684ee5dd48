"""Managed networks (bridges with no addresses: nothing leaves the host). The test's project
has no ``features.networks``, so its networks are the host's, as LXD does it."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import Network

QUIET = {"ipv4.address": "none", "ipv6.address": "none"}


def test_create_get_all_exists(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("n")
    created = lxd_client.networks.create(name, description="quiet bridge", config=QUIET)
    assert isinstance(created, Network)
    assert (created.name, created.type, created.managed) == (name, "bridge", True)
    assert (created.description, created.status) == ("quiet bridge", "Created")
    assert {k: v for k, v in created.config.items() if k in QUIET} == QUIET
    assert lxd_client.networks.get(name) == created
    assert lxd_client.networks.get(name).etag
    names = [n.name for n in lxd_client.networks.all()]
    assert name in names and "lxdbr0" in names
    assert lxd_client.networks.exists(name) and not lxd_client.networks.exists("nope")
    default = lxd_backend.client(project=None)
    assert default.networks.exists(name)  # no features.networks: it is the host's


def test_change_dirty_save_sync_rollback(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("n")
    network = lxd_client.networks.create(name, config=QUIET)
    network.config["user.purpose"] = "tests"
    network.description = "changed"
    assert network.dirty_fields == ["config", "description"]
    network.save()
    assert not network.dirty
    fresh = lxd_client.networks.get(name)
    assert fresh.config["user.purpose"] == "tests" and fresh.description == "changed"
    network.config.pop("user.purpose")
    network.rollback()
    assert network.config["user.purpose"] == "tests" and not network.dirty
    theirs = lxd_backend.client().networks.get(name)
    theirs.description = "theirs"
    theirs.save()
    network.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        network.save()
    network.sync()
    assert network.description == "theirs" and not network.dirty


def test_rename_and_delete(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name, new = lxd_backend.unique("n"), lxd_backend.unique("n")
    network = lxd_client.networks.create(name, config=QUIET)
    assert network.rename(new) is network and network.name == new
    assert lxd_client.networks.exists(new) and not lxd_client.networks.exists(name)
    assert network.state().mtu > 0
    network.delete()
    assert not lxd_client.networks.exists(new)


def test_in_use(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("n")
    network = lxd_client.networks.create(name, config=QUIET)
    lxd_client.profiles.create("nic", devices={"eth0": {"type": "nic", "network": name}})
    assert lxd_client.networks.get(name).used_by == [
        lxd_backend.object_url("/1.0/profiles/nic")]
    with pytest.raises(exceptions.LXDAPIException, match="The network is currently in use"):
        network.delete()
    lxd_client.profiles.get("nic").delete()
    network.delete()


def test_errors(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    with pytest.raises(exceptions.NotFound, match="Network not found"):
        lxd_client.networks.get("nope")
    name = lxd_backend.unique("n")
    lxd_client.networks.create(name, config=QUIET)
    with pytest.raises(exceptions.LXDAPIException, match="The network already exists") as dup:
        lxd_client.networks.create(name, config=QUIET)
    assert dup.value.error_code == 400  # LXD 5.0.2: not a 409
    with pytest.raises(exceptions.LXDAPIException) as bad:
        lxd_client.networks.create(lxd_backend.unique("n"), type="nope")
    assert bad.value.error_code == 400
    with pytest.raises(exceptions.NotFound, match="Failed loading network: Network not found"):
        lxd_client.networks.get("lo").delete()  # unmanaged: not LXD's to delete
