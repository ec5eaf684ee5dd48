"""``/1.0/networks``: managed networks per project, the host's unmanaged interfaces, their state.

A managed network is ``{"name", "type", "description", "config", "status"}`` in the per-project
``networks`` family (``status`` is ``Created``, or ``Pending`` while only defined for a member
with ``?target=``). The host's unmanaged interfaces (``lo``, ``eth0`` in the baseline) are
``{"name", "type"}`` in the global ``unmanaged_networks`` family. ``used_by`` is computed on
every read from networks, profiles and instances, in LXD's order. A network's port forwards
live in it under ``forwards`` (see ``network_forwards.py``), so they follow renames and deletes.

The fake's host behaves as the one ``scripts/lxd-host`` sets up: it cannot pick a free subnet
for ``ipv4.address``/``ipv6.address`` ``auto`` (LXD probes random subnets there and finds them
all taken), it has no OVN, and its interfaces are the unmanaged networks plus the bridges.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote, url_segment, with_project
from ..responses import LXDError
from ..schema import MAP_STR, STR, Struct
from ..state import State
from ..validation import each_item
from . import network_acls, route

NETWORKS_POST = Struct("NetworksPost", config=MAP_STR, description=STR, name=STR, type=STR)
NETWORK_PUT = Struct("NetworkPut", config=MAP_STR, description=STR)
NETWORK_POST = Struct("NetworkPost", name=STR)

TYPES = ("bridge", "macvlan", "sriov", "ovn", "physical")
# Config keys a member may hold on its own (db.NodeSpecificNetworkConfig in 5.0.2).
MEMBER_KEYS = ("bgp.ipv4.nexthop", "bgp.ipv6.nexthop", "bridge.external_interfaces", "parent")
TRUE = ("true", "1", "yes", "on")

AUTO_V4 = "Failed to automatically find an unused IPv4 subnet, manual configuration required"
AUTO_V6 = "Failed to automatically find an unused IPv6 subnet, manual configuration required"
OVN_CLIENT = ("Failed to get OVN client: Failed to get OVN southbound connection string: Failed "
              "to run: ovs-vsctl get open_vswitch . external_ids:ovn-remote: exec: "
              '"ovs-vsctl": executable file not found in $PATH')
# What the fake's host reports for its unmanaged interfaces (plausible, static).
HOST_STATE: dict[str, dict[str, Any]] = {
    "lo": {"addresses": [{"family": "inet", "address": "127.0.0.1", "netmask": "8",
                          "scope": "local"},
                         {"family": "inet6", "address": "::1", "netmask": "128",
                          "scope": "local"}],
           "hwaddr": "", "mtu": 65536, "type": "loopback"},
    "eth0": {"addresses": [{"family": "inet", "address": "192.0.2.2", "netmask": "24",
                            "scope": "global"},
                           {"family": "inet6", "address": "fe80::216:3eff:fe00:1",
                            "netmask": "64", "scope": "link"}],
             "hwaddr": "00:16:3e:00:00:01", "mtu": 1500, "type": "broadcast"},
}
# The subnet of the fake host's default gateway interface (fan.underlay_subnet=auto).
GATEWAY_SUBNET = "192.0.2.0/24"


class Invalid(Exception):
    """A config or name that LXD rejects; the handler picks the status code."""


# -- Go-flavoured helpers -----------------------------------------------------------------------
def is_true(value: str | None) -> bool:
    return (value or "").lower() in TRUE


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def _go_int(value: str) -> int | None:
    """``strconv.Atoi``/``ParseInt`` (base 10): None when Go would fail."""
    return int(value) if _DECIMAL.fullmatch(value) else None


def _go_uint(value: str, bits: int) -> int | None:
    if not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number < 2**bits else None


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``net.ParseIP``: dotted IPv4 or IPv6 text, no zone, no prefix."""
    if not value or "%" in value or "/" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_v4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Go's ``ip.To4() != nil`` (IPv4-mapped IPv6 addresses count as IPv4)."""
    return ip.version == 4 or getattr(ip, "ipv4_mapped", None) is not None


def parse_cidr(value: str) -> tuple[Any, Any]:
    """Go's ``net.ParseCIDR``: (address, network) or Invalid with Go's message."""
    addr, sep, bits = value.partition("/")
    ip = parse_ip(addr)
    if not sep or ip is None or not bits.isascii() or not bits.isdigit() or len(bits) > 3:
        raise Invalid(f"invalid CIDR address: {value}")
    if int(bits) > (32 if ip.version == 4 else 128):
        raise Invalid(f"invalid CIDR address: {value}")
    network = ipaddress.ip_network(f"{ip}/{int(bits)}", strict=False)
    return ip, network


# -- LXD's shared/validate checkers ------------------------------------------------------------
Check = Callable[[str], None]


def optional(*checks: Check) -> Check:
    def check(value: str) -> None:
        if value == "":
            return
        for item in checks:
            item(value)

    return check


def required(value: str) -> None:
    if value == "":
        raise Invalid("Required value")


def any_value(value: str) -> None:
    return None


def is_bool(value: str) -> None:
    if value.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise Invalid(f"Invalid value for a boolean {go_quote(value)}")


def one_of(*choices: str) -> Check:
    def check(value: str) -> None:
        if value not in choices:
            raise Invalid(f"Invalid value {go_quote(value)} (not one of [{' '.join(choices)}])")

    return check


