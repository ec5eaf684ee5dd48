"""Network zones and their records: the same requests and answers on the fake and on LXD 5.0.2.

Safety on the real host: zones and records are plain database rows (nothing is served without
``core.dns_address``, which the tests never set); every name is ``unique()`` and removed at
teardown. Networks that link a zone are bridges of our own without addresses.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
import requests

from fakeserver.responses import etag_of
from tests.support import API, lifecycle_events, unique

NONE = {"ipv4.address": "none", "ipv6.address": "none"}
ZONES = "/1.0/network-zones"


def zone_name() -> str:
    return f"{unique('z')}.example.net"


def zone(api: API, name: str = "", **body: Any) -> str:
    """A zone of our own (deleted at teardown, its records with it)."""
    name = name or zone_name()
    api.delete_later(f"{ZONES}/{name}")
    reply = api.post(ZONES, {"name": name, **body})
    assert reply.status == 201, reply
    return name


def records(name: str) -> str:
    return f"{ZONES}/{name}/records"


def record(api: API, zname: str, name: str = "", **body: Any) -> str:
    name = name or unique("r")
    reply = api.post(records(zname), {"name": name, **body})
    assert reply.status == 201, reply
    return name


def project(api: API, **config: str) -> str:
    name = unique("zp")
    api.delete_later(f"/1.0/projects/{name}")
    assert api.post("/1.0/projects", {"name": name, "config": config}).status == 201
    return name


def bridge(api: API, **config: str) -> str:
    name = f"z{uuid.uuid4().hex[:6]}"
    api.delete_later(f"/1.0/networks/{name}")
    reply = api.post("/1.0/networks", {"name": name, "config": {**NONE, **config}})
    assert reply.status == 201, reply
    return name


def error(reply: Any) -> tuple[int, str]:
    return reply.status, reply.error


def put_etag(data: dict[str, Any]) -> str:
    """LXD's record ETag: the Go JSON of its NetworkZoneRecordPut (struct order)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((text + "\n").encode()).hexdigest()


# -- zones ----------------------------------------------------------------------------------------
def test_zone_lifecycle_shape_and_etag(api: API) -> None:
    name = zone(api, description="d", config={"user.a": "b", "dns.nameservers": "ns1.example"})
    assert f"{ZONES}/{name}" in api.get(ZONES).metadata
    got = api.get(f"{ZONES}/{name}")
    assert got.status == 200
    assert list(got.metadata) == ["description", "config", "name", "used_by"]
    assert got.metadata == {"description": "d", "name": name, "used_by": [],
                            "config": {"dns.nameservers": "ns1.example", "user.a": "b"}}
    assert got.headers["ETag"] == f'"{etag_of([name, "d", got.metadata["config"]])}"'
    listed = [z for z in api.get(ZONES, params={"recursion": "1"}).metadata if z["name"] == name]
    assert listed == [got.metadata]
    assert api.delete(f"{ZONES}/{name}").status == 200
    assert error(api.get(f"{ZONES}/{name}")) == (404, "Network zone not found")


def test_zones_are_listed_in_creation_order(api: API) -> None:
    names = [zone(api, f"{unique(prefix)}.example") for prefix in ("zc", "za", "zb")]
    urls = [u for u in api.get(ZONES).metadata if u.rsplit("/", 1)[1] in names]
    assert urls == [f"{ZONES}/{n}" for n in names]


def test_zone_names_are_only_required(api: API) -> None:
    """5.0.2 checks a zone name for being non-empty, nothing else: URLs escape it twice."""
    assert error(api.post(ZONES, {"name": ""})) == (500, "Name is required")
    assert error(api.post(ZONES, {})) == (500, "Name is required")
    base = unique("z")
    for name, segment in ((f"{base} x", f"{base}%2520x"), (f"-{base}", f"-{base}"),
                          (f"{base}..x", f"{base}..x"), (f"{base}/x", f"{base}%252Fx")):
        api.delete_later(f"{ZONES}/{name.replace('/', '%2F').replace(' ', '%20')}")
        reply = api.post(ZONES, {"name": name})
        assert reply.status == 201, reply
        assert reply.headers["Location"] == f"{ZONES}/{segment}"
        assert f"{ZONES}/{segment}" in api.get(ZONES).metadata
    got = api.get(f"{ZONES}/{base}%2Fx")
    assert got.metadata["name"] == f"{base}/x"


