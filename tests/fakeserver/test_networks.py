"""Networks: the same requests and the same answers on the fake and on real LXD 5.0.2.

Safety on the real host: every bridge made here has ``ipv4.address=none`` and
``ipv6.address=none`` (no address, no DHCP, no NAT, nothing routed), macvlan/sriov networks are
database records only, and no physical network is ever created (it would take over a real
interface). Names are short (``n`` + 6 hex digits): bridges are Linux interfaces (15 bytes).
The host's set of unmanaged interfaces is whatever the machine has, so tests only look at
``lo`` and ``eth0``, which the fake's host has too.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.parse
import uuid
from typing import Any

import pytest

from fakeserver import FakeLXD, preseed
from tests.support import API, lifecycle_events, unique

NONE = {"ipv4.address": "none", "ipv6.address": "none"}
MISSING = "Failed loading network: Network not found"


def short(prefix: str = "n") -> str:
    """A unique name that fits a Linux interface name."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def make(api: API, net_type: str = "bridge", name: str | None = None,
         **body: Any) -> str:
    """Create a network (bridges without any address) and delete it at teardown."""
    name = name or short()
    config = dict(body.pop("config", {}))
    if net_type == "bridge":
        config = {**NONE, **config}
    api.delete_later(f"/1.0/networks/{urllib.parse.quote(name, safe='')}")
    reply = api.post("/1.0/networks", {"name": name, "type": net_type, "config": config,
                                       **body})
    assert reply.status == 201, reply
    return name


def make_profile(api: API, name: str, devices: dict[str, Any], project: str = "") -> str:
    query = f"?project={project}" if project else ""
    api.delete_later(f"/1.0/profiles/{urllib.parse.quote(name, safe='')}{query}")
    reply = api.post(f"/1.0/profiles{query}", {"name": name, "devices": devices})
    assert reply.status == 201, reply
    return name


def make_project(api: API, config: dict[str, str] | None = None) -> str:
    name = unique("np")
    api.delete_later(f"/1.0/projects/{name}")
    reply = api.post("/1.0/projects", {"name": name, "config": config or {}})
    assert reply.status == 201, reply
    return name