def is_int64(value: str) -> None:
    number = _go_int(value)
    if number is None or not -2**63 <= number < 2**63:
        raise Invalid(f"Invalid value for an integer {go_quote(value)}")


def is_uint8(value: str) -> None:
    if _go_uint(value, 8) is None:
        raise Invalid(f"Invalid value for an integer {go_quote(value)}. Must be between 0 and 255")


def in_range(low: int, high: int) -> Check:
    def check(value: str) -> None:
        number = _go_int(value)
        if number is None:
            raise Invalid(f"Invalid value for an integer {go_quote(value)}")
        if not low <= number <= high:
            raise Invalid(f"Value isn't within valid range. Must be between {low} and {high}")

    return check


def is_mtu(value: str) -> None:
    number = _go_uint(value, 32)
    if number is None:
        raise Invalid(f"Invalid MTU {go_quote(value)}")
    if not 1280 <= number <= 16384:
        raise Invalid(f"Out of MTU range (1280-16384) {go_quote(value)}")


def is_vlan(value: str) -> None:
    number = _go_int(value)
    if number is None:
        raise Invalid(f"Invalid VLAN ID {go_quote(value)}")
    if not 0 <= number <= 4094:
        raise Invalid(f"Out of VLAN ID range (0-4094) {go_quote(value)}")


def is_port(value: str) -> None:
    """LXD's networkValidPort (tunnel ports)."""
    if value == "":
        return
    number = _go_int(value)
    if number is None:
        raise Invalid(f"Invalid value for an integer: {value}")
    if not 1 <= number <= 65536:
        raise Invalid(f"Invalid port number: {value}")


_IFACE = re.compile(r"[-_a-zA-Z0-9.]+")


def is_interface_name(value: str) -> None:
    size = len(value.encode())
    if size < 2:
        raise Invalid("Network interface is too short (minimum 2 characters)")
    if size > 15:
        raise Invalid("Network interface is too long (maximum 15 characters)")
    if not _IFACE.fullmatch(value):
        raise Invalid("Network interface contains invalid characters")


def is_mac(value: str) -> None:
    octets = value.split(":")
    if len(value) != 17 or len(octets) != 6 or not all(
            len(o) == 2 and all(c in "0123456789abcdefABCDEF" for c in o) for o in octets):
        raise Invalid("Invalid MAC address, must be 6 bytes of hex separated by colons")


def is_address(value: str) -> None:
    if parse_ip(value) is None:
        raise Invalid(f"Not an IP address {go_quote(value)}")


def is_address_v4(value: str) -> None:
    ip = parse_ip(value)
    if ip is None or not is_v4(ip):
        raise Invalid(f"Not an IPv4 address {go_quote(value)}")


def is_address_v6(value: str) -> None:
    ip = parse_ip(value)
    if ip is None or is_v4(ip):
        raise Invalid(f"Not an IPv6 address {go_quote(value)}")


def _cidr_address(version: int) -> Check:
    family = "IPv4" if version == 4 else "IPv6"

    def check(value: str) -> None:
        ip, network = parse_cidr(value)
        if is_v4(ip) != (version == 4):
            raise Invalid(f"Not an {family} address {go_quote(value)}")
        if ip == network.network_address:
            raise Invalid(f"Not a usable {family} address {go_quote(value)}")

    return check


def _network(version: int) -> Check:
    family = "IPv4" if version == 4 else "IPv6"

    def check(value: str) -> None:
        ip, network = parse_cidr(value)
        if is_v4(ip) != (version == 4):
            raise Invalid(f"Not an {family} network {go_quote(value)}")
        if ip != network.network_address:
            raise Invalid(f"Not an {family} network address {go_quote(value)}")

    return check


def _range(version: int) -> Check:
    address = is_address_v4 if version == 4 else is_address_v6

    def check(value: str) -> None:
        parts = value.split("-", 1)
        if len(parts) != 2:
            raise Invalid("IP range must contain start and end IP addresses")
        for part in parts:
            address(part)

    return check


def list_of(check: Check) -> Check:
    def run(value: str) -> None:
        each_item(value, check, Invalid)

    return run


def address_or_special(version: int) -> Check:
    """``ipv4.address``/``ipv6.address``: ``none``, ``auto`` or an address in CIDR form."""
    cidr = _cidr_address(version)

    def check(value: str) -> None:
        if value in ("none", "auto"):
            return
        cidr(value)

    return check


def external_interfaces(value: str) -> None:
    each_item(value, is_interface_name, Invalid, "Invalid interface name")


def underlay(value: str) -> None:
    if value != "auto":
        _network(4)(value)


# -- per-driver rules ---------------------------------------------------------------------------
Rules = dict[str, Check]

ACL_KEYS: Rules = {
    "security.acls": any_value,
    "security.acls.default.egress.action": optional(one_of("allow", "drop", "reject")),
    "security.acls.default.egress.logged": optional(is_bool),
    "security.acls.default.ingress.action": optional(one_of("allow", "drop", "reject")),
    "security.acls.default.ingress.logged": optional(is_bool),
}
ZONE_KEYS = ("dns.zone.forward", "dns.zone.reverse.ipv4", "dns.zone.reverse.ipv6")