def test_duplicate_zone_and_no_rename(api: API) -> None:
    name = zone(api)
    assert error(api.post(ZONES, {"name": name})) == (400, "The network zone already exists")
    assert error(api.post(f"{ZONES}/{name}", {"name": "other"})) == (501, "not implemented")
    assert error(api.post(f"{ZONES}/{name}/records/x", {"name": "y"})) == (
        501, "not implemented")


def test_zone_config_validation(api: API) -> None:
    name = zone_name()
    api.delete_later(f"{ZONES}/{name}")
    cases = [
        ({"foo": "bar"}, 'Invalid config option "foo"'),
        ({"user": "x"}, 'Invalid config option "user"'),
        ({"peers.a": "x"}, 'Invalid network zone configuration key "peers.a"'),
        ({"peers.a.b.address": "1.2.3.4"},
         'Invalid network zone configuration key "peers.a.b.address"'),
        ({"peers.a.b": "x"}, 'Invalid config option "peers.a.b"'),
        ({"peers.a.address": "bar"},
         'Invalid value for config option "peers.a.address": Not an IP address "bar"'),
        ({"peers.a.address": "1.2.3.4/24"},
         'Invalid value for config option "peers.a.address": Not an IP address "1.2.3.4/24"'),
        ({"peers.a.address": "01.2.3.4"},
         'Invalid value for config option "peers.a.address": Not an IP address "01.2.3.4"'),
        ({"network.nat": "maybe"},
         'Invalid value for config option "network.nat": Invalid value for a boolean "maybe"'),
        # the peers key shape first, then the rules' values, then unknown keys
        ({"peers.x": "1", "zz": "2"}, 'Invalid network zone configuration key "peers.x"'),
        ({"peers.x.address": "bad", "zz": "2"},
         'Invalid value for config option "peers.x.address": Not an IP address "bad"'),
    ]
    for config, message in cases:
        assert error(api.post(ZONES, {"name": name, "config": config})) == (500, message), config
    assert error(api.get(f"{ZONES}/{name}")) == (404, "Network zone not found")
    good = {"peers.a.address": "::ffff:1.2.3.4", "peers.a.key": "k", "peers..address": "::1",
            "peers.a b.key": "x", "network.nat": "TRUE", "dns.nameservers": "a,b",
            "user.": "x"}
    zone(api, name, config=good)
    assert api.get(f"{ZONES}/{name}").metadata["config"] == good
    for nat in ("yes", "off", "0"):
        assert api.put(f"{ZONES}/{name}", {"config": {"network.nat": nat}}).status == 200
    empty = {"dns.nameservers": "", "network.nat": "", "peers.a.address": "", "peers.a.key": ""}
    assert api.put(f"{ZONES}/{name}", {"config": empty}).status == 200
    assert api.get(f"{ZONES}/{name}").metadata["config"] == {}


def test_zone_put_patch_and_if_match(api: API) -> None:
    name = zone(api, description="d", config={"user.a": "b"})
    path = f"{ZONES}/{name}"
    assert api.patch(path, {"config": {"user.c": "d"}}).status == 200
    got = api.get(path).metadata
    # PATCH merges the config but takes the description as sent (absent: emptied)
    assert (got["description"], got["config"]) == ("", {"user.a": "b", "user.c": "d"})
    assert api.patch(path, {"description": "new", "config": {"user.c": ""}}).status == 200
    got = api.get(path)
    assert (got.metadata["description"], got.metadata["config"]) == ("new", {"user.a": "b"})
    current = got.headers["ETag"].strip('"')
    assert error(api.put(path, {"config": {"bogus": "y"}}, headers={"If-Match": '"abc"'})) == (
        412, f"ETag doesn't match: {current} vs abc")
    assert error(api.put(path, data=b"{bad", headers={"If-Match": "x"})) == (
        412, f"ETag doesn't match: {current} vs x")
    assert error(api.put(path, {}, headers={"If-Match": "*"}))[0] == 412
    assert api.put(path, {"config": {"user.x": "y"}}, headers={"If-Match": current}).status == 200
    assert error(api.put(path, {"config": {"bogus": "y"}})) == (
        500, 'Invalid config option "bogus"')
    assert error(api.patch(path, {"config": {"bogus": "y"}})) == (
        500, 'Invalid config option "bogus"')
    assert api.put(path, {"name": "other", "description": "x"}).status == 200
    assert api.get(path).metadata == {"description": "x", "config": {}, "name": name,
                                      "used_by": []}
    assert error(api.put(path, data=b"{bad")) == (
        400, "invalid character 'b' looking for beginning of object key string")
    assert error(api.put(path, data=b"[]")) == (
        400, "json: cannot unmarshal array into Go value of type api.NetworkZonePut")


