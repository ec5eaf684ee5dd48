"""Networks through the client. Managed bridges are made without addresses (no traffic)."""

from __future__ import annotations

import ipaddress
import uuid

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import Network

from .conftest import LXDEnv

QUIET = {"ipv4.address": "none", "ipv6.address": "none"}


def make(lxd: LXDEnv, **kwargs: object) -> Network:
    name = lxd.unique("n")[:15]  # an interface name
    network = lxd.client.networks.create(name, config=dict(QUIET), **kwargs)  # type: ignore
    lxd.delete_later(f"/1.0/networks/{name}")
    return network


def test_all_get_exists(lxd: LXDEnv) -> None:
    names = [n.name for n in lxd.client.networks.all()]
    assert "lxdbr0" in names and "lo" in names
    bridge = lxd.client.networks.get("lxdbr0")
    assert (bridge.type, bridge.managed, bridge.status) == ("bridge", True, "Created")
    assert bridge.config["ipv4.address"] == "none"
    assert bridge.etag
    lo = {n.name: n for n in lxd.client.networks.all(recursion=1)}["lo"]
    assert (lo.type, lo.managed) == ("loopback", False)
    assert lxd.client.networks.exists("lxdbr0")
    assert not lxd.client.networks.exists("nope-pl0")
    with pytest.raises(exceptions.NotFound, match="Network not found"):
        lxd.client.networks.get("nope-pl0")


def test_create_save_rename_delete(lxd: LXDEnv) -> None:
    network = make(lxd, description="test net", type="bridge")
    assert (network.description, network.type, network.managed) == ("test net", "bridge", True)
    network.config["bridge.mtu"] = "1400"
    network.description = "changed"
    network.save()
    got = lxd.client.networks.get(network.name)
    assert got.config["bridge.mtu"] == "1400" and got.description == "changed"
    new = lxd.unique("n")[:15]
    lxd.delete_later(f"/1.0/networks/{new}")
    network.rename(new)
    assert network.name == new and lxd.client.networks.exists(new)
    network.description = "after rename"  # the ETag covers the name: must still save
    network.save()
    assert lxd.client.networks.get(new).description == "after rename"
    network.delete()
    assert not lxd.client.networks.exists(new)


def test_duplicate_network(lxd: LXDEnv) -> None:
    with pytest.raises(exceptions.LXDAPIException, match="The network already exists") as info:
        lxd.client.networks.create("lxdbr0", type="bridge", config=dict(QUIET))
    assert info.value.error_code == 400


def test_concurrent_change(lxd: LXDEnv) -> None:
    network = make(lxd)
    other = lxd.new_client().networks.get(network.name)
    other.description = "theirs"
    other.save()
    network.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        network.save()


def test_state(lxd: LXDEnv) -> None:
    state = lxd.client.networks.get("lxdbr0").state()
    assert state.type == "broadcast"
    assert state["state"] == "up"
    assert "hwaddr" in state


def test_forwards_need_an_address(lxd: LXDEnv) -> None:
    network = lxd.client.networks.get("lxdbr0")
    assert network.forwards.all() == []
    with pytest.raises(exceptions.LXDAPIException,
                       match="Failed creating forward: invalid CIDR address: none"):
        network.forwards.create({"listen_address": "127.0.0.1", "ports": []})
    assert not network.forwards.exists("127.0.0.1")


def test_forwards_lifecycle(lxd: LXDEnv) -> None:
    """On a bridge without any address key (still no address), forwards can be made. LXD 5.0.2
    ignores If-Match on forwards: ``save`` compares the server's state itself."""
    network = make(lxd)
    network.config = {}
    network.save()
    six = f"2001:db8:{uuid.uuid4().hex[:4]}::{uuid.uuid4().hex[:4]}"
    forward = network.forwards.create({"listen_address": six.upper(), "description": "d",
                                       "ports": [{"protocol": "tcp", "listen_port": "80",
                                                  "target_address": "2001:db8::2"}]})
    assert forward.listen_address == str(ipaddress.ip_address(six))  # canonical form
    assert (forward.description, forward.location, forward.config) == ("d", "none", {})
    assert forward.ports[0]["target_port"] == "" and forward.etag
    assert network.forwards.exists(forward.listen_address)
    assert [f.listen_address for f in network.forwards.all(recursion=1)] == [
        forward.listen_address]
    forward.description = "changed"
    assert forward.dirty
    forward.rollback()
    assert not forward.dirty and forward.description == "d"
    forward.config["user.a"] = "1"
    forward.ports = []
    forward.save()
    got = network.forwards.get(forward.listen_address)
    assert (got.config, got.ports, got.description) == ({"user.a": "1"}, [], "d")
    other = lxd.new_client().networks.get(network.name).forwards.get(forward.listen_address)
    other.description = "theirs"
    other.save()
    forward.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        forward.save()
    forward.sync()
    assert forward.description == "theirs" and not forward.dirty
    with pytest.raises(exceptions.LXDAPIException,
                       match="A forward for that listen address already exists") as info:
        network.forwards.create({"listen_address": forward.listen_address})
    assert info.value.error_code == 409
    forward.delete()
    assert not network.forwards.exists(forward.listen_address)
    assert network.forwards.all() == []