BRIDGE_RULES: Rules = {
    "bridge.driver": optional(one_of("native", "openvswitch")),
    "bridge.external_interfaces": optional(external_interfaces),
    "bridge.hwaddr": optional(is_mac),
    "bridge.mtu": optional(is_mtu),
    "bridge.mode": optional(one_of("standard", "fan")),
    "fan.overlay_subnet": optional(_network(4)),
    "fan.underlay_subnet": optional(underlay),
    "fan.type": optional(one_of("vxlan", "ipip")),
    "ipv4.address": optional(address_or_special(4)),
    "ipv4.firewall": optional(is_bool),
    "ipv4.nat": optional(is_bool),
    "ipv4.nat.order": optional(one_of("before", "after")),
    "ipv4.nat.address": optional(is_address_v4),
    "ipv4.dhcp": optional(is_bool),
    "ipv4.dhcp.gateway": optional(is_address_v4),
    "ipv4.dhcp.expiry": any_value,
    "ipv4.dhcp.ranges": optional(list_of(_range(4))),
    "ipv4.routes": optional(list_of(_network(4))),
    "ipv4.routing": optional(is_bool),
    "ipv4.ovn.ranges": optional(list_of(_range(4))),
    "ipv6.address": optional(address_or_special(6)),
    "ipv6.firewall": optional(is_bool),
    "ipv6.nat": optional(is_bool),
    "ipv6.nat.order": optional(one_of("before", "after")),
    "ipv6.nat.address": optional(is_address_v6),
    "ipv6.dhcp": optional(is_bool),
    "ipv6.dhcp.expiry": any_value,
    "ipv6.dhcp.stateful": optional(is_bool),
    "ipv6.dhcp.ranges": optional(list_of(_range(6))),
    "ipv6.routes": optional(list_of(_network(6))),
    "ipv6.routing": optional(is_bool),
    "ipv6.ovn.ranges": optional(list_of(_range(6))),
    "dns.domain": any_value,
    "dns.mode": optional(one_of("dynamic", "managed", "none")),
    "dns.search": any_value,
    "raw.dnsmasq": any_value,
    "maas.subnet.ipv4": any_value,
    "maas.subnet.ipv6": any_value,
    **{key: any_value for key in ZONE_KEYS},
    **ACL_KEYS,
}


def parent(value: str) -> None:
    required(value)
    is_interface_name(value)


PARENT_RULES: Rules = {
    "parent": parent,
    "mtu": optional(is_mtu),
    "vlan": optional(is_vlan),
    "maas.subnet.ipv4": any_value,
    "maas.subnet.ipv6": any_value,
}
MACVLAN_RULES: Rules = {**PARENT_RULES, "gvrp": optional(is_bool)}
SRIOV_RULES: Rules = dict(PARENT_RULES)
PHYSICAL_RULES: Rules = {
    **PARENT_RULES,
    "gvrp": optional(is_bool),
    "dns.nameservers": optional(list_of(is_address)),
    "ipv4.gateway": optional(_cidr_address(4)),
    "ipv6.gateway": optional(_cidr_address(6)),
    "ipv4.ovn.ranges": optional(list_of(_range(4))),
    "ipv6.ovn.ranges": optional(list_of(_range(6))),
    "ipv4.routes": optional(list_of(_network(4))),
    "ipv6.routes": optional(list_of(_network(6))),
    "ipv4.routes.anycast": optional(is_bool),
    "ipv6.routes.anycast": optional(is_bool),
    "ovn.ingress_mode": optional(one_of("l2proxy", "routed")),
    "volatile.last_state.created": optional(is_bool),
}
OVN_RULES: Rules = {
    "network": any_value,
    "bridge.hwaddr": optional(is_mac),
    "bridge.mtu": optional(is_mtu),
    "ipv4.address": optional(address_or_special(4)),
    "ipv4.dhcp": optional(is_bool),
    "ipv4.nat": optional(is_bool),
    "ipv4.nat.address": optional(is_address_v4),
    "ipv6.address": optional(address_or_special(6)),
    "ipv6.dhcp": optional(is_bool),
    "ipv6.dhcp.stateful": optional(is_bool),
    "ipv6.nat": optional(is_bool),
    "ipv6.nat.address": optional(is_address_v6),
    "dns.domain": any_value,
    "dns.search": any_value,
    **{key: any_value for key in ZONE_KEYS},
    **ACL_KEYS,
}
RULES = {"bridge": BRIDGE_RULES, "macvlan": MACVLAN_RULES, "sriov": SRIOV_RULES,
         "physical": PHYSICAL_RULES, "ovn": OVN_RULES}

TUNNEL_RULES: Rules = {
    "protocol": optional(one_of("gre", "vxlan")),
    "local": optional(is_address),
    "remote": optional(is_address),
    "port": is_port,
    "group": optional(is_address),
    "id": optional(is_int64),
    "interface": is_interface_name,
    "ttl": optional(is_uint8),
}
BGP_RULES: Rules = {
    "address": optional(is_address),
    "asn": optional(in_range(1, 4294967294)),
    "password": any_value,
}


def _dynamic_rules(net_type: str, name: str, config: dict[str, str]) -> Rules:
    """The rules for keys that carry a name (``tunnel.NAME.*``, ``bgp.peers.NAME.*``)."""
    rules: Rules = {}
    for key in config:
        fields = key.split(".")
        if key.startswith("bgp.") and net_type in ("bridge", "physical"):
            if len(fields) != 4:  # 5.0.2 also rejects bgp.ipv4.nexthop this way
                raise Invalid(f"Invalid network configuration key: {key}")
            if fields[3] in BGP_RULES:
                rules[key] = BGP_RULES[fields[3]]
        elif key.startswith("tunnel.") and net_type == "bridge":
            if len(fields) != 3:
                raise Invalid(f"Invalid network configuration key: {key}")
            if len(name) + len(fields[1]) > 14:
                raise Invalid(f"Network name too long for tunnel interface: {name}-{fields[1]}")
            if fields[2] in TUNNEL_RULES:
                rules[key] = TUNNEL_RULES[fields[2]]
    return rules