def test_zone_patch_without_config_drops_the_connection(api: API) -> None:
    """LXD 5.0.2 merges the zone's config into the request's nil map and panics: the
    connection closes without an answer and nothing changes. With no config to merge the
    PATCH goes through."""
    name = zone(api, description="keep", config={"user.a": "1"})
    for body in ({"description": "x"}, {"config": None}):
        with pytest.raises(requests.ConnectionError):
            api.patch(f"{ZONES}/{name}", body)
    assert api.get(f"{ZONES}/{name}").metadata["description"] == "keep"
    bare = zone(api, description="keep")
    assert api.patch(f"{ZONES}/{bare}", {"description": "x"}).status == 200
    assert api.get(f"{ZONES}/{bare}").metadata["description"] == "x"


def test_missing_zone_answers(api: API) -> None:
    path = f"{ZONES}/{unique('nozone')}"
    for method in ("GET", "DELETE"):
        assert error(api.request(method, path)) == (404, "Network zone not found")
    for method in ("PUT", "PATCH"):
        assert error(api.request(method, path, json_body={})) == (404, "Network zone not found")
    assert error(api.put(path, data=b"{bad")) == (404, "Network zone not found")
    for method in ("GET", "POST"):
        assert error(api.request(method, f"{path}/records", json_body={"name": "x"})) == (
            404, "Network zone not found")
    assert error(api.post(f"{path}/records", data=b"{bad")) == (404, "Network zone not found")
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        assert error(api.request(method, f"{path}/records/x", json_body={})) == (
            404, "Network zone not found")


def test_bad_bodies(api: API) -> None:
    assert error(api.post(ZONES, data=b"{bad")) == (
        400, "invalid character 'b' looking for beginning of object key string")
    assert error(api.post(ZONES, data=b"")) == (400, "EOF")
    assert error(api.post(ZONES, {"name": 5})) == (
        400, "json: cannot unmarshal number into Go struct field NetworkZonesPost.name of type "
             "string")
    assert error(api.post(ZONES, {"name": unique("z"), "description": 5})) == (
        400, "json: cannot unmarshal number into Go struct field NetworkZonesPost.description "
             "of type string")
    name = zone(api)
    assert error(api.post(records(name), {"name": "r", "description": 5})) == (
        400, "json: cannot unmarshal number into Go struct field "
             "NetworkZoneRecordsPost.description of type string")
    for ttl, text in ((-1, "number -1"), ("5", "string")):
        reply = api.post(records(name), {"name": "r", "entries": [
            {"type": "A", "value": "1.1.1.1", "ttl": ttl}]})
        assert error(reply) == (
            400, f"json: cannot unmarshal {text} into Go struct field "
                 "NetworkZoneRecordEntry.entries.ttl of type uint64")


