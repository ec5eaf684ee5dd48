"""``/1.0/projects``: projects, their features, limits, ``used_by`` and ``/state``.

A project is ``{"name", "description", "config"}`` in the global ``projects`` family. Objects
that belong to a project live in the per-project families under its name; ``used_by`` and the
``/state`` usage are computed from them on every request.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote, path_escape, url_segment, with_project
from ..operations import Operation, OperationFailed
from ..responses import LXDError
from ..schema import MAP_STR, STR, Struct, first_value
from ..state import PROJECT_FAMILIES, State
from ..validation import each_item
from . import profiles as profiles_mod
from . import route

PROJECTS_POST = Struct("ProjectsPost", name=STR, description=STR, config=MAP_STR)
PROJECT_PUT = Struct("ProjectPut", description=STR, config=MAP_STR)
PROJECT_POST = Struct("ProjectPost", name=STR)

FEATURES = ("features.images", "features.networks", "features.profiles",
            "features.storage.volumes")
# New projects get these set to "true" unless the request names them (features.networks is
# off by default in 5.0); the default project has every feature.
FEATURE_DEFAULTS = {"features.images": "true", "features.profiles": "true",
                    "features.storage.volumes": "true"}
DEFAULT_PROJECT_CONFIG = {feature: "true" for feature in FEATURES}

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")

# The order LXD's architecture map happened to print in; Go map order is random anyway.
ARCHITECTURES = ("i686", "x86_64", "armv6l", "armv7l", "armv8l", "aarch64", "ppc", "ppc64",
                 "ppc64le", "mips", "mips64", "riscv32", "riscv64", "s390x")
COMPRESSORS = {"bzip2": "bzip2", "gzip": "gzip", "lzma": "lzma", "xz": "xz", "zstd": "zstd",
               "pigz": "pigz", "squashfs": "tar2sqfs"}
SIZE_UNITS = {"": 1, "B": 1, " bytes": 1,
              "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18,
              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50,
              "EiB": 2**60}


def is_true(value: str | None) -> bool:
    return (value or "").lower() in TRUE


def is_false(value: str | None) -> bool:
    return (value or "").lower() in FALSE


# -- config validation (LXD's shared/validate, with its messages) -------------------------------
Check = Callable[[State, str], None]


def _bool(_: State, value: str) -> None:
    if value and value.lower() not in TRUE + FALSE:
        raise ValueError(f'Invalid value for a boolean {go_quote(value)}')


def _int64(_: State, value: str) -> None:
    if not value:
        return
    text = value[1:] if value[:1] in "+-" else value
    if not text.isdigit() or not text.isascii() or not -2**63 <= int(value) < 2**63:
        raise ValueError(f'Invalid value for an integer {go_quote(value)}')


def _parse_uint(value: str, bits: int) -> int:
    """Go's strconv.ParseUint(value, 10, bits) with its error text."""
    if not value or not value.isascii() or not value.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing {go_quote(value)}: invalid syntax')
    number = int(value)
    if number >= 2**bits:
        raise ValueError(f'strconv.ParseUint: parsing {go_quote(value)}: value out of range')
    return number


def _uint32(_: State, value: str) -> None:
    if not value:
        return
    try:
        _parse_uint(value, 32)
    except ValueError as exc:
        raise ValueError(f'Invalid value for uint32 {go_quote(value)}: {exc}') from None


def parse_size(value: str) -> int:
    """LXD's units.ParseByteSizeString."""
    digits = len(value) - len(value.lstrip("0123456789"))
    if digits == 0:
        raise ValueError(f"Invalid value: {value}")
    number, suffix = value[:digits], value[digits:]
    if int(number) >= 2**63:
        raise ValueError(f"Invalid integer: {value}")
    if suffix not in SIZE_UNITS:
        raise ValueError(f"Invalid value: {value}")
    return int(number) * SIZE_UNITS[suffix]


def _size(_: State, value: str) -> None:
    if value:
        parse_size(value)