def validate(state: State, project: str, net_type: str, name: str,
             config: dict[str, str]) -> None:
    """LXD's ``Validate`` for ``net_type``: per-key rules, unknown keys, composite checks."""
    rules = {**RULES[net_type], **_dynamic_rules(net_type, name, config)}
    for key in sorted(rules):  # LXD walks a Go map: with several bad keys, any may be named
        try:
            rules[key](config.get(key, ""))
        except Invalid as exc:
            raise Invalid(f"Invalid value for network {go_quote(name)} option {go_quote(key)}: "
                          f"{exc}") from None
    if net_type in ("bridge", "ovn"):
        for key in ZONE_KEYS:
            _check_zones(state, name, key, config.get(key, ""))
    for key in sorted(config):
        if key not in rules and not key.startswith("user."):
            raise Invalid(f"Invalid option for network {go_quote(name)} option {go_quote(key)}")
    if net_type == "bridge":
        _bridge_composite(name, config)
    if config.get("security.acls"):
        acls = state.families.get("network_acls", {}).get(project) or {}
        for acl in config["security.acls"].split(","):
            acl = acl.strip()
            if acl not in acls:
                raise Invalid(f"Network ACL {go_quote(acl)} does not exist")


def _check_zones(state: State, name: str, key: str, value: str) -> None:
    zones = state.families.get("network_zones") or {}
    known = {zone for per_project in zones.values() for zone in per_project}
    if value and value not in known:  # one zone per key in 5.0.2 ("a,b" is one missing zone)
        raise Invalid(f"Invalid value for network {go_quote(name)} option {go_quote(key)}: "
                      f"Network zone {go_quote(value)} doesn't exist")


def _bridge_composite(name: str, config: dict[str, str]) -> None:
    fan = config.get("bridge.mode") == "fan"
    if fan and len(name) > 11:
        raise Invalid("Network name too long to use with the FAN (must be 11 characters or less)")
    for key, value in sorted(config.items()):
        if not value:
            continue
        if fan and key.startswith("ipv4.") and key not in (
                "ipv4.dhcp.expiry", "ipv4.firewall", "ipv4.nat", "ipv4.nat.order"):
            raise Invalid("IPv4 configuration may not be set when in 'fan' mode")
        if fan and key.startswith("ipv6."):
            raise Invalid("IPv6 configuration may not be set when in 'fan' mode")
        if not fan and key.startswith("fan."):
            raise Invalid("FAN configuration may only be set when in 'fan' mode")
        if key == "bridge.mtu" and fan:
            mtu = int(value)
            if config.get("fan.type") == "ipip" and mtu > 1480:
                raise Invalid("Maximum MTU for an IPIP FAN bridge is 1480")
            if config.get("fan.type") != "ipip" and mtu > 1450:
                raise Invalid("Maximum MTU for a VXLAN FAN bridge is 1450")
    if config.get("bridge.hwaddr"):
        if fan:
            raise Invalid('Cannot use static "bridge.hwaddr" MAC address in fan mode')
        if (config.get("bridge.external_interfaces") and config.get("ipv4.address") == "none"
                and config.get("ipv6.address") == "none"):
            raise Invalid('Cannot use static "bridge.hwaddr" MAC address when bridge has no IP '
                          "addresses and has external interfaces set")


def validate_name(net_type: str, name: str) -> None:
    """The driver's ``ValidateName``: interface rules for bridges, URL-safe for every type."""
    if net_type == "bridge":
        is_interface_name(name)
    for char in ("/", "?", "&", "+", ":"):
        if char in name:
            raise Invalid(f"Cannot contain {go_quote(char)}")


def fill_config(net_type: str, config: dict[str, str], *, lenient: bool = False) -> None:
    """LXD's ``FillConfig``: defaults, then ``auto`` values (which this host cannot pick).

    ``lenient`` (preseeding only) picks a made-up subnet instead of failing.
    """
    if net_type not in ("bridge", "ovn"):
        return
    if net_type == "bridge" and config.get("bridge.mode") == "fan":
        if not config.get("fan.underlay_subnet"):
            config["fan.underlay_subnet"] = "auto"
        if not config.get("ipv4.nat"):
            config["ipv4.nat"] = "true"
    else:
        for version in ("ipv4", "ipv6"):
            if not config.get(f"{version}.address"):
                config[f"{version}.address"] = "auto"
            if config[f"{version}.address"] == "auto" and not config.get(f"{version}.nat"):
                config[f"{version}.nat"] = "true"
    _populate_auto(config, lenient)


def _populate_auto(config: dict[str, str], lenient: bool) -> None:
    digest = hashlib.sha256(repr(sorted(config.items())).encode()).digest()
    if config.get("ipv4.address") == "auto":
        if not lenient:
            raise LXDError(500, f"Failed generating auto config: {AUTO_V4}")
        config["ipv4.address"] = f"10.{digest[0]}.{digest[1]}.1/24"
    if config.get("ipv6.address") == "auto":
        if not lenient:
            raise LXDError(500, f"Failed generating auto config: {AUTO_V6}")
        config["ipv6.address"] = f"fd42:{digest[2]:x}{digest[3]:02x}:{digest[4]:x}::1/64"
    if config.get("fan.underlay_subnet") == "auto":
        config["fan.underlay_subnet"] = GATEWAY_SUBNET