def test_zone_projects_follow_features_networks(api: API) -> None:
    """Zones follow ``features.networks`` (5.0.2 has no ``features.networks.zones``); names
    are unique over all projects; list URLs carry no ``?project=``, the Location does."""
    assert error(api.post("/1.0/projects", {"name": unique("zp"), "config": {
        "features.networks.zones": "true"}})) == (
        400, 'Invalid project configuration key "features.networks.zones"')
    own = project(api, **{"features.networks": "true"})
    shared = project(api)
    mine = zone(api)
    assert api.get(ZONES, params={"project": own}).metadata == []
    assert error(api.get(f"{ZONES}/{mine}", params={"project": own})) == (
        404, "Network zone not found")
    assert f"{ZONES}/{mine}" in api.get(ZONES, params={"project": shared}).metadata
    assert api.get(f"{ZONES}/{mine}", params={"project": shared}).metadata["name"] == mine
    theirs = zone_name()
    api.delete_later(f"{ZONES}/{theirs}?project={own}")
    reply = api.post(ZONES, {"name": theirs}, params={"project": own})
    assert reply.status == 201, reply
    assert reply.headers["Location"] == f"{ZONES}/{theirs}?project={own}"
    assert api.get(ZONES, params={"project": own}).metadata == [f"{ZONES}/{theirs}"]
    assert f"{ZONES}/{theirs}" not in api.get(ZONES).metadata
    for name, where in ((mine, own), (theirs, None), (theirs, shared)):
        params = {"project": where} if where else {}
        assert error(api.post(ZONES, {"name": name}, params=params)) == (
            400, "The network zone already exists")
    reply = api.post(records(theirs), {"name": unique("r")}, params={"project": own})
    assert reply.status == 201
    assert reply.headers["Location"].endswith(f"?project={own}")
    via_shared = api.post(ZONES, {"name": zone_name()}, params={"project": shared})
    assert via_shared.status == 201
    api.delete_later(via_shared.headers["Location"])
    assert "?project" not in via_shared.headers["Location"]
    missing = 'Failed to load project "nope-pl": Project not found'
    for method, path in (("GET", ZONES), ("POST", ZONES), ("GET", f"{ZONES}/{mine}"),
                         ("PUT", f"{ZONES}/{mine}"), ("GET", f"{records(mine)}/x"),
                         ("PUT", f"{records(mine)}/x")):
        assert error(api.request(method, path, json_body={}, params={"project": "nope-pl"})) == (
            404, missing)
    assert error(api.post(ZONES, data=b"{bad", params={"project": "nope-pl"})) == (404, missing)


def test_used_by_networks_and_delete_in_use(api: API) -> None:
    forward, reverse = zone(api), zone(api)
    first = bridge(api, **{"dns.zone.forward": forward})
    second = bridge(api, **{"dns.zone.forward": forward, "dns.zone.reverse.ipv4": reverse,
                           "dns.zone.reverse.ipv6": reverse})
    expected = sorted([f"/1.0/networks/{first}", f"/1.0/networks/{second}"])
    assert api.get(f"{ZONES}/{forward}").metadata["used_by"] == expected
    assert api.get(f"{ZONES}/{reverse}").metadata["used_by"] == [f"/1.0/networks/{second}"]
    listed = {z["name"]: z["used_by"] for z in api.get(ZONES, params={"recursion": "1"}).metadata}
    assert listed[forward] == expected
    assert error(api.delete(f"{ZONES}/{forward}")) == (500, "Cannot delete a zone that is in use")
    nope = f"{unique('nz')}.example"
    assert error(api.patch(f"/1.0/networks/{first}", {"config": {"dns.zone.forward": nope}})) == (
        400, f'Invalid value for network "{first}" option "dns.zone.forward": Network zone '
             f'"{nope}" doesn\'t exist')
    for key in ("dns.zone.forward", "dns.zone.reverse.ipv4", "dns.zone.reverse.ipv6"):
        # one zone per key in 5.0.2: a list is read as one (missing) zone name
        both = f"{forward},{reverse}"
        assert error(api.patch(f"/1.0/networks/{first}", {"config": {key: both}})) == (
            400, f'Invalid value for network "{first}" option "{key}": Network zone "{both}" '
                 "doesn't exist")
    assert api.delete(f"/1.0/networks/{first}").status == 200
    assert api.delete(f"/1.0/networks/{second}").status == 200
    assert api.get(f"{ZONES}/{forward}").metadata["used_by"] == []
    assert api.delete(f"{ZONES}/{forward}").status == 200


def test_lifecycle_events(api: API) -> None:
    name = zone_name()
    api.delete_later(f"{ZONES}/{name}")
    with lifecycle_events(api) as events:
        assert api.post(ZONES, {"name": name}).status == 201
        assert api.put(f"{ZONES}/{name}", {"config": {"bogus": "1"}}).status == 500
        assert api.patch(f"{ZONES}/{name}", {"config": {"user.a": "1"}}).status == 200
        rec = record(api, name)
        assert api.put(f"{records(name)}/{rec}", {"config": {"bogus": "1"}}).status == 500
        assert api.put(f"{records(name)}/{rec}", {"config": {"user.x": "1"}}).status == 200
        assert api.delete(f"{records(name)}/{rec}").status == 200
        second = record(api, name)
        assert api.delete(f"{ZONES}/{name}").status == 200
    mine = [(e["metadata"]["action"], e["metadata"]["source"]) for e in events
            if name in e["metadata"]["source"]]
    zpath, rpath = f"{ZONES}/{name}", f"{records(name)}/{rec}"
    assert mine[:6] == [("network-zone-created", zpath), ("network-zone-updated", zpath),
                        ("network-zone-record-created", rpath),
                        ("network-zone-record-updated", rpath),
                        ("network-zone-record-deleted", rpath),
                        ("network-zone-record-created", f"{records(name)}/{second}")]
    assert mine[6:] == [("network-zone-deleted", zpath)]
    assert all(e["project"] == "default" for e in events if name in e["metadata"]["source"])