def _compression(_: State, value: str) -> None:
    try:
        parts = shlex.split(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if not parts:
        raise ValueError("No compression algorithm specified")
    if len(parts) == 1 and parts[0] == "none":
        return
    binary = COMPRESSORS.get(parts[0])
    if binary is None:
        raise ValueError(f'Invalid compression algorithm {go_quote(parts[0])}')
    if shutil.which(binary) is None:
        raise ValueError(f'exec: {go_quote(binary)}: executable file not found in $PATH')


def _architecture(_: State, value: str) -> None:
    if value and value not in ARCHITECTURES:
        raise ValueError(f"Invalid value {go_quote(value)} "
                         f"(not one of [{' '.join(ARCHITECTURES)}])")


def _one_of(*choices: str, optional: bool = True) -> Check:
    def check(_: State, value: str) -> None:
        if (value or not optional) and value not in choices:
            raise ValueError(f'Invalid value {go_quote(value)} (not one of [{" ".join(choices)}])')
    return check


def _list_of(item: Callable[[str], None]) -> Check:
    def check(_: State, value: str) -> None:
        if value:
            each_item(value, item, ValueError)
    return check


def _abs_path(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError("Must be absolute file path")


def _uint32_range(value: str) -> None:
    start_text, dash, end_text = value.partition("-")
    try:
        start = _parse_uint(start_text, 32)
    except ValueError:
        raise ValueError(f'Invalid number {go_quote(value)}') from None
    if dash:
        try:
            end = _parse_uint(end_text, 32)
        except ValueError:
            raise ValueError(f'Invalid end number {go_quote(value)}') from None
        if start >= end:
            raise ValueError(f"Start number {start} must be lower than end number {end}")


def _subnets(state: State, value: str) -> None:
    if not value:
        return
    for raw in (part.strip() for part in value.split(",")):
        if not raw:
            continue
        uplink, colon, subnet = raw.partition(":")
        if not colon:
            raise ValueError(f'Subnet {go_quote(raw)} invalid, must be in the format of '
                             '"<uplink network>:<subnet>"')
        try:
            net = ipaddress.ip_network(subnet, strict=False)
            addr = ipaddress.ip_interface(subnet).ip
        except ValueError:
            raise ValueError(f"invalid CIDR address: {subnet}") from None
        if addr != net.network_address:
            raise ValueError(f'Not an IP network address {go_quote(subnet)}')
        network = state.families["networks"].get("default", {}).get(uplink)
        if network is None:
            raise ValueError(f'Invalid uplink network {go_quote(uplink)}: Network not found')
        routes = []
        for key in ("ipv4.routes", "ipv6.routes"):
            for route_text in (network.get("config") or {}).get(key, "").split(","):
                if route_text.strip():
                    routes.append(ipaddress.ip_network(route_text.strip(), strict=False))
        if not any(net.version == r.version and net.subnet_of(r) for r in routes):  # type: ignore[arg-type]
            raise ValueError(f'Uplink network {go_quote(uplink)} doesn\'t contain '
                             f'{go_quote(net)} in its routes')


def _any(_: State, value: str) -> None:
    return None


_ALLOW_BLOCK = _one_of("block", "allow")
_ALLOW_BLOCK_MANAGED = _one_of("block", "allow", "managed")

CONFIG_KEYS: dict[str, Check] = {
    "backups.compression_algorithm": _compression,
    "features.images": _bool, "features.networks": _bool, "features.profiles": _bool,
    "features.storage.volumes": _bool,
    "images.auto_update_cached": _bool, "images.auto_update_interval": _int64,
    "images.compression_algorithm": _compression,
    "images.default_architecture": _architecture, "images.remote_cache_expiry": _int64,
    "limits.instances": _uint32, "limits.containers": _uint32,
    "limits.virtual-machines": _uint32, "limits.memory": _size, "limits.processes": _uint32,
    "limits.cpu": _uint32, "limits.disk": _size, "limits.networks": _uint32,
    "restricted": _bool, "restricted.backups": _ALLOW_BLOCK,
    "restricted.cluster.groups": _any, "restricted.cluster.target": _ALLOW_BLOCK,
    "restricted.containers.nesting": _ALLOW_BLOCK,
    "restricted.containers.interception": _one_of("allow", "block", "full"),
    "restricted.containers.lowlevel": _ALLOW_BLOCK,
    "restricted.containers.privilege": _one_of("allow", "unprivileged", "isolated"),
    "restricted.virtual-machines.lowlevel": _ALLOW_BLOCK,
    "restricted.devices.unix-char": _ALLOW_BLOCK, "restricted.devices.unix-block": _ALLOW_BLOCK,
    "restricted.devices.unix-hotplug": _ALLOW_BLOCK,
    "restricted.devices.infiniband": _ALLOW_BLOCK, "restricted.devices.gpu": _ALLOW_BLOCK,
    "restricted.devices.usb": _ALLOW_BLOCK, "restricted.devices.pci": _ALLOW_BLOCK,
    "restricted.devices.proxy": _ALLOW_BLOCK, "restricted.devices.nic": _ALLOW_BLOCK_MANAGED,
    "restricted.devices.disk": _ALLOW_BLOCK_MANAGED,
    "restricted.devices.disk.paths": _list_of(_abs_path),
    "restricted.idmap.uid": _list_of(_uint32_range),
    "restricted.idmap.gid": _list_of(_uint32_range),
    "restricted.networks.access": _any, "restricted.networks.uplinks": _any,
    "restricted.networks.subnets": _subnets, "restricted.networks.zones": _any,
    "restricted.snapshots": _ALLOW_BLOCK,
}


def check_config(state: State, config: dict[str, str]) -> None:
    """Raise LXD's 400 for an unknown key or a bad value (keys checked in sorted order)."""
    for key in sorted(config):
        if key.startswith("user."):
            continue
        check = CONFIG_KEYS.get(key)
        if check is None:
            raise LXDError(400, f'Invalid project configuration key {go_quote(key)}')
        try:
            check(state, config[key])
        except ValueError as exc:
            raise LXDError(400, f"Invalid project configuration key {go_quote(key)} value: "
                                f"{exc}") from None


def check_name(name: str) -> None:
    """LXD's projectValidateName, as a 400."""
    problem = ""
    if not name:
        problem = "No name provided"
    elif "/" in name:
        problem = "Project names may not contain slashes"
    elif " " in name:
        problem = "Project names may not contain spaces"
    elif "_" in name:
        problem = "Project names may not contain underscores"
    elif "'" in name or '"' in name:
        problem = "Project names may not contain quotes"
    elif name == "*":
        problem = "Reserved project name"
    elif name in (".", ".."):
        problem = f'Invalid project name {go_quote(name)}'
    if problem:
        raise LXDError(400, problem)


# -- objects ---------------------------------------------------------------------------------
def _stored(config: dict[str, str]) -> dict[str, str]:
    """LXD's database keeps no empty values."""
    return {key: value for key, value in sorted(config.items()) if value != ""}


def _default_profile(project: str) -> dict[str, Any]:
    return profiles_mod.new("default", f"Default LXD profile for project {project}")


def create(state: State, name: str, description: str, config: dict[str, str]) -> None:
    """Add a project (and its own default profile when it has ``features.profiles``)."""
    state.family("projects")[name] = {"name": name, "description": description,
                                      "config": _stored(config)}
    if is_true(config.get("features.profiles")):
        state.families["profiles"].setdefault(name, {})["default"] = _default_profile(name)


def seed(state: State, items: list[dict[str, Any]]) -> None:
    """Preseed: create projects as ``POST /1.0/projects`` does, or merge into existing ones."""
    projects = state.family("projects")
    for item in items:
        name = str(item["name"])
        config = {str(k): "" if v is None else str(v)
                  for k, v in (item.get("config") or {}).items()}
        if name in projects:
            merged = {**projects[name]["config"], **config}
            check_config(state, merged)
            projects[name]["config"] = _stored(merged)
            if "description" in item:
                projects[name]["description"] = str(item["description"] or "")
            continue
        check_name(name)
        defaults = DEFAULT_PROJECT_CONFIG if name == "default" else FEATURE_DEFAULTS
        config = {**defaults, **config}
        check_config(state, config)
        create(state, name, str(item.get("description") or ""), config)


def _volume_urls(state: State, project: str) -> list[str]:
    """Custom volumes stored in ``project`` (shape-tolerant: the volume module owns it)."""
    found = []
    for key, vol in (state.families["volumes"].get(project) or {}).items():
        if not isinstance(vol, dict):
            continue
        parts = key if isinstance(key, tuple) and len(key) == 3 else None
        pool = vol.get("pool") or (parts[0] if parts else None)
        vtype = vol.get("type") or (parts[1] if parts else None)
        name = vol.get("name") or (parts[2] if parts else None)
        if pool is None or name is None or vtype != "custom" or "/" in str(name):
            continue
        found.append((str(name), str(pool)))
    return [with_project(f"/1.0/storage-pools/{path_escape(pool)}/volumes/custom/"
                         f"{path_escape(name)}", project) for name, pool in sorted(found)]


def used_by(state: State, project: str, acls: bool = True) -> list[str]:
    """What LXD lists: the project's own instances, profiles, images, custom volumes, networks
    and network ACLs (``acls=False``: without the ACLs, which LXD 5.0.2 does not count when it
    deletes or renames a project: they go with it)."""
    families = state.families

    def named(family: str, path: str) -> list[str]:
        names = sorted(str(n) for n in families[family].get(project, {}))
        return [with_project(f"{path}/{path_escape(n)}", project) for n in names]

    images = families["images"].get(project, {})
    fingerprints = sorted(str(img.get("fingerprint") or key) if isinstance(img, dict) else key
                          for key, img in images.items())
    return (named("instances", "/1.0/instances") + named("profiles", "/1.0/profiles")
            + [with_project(f"/1.0/images/{fp}", project) for fp in fingerprints]
            + _volume_urls(state, project) + named("networks", "/1.0/networks")
            + (named("network_acls", "/1.0/network-acls") if acls else []))


def is_empty(usage: list[str]) -> bool:
    """LXD calls a project empty when nothing but its default profile uses it."""
    return not usage or (len(usage) == 1 and "/profiles/default" in usage[0])


def render(state: State, project: dict[str, Any]) -> dict[str, Any]:
    return {"config": project["config"], "description": project["description"],
            "name": project["name"], "used_by": used_by(state, project["name"])}


def etag(project: dict[str, Any]) -> str:
    return responses.etag_of([project["description"], project["config"]])


def _url(name: str) -> str:
    """A project's URL as 5.0.2 writes it in lists, Location and events: escaped twice."""
    return f"/1.0/projects/{url_segment(name)}"


# -- /state ----------------------------------------------------------------------------------
def _instances(state: State, project: str) -> list[dict[str, Any]]:
    return [inst for inst in (state.families["instances"].get(project) or {}).values()
            if isinstance(inst, dict)]


def _expanded_config(state: State, project: str, inst: dict[str, Any]) -> dict[str, str]:
    expanded = inst.get("expanded_config")
    if isinstance(expanded, dict):
        return {str(k): str(v) for k, v in expanded.items()}
    profiles = state.families["profiles"].get(state.owner("profiles", project), {})
    config: dict[str, str] = {}
    for name in inst.get("profiles") or []:
        config.update((profiles.get(name) or {}).get("config") or {})
    config.update(inst.get("config") or {})
    return config


def _root_size(state: State, project: str, inst: dict[str, Any]) -> int:
    devices = inst.get("expanded_devices")
    if not isinstance(devices, dict):
        profiles = state.families["profiles"].get(state.owner("profiles", project), {})
        devices = {}
        for name in inst.get("profiles") or []:
            devices.update((profiles.get(name) or {}).get("devices") or {})
        devices.update(inst.get("devices") or {})
    for device in devices.values():
        if device.get("type") == "disk" and device.get("path") == "/" and device.get("size"):
            try:
                return parse_size(device["size"])
            except ValueError:
                return 0
    return 0


def allocations(state: State, project: str) -> dict[str, dict[str, int]]:
    """``{"resources": …}`` of ``/1.0/projects/{p}/state``: limits and current usage."""
    config = state.family("projects")[project]["config"]
    instances = _instances(state, project)
    usage = {"cpu": 0, "memory": 0, "processes": 0, "disk": 0}
    parsers: dict[str, Callable[[str], int]] = {"cpu": int, "memory": parse_size,
                                                "processes": int, "disk": parse_size}
    for inst in instances:
        expanded = _expanded_config(state, project, inst)
        for key in ("cpu", "memory", "processes"):
            try:
                usage[key] += parsers[key](expanded.get(f"limits.{key}", ""))
            except ValueError:
                pass
        usage["disk"] += _root_size(state, project, inst)
    for vol in (state.families["volumes"].get(project) or {}).values():
        if isinstance(vol, dict) and vol.get("type") == "custom":
            try:
                usage["disk"] += parse_size((vol.get("config") or {}).get("size", ""))
            except ValueError:
                pass

    def limit(key: str, parser: Callable[[str], int] = int) -> int:
        value = config.get(f"limits.{key}", "")
        try:
            return parser(value) if value else -1
        except ValueError:
            return -1

    containers = sum(1 for i in instances if i.get("type", "container") == "container")
    vms = sum(1 for i in instances if i.get("type") == "virtual-machine")
    networks = len(state.families["networks"].get(project) or {})
    return {
        "containers": {"Limit": limit("containers"), "Usage": containers},
        "cpu": {"Limit": limit("cpu"), "Usage": usage["cpu"]},
        "disk": {"Limit": limit("disk", parse_size), "Usage": usage["disk"]},
        "instances": {"Limit": limit("instances"), "Usage": len(instances)},
        "memory": {"Limit": limit("memory", parse_size), "Usage": usage["memory"]},
        "networks": {"Limit": limit("networks"), "Usage": networks},
        "processes": {"Limit": limit("processes"), "Usage": usage["processes"]},
        "virtual-machines": {"Limit": limit("virtual-machines"), "Usage": vms},
    }


AGGREGATES = ("limits.cpu", "limits.disk", "limits.memory", "limits.processes")


def _iec(value: int) -> str:
    """LXD's GetByteSizeStringIEC(value, 1)."""
    if value < 1024:
        return f"{value}B"
    number = float(value)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        number /= 1024
        if number < 1024 or unit == "EiB":
            return f"{number:.1f}{unit}"
    return f"{number:.1f}EiB"


def _aggregate_value(key: str, value: str) -> int:
    if key == "limits.cpu":
        if "," in value or "-" in value:
            raise ValueError("CPUs can't be pinned if project limits are used")
        return int(value)
    if key == "limits.processes":
        return int(value)
    if key == "limits.memory" and value.endswith("%"):
        raise ValueError("Value can't be a percentage")
    return parse_size(value)


def _totals(state: State, name: str, keys: list[str]) -> dict[str, int]:
    """LXD's getTotalsAcrossProjectEntities without skipping unset values (500s)."""
    totals = dict.fromkeys(keys, 0)
    if "limits.disk" in keys:
        for vol in (state.families["volumes"].get(name) or {}).values():
            if not isinstance(vol, dict) or vol.get("type") != "custom":
                continue
            size = (vol.get("config") or {}).get("size")
            if size is None:
                raise LXDError(500, f'Custom volume {go_quote(vol.get("name"))} in project '
                                    f'{go_quote(name)} has '
                                    'no "size" config set')
            totals["limits.disk"] += parse_size(size)
    for inst in _instances(state, name):
        inst_name = inst.get("name", "")
        config = _expanded_config(state, name, inst)
        for key in keys:
            if key == "limits.disk":
                size = _root_size(state, name, inst)
                if not size:
                    raise LXDError(500, f'Instance {go_quote(inst_name)} in project '
                                        f'{go_quote(name)} has no '
                                        '"size" config set on the root device either directly '
                                        "or via a profile")
                totals[key] += size
                continue
            value = config.get(key, "")
            if not value:
                raise LXDError(500, f'Instance {go_quote(inst_name)} in project {go_quote(name)} '
                                    'has no '
                                    f'{go_quote(key)} config, either directly or via a profile')
            try:
                totals[key] += _aggregate_value(key, value)
            except ValueError:
                raise LXDError(500, f'Failed parsing {go_quote(key)} for instance '
                                    f'{go_quote(inst_name)} in '
                                    f'project {go_quote(name)}') from None
    return totals


def _check_limits(state: State, name: str, config: dict[str, str], changed: list[str]) -> None:
    """LXD's AllowProjectUpdate: new limits may not be below current usage (500s)."""
    instances = _instances(state, name)
    aggregates = []
    for key in changed:
        value = config.get(key, "")
        if key in AGGREGATES:
            aggregates.append(key)
        if not value:
            continue
        if key == "limits.instances" and int(value) < len(instances):
            raise LXDError(500, f'Can\'t change limits.instances in project {go_quote(name)}: '
                                f'"limits.instances" is too low: there currently are '
                                f'{len(instances)} total instances in project {go_quote(name)}')
        if key in ("limits.containers", "limits.virtual-machines"):
            kind = "container" if key == "limits.containers" else "virtual-machine"
            count = sum(1 for i in instances if i.get("type", "container") == kind)
            if int(value) < count:
                raise LXDError(500, f'Can\'t change {go_quote(key)} in project {go_quote(name)}: '
                                    f'{go_quote(key)} is too '
                                    f'low: there currently are {count} instances of type '
                                    f'{kind} in project {go_quote(name)}')
    if not aggregates:
        return
    totals = _totals(state, name, aggregates)
    for key in aggregates:
        value = config.get(key, "")
        if not value:
            continue
        if _aggregate_value(key, value) < totals[key]:
            shown = _iec(totals[key]) if key in ("limits.memory", "limits.disk") \
                else str(totals[key])
            raise LXDError(500, f'{go_quote(key)} is too low: current total is {go_quote(shown)}')


# -- handlers --------------------------------------------------------------------------------
def _get(ctx: Ctx, name: str, missing: str = "Project not found") -> dict[str, Any]:
    project: dict[str, Any] | None = ctx.state.family("projects").get(name)
    if project is None:
        raise LXDError(404, missing)
    return project


@route("/1.0/projects", "GET")
def list_projects(ctx: Ctx) -> Response:
    with ctx.state.lock:
        projects = ctx.state.family("projects")
        names = sorted(projects)
        if ctx.recursion != 0:
            return responses.sync([render(ctx.state, projects[n]) for n in names])
        return responses.sync([_url(n) for n in names])


@route("/1.0/projects", "POST")
def create_project(ctx: Ctx) -> Response:
    raw = ctx.raw_body()
    body = ctx.body(PROJECTS_POST)
    config = dict(FEATURE_DEFAULTS)
    # Go decodes into a map that already holds the defaults: sent keys are merged in, and an
    # explicit "config": null drops the map (no features at all).
    if "config" in body.present and _raw_field(raw, "config") is None:
        config = {}
    config.update(body["config"])
    name = body["name"]
    check_name(name)
    with ctx.state.lock:
        check_config(ctx.state, config)
        if name in ctx.state.family("projects"):
            raise LXDError(409, f'Failed creating project {go_quote(name)}: Failed adding database '
                                'record: This "projects" entry already exists')
        create(ctx.state, name, body["description"], config)
    ctx.lifecycle("project-created", _url(name), project=name)
    return responses.created(_url(name))


def _raw_field(raw: bytes, key: str) -> Any:
    """The value of ``key`` in a JSON object body (Go matches keys case-insensitively)."""
    data = first_value(raw)
    if not isinstance(data, dict):
        return None
    for name, value in data.items():
        if name.lower() == key:
            return value
    return None


@route("/1.0/projects/<name>", "GET")
def get_project(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        project = _get(ctx, name)
        return responses.sync(render(ctx.state, project), etag=etag(project))


def _patch_body(ctx: Ctx, project: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """5.0.2's PATCH: a sent description replaces, a sent ``config`` map REPLACES the config.

    LXD merges the old keys into a scratch copy of the request that it then throws away, so
    the stored config becomes exactly the map sent (a 5.0.2 bug, kept here on purpose).
    """
    data = first_value(ctx.raw_body())
    if data is not None and not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(data), "number")
        raise LXDError(400, f"json: cannot unmarshal {kind} into Go value of type shared.Jmap")
    body = ctx.body(PROJECT_PUT)
    data = data or {}
    description = (body["description"] if isinstance(data.get("description"), str)
                   else project["description"])
    config = body["config"] if isinstance(data.get("config"), dict) else dict(project["config"])
    return description, config


@route("/1.0/projects/<name>", "PUT", "PATCH")
def update_project(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        project = _get(ctx, name)
        ctx.check_etag(etag(project))
        if ctx.request.method == "PUT":
            body = ctx.body(PROJECT_PUT)
            description, config = body["description"], body["config"]
        else:
            description, config = _patch_body(ctx, project)
        # LXD emits project-updated before it validates anything.
        ctx.lifecycle("project-updated", _url(name), project=name)
        _change(ctx.state, project, description, config)
    return responses.empty()


def _change(state: State, project: dict[str, Any], description: str,
            config: dict[str, str]) -> None:
    """LXD's projectChange: feature rules, validation, limits, then the update itself."""
    name = project["name"]
    old = project["config"]
    changed = [key for key in old if config.get(key, "") != old[key]]
    changed += [key for key in config if key not in old]
    features = sorted(key for key in changed if key in FEATURES)
    if features:
        if name == "default":
            raise LXDError(400, "You can't change the features of the default project")
        if not is_empty(used_by(state, name)):
            for feature in features:
                if is_true(old.get(feature)):
                    raise LXDError(400, f'Project feature {go_quote(feature)} cannot be disabled '
                                        'on '
                                        "non-empty projects")
                if is_false(old.get(feature)):
                    raise LXDError(400, f'Project feature {go_quote(feature)} cannot be enabled on '
                                        "non-empty projects")
    check_config(state, config)
    _check_limits(state, name, config, changed)
    profiles = state.families["profiles"]
    if "features.profiles" in changed:
        own = profiles.get(name) or {}
        if is_true(config.get("features.profiles")):
            if "default" in own:
                raise LXDError(409, 'Add default profile to database: This "profiles" entry '
                                    "already exists")
            profiles.setdefault(name, {})["default"] = _default_profile(name)
        else:
            if "default" not in own:
                raise LXDError(404, "Delete project default profile: Profile not found")
            del own["default"]
    project["description"] = description
    project["config"] = _stored(config)


@route("/1.0/projects/<name>", "POST")
def rename_project(ctx: Ctx, name: str) -> Response:
    body = ctx.body(PROJECT_POST)
    if name == "default":
        raise LXDError(403, "The 'default' project cannot be renamed")
    new_name = body["name"]

    def run(op: Operation) -> None:
        projects = ctx.state.family("projects")
        if new_name in projects:
            raise OperationFailed(f'A project named {go_quote(new_name)} already exists')
        if name not in projects:
            raise OperationFailed(f'Failed loading project {go_quote(name)}: Project not found')
        if not is_empty(used_by(ctx.state, name, acls=False)):
            raise OperationFailed("Only empty projects can be renamed")
        try:
            check_name(new_name)
        except LXDError as exc:
            raise OperationFailed(exc.message) from None
        project = projects.pop(name)
        project["name"] = new_name
        projects[new_name] = project
        for family in PROJECT_FAMILIES:
            objects = ctx.state.families[family]
            if name in objects:
                objects[new_name] = objects.pop(name)
        ctx.lifecycle("project-renamed", _url(new_name), context={"old_name": name},
                      project=new_name)

    # A global operation (no project), as LXD creates it.
    return ctx.operation("Renaming project", run, resources=None, project="")


@route("/1.0/projects/<name>", "DELETE")
def delete_project(ctx: Ctx, name: str) -> Response:
    if name == "default":
        raise LXDError(403, "The 'default' project cannot be deleted")
    with ctx.state.lock:
        _get(ctx, name, f'Fetch project {go_quote(name)}: Project not found')
        if not is_empty(used_by(ctx.state, name, acls=False)):
            raise LXDError(500, "Only empty projects can be removed")
        del ctx.state.family("projects")[name]
        for family in PROJECT_FAMILIES:
            ctx.state.families[family].pop(name, None)
    ctx.lifecycle("project-deleted", _url(name), project=name)
    return responses.empty()


@route("/1.0/projects/<name>/state", "GET")
def get_project_state(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        _get(ctx, name, "Fetch project database object: Project not found")
        return responses.sync({"resources": allocations(ctx.state, name)})
