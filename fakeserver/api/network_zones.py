"""``/1.0/network-zones``: DNS zones and their records, as LXD 5.0.2 serves them.

Zones are a per-project family (``network_zones``: project -> name -> zone) that follows
``features.networks``: a project without it sees and changes the ``default`` project's zones.
A zone is ``{"name", "description", "config", "records"}``; its records live in it (name ->
``{"name", "description", "entries", "config"}``), so they go with it on delete and are covered
by the state's snapshot/restore. Config is stored without empty values.

LXD 5.0.2's quirks kept here (probed on the real host): zone names are unique over all
projects and only checked for being non-empty (any other text is a zone name); record names are
not checked at all and are unique over *all* zones (a SQL ``UNIQUE`` on the name alone);
there is no rename (``POST`` on a zone or record is 501); PATCH takes the body's description
even when it is absent, and a PATCH without ``config`` panics (the connection closes) when
there is config to merge; a record's PATCH merges the *zone's* config into the record's, not
the record's own; entries are checked by parsing ``record <ttl> IN <type> <value>`` as a DNS
resource record (``Bad zone record entry: dns: ...``); zones are listed in creation order,
records by name; ``used_by`` lists the networks naming the zone in ``dns.zone.forward`` or
``dns.zone.reverse.ipv4``/``ipv6``, and such a zone cannot be deleted.

The fake's resource-record parser knows A, AAAA and MX (their errors and columns as LXD's DNS
library reports them) and the names of the other types; the rdata of the other types is not
checked (LXD refuses some malformed ones).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote, url_segment, with_project
from ..responses import LXDError
from ..schema import MAP_STR, STR, GoType, Struct, list_of
from ..state import State
from . import route
from .networks import parse_ip

U64 = GoType("uint64", "int")
ZONES_POST = Struct("NetworkZonesPost", name=STR, description=STR, config=MAP_STR)
ZONE_PUT = Struct("NetworkZonePut", description=STR, config=MAP_STR)
ENTRY = Struct("NetworkZoneRecordEntry", type=STR, ttl=U64, value=STR)
RECORD_PUT = Struct("NetworkZoneRecordPut", description=STR, entries=list_of(ENTRY),
                    config=MAP_STR)
RECORDS_POST = RECORD_PUT.extend("NetworkZoneRecordsPost", name=STR)

MISSING = "Network zone not found"
MISSING_RECORD = "Network zone record not found"
ZONE_KEYS = ("dns.zone.forward", "dns.zone.reverse.ipv4", "dns.zone.reverse.ipv6")
BOOLS = ("true", "false", "yes", "no", "1", "0", "on", "off")


class Invalid(Exception):
    """A validation failure (LXD answers these 500)."""


# -- zone config (zone.validateConfig) ------------------------------------------------------------
def _network_address(value: str) -> None:
    if parse_ip(value) is None:
        raise Invalid(f"Not an IP address {go_quote(value)}")


def _bool(value: str) -> None:
    if value.lower() not in BOOLS:
        raise Invalid(f"Invalid value for a boolean {go_quote(value)}")


def _any(value: str) -> None:
    return None


def check_zone_config(config: dict[str, str]) -> None:
    """Raise :class:`Invalid` as LXD 5.0.2 does: the shape of ``peers.*`` keys, then each
    rule's value, then unknown keys (``user.*`` are free)."""
    rules = {"dns.nameservers": _any, "network.nat": _bool}
    for key in sorted(config):
        if not key.startswith("peers."):
            continue
        fields = key.split(".")
        if len(fields) != 3:
            raise Invalid(f"Invalid network zone configuration key {go_quote(key)}")
        if fields[2] == "address":
            rules[key] = _network_address
        elif fields[2] == "key":
            rules[key] = _any
    _apply_rules(rules, config)


def check_record_config(config: dict[str, str]) -> None:
    _apply_rules({}, config)


def _apply_rules(rules: dict[str, Any], config: dict[str, str]) -> None:
    # LXD walks Go maps here: with several bad keys any may be named; the fake takes them sorted.
    for key in sorted(rules):
        value = config.get(key, "")
        if value == "":
            continue  # every rule is validate.Optional
        try:
            rules[key](value)
        except Invalid as exc:
            raise Invalid(f"Invalid value for config option {go_quote(key)}: {exc}") from None
    for key in sorted(config):
        if key not in rules and not key.startswith("user."):
            raise Invalid(f"Invalid config option {go_quote(key)}")