def etag_of(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256((text + "\n").encode()).hexdigest()


def network_etag(meta: dict[str, Any]) -> str:
    """LXD's ETag of a network: ``[name, managed, type, description, config]``."""
    return etag_of([meta["name"], meta["managed"], meta["type"], meta["description"],
                    meta["config"]])


def assert_error(reply: Any, status: int, message: str) -> None:
    assert (reply.status, reply.error) == (status, message), reply


# -- list and get --------------------------------------------------------------------------------
def test_list_has_managed_networks_sorted_then_host_interfaces(api: API) -> None:
    base = short()
    second = make(api, name=base + "b")
    first = make(api, name=base + "a")
    # Other runs share the real host: only look at these four in lists fetched at different
    # times.
    mine = {first, second, "lo", "eth0"}

    def names(urls: list[str]) -> list[str]:
        return [u.rsplit("/", 1)[1] for u in urls if u.rsplit("/", 1)[1] in mine]

    urls = api.get("/1.0/networks").metadata
    assert names(urls) == [first, second, "lo", "eth0"]
    objs = api.get("/1.0/networks", params={"recursion": "1"}).metadata
    assert [o["name"] for o in objs if o["name"] in mine] == names(urls)
    managed = [o["name"] for o in objs if o["managed"]]
    assert managed == sorted(managed)  # managed ones by name, before every host interface
    assert [o["managed"] for o in objs] == sorted((o["managed"] for o in objs), reverse=True)
    assert managed.index(first) + 1 == managed.index(second)
    by_name = {o["name"]: o for o in objs}
    assert by_name["lo"] == {"config": {}, "description": "", "name": "lo", "type": "loopback",
                             "used_by": [], "managed": False, "status": "", "locations": None}
    eth0 = by_name["eth0"]
    assert (eth0["type"], eth0["managed"], eth0["status"], eth0["locations"], eth0["config"]) \
        == ("physical", False, "", None, {})
    assert by_name[first] == {"config": NONE, "description": "", "name": first,
                              "type": "bridge", "used_by": None, "managed": True,
                              "status": "Created", "locations": ["none"]}
    assert names(api.get("/1.0/networks", params={"recursion": "abc"}).metadata) == names(urls)
    assert_error(api.get("/1.0/networks/"), 404, "not found")
    assert_error(api.delete("/1.0/networks"), 501, "not implemented")


def test_create_bridge(api: API) -> None:
    name = short()
    api.delete_later(f"/1.0/networks/{name}")
    reply = api.post("/1.0/networks", {"name": name, "description": "test net",
                                       "config": {**NONE, "user.a": "1", "bridge.mtu": "",
                                                  "zzz": ""}})
    assert reply.status == 201
    assert reply.headers["Location"] == f"/1.0/networks/{name}"
    assert reply.body["metadata"] is None and reply.body["type"] == "sync"
    got = api.get(f"/1.0/networks/{name}")
    # No type means bridge; empty values are not stored (not even unknown keys).
    assert got.metadata == {"config": {**NONE, "user.a": "1"}, "description": "test net",
                            "name": name, "type": "bridge", "used_by": None, "managed": True,
                            "status": "Created", "locations": ["none"]}
    assert got.headers["ETag"] == f'"{network_etag(got.metadata)}"'
    lo = api.get("/1.0/networks/lo")
    assert lo.headers["ETag"] == f'"{network_etag(lo.metadata)}"'
    longest = make(api, name=short("n") + "abcdefgh")  # 15 bytes: the most a bridge may have
    assert len(longest) == 15


def test_create_refusals(api: API) -> None:
    def post(body: Any) -> Any:
        name = body.get("name") if isinstance(body, dict) else None
        if isinstance(name, str) and name and "/" not in name:
            api.delete_later(f"/1.0/networks/{urllib.parse.quote(name, safe='')}")
        return api.post("/1.0/networks", body)

    existing = make(api)
    name = short()
    # Checked before the config: an existing name with no address config is only refused.
    assert_error(post({"name": existing, "type": "bridge", "config": {}}), 400,
                 "The network already exists")
    assert_error(post({"name": existing, "type": "macvlan", "config": {"foo": "1"}}), 400,
                 "The network already exists")
    assert_error(post({"name": name, "type": "bogus"}), 400, "Unknown driver")
    assert_error(post({"name": "a/b", "type": "bogus"}), 400, "Unknown driver")
    assert_error(post({"name": "", "type": "bridge"}), 400, "No name provided")
    assert_error(post({"name": name, "config": {**NONE, "foo.bar": "1"}}), 500,
                 f'Invalid option for network "{name}" option "foo.bar"')
    assert_error(post({"name": "lo", "type": "bridge", "config": NONE}), 500,
                 'Network interface "lo" already exists')
    assert_error(post({"name": "eth0", "config": NONE}), 500,
                 'Network interface "eth0" already exists')
    for bad, message in [("abcdefghijklmnop", "Network interface is too long (maximum 15 "
                                              "characters)"),
                         (".", "Network interface is too short (minimum 2 characters)"),
                         ("a b", "Network interface contains invalid characters"),
                         ("a:b", "Network interface contains invalid characters"),
                         ("a/b", "Network interface contains invalid characters")]:
        assert_error(post({"name": bad, "type": "bridge", "config": NONE}), 400, message)
    for bad, char in [("a/b", "/"), ("a?b", "?"), ("a&b", "&"), ("a+b", "+"), ("a:b", ":")]:
        assert_error(post({"name": bad, "type": "macvlan", "config": {"parent": "eth0"}}), 400,
                     f'Cannot contain "{char}"')
    for raw, message in [(b'{"name":"x",', "unexpected EOF"), (b"", "EOF"),
                         (b"[]", "json: cannot unmarshal array into Go value of type "
                                 "api.NetworksPost")]:
        assert_error(api.request("POST", "/1.0/networks", data=raw), 400, message)
    assert_error(post({"name": 1}), 400,
                 "json: cannot unmarshal number into Go struct field NetworksPost.name of type "
                 "string")
    assert_error(post({"name": name, "config": {"a": 1}}), 400,
                 "json: cannot unmarshal number into Go struct field NetworksPost.config of "
                 "type string")
    assert api.get(f"/1.0/networks/{name}").status == 404


@pytest.mark.fake_only
def test_auto_addresses_cannot_be_picked_on_this_host(api: API) -> None:
    """Fake only: asking the real daemon for ``auto`` makes it probe random 10.x.y.z and
    fd42:: hosts (TCP to port 22) until it gives up, which is traffic off the loopback. The
    answer it gives there (the reference transcript, and what the brief records) is this."""
    message = ("Failed generating auto config: Failed to automatically find an unused {} "
               "subnet, manual configuration required")
    name = short()
    assert_error(api.post("/1.0/networks", {"name": name, "type": "bridge",
                                            "config": {"foo.bar": "1"}}),
                 500, message.format("IPv4"))
    assert_error(api.post("/1.0/networks", {"name": name, "config": {"ipv4.address": "none"}}),
                 500, message.format("IPv6"))
    assert_error(api.post("/1.0/networks", {"name": name, "type": "ovn"}), 500,
                 message.format("IPv4"))
    assert api.get(f"/1.0/networks/{name}").status == 404


BRIDGE_CASES = [
    ({"ipv4.address": "bogus"}, 'option "ipv4.address": invalid CIDR address: bogus'),
    ({"ipv4.address": "10.0.0.0/24"},
     'option "ipv4.address": Not a usable IPv4 address "10.0.0.0/24"'),
    ({"ipv4.address": "fd00::1/64"}, 'option "ipv4.address": Not an IPv4 address "fd00::1/64"'),
    ({"ipv6.address": "10.1.1.1/24"},
     'option "ipv6.address": Not an IPv6 address "10.1.1.1/24"'),
    ({"ipv6.address": "fd00::/64"}, 'option "ipv6.address": Not a usable IPv6 address '
                                    '"fd00::/64"'),
    ({"ipv4.nat": "bogus"}, 'option "ipv4.nat": Invalid value for a boolean "bogus"'),
    ({"bridge.mtu": "1000"}, 'option "bridge.mtu": Out of MTU range (1280-16384) "1000"'),
    ({"bridge.mtu": "abc"}, 'option "bridge.mtu": Invalid MTU "abc"'),
    ({"bridge.driver": "x"}, 'option "bridge.driver": Invalid value "x" (not one of '
                             "[native openvswitch])"),
    ({"bridge.hwaddr": "zz"}, 'option "bridge.hwaddr": Invalid MAC address, must be 6 bytes '
                              "of hex separated by colons"),
    ({"bridge.external_interfaces": "a@b"}, 'option "bridge.external_interfaces": Invalid '
     'interface name "a@b": Network interface contains invalid characters'),
    ({"dns.mode": "x"}, 'option "dns.mode": Invalid value "x" (not one of [dynamic managed '
                        "none])"),
    ({"dns.zone.forward": "nozone"},
     'option "dns.zone.forward": Network zone "nozone" doesn\'t exist'),
    ({"ipv4.dhcp.ranges": "x"}, 'option "ipv4.dhcp.ranges": Item "x": IP range must contain '
                                "start and end IP addresses"),
    ({"ipv4.dhcp.ranges": "10.0.0.1-fd00::1"}, 'option "ipv4.dhcp.ranges": Item '
     '"10.0.0.1-fd00::1": Not an IPv4 address "fd00::1"'),
    ({"ipv4.routes": "10.0.0.1/24"}, 'option "ipv4.routes": Item "10.0.0.1/24": Not an IPv4 '
                                     'network address "10.0.0.1/24"'),
    ({"ipv6.nat.address": "1.2.3.4"}, 'option "ipv6.nat.address": Not an IPv6 address '
                                      '"1.2.3.4"'),
    ({"security.acls.default.egress.action": "x"}, 'option "security.acls.default.egress.'
     'action": Invalid value "x" (not one of [allow drop reject])'),
    ({"tunnel.t1.ttl": "300"}, 'option "tunnel.t1.ttl": Invalid value for an integer "300". '
                               "Must be between 0 and 255"),
    ({"tunnel.t1.port": "x"}, 'option "tunnel.t1.port": Invalid value for an integer: x'),
    ({"tunnel.t1.interface": "a@"}, 'option "tunnel.t1.interface": Network interface '
                                    "contains invalid characters"),
    ({"bgp.peers.p1.asn": "x"}, 'option "bgp.peers.p1.asn": Invalid value for an integer '
                                '"x"'),
    ({"bgp.peers.p1.address": "x"}, 'option "bgp.peers.p1.address": Not an IP address "x"'),
]
BRIDGE_PLAIN_CASES = [
    ({"bgp.ipv4.nexthop": "10.0.0.1"}, "Invalid network configuration key: bgp.ipv4.nexthop"),
    ({"tunnel.x": "1"}, "Invalid network configuration key: tunnel.x"),
    ({"tunnel.t1.foo": "1"}, 'Invalid option for network "{name}" option "tunnel.t1.foo"'),
    ({"volatile.x": "1", "user.x": "1"}, 'Invalid option for network "{name}" option '
                                         '"volatile.x"'),
    ({"parent": "eth0"}, 'Invalid option for network "{name}" option "parent"'),
    ({"fan.type": "vxlan"}, "FAN configuration may only be set when in 'fan' mode"),
    # (with both address keys set, LXD names either family at random: Go map order)
    ({"bridge.mode": "fan", "ipv6.address": ""},
     "IPv4 configuration may not be set when in 'fan' mode"),
    ({"security.acls": "nope"}, 'Network ACL "nope" does not exist'),
    ({"bridge.hwaddr": "00:16:3e:00:00:01", "bridge.external_interfaces": "dummyx"},
     'Cannot use static "bridge.hwaddr" MAC address when bridge has no IP addresses and has '
     "external interfaces set"),
]


def test_bridge_config_validation(api: API) -> None:
    name = short()
    api.delete_later(f"/1.0/networks/{name}")  # in case the real host ever accepted one
    for config, message in BRIDGE_CASES:
        reply = api.post("/1.0/networks", {"name": name, "config": {**NONE, **config}})
        assert_error(reply, 500, f'Invalid value for network "{name}" {message}')
    for config, message in BRIDGE_PLAIN_CASES:
        reply = api.post("/1.0/networks", {"name": name, "config": {**NONE, **config}})
        assert_error(reply, 500, message.format(name=name))
    long_name = short() + "abcde"  # 12 bytes: too long for a fan bridge, and for tunnel "t1234"
    api.delete_later(f"/1.0/networks/{long_name}")
    assert_error(api.post("/1.0/networks", {"name": long_name, "config": {
        "bridge.mode": "fan"}}), 500,
        "Network name too long to use with the FAN (must be 11 characters or less)")
    assert_error(api.post("/1.0/networks", {"name": long_name, "config": {
        **NONE, "tunnel.t1234.protocol": "gre"}}), 500,
        f"Network name too long for tunnel interface: {long_name}-t1234")
    assert api.get(f"/1.0/networks/{name}").status == 404


def test_bridge_accepts_free_form_and_valid_keys(api: API) -> None:
    config = {"dns.domain": "lxd.example", "raw.dnsmasq": "x", "maas.subnet.ipv4": "any",
              "ipv4.dhcp.expiry": "whatever", "ipv4.dhcp.ranges": "10.0.0.5-10.0.0.1",
              "ipv4.nat": "yes", "ipv6.routing": "off", "user.note": "hi",
              "tunnel.t1.protocol": "gre", "bgp.peers.p1.password": "x"}
    name = make(api, config=config)
    assert api.get(f"/1.0/networks/{name}").metadata["config"] == {**NONE, **config}


def test_other_network_types(api: API) -> None:
    # Bridges of the default project are what OVN may use as uplinks; with two or more an
    # OVN network must name one.
    uplink = make(api)
    make(api)
    name = short()
    api.delete_later(f"/1.0/networks/{name}")

    def post(net_type: str, config: dict[str, str]) -> Any:
        return api.post("/1.0/networks", {"name": name, "type": net_type, "config": config})

    prefix = f'Invalid value for network "{name}" option '
    assert_error(post("macvlan", {}), 500, prefix + '"parent": Required value')
    assert_error(post("sriov", {}), 500, prefix + '"parent": Required value')
    assert_error(post("physical", {}), 500, prefix + '"parent": Required value')
    assert_error(post("macvlan", {"parent": "a/b"}), 500,
                 prefix + '"parent": Network interface contains invalid characters')
    assert_error(post("macvlan", {"parent": "nonexistent0"}), 500,
                 'Parent interface "nonexistent0" not found')
    assert_error(post("sriov", {"parent": "nonexistent0"}), 500,
                 'Parent interface "nonexistent0" not found')
    assert_error(post("physical", {"parent": "nonexistent0"}), 500,
                 'Parent interface "nonexistent0" not found')
    assert_error(post("macvlan", {"parent": "nonexistent0", "foo": "x"}), 500,
                 f'Invalid option for network "{name}" option "foo"')
    assert_error(post("macvlan", {"parent": "eth0", "mtu": "1000"}), 500,
                 prefix + '"mtu": Out of MTU range (1280-16384) "1000"')
    assert_error(post("macvlan", {"parent": "eth0", "vlan": "5000"}), 500,
                 prefix + '"vlan": Out of VLAN ID range (0-4094) "5000"')
    assert_error(post("sriov", {"parent": "eth0", "vlan": "x"}), 500,
                 prefix + '"vlan": Invalid VLAN ID "x"')
    assert_error(post("macvlan", {"parent": "eth0", "gvrp": "abc"}), 500,
                 prefix + '"gvrp": Invalid value for a boolean "abc"')
    assert_error(post("sriov", {"parent": "eth0", "gvrp": "true"}), 500,
                 f'Invalid option for network "{name}" option "gvrp"')
    assert_error(post("macvlan", {"parent": "eth0", "ipv4.address": "none"}), 500,
                 f'Invalid option for network "{name}" option "ipv4.address"')
    assert_error(post("physical", {"parent": "eth0", "ipv4.gateway": "10.0.0.0/24"}), 500,
                 prefix + '"ipv4.gateway": Not a usable IPv4 address "10.0.0.0/24"')
    assert_error(post("physical", {"parent": "eth0", "dns.nameservers": "bad"}), 500,
                 prefix + '"dns.nameservers": Item "bad": Not an IP address "bad"')
    assert_error(post("physical", {"parent": "eth0", "ovn.ingress_mode": "bad"}), 500,
                 prefix + '"ovn.ingress_mode": Invalid value "bad" (not one of [l2proxy '
                          "routed])")
    assert_error(post("physical", {"parent": "eth0", "bgp.ipv4.nexthop": "1.1.1.1"}), 500,
                 "Invalid network configuration key: bgp.ipv4.nexthop")
    ovn_client = ("Failed to get OVN client: Failed to get OVN southbound connection string: "
                  "Failed to run: ovs-vsctl get open_vswitch . external_ids:ovn-remote: exec: "
                  '"ovs-vsctl": executable file not found in $PATH')
    assert_error(post("ovn", NONE), 500, 'Option "network" is required')
    assert_error(post("ovn", {**NONE, "network": uplink}), 500, ovn_client)
    assert_error(post("ovn", {**NONE, "network": "nope"}), 500,
                 'Option "network" value "nope" is not one of the allowed uplink networks in '
                 "project")
    assert api.get(f"/1.0/networks/{name}").status == 404


def test_macvlan_and_sriov_are_records(api: API) -> None:
    mac = make(api, "macvlan", name=short() + "-longer-than-15",
               config={"parent": "eth0", "maas.subnet.ipv4": "x", "user.a": "b", "mtu": ""})
    got = api.get(f"/1.0/networks/{mac}").metadata
    assert got == {"config": {"maas.subnet.ipv4": "x", "parent": "eth0", "user.a": "b"},
                   "description": "", "name": mac, "type": "macvlan", "used_by": None,
                   "managed": True, "status": "Created", "locations": ["none"]}
    assert_error(api.get(f"/1.0/networks/{mac}/state"), 404,
                 f'Network interface "{mac}" not found')
    assert_error(api.get(f"/1.0/networks/{mac}/leases"), 500, "Not implemented")
    bridge = make(api)
    on_bridge = make(api, "macvlan", config={"parent": bridge})  # a bridge is an interface
    sriov = make(api, "sriov", config={"parent": "eth0", "vlan": "7"})
    assert api.get(f"/1.0/networks/{sriov}").metadata["config"] == {"parent": "eth0",
                                                                     "vlan": "7"}
    odd = make(api, "macvlan", name=f"{short()} x", config={"parent": "eth0"})
    quoted = urllib.parse.quote(urllib.parse.quote(odd, safe=""), safe="")
    urls = api.get("/1.0/networks").metadata
    assert f"/1.0/networks/{odd}" in urls and f"/1.0/networks/{on_bridge}" in urls
    api.delete_later(f"/1.0/networks/{urllib.parse.quote(odd + 'y')}")
    reply = api.post(f"/1.0/networks/{urllib.parse.quote(odd)}", {"name": odd + "y"})
    assert reply.headers["Location"] == f"/1.0/networks/{quoted}y"  # escaped twice


@pytest.mark.fake_only
def test_physical_network_is_created_with_its_volatile_key(api: API) -> None:
    """Fake only: a physical network takes over a real interface of the host."""
    name = make(api, "physical", config={"parent": "eth0", "mtu": "1500"})
    assert api.get(f"/1.0/networks/{name}").metadata["config"] == {
        "mtu": "1500", "parent": "eth0", "volatile.last_state.created": "false"}


# -- unmanaged interfaces and missing networks ---------------------------------------------------
def test_host_interfaces_are_read_only(api: API) -> None:
    for name in ("lo", "eth0"):
        got = api.get(f"/1.0/networks/{name}")
        assert got.status == 200 and got.metadata["managed"] is False
        assert_error(api.put(f"/1.0/networks/{name}", {}), 404, MISSING)
        assert_error(api.patch(f"/1.0/networks/{name}", {}), 404, MISSING)
        assert_error(api.post(f"/1.0/networks/{name}", {"name": "zz"}), 404, MISSING)
        assert_error(api.delete(f"/1.0/networks/{name}"), 404, MISSING)
        assert_error(api.get(f"/1.0/networks/{name}/leases"), 404, MISSING)


def test_missing_network(api: API) -> None:
    assert_error(api.get("/1.0/networks/nope"), 404, "Network not found")
    assert_error(api.put("/1.0/networks/nope", {}), 404, MISSING)
    assert_error(api.patch("/1.0/networks/nope", {}), 404, MISSING)
    assert_error(api.post("/1.0/networks/nope", {"name": "zz"}), 404, MISSING)
    assert_error(api.delete("/1.0/networks/nope"), 404, MISSING)
    assert_error(api.get("/1.0/networks/nope/leases"), 404, MISSING)
    assert_error(api.get("/1.0/networks/nope/state"), 404, 'Network interface "nope" not found')
    assert_error(api.put("/1.0/networks/lo/state", {}), 501, "not implemented")


# -- updates -------------------------------------------------------------------------------------
def test_patch_merges_config_and_resets_the_description(api: API) -> None:
    name = make(api, description="test net", config={"user.a": "1"})
    path = f"/1.0/networks/{name}"
    assert api.patch(path, {"config": {"user.b": "2"}}).status == 200
    got = api.get(path).metadata
    # 5.0.2 serves PATCH with the PUT handler after merging config: the description is lost.
    assert (got["config"], got["description"]) == ({**NONE, "user.a": "1", "user.b": "2"}, "")
    assert api.patch(path, {"config": {"user.b": ""}, "description": "d2"}).status == 200
    got = api.get(path).metadata
    assert (got["config"], got["description"]) == ({**NONE, "user.a": "1"}, "d2")
    assert api.patch(path, {"config": None, "name": "zz", "type": "macvlan"}).status == 200
    got = api.get(path).metadata
    assert (got["name"], got["type"], got["config"], got["description"]) == (
        name, "bridge", {**NONE, "user.a": "1"}, "")
    assert_error(api.request("PATCH", path), 400, "EOF")


def test_put_replaces_config(api: API) -> None:
    name = make(api, config={"user.a": "1", "dns.domain": "x"})
    path = f"/1.0/networks/{name}"
    assert api.put(path, {"config": {**NONE, "user.x": "1", "user.k": ""},
                          "description": "p"}).status == 200
    got = api.get(path).metadata
    assert (got["config"], got["description"]) == ({**NONE, "user.x": "1"}, "p")


def test_update_validation_is_a_400(api: API) -> None:
    name = make(api, config={"user.a": "1"})
    path = f"/1.0/networks/{name}"
    for body, message in [
            ({"config": {"foo": "1"}}, f'Invalid option for network "{name}" option "foo"'),
            ({"config": {"zzz": ""}}, f'Invalid option for network "{name}" option "zzz"'),
            ({"config": {"ipv4.address": "bogus"}},
             f'Invalid value for network "{name}" option "ipv4.address": invalid CIDR '
             "address: bogus"),
            ({"config": {"fan.type": "vxlan"}},
             "FAN configuration may only be set when in 'fan' mode"),
            ({"config": {"bridge.mode": "fan", "ipv6.address": ""}},
             "IPv4 configuration may not be set when in 'fan' mode"),
            ({"config": {"security.acls": "nope"}}, 'Network ACL "nope" does not exist')]:
        assert_error(api.patch(path, body), 400, message)
    assert_error(api.put(path, {"config": {**NONE, "zzz": ""}}), 400,
                 f'Invalid option for network "{name}" option "zzz"')
    assert_error(api.put(path, {"config": {"bridge.mode": "fan"}}), 500,
                 "Failed parsing fan.underlay_subnet: invalid CIDR address: ")
    assert api.get(path).metadata["config"] == {**NONE, "user.a": "1"}


def test_etag_and_if_match(api: API) -> None:
    name = make(api)
    path = f"/1.0/networks/{name}"
    got = api.get(path)
    etag = got.headers["ETag"].strip('"')
    assert etag == network_etag(got.metadata)
    assert api.patch(path, {"config": {"user.a": "1"}},
                     headers={"If-Match": f'"{etag}"'}).status == 200
    current = api.get(path).headers["ETag"].strip('"')
    assert current != etag
    assert_error(api.put(path, {"config": NONE}, headers={"If-Match": etag}), 412,
                 f"ETag doesn't match: {current} vs {etag}")
    assert_error(api.patch(path, {}, headers={"If-Match": "*"}), 412,
                 f"ETag doesn't match: {current} vs *")
    assert api.get(path).metadata["config"] == {**NONE, "user.a": "1"}


# -- rename and delete ---------------------------------------------------------------------------
def test_rename(api: API) -> None:
    other = make(api, "macvlan", config={"parent": "eth0"})
    name = make(api)
    path = f"/1.0/networks/{name}"
    assert_error(api.post(path, {}), 400, "New network name not provided")
    assert_error(api.post(path, {"name": other}), 409, f'Network "{other}" already exists')
    assert_error(api.post(path, {"name": name}), 409, f'Network "{name}" already exists')
    assert_error(api.post(path, {"name": "lo"}), 500, 'Network interface "lo" already exists')
    assert_error(api.post(path, {"name": "a/b"}), 400,
                 "Network interface contains invalid characters")
    assert_error(api.post(path, {"name": "abcdefghijklmnopq"}), 400,
                 "Network interface is too long (maximum 15 characters)")
    assert_error(api.post(path, {"name": 1}), 400,
                 "json: cannot unmarshal number into Go struct field NetworkPost.name of type "
                 "string")
    new = short()
    api.delete_later(f"/1.0/networks/{new}")
    reply = api.post(path, {"name": new})
    assert reply.status == 201 and reply.body["metadata"] is None
    assert reply.headers["Location"] == f"/1.0/networks/{new}"
    assert api.get(path).status == 404
    assert api.get(f"/1.0/networks/{new}").metadata["config"] == NONE
    assert api.delete(f"/1.0/networks/{new}").status == 200
    assert api.get(f"/1.0/networks/{new}").status == 404


def test_used_by_and_in_use(api: API) -> None:
    bridge = make(api)
    assert api.get(f"/1.0/networks/{bridge}").metadata["used_by"] is None
    base = unique("p")
    make_profile(api, base + "a", {"eth0": {"type": "nic", "network": bridge}})
    make_profile(api, base + "b", {"eth0": {"type": "nic", "nictype": "bridged",
                                            "parent": bridge}})
    make_profile(api, base + "c", {"eth0": {"type": "nic", "nictype": "macvlan",
                                            "parent": bridge, "vlan": "5"}})  # not this one
    macvlan = make(api, "macvlan", config={"parent": bridge})
    got = api.get(f"/1.0/networks/{bridge}").metadata
    assert got["used_by"] == [f"/1.0/networks/{macvlan}", f"/1.0/profiles/{base}a",
                              f"/1.0/profiles/{base}b"]
    listed = {o["name"]: o for o in api.get("/1.0/networks",
                                            params={"recursion": 1}).metadata}
    assert listed[bridge]["used_by"] == got["used_by"]
    path = f"/1.0/networks/{bridge}"
    assert_error(api.delete(path), 400, "The network is currently in use")
    assert_error(api.post(path, {"name": short()}), 400, "Network is currently in use")
    assert_error(api.post(path, {"name": macvlan}), 400, "Network is currently in use")
    assert_error(api.post(path, {"name": ""}), 400, "New network name not provided")
    for profile in ("a", "b"):
        assert api.delete(f"/1.0/profiles/{base}{profile}").status == 200
    assert_error(api.delete(path), 400, "The network is currently in use")
    assert api.delete(f"/1.0/networks/{macvlan}").status == 200
    assert api.delete(path).status == 200


def test_profiles_of_other_projects_count(api: API) -> None:
    bridge = make(api)
    plain = make_project(api)  # no features.networks: its profiles use the default networks
    make_profile(api, "pp", {"eth0": {"type": "nic", "network": bridge}}, project=plain)
    assert api.get(f"/1.0/networks/{bridge}").metadata["used_by"] == [
        f"/1.0/profiles/pp?project={plain}"]
    assert api.get(f"/1.0/networks/{bridge}", params={"project": plain}).metadata[
        "used_by"] == [f"/1.0/profiles/pp?project={plain}"]
    assert_error(api.delete(f"/1.0/networks/{bridge}"), 400, "The network is currently in use")


# -- projects ------------------------------------------------------------------------------------
def test_project_without_network_feature_uses_the_default_networks(api: API) -> None:
    bridge = make(api)
    project = make_project(api)
    in_project = api.in_project(project)
    urls = in_project.get("/1.0/networks").metadata
    assert {f"/1.0/networks/{bridge}", "/1.0/networks/lo", "/1.0/networks/eth0"} <= set(urls)
    plain = api.get(f"/1.0/networks/{bridge}")
    there = in_project.get(f"/1.0/networks/{bridge}")
    assert there.metadata == plain.metadata
    assert there.headers["ETag"] == plain.headers["ETag"]
    name = short()
    api.delete_later(f"/1.0/networks/{name}")
    reply = in_project.post("/1.0/networks", {"name": name, "config": NONE})
    assert reply.status == 201 and reply.headers["Location"] == f"/1.0/networks/{name}"
    assert api.get(f"/1.0/networks/{name}").status == 200
    assert in_project.patch(f"/1.0/networks/{name}", {"config": {"user.a": "b"}}).status == 200
    assert in_project.get(f"/1.0/networks/{name}/leases").metadata == []


def test_project_with_network_feature(api: API) -> None:
    bridge = make(api)
    project = make_project(api, {"features.networks": "true"})
    in_project = api.in_project(project)
    assert in_project.get("/1.0/networks").metadata == []
    assert in_project.get("/1.0/networks", params={"recursion": 1}).metadata == []
    assert_error(in_project.get(f"/1.0/networks/{bridge}"), 404, "Network not found")
    assert_error(in_project.get("/1.0/networks/lo"), 404, "Network not found")
    assert_error(in_project.get(f"/1.0/networks/{bridge}/leases"), 404, MISSING)
    assert_error(in_project.delete(f"/1.0/networks/{bridge}"), 404, MISSING)
    assert in_project.get(f"/1.0/networks/{bridge}/state").metadata["type"] == "broadcast"
    assert in_project.get("/1.0/networks/lo/state").metadata["type"] == "loopback"
    name = short()
    api.delete_later(f"/1.0/networks/{name}?project={project}")
    for net_type, config in [("bridge", NONE), ("macvlan", {"parent": "eth0"})]:
        assert_error(in_project.post("/1.0/networks", {"name": name, "type": net_type,
                                                       "config": config}),
                     400, "Network type does not support non-default projects")
    assert_error(in_project.post("/1.0/networks", {"name": name, "type": "bogus"}), 400,
                 "Unknown driver")
    make(api)  # two uplinks at least
    reply = in_project.post("/1.0/networks", {"name": name, "config": NONE})  # an OVN network
    assert_error(reply, 500, 'Option "network" is required')
    reply = in_project.post("/1.0/networks", {"name": name, "config": {**NONE,
                                                                       "network": bridge}})
    assert reply.status == 500 and reply.error.startswith("Failed to get OVN client: ")
    limited = make_project(api, {"features.networks": "true", "limits.networks": "0"})
    assert_error(api.in_project(limited).post("/1.0/networks", {"name": name, "config": NONE}),
                 400, "Networks limit has been reached for project")


def test_unknown_project(api: API) -> None:
    message = 'Failed to load project "nope": Project not found'
    nope = {"project": "nope"}
    bridge = make(api)
    for method, path, body in [("GET", "/1.0/networks", None),
                               ("POST", "/1.0/networks", {"name": "x"}),
                               ("GET", f"/1.0/networks/{bridge}", None),
                               ("GET", "/1.0/networks/nope", None),
                               ("PUT", f"/1.0/networks/{bridge}", {}),
                               ("PATCH", f"/1.0/networks/{bridge}", {}),
                               ("POST", f"/1.0/networks/{bridge}", {"name": "x"}),
                               ("DELETE", f"/1.0/networks/{bridge}", None),
                               ("GET", f"/1.0/networks/{bridge}/state", None),
                               ("GET", f"/1.0/networks/{bridge}/leases", None)]:
        reply = api.request(method, path, json_body=body, params=nope)
        assert_error(reply, 404, message)
    assert_error(api.request("POST", "/1.0/networks", data=b"garbage", params=nope), 404,
                 message)


# -- state and leases ----------------------------------------------------------------------------
def test_bridge_state_and_leases(api: API) -> None:
    name = make(api, config={"bridge.mtu": "1400"})
    state = api.get(f"/1.0/networks/{name}/state")
    assert "ETag" not in state.headers
    meta = state.metadata
    assert list(meta) == ["addresses", "counters", "hwaddr", "mtu", "state", "type", "bond",
                          "bridge", "vlan", "ovn"]
    assert re.fullmatch(r"00:16:3e(:[0-9a-f]{2}){3}", meta["hwaddr"])
    assert (meta["addresses"], meta["mtu"], meta["state"], meta["type"]) == (
        [], 1400, "up", "broadcast")
    assert list(meta["counters"]) == ["bytes_received", "bytes_sent", "packets_received",
                                      "packets_sent"]
    assert meta["bridge"] == {"id": "8000." + meta["hwaddr"].replace(":", ""), "stp": False,
                              "forward_delay": 1500, "vlan_default": 0,
                              "vlan_filtering": False, "upper_devices": []}
    assert (meta["bond"], meta["vlan"], meta["ovn"]) == (None, None, None)
    assert api.get(f"/1.0/networks/{name}/state").metadata["hwaddr"] == meta["hwaddr"]
    assert api.get(f"/1.0/networks/{name}/leases").metadata == []


def test_host_interface_state(api: API) -> None:
    lo = api.get("/1.0/networks/lo/state").metadata
    assert (lo["hwaddr"], lo["mtu"], lo["state"], lo["type"]) == ("", 65536, "up", "loopback")
    assert {"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"} \
        in lo["addresses"]
    assert (lo["bond"], lo["bridge"], lo["vlan"], lo["ovn"]) == (None, None, None, None)
    eth0 = api.get("/1.0/networks/eth0/state").metadata
    assert eth0["type"] == "broadcast" and eth0["bridge"] is None
    assert all(set(a) == {"family", "address", "netmask", "scope"} for a in eth0["addresses"])


# -- ?target= and pending networks ---------------------------------------------------------------
def test_target(api: API) -> None:
    member = "Cluster member not found"
    bridge = make(api)
    path = f"/1.0/networks/{bridge}"
    assert_error(api.get(path, params={"target": "foo"}), 404, member)
    assert_error(api.get(f"{path}/state", params={"target": "foo"}), 404, member)
    assert_error(api.patch(path, {}, params={"target": "foo"}), 404, member)
    assert api.get(path, params={"target": "none"}).status == 200
    assert api.get("/1.0/networks", params={"target": "foo"}).status == 200
    assert api.get(f"{path}/leases", params={"target": "foo"}).status == 200
    name = short()
    api.delete_later(f"/1.0/networks/{name}")
    assert_error(api.post("/1.0/networks", {"name": name, "type": "macvlan",
                                            "config": {"mtu": "1500"}},
                          params={"target": "foo"}),
                 400, 'Config key "mtu" may not be used as member-specific key')
    assert_error(api.post("/1.0/networks", {"name": name, "type": "bogus"},
                          params={"target": "foo"}), 400, "Unknown driver")
    assert_error(api.post("/1.0/networks", {"name": name, "type": "macvlan",
                                            "config": {"parent": "eth0"}},
                          params={"target": "foo"}), 404, member)


def test_pending_network_defined_for_a_member(api: API) -> None:
    name = short()
    path = f"/1.0/networks/{name}"
    api.delete_later(path)
    body = {"name": name, "type": "macvlan", "config": {"parent": "eth0"}}
    reply = api.post("/1.0/networks", body, params={"target": "none"})
    assert reply.status == 201 and reply.headers["Location"] == path
    assert api.get(path).metadata["status"] == "Pending"
    assert_error(api.post("/1.0/networks", body, params={"target": "none"}), 400,
                 'The network is already defined on member "none"')
    assert_error(api.patch(path, {"config": {"user.a": "1"}}), 400,
                 "Cannot update network global config when not in created state")
    assert_error(api.post(path, {"name": short()}), 400,
                 "Cannot rename network when not in created state")
    assert_error(api.get(f"{path}/state"), 404, f'Network interface "{name}" not found')
    assert_error(api.post("/1.0/networks", {"name": name, "type": "bridge",
                                            "config": {"mtu": "1400"}}), 500,
                 'Requested network type "bridge" doesn\'t match type in existing database '
                 'record "macvlan"')
    reply = api.post("/1.0/networks", {"name": name, "type": "macvlan",
                                       "config": {"mtu": "1400"}})
    assert reply.status == 201
    got = api.get(path).metadata
    assert (got["status"], got["config"]) == ("Created", {"mtu": "1400", "parent": "eth0"})


# -- lifecycle events ----------------------------------------------------------------------------


def test_lifecycle_events(api: API) -> None:
    name, new = short(), short()
    api.delete_later(f"/1.0/networks/{name}")
    api.delete_later(f"/1.0/networks/{new}")
    with lifecycle_events(api) as events:
        time.sleep(0.2)
        assert api.post("/1.0/networks", {"name": name, "config": NONE}).status == 201
        assert api.patch(f"/1.0/networks/{name}", {"config": {"user.a": "1"}}).status == 200
        assert api.patch(f"/1.0/networks/{name}", {"config": {"foo": "1"}}).status == 400
        assert api.put(f"/1.0/networks/{name}", {}, headers={"If-Match": "x"}).status == 412
        assert api.post(f"/1.0/networks/{name}", {"name": new}).status == 201
        assert api.delete(f"/1.0/networks/{new}").status == 200
        assert api.post("/1.0/networks", {"name": name, "config": {**NONE,
                                                                   "zz": "1"}}).status == 500
    mine = [e for e in events if e["metadata"]["source"] in (f"/1.0/networks/{name}",
                                                             f"/1.0/networks/{new}")]
    assert [(e["metadata"]["action"], e["metadata"]["source"]) for e in mine] == [
        ("network-created", f"/1.0/networks/{name}"),
        ("network-updated", f"/1.0/networks/{name}"),
        ("network-updated", f"/1.0/networks/{name}"),  # sent for the failed update too
        ("network-renamed", f"/1.0/networks/{new}"),
        ("network-deleted", f"/1.0/networks/{new}")]
    assert mine[3]["metadata"]["context"] == {"old_name": name}
    assert all(e["project"] == "default" and e["metadata"]["requestor"]["protocol"] == "unix"
               for e in mine)
    assert list(mine[3]["metadata"]) == ["action", "source", "context", "requestor"]


# -- the fake's own controls ---------------------------------------------------------------------
@pytest.mark.fake_only
def test_seeding(fake: FakeLXD) -> None:
    fake.seed({"networks": [
        {"name": "br9", "type": "bridge", "description": "seeded",
         "config": {"ipv4.address": "auto", "ipv6.address": "none"}},
        {"name": "mv9", "type": "macvlan", "config": {"parent": "eth0"}}]})
    api = API.unix("fake", fake.socket_path)
    br9 = api.get("/1.0/networks/br9").metadata
    assert br9["description"] == "seeded"
    # Seeding picks a subnet for "auto" (the API refuses: this host cannot pick one).
    assert re.fullmatch(r"10\.\d+\.\d+\.1/24", br9["config"]["ipv4.address"])
    assert br9["config"]["ipv4.nat"] == "true"
    state = api.get("/1.0/networks/br9/state").metadata
    assert state["addresses"] == [{"family": "inet", "address": br9["config"]["ipv4.address"]
                                   .split("/")[0], "netmask": "24", "scope": "global"}]
    assert api.get("/1.0/networks/mv9").metadata["type"] == "macvlan"
    with pytest.raises(ValueError, match='option "foo"'):
        fake.seed({"networks": [{"name": "br8", "type": "bridge",
                                 "config": {**NONE, "foo": "1"}}]})
    preseed.apply(fake.state, {"unmanaged_networks": [{"name": "eth1", "type": "physical"}]})
    assert api.get("/1.0/networks").metadata[-1] == "/1.0/networks/eth1"
    assert api.get("/1.0/networks/eth1/state").metadata["type"] == "broadcast"
    make_profile(api, "usr", {"eth0": {"type": "nic", "nictype": "macvlan", "parent": "eth1"}})
    assert api.get("/1.0/networks/eth1").metadata["used_by"] == ["/1.0/profiles/usr"]
    assert api.get("/1.0/networks/lo").metadata["used_by"] == []
    api.run_cleanups()
    assert not fake.handler_errors


def add_instance(api: API, name: str, profiles: list[str],
                 devices: dict[str, Any]) -> None:
    """A stopped, empty instance. The fake has no instances endpoint yet: there the record is
    laid into the state as the instances module keeps it (name, profiles, own devices)."""
    if api.is_fake and api.post("/1.0/instances", {}).error == "not found":
        server: FakeLXD = api.server  # type: ignore[attr-defined]
        with server.state.lock:
            server.state.families["instances"].setdefault("default", {})[name] = {
                "name": name, "profiles": profiles, "devices": devices}

        def forget() -> None:
            with server.state.lock:
                server.state.families["instances"]["default"].pop(name, None)

        api.later(forget)
        return
    api.delete_later(f"/1.0/instances/{name}")
    reply = api.post("/1.0/instances", {"name": name, "source": {"type": "none"},
                                        "profiles": profiles, "devices": devices})
    assert reply.status == 202, reply
    assert api.wait(reply)["status"] == "Success"


def test_instances_count_in_used_by(api: API) -> None:
    """Instances come after profiles: their own NICs and their profiles' NICs count, and an
    instance device replaces the profile device of the same name."""
    bridge, other = make(api), make(api)
    make_profile(api, unique("p"), {})  # unrelated
    withnic = make_profile(api, unique("p"), {"eth0": {"type": "nic", "network": bridge}})
    base = unique("c")
    add_instance(api, base + "a", ["default"], {"eth1": {"type": "nic", "network": bridge}})
    add_instance(api, base + "b", ["default", withnic], {})
    add_instance(api, base + "c", ["default", withnic],
                 {"eth0": {"type": "nic", "network": other}})
    usage = api.get(f"/1.0/networks/{bridge}").metadata["used_by"]
    # Real LXD lists the instances in no fixed order (seen both ways); the fake sorts them.
    assert usage[0] == f"/1.0/profiles/{withnic}"
    assert sorted(usage[1:]) == [f"/1.0/instances/{base}a", f"/1.0/instances/{base}b"]
    assert api.get(f"/1.0/networks/{other}").metadata["used_by"] == [f"/1.0/instances/{base}c"]
    assert_error(api.delete(f"/1.0/networks/{other}"), 400, "The network is currently in use")


@pytest.mark.fake_only
def test_ovn_uplink_choice() -> None:
    """Fake only: the real host always has other bridges around. With no bridge (nor physical
    network) in the default project there is no uplink; with exactly one it is used."""
    with FakeLXD(baseline=False) as fresh:
        api = API.unix("fake", fresh.socket_path)
        body = {"name": "o1", "type": "ovn", "config": NONE}
        assert_error(api.post("/1.0/networks", body), 500,
                     "No allowed uplink networks in project")
        assert api.post("/1.0/networks", {"name": "b1", "config": NONE}).status == 201
        reply = api.post("/1.0/networks", body)
        assert reply.status == 500 and reply.error.startswith("Failed to get OVN client: ")
        assert not fresh.handler_errors