# -- the model ----------------------------------------------------------------------------------
def new(name: str, net_type: str, description: str = "", config: dict[str, str] | None = None,
        status: str = "Created") -> dict[str, Any]:
    return {"name": name, "type": net_type, "description": description,
            "config": {k: v for k, v in (config or {}).items() if v != ""}, "status": status}


def host_interfaces(state: State) -> dict[str, str]:
    """The fake host's interfaces: name -> how LXD types it when unmanaged."""
    found = {name: str(item.get("type") or "unknown")
             for name, item in state.family("unmanaged_networks").items()}
    for name, net in (state.families["networks"].get("default") or {}).items():
        if net.get("type") == "bridge" and net.get("status", "Created") == "Created":
            found.setdefault(name, "bridge")
    return found




def url(owner: str, name: str, kind: str = "networks") -> str:
    """An object's URL as 5.0.2 writes it in ``used_by``, ``Location`` and events: the name
    escaped twice (``n z`` is ``n%2520z``)."""
    return with_project(f"/1.0/{kind}/{url_segment(name)}", owner)


def list_url(owner: str, name: str) -> str:
    """The URL in a ``GET /1.0/networks`` list: the name as it is."""
    return with_project(f"/1.0/networks/{name}", owner)


def _host_device(parent: str, vlan: str) -> str:
    return parent if not vlan else f"{parent}.{vlan}"


def _uses(device: dict[str, Any], name: str, net_type: str) -> bool:
    """LXD's isInUseByDevice: a NIC naming the network, or (not OVN) its parent interface."""
    if not isinstance(device, dict) or device.get("type") != "nic":
        return False
    if device.get("network") and device.get("network") == name:
        return True
    if net_type == "ovn":
        return False
    parent = device.get("parent") or ""
    return bool(parent) and _host_device(parent, device.get("vlan") or "") == name


def _projects(state: State) -> list[str]:
    names = list(state.family("projects"))
    for family in ("profiles", "instances", "networks"):
        names += [p for p in state.families[family] if p not in names]
    return names


def _expanded_devices(state: State, project: str, inst: dict[str, Any]) -> dict[str, Any]:
    expanded = inst.get("expanded_devices")
    if isinstance(expanded, dict):
        return expanded
    profiles = state.families["profiles"].get(state.owner("profiles", project)) or {}
    devices: dict[str, Any] = {}
    for profile in inst.get("profiles") or []:
        devices.update((profiles.get(profile) or {}).get("devices") or {})
    devices.update(inst.get("devices") or {})
    return devices


def used_by(state: State, owner: str, name: str, net_type: str,
            first_only: bool = False) -> list[str]:
    """Networks, profiles, then instances using ``name`` (LXD's network.UsedBy order)."""
    urls: list[str] = []
    projects = _projects(state)
    if owner == "default":
        for project in projects:
            for other_name, other in sorted((state.families["networks"].get(project)
                                             or {}).items()):
                if (other_name == name and project == owner) or \
                        other.get("status", "Created") != "Created":
                    continue
                cfg = other.get("config") or {}
                if cfg.get("network") == name or cfg.get("parent") == name:
                    urls.append(url(project, other_name))
                    if first_only:
                        return urls
    for project in projects:
        if state.owner("networks", project) != owner:
            continue
        for prof_name, profile in sorted((state.families["profiles"].get(project)
                                          or {}).items()):
            devices = (profile.get("devices") or {}).values()
            if any(_uses(device, name, net_type) for device in devices):
                urls.append(url(project, prof_name, "profiles"))
                if first_only:
                    return urls
    for project in projects:
        if state.owner("networks", project) != owner:
            continue
        for inst_name, inst in sorted((state.families["instances"].get(project)
                                       or {}).items()):
            if not isinstance(inst, dict):
                continue
            devices = _expanded_devices(state, project, inst).values()
            if any(_uses(device, name, net_type) for device in devices):
                urls.append(url(project, inst_name, "instances"))
                if first_only:
                    return urls
    return urls


def render(state: State, owner: str, net: dict[str, Any]) -> dict[str, Any]:
    """A managed network as ``api.Network`` (``used_by`` is null when empty)."""
    usage = used_by(state, owner, net["name"], net["type"])
    return {"config": dict(net["config"]), "description": net["description"],
            "name": net["name"], "type": net["type"], "used_by": usage or None,
            "managed": True, "status": net.get("status", "Created"), "locations": ["none"]}


def render_unmanaged(state: State, name: str, net_type: str) -> dict[str, Any]:
    """A host interface LXD does not manage (the loopback's ``used_by`` is always ``[]``)."""
    usage: list[str] | None = []
    if net_type != "loopback":
        usage = used_by(state, "default", name, net_type) or None
    return {"config": {}, "description": "", "name": name, "type": net_type,
            "used_by": usage, "managed": False, "status": "", "locations": None}


def etag(data: dict[str, Any]) -> str:
    return responses.etag_of([data["name"], data["managed"], data["type"], data["description"],
                              data["config"]])