# -- record entries (zone.validateEntries: miekg/dns parses each as a resource record) ------------
RR_TYPES = frozenset("""
    NONE A NS MD MF CNAME SOA MB MG MR NULL PTR HINFO MINFO MX TXT RP AFSDB X25 ISDN RT NSAPPTR
    NSAP-PTR SIG KEY PX GPOS AAAA LOC NXT EID NIMLOC SRV ATMA NAPTR KX CERT DNAME OPT APL DS SSHFP
    IPSECKEY RRSIG NSEC DNSKEY DHCID NSEC3 NSEC3PARAM TLSA SMIMEA HIP NINFO RKEY TALINK CDS
    CDNSKEY OPENPGPKEY CSYNC ZONEMD SVCB HTTPS SPF UINFO UID GID UNSPEC NID L32 L64 LP EUI48
    EUI64 URI CAA AVC AMTRELAY TKEY TSIG IXFR AXFR MAILB MAILA ANY TA DLV
""".split())
_GENERIC_TYPE = re.compile(r"TYPE[0-9]+")
_TOKEN = re.compile(r"[^ \t]+")


def _tokens(line: str) -> list[tuple[str, int]]:
    """Blank-separated tokens of one line and the column miekg/dns reports for each (the
    token's last character, one more when a blank follows it)."""
    out = []
    for match in _TOKEN.finditer(line):
        end = match.end()
        out.append((match.group(), end + 1 if end < len(line) else end))
    return out


def _rr_error(what: str, token: str | None, line: str, col: int | None) -> Invalid:
    shown = "\\n" if token is None else token.replace("\\", "\\\\").replace('"', '\\"')
    column = len(line) if col is None else col
    return Invalid(f'Bad zone record entry: dns: {what}: "{shown}" at line: 1:{column}')


def check_entry(entry: dict[str, Any]) -> None:
    """Raise :class:`Invalid` for an entry LXD's DNS parser refuses (see the module's note)."""
    ttl = entry["ttl"] or 300
    text = f"record {ttl} IN {entry['type']} {entry['value']}"
    line = text.split("\n", 1)[0].split(";", 1)[0]
    tokens = _tokens(line)
    if len(tokens) < 4:
        raise _rr_error("unknown RR type", None, line, None)
    rtype, col = tokens[3]
    upper = rtype.upper()
    if upper not in RR_TYPES and not _GENERIC_TYPE.fullmatch(upper):
        raise _rr_error("unknown RR type", rtype, line, col)
    rdata = tokens[4:]
    if upper in ("A", "AAAA"):
        value, col = rdata[0] if rdata else ("", 0)
        if not rdata or parse_ip(value) is None or (":" in value) != (upper == "AAAA"):
            raise _rr_error(f"bad {upper} {upper}", value if rdata else None, line,
                            col if rdata else None)
        if len(rdata) > 1:
            raise _rr_error("garbage after rdata", rdata[1][0], line, rdata[1][1])
    elif upper == "MX" and rdata:
        pref, col = rdata[0]
        if not pref.isascii() or not pref.isdigit() or int(pref) > 65535:
            raise _rr_error("bad MX Pref", pref, line, col)


def check_entries(entries: list[dict[str, Any]] | None) -> None:
    seen: set[tuple[str, str]] = set()
    for entry in entries or []:
        check_entry(entry)
        key = (entry["type"], entry["value"])
        if key in seen:
            raise Invalid(f"Duplicate record for type {go_quote(entry['type'])} and value "
                          f"{go_quote(entry['value'])}")
        seen.add(key)


# -- rendering ------------------------------------------------------------------------------------
def zone_url(name: str) -> str:
    return f"/1.0/network-zones/{url_segment(name)}"


def record_url(zone: str, name: str) -> str:
    return f"{zone_url(zone)}/records/{url_segment(name)}"


def used_by(state: State, zone: str) -> list[str]:
    """Networks (any project) naming ``zone`` in one of their ``dns.zone.*`` keys."""
    urls = []
    for project, networks in sorted(state.families["networks"].items()):
        for name, net in sorted(networks.items()):
            config = net.get("config") or {}
            if any(config.get(key) == zone for key in ZONE_KEYS):
                urls.append(with_project(f"/1.0/networks/{url_segment(name)}", project))
    return urls


def render(state: State, zone: dict[str, Any]) -> dict[str, Any]:
    """``api.NetworkZone`` in LXD's field order."""
    return {"description": zone["description"], "config": dict(sorted(zone["config"].items())),
            "name": zone["name"], "used_by": used_by(state, zone["name"])}


