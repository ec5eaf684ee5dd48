"""``/1.0/network-acls``: network ACLs per project (or the default project's, per
``features.networks``), as LXD 5.0.2 serves them on a host without OVN.

An ACL is ``{"name", "description", "config", "ingress", "egress"}`` in the per-project
``network_acls`` family; its rules are stored normalised (trimmed, lists re-joined) in
``api.NetworkACLRule`` order. The family keeps creation order (LXD lists ACLs by database id,
and a rename keeps the id). ``used_by`` is computed on every read: networks whose
``security.acls`` name the ACL, profiles and instances with a managed-network NIC that names it,
and other ACLs whose rules use it as a subject, in LXD's order.

Changing an ACL that a bridge uses re-applies the bridge's firewall: LXD's nftables driver has
no named subjects (``@internal``, ``@external``, other ACLs) and ``nft`` refuses ports above
65535 (reported as nft reports them, line and column of the generated ruleset), and LXD then
keeps the old rules. ``networks.py`` runs the same check when a bridge is created or updated.
``/log`` exists only for OVN, which this host lacks.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote, url_segment, with_project
from ..responses import LXDError
from ..schema import MAP_STR, STR, Struct, list_of
from ..state import State
from . import route

RULE = Struct("NetworkACLRule", action=STR, source=STR, destination=STR, protocol=STR,
              source_port=STR, destination_port=STR, icmp_type=STR, icmp_code=STR,
              description=STR, state=STR)
RULE_FIELDS = tuple(RULE.fields)
ACLS_POST = Struct("NetworkACLsPost", name=STR, description=STR, config=MAP_STR,
                   egress=list_of(RULE), ingress=list_of(RULE))
ACL_PUT = Struct("NetworkACLPut", description=STR, config=MAP_STR, egress=list_of(RULE),
                 ingress=list_of(RULE))
ACL_POST = Struct("NetworkACLPost", name=STR)

FAMILY = "network_acls"
MISSING = "Network ACL not found"
NO_LOG = "Only OVN log entries may be retrieved at this time"
ACTIONS = ("allow", "drop", "reject")
STATES = ("enabled", "disabled", "logged")
PROTOCOLS = ("icmp4", "icmp6", "tcp", "udp")
NAMED_SUBJECTS = ("@internal", "#internal", "@external", "#external")
# Go's unicode.IsSpace (strings.TrimSpace); Python's str.strip() also takes \x1c-\x1f.
GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


class Invalid(Exception):
    """A name, config or rule LXD refuses (the handler picks the status code)."""


# -- names, config and rules as LXD 5.0.2 checks them ---------------------------------------------
def check_name(name: str) -> None:
    """``acl.ValidName``: not empty, no reserved first character, then ``IsHostname``."""
    if name == "":
        raise Invalid("Name is required")
    if name[0] in "@%":
        raise Invalid(f"Name cannot start with reserved character '{name[0]}'")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size < 1 or size > 63:
        raise Invalid("Name must be 1-63 characters long")
    if name.startswith("-"):
        raise Invalid('Name must not start with "-" character')
    if name.endswith("-"):
        raise Invalid('Name must not end with "-" character')
    if name[0].isascii() and name[0].isdigit():
        raise Invalid("Name must not start with a number")
    if not all(c.isascii() and (c.isalnum() or c == "-") for c in name):
        raise Invalid("Name can only contain alphanumeric and hyphen characters")


def check_config(config: dict[str, str]) -> None:
    """Only ``user.*`` keys (LXD walks a Go map: with several bad keys, any may be named)."""
    for key in sorted(config):
        if not key.startswith("user."):
            raise Invalid(f"Invalid config option {go_quote(key)}")


def _trim(text: str) -> str:
    return text.strip(GO_SPACE)


def _split(text: str) -> list[str]:
    """``SplitNTrimSpace(text, ",", -1, false)``."""
    return [_trim(part) for part in text.split(",")]


def normalise(rule: dict[str, Any]) -> dict[str, str]:
    """``NetworkACLRule.Normalise``: fields trimmed, subject and port lists re-joined."""
    out = {key: _trim(str(rule.get(key) or "")) for key in RULE_FIELDS}
    for key in ("source", "destination", "source_port", "destination_port"):
        out[key] = ",".join(_split(str(rule.get(key) or "")))
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``net.ParseIP`` (no zone, no prefix)."""
    if not text or "%" in text or "/" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """4 when Go's ``To4()`` is not nil (IPv4-mapped IPv6 counts as IPv4)."""
    return 4 if ip.version == 4 or getattr(ip, "ipv4_mapped", None) is not None else 6