# -- records --------------------------------------------------------------------------------------
def test_record_lifecycle_shape_and_etag(api: API) -> None:
    name = zone(api)
    entries = [{"type": "A", "value": "192.0.2.1", "ttl": 300}, {"type": "AAAA", "value": "::1"}]
    rec = record(api, name, description="d", entries=entries, config={"user.k": "v"})
    assert api.get(records(name)).metadata == [f"{records(name)}/{rec}"]
    got = api.get(f"{records(name)}/{rec}")
    shown = [{"type": "A", "ttl": 300, "value": "192.0.2.1"}, {"type": "AAAA", "value": "::1"}]
    assert got.metadata == {"description": "d", "entries": shown, "config": {"user.k": "v"},
                            "name": rec}
    assert list(got.metadata) == ["description", "entries", "config", "name"]
    assert [list(e) for e in got.metadata["entries"]] == [["type", "ttl", "value"],
                                                          ["type", "value"]]
    put = {"description": "d", "entries": shown, "config": {"user.k": "v"}}
    assert got.headers["ETag"] == f'"{put_etag(put)}"'
    assert api.get(records(name), params={"recursion": "1"}).metadata == [got.metadata]
    bare = record(api, name)
    got = api.get(f"{records(name)}/{bare}")
    assert got.metadata["entries"] is None
    bare_put = {"description": "", "entries": None, "config": {}}
    assert got.headers["ETag"] == f'"{put_etag(bare_put)}"'
    empty = record(api, name, entries=[])
    assert api.get(f"{records(name)}/{empty}").metadata["entries"] == []
    assert api.delete(f"{records(name)}/{rec}").status == 200
    assert error(api.get(f"{records(name)}/{rec}")) == (404, "Network zone record not found")


def test_records_listed_by_name_any_name_goes(api: API) -> None:
    name = zone(api)
    base = unique("r")
    made = [f"{base}-www", "", f"*.{base}", f"{base} x", f"{base}/y", "@"]
    # "" and "@" are unique over all zones of the host: only a fresh host can take them
    made = made[:1] + made[2:5] if api.kind == "real" else made
    for rec in made:
        assert api.post(records(name), {"name": rec}).status == 201
    segments = {f"{base}-www": f"{base}-www", "": "", f"*.{base}": f"%252A.{base}",
                f"{base} x": f"{base}%2520x", f"{base}/y": f"{base}%252Fy", "@": "@"}
    assert api.get(records(name)).metadata == [f"{records(name)}/{segments[r]}"
                                               for r in sorted(made)]
    assert api.get(f"{records(name)}/{base}%2Fy").metadata["name"] == f"{base}/y"


def test_record_names_are_unique_over_all_zones(api: API) -> None:
    """LXD 5.0.2's records table has a UNIQUE name: a record name used in one zone cannot be
    used in another; once the first zone is deleted (its records with it) it can."""
    first, second = zone(api), zone(api)
    rec = record(api, first)
    duplicate = (500, "UNIQUE constraint failed: networks_zones_records.name")
    assert error(api.post(records(first), {"name": rec})) == duplicate
    assert error(api.post(records(second), {"name": rec})) == duplicate
    assert api.delete(f"{ZONES}/{first}").status == 200
    record(api, second, rec)


