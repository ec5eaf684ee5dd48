"""``/1.0/networks/<network>/forwards``: port forwards of a managed bridge, as in LXD 5.0.2.

A forward lives in its network's dict (``net["forwards"]``: listen address -> forward), so it
follows the network through renames, goes with it on delete, and is covered by the state's
snapshot/restore. A forward is ``{"listen_address", "description", "config", "ports"}``, every
field normalised as LXD stores it (canonical IP text, trimmed words, ``config`` without empty
values).

LXD 5.0.2's quirks kept here (probed on the real host): errors from the driver are 500s
wrapped in ``Failed creating/updating/deleting forward: ``; a forward on a bridge whose
``ipv4.address``/``ipv6.address`` is ``none`` fails on that value (``invalid CIDR address:
none``); ``0.0.0.0`` and ``::`` are accepted as listen addresses; ``If-Match`` is never checked;
a PATCH without ``config`` on a forward that has some panics (the connection just closes);
ports above 65535 pass validation and are refused by ``nft``. LXD lists forwards in Go map
order (it changes from one request to the next); the fake sorts them by listen address.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote
from ..responses import LXDError
from ..schema import MAP_STR, STR, Struct, list_of
from . import route
from .networks import Invalid, _check_target, _managed, _owner, is_v4, parse_cidr, parse_ip

PORT = Struct("NetworkForwardPort", description=STR, protocol=STR, listen_port=STR,
              target_port=STR, target_address=STR)
FORWARD_PUT = Struct("NetworkForwardPut", description=STR, config=MAP_STR, ports=list_of(PORT))
FORWARDS_POST = FORWARD_PUT.extend("NetworkForwardsPost", listen_address=STR)

SUPPORTED = ("bridge", "ovn")  # drivers with AddressForwards in 5.0.2
PROTOCOLS = ("tcp", "udp")
MISSING = "Network forward not found"


# -- normalising (api.NetworkForward*.Normalise) ------------------------------------------------
def go_ip_string(text: str) -> str | None:
    """``net.ParseIP(text).String()``: canonical text (IPv4-mapped as dotted), None if bad."""
    ip = parse_ip(text)
    if ip is None:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def _canonical(text: str) -> str:
    return go_ip_string(text) or text


def _split_trim(text: str, nil_if_empty: bool) -> list[str]:
    """LXD's ``shared.SplitNTrimSpace(text, ",", -1, nilIfEmpty)``."""
    if nil_if_empty and text.strip() == "":
        return []
    return [part.strip() for part in text.split(",")]


def normalise_put(body: dict[str, Any]) -> dict[str, Any]:
    """The description trimmed, the default target and every port in canonical form."""
    config = dict(body.get("config") or {})
    if "target_address" in config:
        config["target_address"] = _canonical(config["target_address"])
    ports = []
    for port in body.get("ports") or []:
        ports.append({
            "description": port["description"].strip(),
            "protocol": port["protocol"].strip(),
            "listen_port": ",".join(_split_trim(port["listen_port"], False)),
            "target_port": ",".join(_split_trim(port["target_port"], False)),
            "target_address": _canonical(port["target_address"].strip()),
        })
    return {"description": body.get("description", "").strip(), "config": config,
            "ports": ports}


# -- validation (the bridge driver's forwardValidate) -------------------------------------------
_GO_INT = re.compile(r"[+-]?[0-9]+")