def _as_int(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    mapped = getattr(ip, "ipv4_mapped", None)
    return int(mapped or ip)


def _address_family(subject: str) -> int | None:
    """4 or 6 for an address, CIDR or range LXD accepts as a subject; None otherwise."""
    ip = _ip(subject)
    if ip is not None:
        return _family(ip)
    addr, sep, bits = subject.partition("/")
    ip = _ip(addr)
    if sep and ip is not None and bits.isascii() and bits.isdigit() and len(bits) <= 3:
        if int(bits) <= (32 if ip.version == 4 else 128):
            return _family(ip)
        return None
    start_text, sep, end_text = subject.partition("-")
    start, end = _ip(start_text), _ip(end_text)
    if sep and start is not None and end is not None and _family(start) == _family(end):
        if _as_int(start) <= _as_int(end):
            return _family(start)
    return None


def _subjects(field: str, direction: str, text: str,
              names: set[str]) -> tuple[bool, bool, bool]:
    """``validateRuleSubjects``: (has a name, has IPv4, has IPv6) or Invalid."""
    allow_names = ((field == "Source" and direction == "ingress")
                   or (field == "Destination" and direction == "egress"))
    has = [False, False, False]
    for subject in _split(text):
        family = _address_family(subject)
        if family is not None:
            has[1 if family == 4 else 2] = True
            continue
        if subject in NAMED_SUBJECTS or subject in names:
            if not allow_names:
                raise Invalid(f"Invalid {field}: Named subjects not allowed in "
                              f"{go_quote(field)} for {go_quote(direction)} rules")
            has[0] = True
            continue
        raise Invalid(f"Invalid {field}: Invalid subject {go_quote(subject)}")
    return has[0], has[1], has[2]


def _uint(text: str, bits: int) -> int | None:
    """Go's ``strconv.ParseUint(text, 10, bits)``."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value < 1 << bits else None


def _ports(label: str, text: str) -> None:
    """``validate.IsNetworkPortRange`` on each item."""
    for port in _split(text):
        start_text, sep, end_text = port.partition("-")
        start = _uint(start_text, 32)
        if start is None:
            raise Invalid(f"Invalid {label} port: Invalid port number {go_quote(port)}")
        if sep:
            end = _uint(end_text, 32)
            if end is None:
                raise Invalid(f"Invalid {label} port: Invalid end port number {go_quote(port)}")
            if start >= end:
                raise Invalid(f"Invalid {label} port: Start port {start} must be lower than end "
                              f"port {end}")


def _icmp(label: str, text: str) -> None:
    if _uint(text, 8) is None:
        raise Invalid(f"Invalid ICMP {label}: Invalid value for an integer {go_quote(text)}. "
                      "Must be between 0 and 255")


def check_rule(direction: str, rule: dict[str, str], names: set[str]) -> None:
    """``validateRule`` on a normalised rule (``names``: the project's ACLs)."""
    if rule["action"] not in ACTIONS:
        raise Invalid("Action must be one of: allow, drop, reject")
    if rule["state"] not in STATES:
        raise Invalid("State must be one of: enabled, disabled, logged")
    src = dst = (False, False, False)
    if rule["source"]:
        src = _subjects("Source", direction, rule["source"], names)
    if rule["destination"]:
        dst = _subjects("Destination", direction, rule["destination"], names)
    if rule["source"] and rule["destination"]:
        if ((src[1] and not dst[1] and not dst[0]) or (dst[1] and not src[1] and not src[0])
                or (src[2] and not dst[2] and not dst[0])
                or (dst[2] and not src[2] and not src[0])):
            raise Invalid("Conflicting IP family types used for Source and Destination")
    protocol = rule["protocol"]
    if protocol and protocol not in PROTOCOLS:
        raise Invalid("Protocol must be one of: icmp4, icmp6, tcp, udp")
    if protocol in ("tcp", "udp"):
        if rule["icmp_type"]:
            raise Invalid("ICMP type cannot be used with non-ICMP protocol")
        if rule["icmp_code"]:
            raise Invalid("ICMP code cannot be used with non-ICMP protocol")
        if rule["source_port"]:
            _ports("Source", rule["source_port"])
        if rule["destination_port"]:
            _ports("Destination", rule["destination_port"])
    elif protocol in ("icmp4", "icmp6"):
        quoted = go_quote(protocol)
        if rule["source_port"]:
            raise Invalid(f"Source port cannot be used with {quoted} protocol")
        if rule["destination_port"]:
            raise Invalid(f"Destination port cannot be used with {quoted} protocol")
        other, bad = (6, "IPv6") if protocol == "icmp4" else (4, "IPv4")
        index = 2 if other == 6 else 1
        if src[index]:
            raise Invalid(f"Cannot use {bad} source addresses with {quoted} protocol")
        if dst[index]:
            raise Invalid(f"Cannot use {bad} destination addresses with {quoted} protocol")
        if rule["icmp_type"]:
            _icmp("type", rule["icmp_type"])
        if rule["icmp_code"]:
            _icmp("code", rule["icmp_code"])
    else:
        for key, what in (("icmp_type", "ICMP type"), ("icmp_code", "ICMP code"),
                          ("source_port", "Source port"),
                          ("destination_port", "Destination port")):
            if rule[key]:
                raise Invalid(f"{what} cannot be used without specifying protocol")


def check_rules(config: dict[str, str], ingress: list[dict[str, str]],
                egress: list[dict[str, str]], names: set[str]) -> None:
    """``validateConfig``: config, then each ingress rule (and its duplicates), then egress."""
    check_config(config)
    for direction, rules in (("ingress", ingress), ("egress", egress)):
        for index, rule in enumerate(rules):
            try:
                check_rule(direction, rule, names)
            except Invalid as exc:
                raise Invalid(f"Invalid {direction} rule {index}: {exc}") from None
            if any(other == rule for i, other in enumerate(rules) if i != index):
                raise Invalid(f"Duplicate of {direction} rule {index}")


# -- the firewall of bridges that use an ACL ------------------------------------------------------
def _networks_using(state: State, owner: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    """The created networks of ``owner`` whose ``security.acls`` name the ACL."""
    nets = state.families["networks"].get(owner) or {}
    return [(net_name, net) for net_name, net in nets.items()
            if net.get("status", "Created") == "Created"
            and name in _names_in(str((net.get("config") or {}).get("security.acls", "")))]


def _names_in(text: str) -> list[str]:
    """``SplitNTrimSpace(text, ",", -1, true)``."""
    return [] if _trim(text) == "" else _split(text)


def check_firewall(state: State, owner: str, name: str, acl: dict[str, Any]) -> None:
    """What applying ``acl`` (the new state of ``name``) to each bridge using it refuses."""
    for net_name, net in _networks_using(state, owner, name):
        if net.get("type") == "bridge":
            check_bridge_firewall(state, owner, net_name, net.get("config") or {},
                                  {name: acl})


def check_bridge_firewall(state: State, owner: str, net_name: str, config: dict[str, str],
                          changed: dict[str, dict[str, Any]] | None = None) -> None:
    """What LXD's nftables driver refuses when it applies the ACLs of bridge ``net_name``
    (``config``; ACLs in ``changed`` replace the stored ones): a named subject (raised while
    the rules are made), then every line of the generated ruleset where ``nft`` finds a port
    above 65535, reported as nft reports it. Raises :class:`Invalid` (LXD answers 500)."""
    acls = {**(state.families[FAMILY].get(owner) or {}), **(changed or {})}
    buckets: dict[str, list[dict[str, Any]]] = {"drop": [], "reject": [], "allow": []}
    for acl_name in _names_in(str(config.get("security.acls", ""))):
        current = acls.get(acl_name)
        if current is None:
            continue
        for direction in ("ingress", "egress"):
            for index, rule in enumerate(current[direction]):
                if rule["state"] != "disabled" and rule["action"] in buckets:
                    log = f"{net_name}-{direction}-{index}" if rule["state"] == "logged" else ""
                    buckets[rule["action"]].append({**rule, "direction": direction,
                                                    "log": log})
    lines: list[tuple[str, list[tuple[int, str]]]] = []
    for rule in buckets["drop"] + buckets["reject"] + buckets["allow"]:
        line, partial = _nft_rule(net_name, 4, rule)
        if line[0]:
            lines.append(line)
        if partial:
            line, _ = _nft_rule(net_name, 6, rule)
        if not line[0]:
            raise Invalid("Invalid empty rule generated")
        if partial:
            lines.append(line)
    errors = []
    for number, (text, ports) in enumerate(lines, start=7):  # the template's 7th line on
        for offset, value in ports:
            if int(value) > 65535:
                col = offset + 3
                errors.append(f"/dev/stdin:{number}:{col}-{col + len(value) - 1}: Error: "
                              f"Service out of range\n\t\t{text}\n\t\t{' ' * offset}"
                              f"{'^' * len(value)}")
                break  # nft stops evaluating a rule at its first error
    if errors:
        raise Invalid("Failed to run: nft -f -: exit status 1 (" + "\n".join(errors) + ")")


def _nft_subjects(field: str, version: int, text: str) -> tuple[str | None, bool]:
    """``aclRuleSubjectToACLMatch``: the match for ``version``'s subjects (None when there
    are none) and whether subjects of the other version were left out."""
    parts, partial = [], False
    for subject in _split(text):
        family = _address_family(subject)
        if family is None:
            raise Invalid(f"Unsupported nftables subject {go_quote(subject)}")
        if family != version:
            partial = True
            continue
        parts.append(subject)
    if not parts:
        return None, partial
    return f"{'ip' if version == 4 else 'ip6'} {field} {{{','.join(parts)}}}", partial


def _nft_rule(net_name: str, version: int,
              rule: dict[str, Any]) -> tuple[tuple[str, list[tuple[int, str]]], bool]:
    """``aclRuleCriteriaToRules``: (the nft rule for ``version``, or "", and the offsets of
    its port numbers), and whether the other version needs a rule too."""
    args = ["oifname" if rule["direction"] == "ingress" else "iifname", net_name]
    partial_rule = False
    for key, field in (("source", "saddr"), ("destination", "daddr")):
        if rule[key]:
            match, partial = _nft_subjects(field, version, rule[key])
            if match is None:
                return ("", []), partial or key == "source"
            partial_rule = partial_rule or partial
            args.append(match)
    ports: list[tuple[int, str]] = []
    protocol = rule["protocol"]
    if protocol in ("tcp", "udp"):
        args += ["meta", "l4proto", protocol]
        for key, word in (("source_port", "sport"), ("destination_port", "dport")):
            if rule[key]:
                start = len(" ".join(args)) + len(f" th {word} {{")
                for item in _split(rule[key]):
                    low, sep, high = item.partition("-")
                    ports.append((start, low))
                    if sep:
                        ports.append((start + len(low) + 1, high))
                    start += len(item) + 1
                args.append(f"th {word} {{{rule[key]}}}")
    elif protocol in ("icmp4", "icmp6"):
        name, wanted = ("icmp", 4) if protocol == "icmp4" else ("icmpv6", 6)
        args += ["ip", "protocol", name] if wanted == 4 else ["ip6", "nexthdr", name]
        if version != wanted:
            return ("", []), True
        if rule["icmp_type"]:
            args += [name, "type", rule["icmp_type"]]
            if rule["icmp_code"]:
                args += [name, "code", rule["icmp_code"]]
    if rule["log"]:
        args += ["log", "prefix", f'"{rule["log"]} "']
    args.append("accept" if rule["action"] == "allow" else rule["action"])
    return (" ".join(args), ports), partial_rule


# -- objects -------------------------------------------------------------------------------------
def new(name: str, description: str, config: dict[str, str], ingress: list[dict[str, str]],
        egress: list[dict[str, str]]) -> dict[str, Any]:
    """An ACL as stored: empty config values dropped (LXD does not store them)."""
    return {"name": name, "description": description,
            "config": {k: v for k, v in config.items() if v != ""},
            "ingress": [dict(r) for r in ingress], "egress": [dict(r) for r in egress]}


def _rule_json(rule: dict[str, str]) -> dict[str, str]:
    """``api.NetworkACLRule``: every field ``omitempty``."""
    return {key: rule[key] for key in RULE_FIELDS if rule.get(key)}


def render(state: State, owner: str, acl: dict[str, Any]) -> dict[str, Any]:
    return {"name": acl["name"], "description": acl["description"],
            "egress": [_rule_json(r) for r in acl["egress"]],
            "ingress": [_rule_json(r) for r in acl["ingress"]],
            "config": dict(sorted(acl["config"].items())),
            "used_by": used_by(state, owner, acl["name"])}


def etag(acl: dict[str, Any]) -> str:
    """sha256 of Go's JSON of [name, description, ingress, egress, config] (rules in struct
    order, map keys sorted, ``<>&`` escaped)."""
    data = [acl["name"], acl["description"], [_rule_json(r) for r in acl["ingress"]],
            [_rule_json(r) for r in acl["egress"]], dict(sorted(acl["config"].items()))]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return hashlib.sha256((text + "\n").encode("utf-8", "surrogatepass")).hexdigest()


def _nic_uses(devices: dict[str, Any], name: str) -> bool:
    """Only NICs on a managed network can use ACLs."""
    for device in devices.values():
        if (isinstance(device, dict) and device.get("type") == "nic" and device.get("network")
                and name in _names_in(str(device.get("security.acls", "")))):
            return True
    return False


def used_by(state: State, owner: str, name: str) -> list[str]:
    """Networks, profiles, ACLs (rules naming it, not its own) and instances, in LXD's order."""
    urls = [with_project(f"/1.0/networks/{url_segment(n)}", owner)
            for n, _ in _networks_using(state, owner, name)]
    for project, profiles in state.families["profiles"].items():
        if state.owner("networks", project) != owner:
            continue
        for prof_name, profile in profiles.items():
            if _nic_uses(profile.get("devices") or {}, name):
                urls.append(with_project(f"/1.0/profiles/{url_segment(prof_name)}", project))
    for acl_name, acl in (state.families[FAMILY].get(owner) or {}).items():
        if acl_name != name and name in _referenced(acl):
            urls.append(with_project(f"/1.0/network-acls/{url_segment(acl_name)}", owner))
    for project, instances in state.families["instances"].items():
        if state.owner("networks", project) != owner:
            continue
        for inst_name, inst in instances.items():
            devices = _expanded_devices(state, project, inst)
            if _nic_uses(devices, name):
                urls.append(with_project(f"/1.0/instances/{url_segment(inst_name)}", project))
    return urls


def _expanded_devices(state: State, project: str, inst: dict[str, Any]) -> dict[str, Any]:
    profiles = state.in_project("profiles", project)
    devices: dict[str, Any] = {}
    for prof_name in inst.get("profiles") or []:
        devices.update((profiles.get(prof_name) or {}).get("devices") or {})
    devices.update(inst.get("devices") or {})
    return devices


def _referenced(acl: dict[str, Any]) -> set[str]:
    """Subjects of ``acl``'s ingress sources and egress destinations."""
    out = {s for rule in acl["ingress"] for s in _names_in(rule["source"])}
    out |= {s for rule in acl["egress"] for s in _names_in(rule["destination"])}
    return out


# -- handlers ------------------------------------------------------------------------------------
def _acls(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    ctx.state.require_project(ctx.project, f"Failed to load project {go_quote(ctx.project)}: "
                                           "Project not found")
    return ctx.state.owner(FAMILY, ctx.project), ctx.state.in_project(FAMILY, ctx.project)


def _get(ctx: Ctx, name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    owner, acls = _acls(ctx)
    if name not in acls:
        raise LXDError(404, MISSING)
    return owner, acls, acls[name]


def _url(owner: str, name: str) -> str:
    return with_project(f"/1.0/network-acls/{url_segment(name)}", owner)


@route("/1.0/network-acls", "GET")
def list_acls(ctx: Ctx) -> Response:
    with ctx.state.lock:
        owner, acls = _acls(ctx)
        if ctx.recursion >= 1:
            return responses.sync([render(ctx.state, owner, acl) for acl in acls.values()])
        return responses.sync([f"/1.0/network-acls/{url_segment(n)}" for n in acls])


@route("/1.0/network-acls", "POST")
def create_acl(ctx: Ctx) -> Response:
    """LXD's order: project, body, an existing name (400), then the name, config and rules."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, acls = _acls(ctx)
        body = ctx.body(ACLS_POST)
        name = body["name"]
        if name in acls:
            raise LXDError(400, "The network ACL already exists")
        ingress = [normalise(r) for r in body["ingress"]]
        egress = [normalise(r) for r in body["egress"]]
        try:
            check_name(name)
            check_rules(body["config"], ingress, egress, set(acls))
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        acls[name] = new(name, body["description"], body["config"], ingress, egress)
    url = _url(owner, name)
    ctx.lifecycle("network-acl-created", url, project=owner)
    return responses.created(url)


@route("/1.0/network-acls/<name>", "GET")
def get_acl(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner, _, acl = _get(ctx, name)
        return responses.sync(render(ctx.state, owner, acl), etag=etag(acl))


def _config_sent(ctx: Ctx) -> bool:
    """Whether the body's ``config`` (Go matches keys case-insensitively, the last wins) is a
    JSON object rather than missing or null."""
    raw = ctx.json()
    if not isinstance(raw, dict):
        return False
    value = None
    for key, item in raw.items():
        if key.lower().replace("\u212a", "k").replace("\u017f", "s") == "config":
            value = item
    return value is not None


@route("/1.0/network-acls/<name>", "PUT", "PATCH")
def update_acl(ctx: Ctx, name: str) -> Response:
    """LXD's order: project, ACL, If-Match, body. PATCH is PUT with the config merged (the
    rule lists and description are replaced, unsent ones emptied); LXD 5.0.2 merges into a nil
    map when the body has no config and the ACL has some, and panics (no reply)."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, acls, acl = _get(ctx, name)
        ctx.check_etag(etag(acl))
        body = ctx.body(ACL_PUT)
        config = body["config"]
        if ctx.request.method == "PATCH":
            if acl["config"] and not _config_sent(ctx):
                return responses.drop_connection(ctx.request.environ,
                                                 "assignment to entry in nil map")
            config = {**acl["config"], **config}
        ingress = [normalise(r) for r in body["ingress"]]
        egress = [normalise(r) for r in body["egress"]]
        try:
            check_rules(config, ingress, egress, set(acls))
            updated = new(name, body["description"], config, ingress, egress)
            check_firewall(ctx.state, owner, name, updated)
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        acl.update(updated)
    ctx.lifecycle("network-acl-updated", _url(owner, name), project=owner)
    return responses.empty()


@route("/1.0/network-acls/<name>", "POST")
def rename_acl(ctx: Ctx, name: str) -> Response:
    """LXD's order: project, body, ACL, a taken name, use, then the new name's validity."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        _acls(ctx)
        body = ctx.body(ACL_POST)
        owner, acls, acl = _get(ctx, name)
        new_name = body["name"]
        if new_name in acls:
            raise LXDError(500, "An ACL by that name exists already")
        if used_by(ctx.state, owner, name):
            raise LXDError(500, "Cannot rename an ACL that is in use")
        try:
            check_name(new_name)
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        # The database id stays, and with it the ACL's place in the list.
        renamed = {(new_name if key == name else key): value for key, value in acls.items()}
        acls.clear()
        acls.update(renamed)
        acl["name"] = new_name
    url = _url(owner, new_name)
    ctx.lifecycle("network-acl-renamed", url, context={"old_name": name}, project=owner)
    return responses.created(url)


@route("/1.0/network-acls/<name>", "DELETE")
def delete_acl(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner, acls, _ = _get(ctx, name)
        if used_by(ctx.state, owner, name):
            raise LXDError(500, "Cannot delete an ACL that is in use")
        del acls[name]
    ctx.lifecycle("network-acl-deleted", _url(owner, name), project=owner)
    return responses.empty()


@route("/1.0/network-acls/<name>/log", "GET")
def get_acl_log(ctx: Ctx, name: str) -> Response:
    """Only OVN keeps ACL logs, and this host has no OVN."""
    with ctx.state.lock:
        _get(ctx, name)
    raise LXDError(500, NO_LOG)