def hwaddr(owner: str, name: str) -> str:
    digest = hashlib.sha256(f"{owner}/{name}".encode()).digest()
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def bridge_state(owner: str, net: dict[str, Any]) -> dict[str, Any]:
    """``NetworkState`` of a managed bridge: its addresses, a stable MAC, no traffic."""
    config = net["config"]
    mac = config.get("bridge.hwaddr") or hwaddr(owner, net["name"])
    addresses = []
    for key, family in (("ipv4.address", "inet"), ("ipv6.address", "inet6")):
        value = config.get(key, "")
        if "/" in value:
            ip, _, prefix = value.partition("/")
            addresses.append({"family": family, "address": ip, "netmask": prefix,
                              "scope": "global"})
    if config.get("bridge.mtu"):
        mtu = int(config["bridge.mtu"])
    elif any(key.startswith("tunnel.") for key in config):
        mtu = 1400
    elif config.get("bridge.mode") == "fan":
        mtu = 1480 if config.get("fan.type") == "ipip" else 1450
    else:
        mtu = 1500
    return {"addresses": addresses, "counters": _counters(), "hwaddr": mac.lower(), "mtu": mtu,
            "state": "up", "type": "broadcast", "bond": None,
            "bridge": {"id": "8000." + mac.lower().replace(":", ""), "stp": False,
                       "forward_delay": 1500, "vlan_default": 0, "vlan_filtering": False,
                       "upper_devices": []},
            "vlan": None, "ovn": None}


def _counters() -> dict[str, int]:
    return {"bytes_received": 0, "bytes_sent": 0, "packets_received": 0, "packets_sent": 0}


def host_state(state: State, name: str, net_type: str) -> dict[str, Any]:
    base = HOST_STATE.get(name)
    if base is None:
        mac = hwaddr("host", name)
        base = {"addresses": [], "hwaddr": mac, "mtu": 1500,
                "type": "loopback" if net_type == "loopback" else "broadcast"}
    return {"addresses": [dict(a) for a in base["addresses"]], "counters": _counters(),
            "hwaddr": base["hwaddr"], "mtu": base["mtu"], "state": "up", "type": base["type"],
            "bond": None, "bridge": None, "vlan": None, "ovn": None}


# -- seeding ------------------------------------------------------------------------------------
def seed_unmanaged(state: State, items: list[dict[str, Any]]) -> None:
    """The host's own interfaces (``{"name", "type"}``), listed after the managed networks."""
    for item in items:
        name = str(item["name"])
        state.family("unmanaged_networks")[name] = {"name": name,
                                                    "type": str(item.get("type") or "unknown")}


def seed(state: State, items: list[dict[str, Any]]) -> None:
    """Preseed: create a network with a POST's checks, or update one (config replaced whole).

    Two leniencies make preseeds from other hosts usable: ``auto`` addresses get a made-up
    subnet, and a project with ``features.networks`` may hold any type of network.
    """
    for item in items:
        project = str(item.get("project") or "default")
        owner = state.owner("networks", project)
        networks = state.in_project("networks", project)
        name = str(item.get("name") or "")
        config = {str(k): "" if v is None else str(v)
                  for k, v in (item.get("config") or {}).items()}
        description = str(item.get("description") or "")
        try:
            current = networks.get(name)
            if current is not None:
                validate(state, owner, current["type"], name, config)
                current["config"] = {k: v for k, v in config.items() if v != ""}
                if "description" in item:
                    current["description"] = description
                continue
            if not name:
                raise LXDError(400, "No name provided")
            net_type = str(item.get("type") or ("bridge" if owner == "default" else "ovn"))
            if net_type not in TYPES:
                raise LXDError(400, "Unknown driver")
            validate_name(net_type, name)
            fill_config(net_type, config, lenient=True)
            config = {k: v for k, v in config.items() if v != ""}
            validate(state, owner, net_type, name, config)
            _create_checks(state, owner, net_type, name, config)
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        networks[name] = new(name, net_type, description, config)


# -- handlers -----------------------------------------------------------------------------------
def _owner(ctx: Ctx) -> str:
    """The project whose networks ``?project=`` uses (404 for an unknown project)."""
    ctx.state.require_project(ctx.project,
                              f'Failed to load project {go_quote(ctx.project)}: Project not found')
    return ctx.state.owner("networks", ctx.project)


def _check_target(ctx: Ctx) -> None:
    """A request LXD forwards to ``?target=``: only the local member ("none") is known."""
    target = ctx.request.args.get("target", "")
    if target and target != "none":
        raise LXDError(404, "Cluster member not found")


def _managed(ctx: Ctx, owner: str, name: str) -> dict[str, Any]:
    net = (ctx.state.families["networks"].get(owner) or {}).get(name)
    if net is None:
        raise LXDError(404, "Failed loading network: Network not found")
    return net


def _lookup(ctx: Ctx, owner: str, name: str) -> dict[str, Any]:
    """The rendered network (managed first, then a host interface of the default project)."""
    net = (ctx.state.families["networks"].get(owner) or {}).get(name)
    if net is not None:
        return render(ctx.state, owner, net)
    if owner == "default" and not name.startswith("veth"):
        unmanaged = ctx.state.family("unmanaged_networks").get(name)
        if unmanaged is not None:
            return render_unmanaged(ctx.state, name, unmanaged["type"])
    raise LXDError(404, "Network not found")