def test_record_config_and_entries_validation(api: API) -> None:
    name = zone(api)
    rec = unique("r")
    bad = 'Bad zone record entry: dns: '
    cases = [
        ({"config": {"foo": "x"}}, 'Invalid config option "foo"'),
        ({"config": {"peers.a.address": "1.2.3.4"}}, 'Invalid config option "peers.a.address"'),
        # config before entries
        ({"config": {"foo": "1"}, "entries": [{"type": "A", "value": "x"}]},
         'Invalid config option "foo"'),
        ({"entries": [{"type": "BOGUS", "value": "x"}]},
         bad + 'unknown RR type: "BOGUS" at line: 1:20'),
        ({"entries": [{"type": "BOGUS", "value": "x", "ttl": 5}]},
         bad + 'unknown RR type: "BOGUS" at line: 1:18'),
        ({"entries": [{"type": "BOGUS", "value": "x", "ttl": 12345}]},
         bad + 'unknown RR type: "BOGUS" at line: 1:22'),
        ({"entries": [{"type": "BOG", "value": "xyz"}]},
         bad + 'unknown RR type: "BOG" at line: 1:18'),
        ({"entries": [{"type": "IN", "value": "A 1.2.3.4"}]},
         bad + 'unknown RR type: "IN" at line: 1:17'),
        ({"entries": [{"type": "", "value": ""}]}, bad + 'unknown RR type: "\\n" at line: 1:15'),
        ({"entries": [None]}, bad + 'unknown RR type: "\\n" at line: 1:15'),
        ({"entries": [{"type": "A", "value": "not-ip"}]}, bad + 'bad A A: "not-ip" at line: 1:22'),
        ({"entries": [{"type": "A", "value": "not-ip", "ttl": 5}]},
         bad + 'bad A A: "not-ip" at line: 1:20'),
        ({"entries": [{"type": "A", "value": ""}]}, bad + 'bad A A: "\\n" at line: 1:16'),
        ({"entries": [{"type": "A", "value": "1.2.3"}]}, bad + 'bad A A: "1.2.3" at line: 1:21'),
        ({"entries": [{"type": "A", "value": "1.2.3.04"}]},
         bad + 'bad A A: "1.2.3.04" at line: 1:24'),
        ({"entries": [{"type": "A", "value": "::ffff:1.2.3.4"}]},
         bad + 'bad A A: "::ffff:1.2.3.4" at line: 1:30'),
        ({"entries": [{"type": "A", "value": "1.2.3.4 5"}]},
         bad + 'garbage after rdata: "5" at line: 1:25'),
        ({"entries": [{"type": "AAAA", "value": "1.2.3.4"}]},
         bad + 'bad AAAA AAAA: "1.2.3.4" at line: 1:26'),
        ({"entries": [{"type": "AAAA", "value": "zz"}]}, bad + 'bad AAAA AAAA: "zz" at line: 1:21'),
        ({"entries": [{"type": "MX", "value": "x"}]}, bad + 'bad MX Pref: "x" at line: 1:18'),
        ({"entries": [{"type": "A", "value": "1.2.3.4"}, {"type": "A", "value": "1.2.3.4"}]},
         'Duplicate record for type "A" and value "1.2.3.4"'),
        ({"entries": [{"type": "A", "value": "1.2.3.4", "ttl": 1},
                      {"type": "A", "value": "1.2.3.4", "ttl": 2}]},
         'Duplicate record for type "A" and value "1.2.3.4"'),
    ]
    for body, message in cases:
        assert error(api.post(records(name), {"name": rec, **body})) == (500, message), body
    assert error(api.get(f"{records(name)}/{rec}")) == (404, "Network zone record not found")
    good = [{"type": "a", "value": "1.2.3.4"}, {"type": "A", "value": "1.2.3.11", "ttl": 7},
            {"type": "A", "value": " 1.2.3.5 "}, {"type": "A", "value": "1.2.3.6 ; c"},
            {"type": " A", "value": "1.2.3.7"}, {"type": "", "value": "A 1.2.3.8"},
            {"type": "TYPE1", "value": "1.2.3.9"}, {"type": "A", "value": "1.2.3.10\nx"},
            {"type": "AAAA", "value": "::ffff:1.2.3.4"}, {"type": "CNAME", "value": ""},
            {"type": "MX", "value": "10 mail"}, {"type": "TXT", "value": "hello world"},
            {"type": "A", "value": "1.2.3.12", "ttl": 99999999999}]
    record(api, name, rec, entries=good)
    assert len(api.get(f"{records(name)}/{rec}").metadata["entries"]) == len(good)
    assert api.get(f"{records(name)}/{rec}").metadata["entries"][0] == good[0]