def etag(zone: dict[str, Any]) -> str:
    return responses.etag_of([zone["name"], zone["description"], zone["config"]])


def _render_entries(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if entries is None:
        return None
    out = []
    for entry in entries:
        item: dict[str, Any] = {"type": entry["type"]}
        if entry["ttl"]:
            item["ttl"] = entry["ttl"]
        item["value"] = entry["value"]
        out.append(item)
    return out


def _record_put(record: dict[str, Any]) -> dict[str, Any]:
    return {"description": record["description"], "entries": _render_entries(record["entries"]),
            "config": dict(sorted(record["config"].items()))}


def render_record(record: dict[str, Any]) -> dict[str, Any]:
    """``api.NetworkZoneRecord`` in LXD's field order (``entries`` is null when never set)."""
    return {**_record_put(record), "name": record["name"]}


def record_etag(record: dict[str, Any]) -> str:
    """LXD hashes the record's ``NetworkZoneRecordPut`` (struct order, entries as sent)."""
    text = json.dumps(_record_put(record), separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return hashlib.sha256((text + "\n").encode()).hexdigest()


def _stored_config(config: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in config.items() if v != ""}


# -- lookups --------------------------------------------------------------------------------------
def _zones(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    ctx.state.require_project(ctx.project,
                              f"Failed to load project {go_quote(ctx.project)}: Project not found")
    return ctx.state.owner("network_zones", ctx.project), ctx.state.in_project(
        "network_zones", ctx.project)


def _zone(ctx: Ctx, name: str) -> tuple[str, dict[str, Any]]:
    owner, zones = _zones(ctx)
    zone = zones.get(name)
    if zone is None:
        raise LXDError(404, MISSING)
    return owner, zone


def _all_zones(state: State) -> list[dict[str, Any]]:
    return [z for zones in state.families["network_zones"].values() for z in zones.values()]


def _raw_field(ctx: Ctx, field: str) -> tuple[bool, Any]:
    """Whether ``field`` was sent (Go's case-insensitive match, the last one winning) and its
    raw JSON value (None for null)."""
    raw = ctx.json()
    found, value = False, None
    if isinstance(raw, dict):
        for key, item in raw.items():
            if key == field or key.lower() == field:
                found, value = True, item
    return found, value


def _new_config(ctx: Ctx, body: dict[str, Any], merge_from: dict[str, str]
                ) -> dict[str, str] | None:
    """The config a PUT sets, or a PATCH (the body's laid over ``merge_from``); None when the
    PATCH panics LXD 5.0.2 by merging config into a nil (absent or null) map."""
    config: dict[str, str] = body["config"]
    if ctx.request.method != "PATCH":
        return config
    _, value = _raw_field(ctx, "config")
    if value is None and merge_from:
        return None
    return {**merge_from, **config}


# -- zone handlers --------------------------------------------------------------------------------
@route("/1.0/network-zones", "GET")
def list_zones(ctx: Ctx) -> Response:
    with ctx.state.lock:
        _, zones = _zones(ctx)
        if ctx.recursion >= 1:
            return responses.sync([render(ctx.state, z) for z in zones.values()])
        return responses.sync([zone_url(n) for n in zones])


@route("/1.0/network-zones", "POST")
def create_zone(ctx: Ctx) -> Response:
    """LXD's order: project, body, a zone of that name anywhere, the name, the config."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, zones = _zones(ctx)
        body = ctx.body(ZONES_POST)
        name = body["name"]
        if any(z["name"] == name for z in _all_zones(ctx.state)):
            raise LXDError(400, "The network zone already exists")
        if not name:
            raise LXDError(500, "Name is required")
        try:
            check_zone_config(body["config"])
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        zones[name] = {"name": name, "description": body["description"],
                       "config": _stored_config(body["config"]), "records": {}}
    url = with_project(zone_url(name), owner)
    ctx.lifecycle("network-zone-created", url, project=owner)
    return responses.created(url)


@route("/1.0/network-zones/<zone>", "GET")
def get_zone(ctx: Ctx, zone: str) -> Response:
    with ctx.state.lock:
        _, found = _zone(ctx, zone)
        return responses.sync(render(ctx.state, found), etag=etag(found))


@route("/1.0/network-zones/<zone>", "PUT", "PATCH")
def update_zone(ctx: Ctx, zone: str) -> Response:
    """LXD's order: project, zone, If-Match, body, then the config."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, found = _zone(ctx, zone)
        ctx.check_etag(etag(found))
        body = ctx.body(ZONE_PUT)
        config = _new_config(ctx, body, found["config"])
        if config is None:
            return responses.drop_connection(ctx.request.environ, "assignment to entry in nil map")
        try:
            check_zone_config(config)
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        found["description"] = body["description"]  # PATCH too: an absent one empties it
        found["config"] = _stored_config(config)
    ctx.lifecycle("network-zone-updated", with_project(zone_url(zone), owner), project=owner)
    return responses.empty()


@route("/1.0/network-zones/<zone>", "DELETE")
def delete_zone(ctx: Ctx, zone: str) -> Response:
    with ctx.state.lock:
        owner, _ = _zone(ctx, zone)
        if used_by(ctx.state, zone):
            raise LXDError(500, "Cannot delete a zone that is in use")
        del ctx.state.in_project("network_zones", ctx.project)[zone]
    ctx.lifecycle("network-zone-deleted", with_project(zone_url(zone), owner), project=owner)
    return responses.empty()


# -- record handlers ------------------------------------------------------------------------------
def _entries(ctx: Ctx, body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The body's entries, None when absent or null (LXD then stores and shows null)."""
    _, value = _raw_field(ctx, "entries")
    return None if value is None else [dict(e) for e in body["entries"]]


def _record(ctx: Ctx, zone: str, name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    owner, found = _zone(ctx, zone)
    record = found["records"].get(name)
    if record is None:
        raise LXDError(404, MISSING_RECORD)
    return owner, found, record


@route("/1.0/network-zones/<zone>/records", "GET")
def list_records(ctx: Ctx, zone: str) -> Response:
    with ctx.state.lock:
        _, found = _zone(ctx, zone)
        records = found["records"]
        names = sorted(records)
        if ctx.recursion >= 1:
            return responses.sync([render_record(records[n]) for n in names])
        return responses.sync([record_url(zone, n) for n in names])


@route("/1.0/network-zones/<zone>/records", "POST")
def create_record(ctx: Ctx, zone: str) -> Response:
    """LXD's order: project, zone, body, config, entries, then the (global) unique name."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, found = _zone(ctx, zone)
        body = ctx.body(RECORDS_POST)
        entries = _entries(ctx, body)
        try:
            check_record_config(body["config"])
            check_entries(entries)
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        name = body["name"]
        if any(name in z["records"] for z in _all_zones(ctx.state)):
            raise LXDError(500, "UNIQUE constraint failed: networks_zones_records.name")
        found["records"][name] = {"name": name, "description": body["description"],
                                  "entries": entries,
                                  "config": _stored_config(body["config"])}
    url = with_project(record_url(zone, name), owner)
    ctx.lifecycle("network-zone-record-created", url, project=owner)
    return responses.created(url)


@route("/1.0/network-zones/<zone>/records/<name>", "GET")
def get_record(ctx: Ctx, zone: str, name: str) -> Response:
    with ctx.state.lock:
        _, _, record = _record(ctx, zone, name)
        return responses.sync(render_record(record), etag=record_etag(record))


@route("/1.0/network-zones/<zone>/records/<name>", "PUT", "PATCH")
def update_record(ctx: Ctx, zone: str, name: str) -> Response:
    """PUT and PATCH alike, except that PATCH fills the body's config from the *zone's*."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, found, record = _record(ctx, zone, name)
        ctx.check_etag(record_etag(record))
        body = ctx.body(RECORD_PUT)
        config = _new_config(ctx, body, found["config"])
        if config is None:
            return responses.drop_connection(ctx.request.environ, "assignment to entry in nil map")
        entries = _entries(ctx, body)
        try:
            check_record_config(config)
            check_entries(entries)
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        record.update(description=body["description"], entries=entries,
                      config=_stored_config(config))
    ctx.lifecycle("network-zone-record-updated", with_project(record_url(zone, name), owner),
                  project=owner)
    return responses.empty()


@route("/1.0/network-zones/<zone>/records/<name>", "DELETE")
def delete_record(ctx: Ctx, zone: str, name: str) -> Response:
    with ctx.state.lock:
        owner, found, _ = _record(ctx, zone, name)
        del found["records"][name]
    ctx.lifecycle("network-zone-record-deleted", with_project(record_url(zone, name), owner),
                  project=owner)
    return responses.empty()