@route("/1.0/networks", "GET")
def list_networks(ctx: Ctx) -> Response:
    with ctx.state.lock:
        owner = _owner(ctx)
        managed = ctx.state.families["networks"].get(owner) or {}
        names = sorted(managed)
        unmanaged: list[str] = []
        if owner == "default":
            unmanaged = [n for n in ctx.state.family("unmanaged_networks")
                         if n not in managed and not n.startswith("veth")]
        if ctx.recursion < 1:
            return responses.sync([list_url(owner, n) for n in names + unmanaged])
        found = [render(ctx.state, owner, managed[n]) for n in names]
        found += [render_unmanaged(ctx.state, n, ctx.state.family("unmanaged_networks")[n]
                                   ["type"]) for n in unmanaged]
        return responses.sync(found)


def _check_acls(state: State, owner: str, name: str, config: dict[str, str]) -> None:
    """Applying a bridge's ``security.acls`` to its firewall: what the nftables driver and
    ``nft`` refuse (500; LXD then reverts the create or update)."""
    try:
        network_acls.check_bridge_firewall(state, owner, name, config)
    except network_acls.Invalid as exc:
        raise LXDError(500, str(exc)) from None


def _create_checks(state: State, owner: str, net_type: str, name: str,
                   config: dict[str, str]) -> None:
    """What the driver's ``Create``/first start refuses on this host (after validation)."""
    interfaces = host_interfaces(state)
    if net_type == "bridge" and name in interfaces:
        raise LXDError(500, f"Network interface {go_quote(name)} already exists")
    if net_type == "bridge":
        _check_acls(state, owner, name, config)
    if net_type in ("macvlan", "sriov", "physical") and config["parent"] not in interfaces:
        raise LXDError(500, f"Parent interface {go_quote(config['parent'])} not found")
    if net_type == "physical":
        config.setdefault("volatile.last_state.created", "false")
    if net_type == "ovn":
        uplink = config.get("network", "")
        uplinks = {n for n, net in (state.families["networks"].get("default") or {}).items()
                   if net.get("type") in ("bridge", "physical")}
        if uplink and uplink not in uplinks:
            raise LXDError(500, f'Option "network" value {go_quote(uplink)} is not one of the '
                                "allowed uplink networks in project")
        if not uplink and not uplinks:
            raise LXDError(500, "No allowed uplink networks in project")
        if not uplink and len(uplinks) > 1:
            raise LXDError(500, 'Option "network" is required')
        raise LXDError(500, OVN_CLIENT)


@route("/1.0/networks", "POST")
def create_network(ctx: Ctx) -> Response:
    with ctx.state.lock:
        owner = _owner(ctx)
    body = ctx.body(NETWORKS_POST)
    name, net_type = body["name"], body["type"]
    config = dict(body["config"])
    if not name:
        raise LXDError(400, "No name provided")
    if not net_type:
        net_type = "bridge" if owner == "default" else "ovn"
    if net_type not in TYPES:
        raise LXDError(400, "Unknown driver")
    try:
        validate_name(net_type, name)
    except Invalid as exc:
        raise LXDError(400, str(exc)) from None
    with ctx.state.lock:
        if owner != "default" and net_type != "ovn":
            raise LXDError(400, "Network type does not support non-default projects")
        networks = ctx.state.in_project("networks", ctx.project)
        _check_limit(ctx.state, owner, networks, name)
        target = ctx.request.args.get("target", "")
        if target:
            return _define_pending(ctx, owner, networks, net_type, name, config, target)
        current = networks.get(name)
        if current is not None and current.get("status") != "Pending":
            raise LXDError(400, "The network already exists")
        if current is not None:
            net = _finish_pending(ctx.state, owner, current, net_type, body["description"],
                                  config)
        else:
            fill_config(net_type, config)
            config = {k: v for k, v in config.items() if v != ""}
            try:
                validate(ctx.state, owner, net_type, name, config)
            except Invalid as exc:
                raise LXDError(500, str(exc)) from None
            _create_checks(ctx.state, owner, net_type, name, config)
            net = new(name, net_type, body["description"], config)
        networks[name] = net
    ctx.lifecycle("network-created", url(owner, name), project=owner)
    return responses.created(url(owner, name))


def _check_limit(state: State, owner: str, networks: dict[str, Any], name: str) -> None:
    if owner == "default" or name in networks:
        return
    limit = (state.family("projects").get(owner) or {}).get("config", {}).get("limits.networks")
    if limit and len(networks) >= int(limit):
        raise LXDError(400, "Networks limit has been reached for project")


def _define_pending(ctx: Ctx, owner: str, networks: dict[str, Any], net_type: str, name: str,
                    config: dict[str, str], target: str) -> Response:
    """``POST ?target=``: record the member's own config; the network stays ``Pending``."""
    if net_type == "ovn":
        raise LXDError(400, 'Network type "ovn" does not support member specific config')
    for key in config:
        if key not in MEMBER_KEYS:
            raise LXDError(400, f"Config key {go_quote(key)} may not be used as "
                                "member-specific key")
    if target != "none":
        raise LXDError(404, "Cluster member not found")
    if name in networks:
        raise LXDError(400, f'The network is already defined on member {go_quote(target)}')
    networks[name] = new(name, net_type, "", config, status="Pending")
    return responses.created(url(owner, name))