def test_record_put_patch_and_if_match(api: API) -> None:
    name = zone(api)
    rec = record(api, name, description="dd", entries=[{"type": "A", "value": "1.1.1.1"}],
                 config={"user.a": "1"})
    path = f"{records(name)}/{rec}"
    # PATCH is PUT with the *zone's* config merged in: the record's own config and its
    # entries are not kept
    assert api.patch(path, {"config": {"user.b": "1"}}).status == 200
    assert api.get(path).metadata == {"description": "", "entries": None,
                                      "config": {"user.b": "1"}, "name": rec}
    assert api.patch(path, {"description": "nocfg"}).status == 200
    assert api.get(path).metadata["config"] == {}
    assert api.put(f"{ZONES}/{name}", {"config": {"user.zz": "9"}}).status == 200
    assert api.patch(path, {"config": {}}).status == 200
    assert api.get(path).metadata["config"] == {"user.zz": "9"}
    assert api.patch(path, {"config": {"user.zz": ""}}).status == 200
    assert api.get(path).metadata["config"] == {}
    with pytest.raises(requests.ConnectionError):
        api.patch(path, {"description": "x"})
    assert api.put(f"{ZONES}/{name}", {"config": {"network.nat": "true"}}).status == 200
    assert error(api.patch(path, {"config": {"user.z": "1"}})) == (
        500, 'Invalid config option "network.nat"')
    got = api.get(path)
    current = got.headers["ETag"].strip('"')
    assert error(api.put(path, data=b"{bad", headers={"If-Match": "x"})) == (
        412, f"ETag doesn't match: {current} vs x")
    assert error(api.put(path, data=b"{bad")) == (
        400, "invalid character 'b' looking for beginning of object key string")
    assert api.put(path, {"config": {"user.": "1"}}, headers={"If-Match": current}).status == 200
    assert api.get(path).metadata["config"] == {"user.": "1"}
    entries = [{"type": "A", "value": "1.2.3.4"}, {"type": "a", "value": "1.2.3.4"}]
    assert api.put(path, {"entries": entries, "description": "x"}).status == 200
    assert api.get(path).metadata == {"description": "x", "entries": entries, "config": {},
                                      "name": rec}
    assert api.put(path, {"entries": None}).status == 200
    assert api.get(path).metadata["entries"] is None
    missing = f"{records(name)}/{unique('r')}"
    for method in ("GET", "DELETE"):
        assert error(api.request(method, missing)) == (404, "Network zone record not found")
    for method in ("PUT", "PATCH"):
        assert error(api.request(method, missing, json_body={})) == (
            404, "Network zone record not found")


def test_records_go_with_their_zone(api: API) -> None:
    name = zone(api)
    rec = record(api, name)
    assert api.delete(f"{ZONES}/{name}").status == 200
    other = zone(api)
    record(api, other, rec)
    assert api.get(records(other)).metadata == [f"{records(other)}/{rec}"]


def test_zone_target_is_ignored(api: API) -> None:
    name = zone(api)
    assert api.get(f"{ZONES}/{name}", params={"target": "foo"}).status == 200
    assert api.get(ZONES, params={"target": "foo"}).status == 200


def test_zones_go_with_their_project(api: API) -> None:
    """A project's zones do not keep it from being deleted; they go with it (the name is free
    again)."""
    own = project(api, **{"features.networks": "true"})
    name = zone_name()
    assert api.post(ZONES, {"name": name}, params={"project": own}).status == 201
    assert api.delete(f"/1.0/projects/{own}").status == 200
    zone(api, name)
    assert api.get(f"{ZONES}/{name}").metadata["name"] == name


def test_stored_as_sent_empty_values_dropped_keys_any_case(api: API) -> None:
    """Descriptions and values are kept as sent (no trimming), empty config values are not
    stored, and JSON keys match Go's way (any case)."""
    name = zone_name()
    api.delete_later(f"{ZONES}/{name}")
    assert api.post(ZONES, {"Name": name, "description": "  sp  ",
                            "CONFIG": {"user.a": "", "user.b": " x "}}).status == 201
    got = api.get(f"{ZONES}/{name}").metadata
    assert (got["description"], got["config"]) == ("  sp  ", {"user.b": " x "})
    rec = record(api, name, config={"user.a": ""},
                 Entries=[{"TYPE": "A", "Value": "192.0.2.2", "TTL": 5},
                          {"type": "A", "value": "192.0.2.3", "ttl": 0}])
    got = api.get(f"{records(name)}/{rec}").metadata
    assert got["config"] == {}
    assert got["entries"] == [{"type": "A", "ttl": 5, "value": "192.0.2.2"},
                              {"type": "A", "value": "192.0.2.3"}]
