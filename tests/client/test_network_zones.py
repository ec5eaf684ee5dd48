"""DNS zones and records through the client, on both backends (plain database rows: no DNS
is served without ``core.dns_address``, which these tests never set)."""

from __future__ import annotations

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import NetworkZone, NetworkZoneRecord

from .conftest import LXDEnv


def make(lxd: LXDEnv, **kwargs: object) -> NetworkZone:
    name = f"{lxd.unique('z')}.example.net"
    lxd.delete_later(f"/1.0/network-zones/{name}")
    return lxd.client.network_zones.create(name, **kwargs)  # type: ignore[arg-type]


def test_all_get_exists_create(lxd: LXDEnv) -> None:
    zone = make(lxd, description="d", config={"user.a": "b"})
    assert isinstance(zone, NetworkZone)
    assert (zone.description, zone.config, zone.used_by) == ("d", {"user.a": "b"}, [])
    assert zone.etag
    assert zone.name in [z.name for z in lxd.client.network_zones.all()]
    loaded = {z.name: z for z in lxd.client.network_zones.all(recursion=1)}[zone.name]
    assert loaded.config == {"user.a": "b"}
    assert lxd.client.network_zones.get(zone.name) == zone
    assert lxd.client.network_zones.exists(zone.name)
    assert not lxd.client.network_zones.exists("nope-pl.example")
    with pytest.raises(exceptions.NotFound, match="Network zone not found"):
        lxd.client.network_zones.get("nope-pl.example")
    with pytest.raises(exceptions.LXDAPIException,
                       match="The network zone already exists") as info:
        lxd.client.network_zones.create(zone.name)
    assert info.value.response.status_code == 400
    with pytest.raises(exceptions.LXDAPIException, match='Invalid config option "bogus"'):
        make(lxd, config={"bogus": "1"})


def test_zone_save_rollback_sync_delete(lxd: LXDEnv) -> None:
    zone = make(lxd)
    zone.config["peers.ns.address"] = "192.0.2.53"
    zone.description = "changed"
    assert zone.dirty and sorted(zone.dirty_fields) == ["config", "description"]
    zone.save()
    assert not zone.dirty
    got = lxd.client.network_zones.get(zone.name)
    assert (got.config, got.description) == ({"peers.ns.address": "192.0.2.53"}, "changed")
    zone.description = "local"
    zone.rollback()
    assert zone.description == "changed" and not zone.dirty
    # a change on the server makes a save from the stale object fail (If-Match)
    got.description = "theirs"
    got.save()
    zone.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        zone.save()
    zone.sync()
    assert zone.description == "theirs"
    zone.delete()
    assert not lxd.client.network_zones.exists(zone.name)


def test_zone_in_use_by_a_network(lxd: LXDEnv) -> None:
    zone = make(lxd)
    name = lxd.unique("n")[:15]
    lxd.client.networks.create(name, config={"ipv4.address": "none", "ipv6.address": "none",
                                             "dns.zone.forward": zone.name})
    lxd.delete_later(f"/1.0/networks/{name}")
    zone.sync()
    assert zone.used_by == [f"/1.0/networks/{name}"]
    with pytest.raises(exceptions.LXDAPIException, match="Cannot delete a zone that is in use"):
        zone.delete()


def test_records(lxd: LXDEnv) -> None:
    zone = make(lxd)
    name = lxd.unique("r")
    entries = [{"type": "A", "value": "192.0.2.1", "ttl": 300}, {"type": "AAAA", "value": "::1"}]
    record = zone.records.create(name, description="www", entries=entries,
                                 config={"user.k": "v"})
    assert isinstance(record, NetworkZoneRecord) and record.zone is zone
    assert (record.description, record.entries, record.config) == (
        "www", entries, {"user.k": "v"})
    assert record.etag
    assert [r.name for r in zone.records.all()] == [name]
    assert zone.records.all(recursion=1)[0].entries == entries
    assert zone.records.exists(name) and not zone.records.exists("nope")
    with pytest.raises(exceptions.NotFound, match="Network zone record not found"):
        zone.records.get("nope")
    bare = zone.records.create(lxd.unique("r"))
    assert bare.entries is None and bare.config == {}
    with pytest.raises(exceptions.LXDAPIException, match="Bad zone record entry"):
        zone.records.create(lxd.unique("r"), entries=[{"type": "A", "value": "nope"}])

    record.entries.append({"type": "TXT", "value": "hello"})
    record.config = {}
    assert record.dirty
    record.save()
    got = zone.records.get(name)
    assert got.entries == [*entries, {"type": "TXT", "value": "hello"}] and got.config == {}
    record.description = "local"
    record.rollback()
    assert record.description == "www"
    got.description = "theirs"
    got.save()
    record.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        record.save()
    record.sync()
    assert record.description == "theirs"
    record.delete()
    assert not zone.records.exists(name)
    zone.delete()  # its records go with it
    assert not lxd.client.network_zones.exists(zone.name)