def _finish_pending(state: State, owner: str, current: dict[str, Any], net_type: str,
                    description: str, config: dict[str, str]) -> dict[str, Any]:
    """The global ``POST`` that creates a network defined earlier with ``?target=``."""
    for key in config:
        if key in MEMBER_KEYS:
            raise LXDError(500, f"Config key {go_quote(key)} is node-specific")
    if net_type != current["type"]:
        raise LXDError(500, f"Requested network type {go_quote(net_type)} doesn't match type in "
                            f"existing database record {go_quote(current['type'])}")
    fill_config(net_type, config)
    merged = {**current["config"], **{k: v for k, v in config.items() if v != ""}}
    try:
        validate(state, owner, net_type, current["name"], merged)
    except Invalid as exc:
        raise LXDError(500, str(exc)) from None
    _create_checks(state, owner, net_type, current["name"], merged)
    return new(current["name"], net_type, description, merged)


@route("/1.0/networks/<name>", "GET")
def get_network(ctx: Ctx, name: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        data = _lookup(ctx, _owner(ctx), name)
        return responses.sync(data, etag=etag(data))


@route("/1.0/networks/<name>", "PUT", "PATCH")
def update_network(ctx: Ctx, name: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        owner = _owner(ctx)
        net = _managed(ctx, owner, name)
        if net.get("status", "Created") != "Created":
            raise LXDError(400, "Cannot update network global config when not in created state")
        ctx.check_etag(etag({**net, "managed": True}))
        body = ctx.body(NETWORK_PUT)
        try:
            _update(ctx.state, owner, net, body, patch=ctx.request.method == "PATCH")
        finally:
            # LXD sends network-updated whatever became of the update.
            ctx.lifecycle("network-updated", url(owner, name), project=owner)
    return responses.empty()


def _update(state: State, owner: str, net: dict[str, Any], body: dict[str, Any], *,
            patch: bool) -> None:
    """PUT replaces the config, PATCH merges it; both take the description as sent (so a
    PATCH without one clears it: 5.0.2 serves PATCH with the PUT handler)."""
    config = dict(body["config"])
    if patch:
        for key, value in net["config"].items():
            config.setdefault(key, value)
    try:
        validate(state, owner, net["type"], net["name"], config)
    except Invalid as exc:
        raise LXDError(400, str(exc)) from None
    if net["type"] == "bridge":
        if config.get("bridge.mode") == "fan" and not config.get("fan.underlay_subnet"):
            raise LXDError(500, "Failed parsing fan.underlay_subnet: invalid CIDR address: ")
        if config.get("fan.underlay_subnet") == "auto":
            config["fan.underlay_subnet"] = GATEWAY_SUBNET
        for key, message in (("ipv4.address", AUTO_V4), ("ipv6.address", AUTO_V6)):
            if config.get(key) == "auto":
                raise LXDError(500, f"Failed generating auto config: {message}")
        _check_acls(state, owner, net["name"], config)
    net["config"] = {k: v for k, v in config.items() if v != ""}
    net["description"] = body["description"]


@route("/1.0/networks/<name>", "POST")
def rename_network(ctx: Ctx, name: str) -> Response:
    ctx.raw_body()  # read before taking the lock; LXD checks the project before the body
    with ctx.state.lock:
        owner = _owner(ctx)
        body = ctx.body(NETWORK_POST)
        net = _managed(ctx, owner, name)
        if net.get("status", "Created") != "Created":
            raise LXDError(400, "Cannot rename network when not in created state")
        new_name = body["name"]
        if not new_name:
            raise LXDError(400, "New network name not provided")
        try:
            validate_name(net["type"], new_name)
        except Invalid as exc:
            raise LXDError(400, str(exc)) from None
        if used_by(ctx.state, owner, name, net["type"], first_only=True):
            raise LXDError(400, "Network is currently in use")
        networks = ctx.state.in_project("networks", ctx.project)
        if new_name in networks:
            raise LXDError(409, f"Network {go_quote(new_name)} already exists")
        if net["type"] == "bridge" and new_name in ctx.state.family("unmanaged_networks"):
            raise LXDError(500, f"Network interface {go_quote(new_name)} already exists")
        networks[new_name] = networks.pop(name)
        net["name"] = new_name
    ctx.lifecycle("network-renamed", url(owner, new_name), context={"old_name": name},
                  project=owner)
    return responses.created(url(owner, new_name))


@route("/1.0/networks/<name>", "DELETE")
def delete_network(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner = _owner(ctx)
        net = _managed(ctx, owner, name)
        if used_by(ctx.state, owner, name, net["type"], first_only=True):
            raise LXDError(400, "The network is currently in use")
        del ctx.state.in_project("networks", ctx.project)[name]
    ctx.lifecycle("network-deleted", url(owner, name), project=owner)
    return responses.empty()


@route("/1.0/networks/<name>/state", "GET")
def get_network_state(ctx: Ctx, name: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        _owner(ctx)
        net = (ctx.state.families["networks"].get("default") or {}).get(name)
        if net is not None and net["type"] == "bridge" and net.get("status") == "Created":
            return responses.sync(bridge_state("default", net))
        unmanaged = ctx.state.family("unmanaged_networks").get(name)
        if unmanaged is None:
            raise LXDError(404, f"Network interface {go_quote(name)} not found")
        return responses.sync(host_state(ctx.state, name, unmanaged["type"]))


@route("/1.0/networks/<name>/leases", "GET")
def get_network_leases(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner = _owner(ctx)
        net = _managed(ctx, owner, name)
        if net["type"] != "bridge":
            raise LXDError(500, "Not implemented")
        return responses.sync([])