def _parse_int(text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)`` or Go's error."""
    if not _GO_INT.fullmatch(text):
        raise Invalid(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise Invalid(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def parse_port_range(text: str) -> tuple[int, int]:
    """LXD's ``ParsePortRange``: (first port, how many)."""
    entries = text.split("-")
    if len(entries) > 2:
        raise Invalid(f"Invalid port range {go_quote(text)}")
    base = _parse_int(entries[0])
    if len(entries) == 1:
        return base, 1
    end = _parse_int(entries[1])
    if end <= base:
        raise Invalid("End port should be higher than start port")
    return base, end - base + 1


def _subnet(net: dict[str, Any], v4: bool) -> Any:
    """The network's subnet for the listen address's family (None when the key is unset)."""
    value = net["config"].get("ipv4.address" if v4 else "ipv6.address", "")
    if not value:
        return None
    _, network = parse_cidr(value)  # "none" fails here, as in LXD
    return network


def _within(subnet: Any, ip: Any) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped if mapped is not None else ip
    return ip.version == subnet.version and ip in subnet


def validate(net: dict[str, Any], listen: str, forward: dict[str, Any]) -> list[dict[str, Any]]:
    """Raise :class:`Invalid` with LXD's message; return each port's (protocol, ranges,
    target ranges) for the firewall step."""
    listen_ip = parse_ip(listen)
    if listen_ip is None:
        raise Invalid("Invalid listen address")
    listen_v4 = is_v4(listen_ip)
    subnet = _subnet(net, listen_v4)
    config = forward["config"]
    for key in sorted(config):  # LXD walks a Go map: with several bad keys, any may be named
        if key != "target_address" and not key.startswith("user."):
            raise Invalid(f"Invalid option {go_quote(key)}")
    default_target = parse_ip(config.get("target_address", ""))
    if config.get("target_address", ""):
        if default_target is None:
            raise Invalid("Invalid default target address")
        if is_v4(default_target) != listen_v4:
            raise Invalid("Cannot mix IP versions in listen address and default target address")
        if subnet is not None and not _within(subnet, default_target):
            raise Invalid("Default target address is not within the network subnet")
    used: dict[str, list[tuple[int, int]]] = {p: [] for p in PROTOCOLS}
    plans = []
    for index, port in enumerate(forward["ports"]):
        plans.append(_validate_port(index, port, listen_v4, default_target, subnet, used))
    return plans


def _validate_port(index: int, port: dict[str, Any], listen_v4: bool, default_target: Any,
                   subnet: Any, used: dict[str, list[tuple[int, int]]]) -> dict[str, Any]:
    protocol = port["protocol"]
    if protocol not in PROTOCOLS:
        raise Invalid(f"Invalid port protocol in port specification {index}, protocol must be "
                      f"one of: {', '.join(PROTOCOLS)}")
    target = parse_ip(port["target_address"])
    if target is None:
        raise Invalid(f"Invalid target address in port specification {index}")
    if default_target is not None and _same_ip(target, default_target):
        raise Invalid(f"Target address is same as default target address in port "
                      f"specification {index}")
    if is_v4(target) != listen_v4:
        raise Invalid(f"Cannot mix IP versions in listen address and port specification {index} "
                      "target address")
    if subnet is not None and not _within(subnet, target):
        raise Invalid(f"Target address is not within the network subnet in port specification "
                      f"{index}")
    listen_ranges = _split_trim(port["listen_port"], True)
    if not listen_ranges:
        raise Invalid(f"Missing listen port in port specification {index}")
    listen: list[tuple[int, int]] = []
    for text in listen_ranges:
        try:
            first, count = parse_port_range(text)
        except Invalid as exc:
            raise Invalid(f"Invalid listen port in port specification {index}: {exc}") from None
        last = first + count - 1
        clashes = [max(first, lo) for lo, hi in used[protocol] if lo <= last and hi >= first]
        if clashes:
            raise Invalid(f"Duplicate listen port {min(clashes)} for protocol "
                          f"{go_quote(protocol)} in port specification {index}")
        used[protocol].append((first, last))
        listen.append((first, last))
    targets: list[tuple[int, int]] = []
    for text in _split_trim(port["target_port"], True):
        try:
            first, count = parse_port_range(text)
        except Invalid:
            raise Invalid(f"Invalid target port in port specification {index}") from None
        targets.append((first, first + count - 1))
    target_count = sum(hi - lo + 1 for lo, hi in targets)
    listen_count = sum(hi - lo + 1 for lo, hi in listen)
    if targets and target_count != 1 and target_count != listen_count:
        raise Invalid(f"Mismatch of listen port(s) and target port(s) count in port "
                      f"specification {index}")
    return {"protocol": protocol, "listen": listen, "targets": targets,
            "target": port["target_address"]}


def _same_ip(a: Any, b: Any) -> bool:
    """Go's ``net.IP.Equal`` (an IPv4 address equals its IPv4-mapped IPv6 form)."""
    a = getattr(a, "ipv4_mapped", None) or a
    b = getattr(b, "ipv4_mapped", None) or b
    return bool(a == b)


def check_firewall(listen: str, plans: list[dict[str, Any]]) -> None:
    """What ``nft`` refuses when LXD applies the rules: a port above 65535.

    The detail in brackets is the fake's own short form of nft's report (LXD quotes the
    generated ruleset's line numbers, which depend on the whole table).
    """
    family = "ip" if ":" not in listen else "ip6"
    for plan in plans:
        ports = [p for lo, hi in plan["listen"] for p in (lo, hi)]
        ports += [p for lo, hi in plan["targets"] for p in (lo, hi)]
        bad = [p for p in ports if p > 65535]
        if bad:
            first = plan["listen"][0][0]
            target_port = plan["targets"][0][0] if plan["targets"] else first
            rule = (f"{family} daddr {listen} {plan['protocol']} dport {first} dnat to "
                    f"{plan['target']}:{target_port}")
            raise Invalid("Failed applying firewall address forwards: Failed to run: nft -f -: "
                          f"exit status 1 (/dev/stdin: Error: Service out of range\n\t\t{rule})")


# -- rendering ------------------------------------------------------------------------------------
def render(forward: dict[str, Any]) -> dict[str, Any]:
    """``api.NetworkForward`` in LXD's field order (a non-clustered member is ``none``)."""
    return {"description": forward["description"],
            "config": dict(sorted(forward["config"].items())),
            "ports": [dict(p) for p in forward["ports"]],
            "listen_address": forward["listen_address"], "location": "none"}


def etag(forward: dict[str, Any]) -> str:
    """LXD's ETag of a forward: listen address, description, config, ports (struct order)."""
    data = [forward["listen_address"], forward["description"],
            dict(sorted(forward["config"].items())), forward["ports"]]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return hashlib.sha256((text + "\n").encode()).hexdigest()


def _url(network: str, listen: str) -> str:
    return f"/1.0/networks/{network}/forwards/{listen}"


def _stored(listen: str, put: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in put["config"].items() if v != ""}
    return {"listen_address": listen, "description": put["description"], "config": config,
            "ports": put["ports"]}


# -- handlers -------------------------------------------------------------------------------------
def _network(ctx: Ctx, name: str) -> tuple[str, dict[str, Any]]:
    """The managed network that holds the forwards, after LXD's project and driver checks."""
    owner = _owner(ctx)
    net = _managed(ctx, owner, name)
    if net["type"] not in SUPPORTED:
        raise LXDError(400, f"Network driver {go_quote(net['type'])} does not support forwards")
    return owner, net


def _forwards(net: dict[str, Any]) -> dict[str, Any]:
    forwards: dict[str, Any] = net.setdefault("forwards", {})
    return forwards


@route("/1.0/networks/<network>/forwards", "GET")
def list_forwards(ctx: Ctx, network: str) -> Response:
    with ctx.state.lock:
        _, net = _network(ctx, network)
        forwards = net.get("forwards") or {}
        listens = sorted(forwards)
        if ctx.recursion >= 1:
            return responses.sync([render(forwards[a]) for a in listens])
        return responses.sync([_url(net["name"], a) for a in listens])


@route("/1.0/networks/<network>/forwards", "POST")
def create_forward(ctx: Ctx, network: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        _owner(ctx)
    body = ctx.body(FORWARDS_POST)
    with ctx.state.lock:
        owner, net = _network(ctx, network)
        listen = _canonical(body["listen_address"])
        put = normalise_put(body)
        forwards = _forwards(net)
        try:
            if listen in forwards:
                raise LXDError(409, "Failed creating forward: A forward for that listen address "
                                    "already exists")
            suffix = "/128" if ":" in listen else "/32"
            try:
                parse_cidr(listen + suffix)
            except Invalid as exc:
                raise Invalid(f"Failed parsing address forward listen address "
                              f"{go_quote(listen)}: {exc}") from None
            plans = validate(net, listen, put)
            if _listened_elsewhere(ctx, net, listen):
                raise Invalid(f"Forward listen address {go_quote(listen + suffix)} overlaps "
                              "with another network or NIC")
            check_firewall(listen, plans)
        except Invalid as exc:
            raise LXDError(500, f"Failed creating forward: {exc}") from None
        forwards[listen] = _stored(listen, put)
        url = _url(net["name"], listen)
    ctx.lifecycle("network-forward-created", url, project=owner)
    return responses.created(url)


def _listened_elsewhere(ctx: Ctx, net: dict[str, Any], listen: str) -> bool:
    """Whether a forward of another network (any project) listens on ``listen``."""
    for networks in ctx.state.families["networks"].values():
        for other in networks.values():
            if other is not net and listen in (other.get("forwards") or {}):
                return True
    return False


@route("/1.0/networks/<network>/forwards/<listen>", "GET")
def get_forward(ctx: Ctx, network: str, listen: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        _, net = _network(ctx, network)
        forward = (net.get("forwards") or {}).get(listen)
        if forward is None:
            raise LXDError(404, MISSING)
        return responses.sync(render(forward), etag=etag(forward))


@route("/1.0/networks/<network>/forwards/<listen>", "PUT", "PATCH")
def update_forward(ctx: Ctx, network: str, listen: str) -> Response:
    """LXD's order: target, project, network, body, then the forward. No If-Match check."""
    _check_target(ctx)
    patch = ctx.request.method == "PATCH"
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, net = _network(ctx, network)
        body = ctx.body(FORWARD_PUT)
        forwards = _forwards(net)
        current = forwards.get(listen)
        if current is None:
            raise LXDError(404, MISSING if patch else f"Failed updating forward: {MISSING}")
        if patch:
            raw = ctx.json()
            raw = raw if isinstance(raw, dict) else {}
            if raw.get("config") is None and current["config"]:
                # 5.0.2 merges into the nil map and panics: no reply, nothing changes.
                return responses.drop_connection(ctx.request.environ,
                                                 "assignment to entry in nil map")
            body["config"] = {**current["config"], **body["config"]}
            if raw.get("ports") is None:
                body["ports"] = [dict(p) for p in current["ports"]]
        put = normalise_put(body)
        try:
            check_firewall(listen, validate(net, listen, put))
        except Invalid as exc:
            raise LXDError(500, f"Failed updating forward: {exc}") from None
        forwards[listen] = _stored(listen, put)
    ctx.lifecycle("network-forward-updated", _url(net["name"], listen), project=owner)
    return responses.empty()


@route("/1.0/networks/<network>/forwards/<listen>", "DELETE")
def delete_forward(ctx: Ctx, network: str, listen: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        owner, net = _network(ctx, network)
        forwards = net.get("forwards") or {}
        if listen not in forwards:
            raise LXDError(404, f"Failed deleting forward: {MISSING}")
        del forwards[listen]
    ctx.lifecycle("network-forward-deleted", _url(net["name"], listen), project=owner)
    return responses.empty()
