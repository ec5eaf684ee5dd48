"""``/1.0/instances`` (and ``/1.0/containers``, ``/1.0/virtual-machines``): instances.

An instance lives at ``state.families["instances"][project][name]`` as a dict::

    {"name", "type", "status", "config", "devices", "profiles", "ephemeral", "stateful",
     "description", "architecture", "created_at", "last_used_at", "project",
     "snapshots": {name: snapshot record (with its own "files")},
     "files": {absolute path: imagefile.Entry},      # the root filesystem
     "logs": {file name: bytes}, "console": bytes, "started": bool,
     "metadata": the image's metadata.yaml as a dict (None for source "none"),
     "templates": {name: bytes}}

Other modules use :func:`get_instance`, :func:`instance_url` and :func:`expanded`. The fake
runs only containers: like the reference host (no ``vhost_vsock``), it refuses to create
virtual machines with LXD's message. Known divergence: state changes are instant (a graceful
stop takes seconds on LXD).
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from .. import filters, imagefile, responses
from ..app import Ctx
from ..gourl import go_quote
from ..imagefile import Entry
from ..operations import Operation, OperationFailed
from ..responses import EPOCH_TIME, ZERO_TIME, LXDError, go_time
from ..schema import ANY, BOOL, DEVICES, INT, LIST_STR, MAP_STR, STR, Body, Struct, first_value
from ..state import State
from ..validation import Invalid, check_devices, check_instance_config
from . import images as images_api
from . import route
from . import storage_volumes as volumes_api

PREFIXES = ("instances", "containers", "virtual-machines")
LOG_DIR = "/var/lib/lxd/logs"
STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110, "Error": 112}
IDMAP = ('[{"Isuid":true,"Isgid":false,"Hostid":100000,"Nsid":0,"Maprange":10000001},'
         '{"Isuid":false,"Isgid":true,"Hostid":100000,"Nsid":0,"Maprange":10000001}]')
IDMAP_KEYS = ("volatile.idmap.base", "volatile.idmap.current", "volatile.idmap.next",
              "volatile.last_state.idmap")
VM_ONLY_KEYS = {"raw.qemu", "raw.qemu.conf", "security.secureboot", "security.csm",
                "security.agent.metrics", "agent.nic_config", "migration.stateful"}
VOLATILE_KEYS = {"volatile.apply_template", "volatile.base_image",
                 "volatile.cloud-init.instance-id", "volatile.evacuate.origin",
                 "volatile.last_state.power", "volatile.last_state.ready",
                 "volatile.apply_quota", *IDMAP_KEYS, "volatile.uuid"}
DEVICE_VOLATILE = ("hwaddr", "name", "host_name", "mtu", "created", "id", "vlan", "spoofcheck",
                   "last_state.hwaddr", "last_state.mtu", "last_state.created",
                   "last_state.vf.id", "last_state.vf.hwaddr", "last_state.vf.vlan",
                   "last_state.vf.spoofcheck", "apply_quota", "ceph_rbd", "driver", "uuid")
CONSOLE_HALT = (b"The system is going down NOW!\r\nSent SIGTERM to all processes\r\n"
                b"Sent SIGKILL to all processes\r\nRequesting system halt\r\n")

SOURCE = Struct("InstanceSource", type=STR, certificate=STR, alias=STR, fingerprint=STR,
                properties=MAP_STR, server=STR, secret=STR, protocol=STR, base_image=STR,
                mode=STR, operation=STR, websockets=ANY, source=STR, live=BOOL,
                instance_only=BOOL, container_only=BOOL, refresh=BOOL, project=STR,
                allow_inconsistent=BOOL)
INSTANCES_POST = Struct("InstancesPost", architecture=STR, config=MAP_STR, devices=DEVICES,
                        ephemeral=BOOL, profiles=LIST_STR, stateful=BOOL, description=STR,
                        name=STR, source=SOURCE, instance_type=STR, type=STR)
INSTANCE_PUT = Struct("InstancePut", architecture=STR, config=MAP_STR, devices=DEVICES,
                      ephemeral=BOOL, profiles=LIST_STR, stateful=BOOL, description=STR,
                      restore=STR)
INSTANCE_POST = Struct("InstancePost", name=STR, migration=BOOL, live=BOOL,
                       instance_only=BOOL, container_only=BOOL, target=ANY, pool=STR,
                       project=STR, allow_inconsistent=BOOL)
STATE_PUT = Struct("InstanceStatePut", action=STR, timeout=INT, force=BOOL, stateful=BOOL)
INSTANCES_PUT = Struct("InstancesPut", state=STATE_PUT)
METADATA = Struct("ImageMetadata", architecture=STR, creation_date=INT, expiry_date=INT,
                  properties=MAP_STR, templates=ANY)

_ADJECTIVES = ("able", "brave", "calm", "clever", "cosmic", "driven", "eager", "famous",
               "gentle", "handy", "happy", "keen", "lucky", "mighty", "noble", "proper",
               "quick", "ready", "sacred", "smart", "tender", "upward", "vital", "witty")
_ANIMALS = ("ant", "bat", "cat", "crow", "deer", "dove", "eel", "fox", "gnu", "hare", "ibis",
            "koala", "lynx", "mole", "newt", "orca", "owl", "puma", "quail", "seal", "toad",
            "vole", "wasp", "yak")


# -- helpers for other modules ----------------------------------------------------------------


def instances_of(state: State, project: str) -> dict[str, Any]:
    """The instances of ``project`` (instances are always per project)."""
    family: dict[str, Any] = state.families["instances"].setdefault(project, {})
    return family


def get_instance(state: State, project: str, name: str) -> dict[str, Any]:
    """The record of instance ``name`` in ``project``; 404 ``Instance not found``."""
    inst = state.families["instances"].get(project, {}).get(name)
    if inst is None:
        raise LXDError(404, "Instance not found")
    return complete(inst, name, project)


def complete(inst: dict[str, Any], name: str, project: str) -> dict[str, Any]:
    """Fill in what a hand-seeded record (tests, preseeds) may lack; returns ``inst``."""
    if "files" not in inst or "snapshots" not in inst:
        defaults: dict[str, Any] = {
            "name": name, "type": "container", "status": "Stopped", "project": project,
            "architecture": "x86_64", "config": {}, "devices": {}, "profiles": [],
            "ephemeral": False, "stateful": False, "description": "",
            "created_at": go_time(), "last_used_at": EPOCH_TIME, "snapshots": {},
            "files": empty_rootfs(name), "logs": {"lxc.log": b""}, "console": b"",
            "started": False, "metadata": None, "templates": {}, "pid": 0}
        for key, value in defaults.items():
            inst.setdefault(key, value)
    return inst


def instance_url(name: str, project: str = "default", prefix: str = "instances") -> str:
    path = f"/1.0/{prefix}/{name}"
    return path if project == "default" else f"{path}?project={project}"


def _profiles_of(state: State, project: str) -> dict[str, Any]:
    return state.families["profiles"].get(state.owner("profiles", project), {})


def expanded(state: State, project: str, record: dict[str, Any]
             ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``(expanded_config, expanded_devices)``: the profiles in order, then the record."""
    profiles = _profiles_of(state, project)
    config: dict[str, str] = {}
    devices: dict[str, dict[str, str]] = {}
    for name in record.get("profiles") or []:
        profile = profiles.get(name) or {}
        config.update(profile.get("config") or {})
        devices.update(profile.get("devices") or {})
    config.update(record.get("config") or {})
    devices.update(record.get("devices") or {})
    return dict(sorted(config.items())), dict(sorted(devices.items()))


def root_pool(devices: dict[str, dict[str, str]]) -> str | None:
    for device in devices.values():
        if device.get("type") == "disk" and device.get("path") == "/" \
                and not device.get("source"):
            return device.get("pool", "")
    return None


def emit(ctx: Ctx, action: str, source: str, project: str,
         context: dict[str, Any] | None = None, requestor: bool = False) -> None:
    """A lifecycle event; LXD sends most instance events without a requestor."""
    ctx.events.lifecycle(action, source, project, context,
                         ctx.requestor if requestor else None)


# -- rendering --------------------------------------------------------------------------------


def status_code(status: str) -> int:
    return STATUS_CODES.get(status, 112)


def render(state: State, project: str, inst: dict[str, Any]) -> dict[str, Any]:
    """An ``api.Instance`` in LXD's field order (empty expanded maps are omitted)."""
    config, devices = expanded(state, project, inst)
    out: dict[str, Any] = {
        "architecture": inst["architecture"], "config": dict(sorted(inst["config"].items())),
        "devices": inst["devices"], "ephemeral": inst["ephemeral"],
        "profiles": list(inst["profiles"]), "stateful": inst["stateful"],
        "description": inst["description"], "created_at": inst["created_at"],
    }
    if config:
        out["expanded_config"] = config
    if devices:
        out["expanded_devices"] = devices
    out.update({"name": inst["name"], "status": inst["status"],
                "status_code": status_code(inst["status"]),
                "last_used_at": inst["last_used_at"], "location": "none",
                "type": inst["type"], "project": project})
    return out


def render_full(state: State, project: str, inst: dict[str, Any]) -> dict[str, Any]:
    from .instance_backups import render_all as render_backups
    from .instance_snapshots import render_snapshot

    out = render(state, project, inst)
    snaps = [render_snapshot(state, project, inst, s) for s in inst["snapshots"].values()]
    out["backups"] = render_backups(inst)
    out["state"] = render_state(state, project, inst)
    out["snapshots"] = snaps or None
    return out


def etag(inst: dict[str, Any]) -> str:
    """Opaque and stable: LXD's formula has not been reproduced byte for byte."""
    return responses.etag_of([inst["architecture"], inst["config"], inst["devices"],
                              inst["ephemeral"], inst["profiles"]])


def _counters() -> dict[str, int]:
    return {"bytes_received": 0, "bytes_sent": 0, "packets_received": 0, "packets_sent": 0,
            "errors_received": 0, "errors_sent": 0, "packets_dropped_outbound": 0,
            "packets_dropped_inbound": 0}


def render_state(state: State, project: str, inst: dict[str, Any]) -> dict[str, Any]:
    """``api.InstanceState``: zeros and ``network: null`` unless running or frozen."""
    status = inst["status"]
    out: dict[str, Any] = {"status": status, "status_code": status_code(status), "disk": {}}
    if status == "Stopped":
        out.update({"memory": {"usage": 0, "usage_peak": 0, "swap_usage": 0,
                               "swap_usage_peak": 0},
                    "network": None, "pid": 0, "processes": 0, "cpu": {"usage": 0}})
        return out
    network: dict[str, Any] = {"lo": {"addresses": [], "counters": _counters(), "hwaddr": "",
                                      "host_name": "", "mtu": 65536, "state": "down",
                                      "type": "loopback"}}
    config, devices = expanded(state, project, inst)
    for dev_name, device in devices.items():
        if device.get("type") != "nic":
            continue
        name = device.get("name") or dev_name
        network[name] = {"addresses": [], "counters": _counters(),
                         "hwaddr": config.get(f"volatile.{dev_name}.hwaddr", ""),
                         "host_name": config.get(f"volatile.{dev_name}.host_name", ""),
                         "mtu": 1500, "state": "up", "type": "broadcast"}
    out.update({"memory": {"usage": 811008, "usage_peak": 1249280, "swap_usage": 0,
                           "swap_usage_peak": 0},
                "network": network, "pid": inst.get("pid", 0), "processes": 1,
                "cpu": {"usage": 9442870}})
    return out


# -- validation --------------------------------------------------------------------------------


def check_instance_name(name: str) -> None:
    """LXD's ValidHostname, as a 400 ``Invalid instance name: ...``."""
    problem = ""
    if not 1 <= len(name) <= 63:
        problem = "Name must be 1-63 characters long"
    elif name.startswith("-"):
        problem = 'Name must not start with "-" character'
    elif name[0].isdigit():
        problem = "Name must not start with a number"
    elif name.endswith("-"):
        problem = 'Name must not end with "-" character'
    elif not re.fullmatch(r"[-a-zA-Z0-9]*", name):
        problem = "Name can only contain alphanumeric and hyphen characters"
    if problem:
        raise LXDError(400, f"Invalid instance name: {problem}")


_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
                       re.IGNORECASE)
_GO_HEX_FLOAT = re.compile(r"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)p[+-]?\d+",
                           re.IGNORECASE)


def _f32(value: float) -> float:
    """``value`` rounded to a float32 (too big: an infinity, as Go's float32 arithmetic)."""
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def _go_float32(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 32)``: None when it fails (syntax or range)."""
    try:
        if _GO_FLOAT.fullmatch(text):
            value = float(text)
        elif _GO_HEX_FLOAT.fullmatch(text):
            sign = -1.0 if text.startswith("-") else 1.0
            value = sign * float.fromhex(text.lstrip("+-"))
        else:
            return None
    except (OverflowError, ValueError):
        return None
    if math.isinf(value) or math.isnan(value):
        return value
    rounded = _f32(value)
    return None if math.isinf(rounded) else rounded


def _go_int(value: float) -> int:
    """Go's ``int(f)`` on amd64: NaN, infinities and out-of-range values give -2**63."""
    if math.isnan(value) or math.isinf(value) or not -2.0**63 <= value < 2.0**63:
        return -(1 << 63)
    return int(value)


def instance_type_limits(value: str) -> dict[str, str]:
    """The config an ``instance_type`` stands for: LXD 5.0.2 knows no named types without
    its image server's list, so only ``c<cpus>-m<GiB>`` limits (either part alone too)."""
    cpu = memory = 0.0
    for field in value.split("-") if ":" not in value else [":"]:
        if len(field) < 2 or field[0] not in "cm":
            raise LXDError(400, f"Provided instance type doesn't exist: {value}")
        number = _go_float32(field[1:])
        if number is None:
            raise LXDError(400, f"Bad custom instance type: {value}")
        if field[0] == "c":
            cpu = number
        else:
            memory = number
    out: dict[str, str] = {}
    if cpu > 0:
        cores = _go_int(cpu)
        if _f32(cores) < cpu:
            cores += 1
        share = _go_int(_f32(_f32(cpu / _f32(cores)) * 100.0))
        out["limits.cpu"] = str(cores)
        if share < 100:
            out["limits.cpu.allowance"] = f"{share}%"
    if memory > 0:
        out["limits.memory"] = f"{_go_int(_f32(memory * 1024))}MB"  # sic, in LXD 5.0.2
    return out


def check_config(config: dict[str, str], kind: str = "container") -> None:
    """Instance config keys (raises :class:`Invalid` with LXD's message)."""
    for key, value in config.items():
        if key.startswith("volatile."):
            if key in VOLATILE_KEYS:
                if key == "volatile.uuid" and value:
                    try:
                        uuid.UUID(value)
                    except ValueError:
                        raise Invalid("Invalid UUID") from None
                continue
            parts = key.split(".", 2)
            if len(parts) == 3 and parts[2] in DEVICE_VOLATILE:
                continue
            raise Invalid(f"Unknown configuration key: {key}")
        if kind == "container" and key in VM_ONLY_KEYS:
            raise Invalid(f"Unknown configuration key: {key}")
    check_instance_config({k: v for k, v in config.items() if not k.startswith("volatile.")})


def _check_create_devices(devices: dict[str, dict[str, str]]) -> None:
    for name, device in devices.items():
        dev_type = device.get("type", "")
        if dev_type not in ("none", "nic", "disk", "unix-char", "unix-block", "usb", "gpu",
                            "infiniband", "proxy", "unix-hotplug", "tpm", "pci"):
            raise OperationFailed(f"Failed creating instance record: Invalid device type "
                                  f"{dev_type}")
        if dev_type == "disk" and not (device.get("path") or device.get("source")):
            raise OperationFailed(
                "Failed creating instance record: Failed initialising instance: Invalid "
                f'devices: Device validation failed for "{name}": Disk entry is missing the '
                'required "source" or "path" property')


def _hwaddr() -> str:
    return "00:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def _nic_volatile(config: dict[str, str], devices: dict[str, dict[str, str]]) -> None:
    for dev_name, device in devices.items():
        if device.get("type") == "nic":
            config.setdefault(f"volatile.{dev_name}.hwaddr", _hwaddr())
            config.setdefault(f"volatile.{dev_name}.name", device.get("name") or dev_name)


def petname(taken: dict[str, Any]) -> str:
    while True:
        name = f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
        if name not in taken:
            return name


# -- the root filesystem ----------------------------------------------------------------------


def empty_rootfs(name: str) -> dict[str, Entry]:
    """The tree of an instance created from ``none``: a bare root with a few directories."""
    return {"/": Entry("directory", 0o755), "/dev": Entry("directory", 0o755),
            "/etc": Entry("directory", 0o755), "/root": Entry("directory", 0o700),
            "/tmp": Entry("directory", 0o1777),
            "/etc/hostname": Entry("file", 0o644, content=f"{name}\n".encode())}


def image_metadata(image: dict[str, Any]) -> dict[str, Any] | None:
    try:
        info = imagefile.read_metadata(image["meta"])
    except imagefile.ImageError:
        return None
    return {"architecture": info.architecture, "creation_date": info.creation_date,
            "expiry_date": info.expiry_date, "properties": dict(info.properties),
            "templates": dict(info.templates)}


# -- the record -------------------------------------------------------------------------------


def new_record(name: str, project: str, kind: str, body: Body) -> dict[str, Any]:
    return {
        "name": name, "type": kind, "status": "Stopped", "project": project,
        "architecture": imagefile.canonical_arch(body["architecture"]) or "x86_64",
        "config": {}, "devices": {k: dict(v) for k, v in body["devices"].items()},
        "profiles": [], "ephemeral": body["ephemeral"], "stateful": False,
        "description": body["description"], "created_at": go_time(),
        "last_used_at": EPOCH_TIME, "snapshots": {}, "files": {}, "logs": {"lxc.log": b""},
        "console": b"", "started": False, "metadata": None, "templates": {}, "pid": 0,
    }


def base_volatile(config: dict[str, str]) -> None:
    config["volatile.cloud-init.instance-id"] = str(uuid.uuid4())
    config["volatile.idmap.base"] = "0"
    config["volatile.idmap.next"] = IDMAP
    config.setdefault("volatile.last_state.idmap", "[]")
    config["volatile.uuid"] = str(uuid.uuid4())


def store(state: State, project: str, record: dict[str, Any], pool: str) -> None:
    """Put ``record`` in the state with its root volume (and its snapshots' volumes)."""
    instances_of(state, project)[record["name"]] = record
    volume = volumes_api.add_volume(state, project, pool, volume_type(record), record["name"])
    for snap in record["snapshots"]:
        volumes_api.add_snapshot(volume, snap)


def volume_type(record: dict[str, Any]) -> str:
    return "virtual-machine" if record["type"] == "virtual-machine" else "container"


def pool_of(state: State, project: str, record: dict[str, Any]) -> str | None:
    _, devices = expanded(state, project, record)
    return root_pool(devices)


def instance_volume(state: State, project: str, record: dict[str, Any]) -> dict[str, Any] | None:
    pool = pool_of(state, project, record)
    if pool is None:
        return None
    return volumes_api.find_volume(state, project, pool, volume_type(record), record["name"])


# -- routes for every prefix ------------------------------------------------------------------


def routes(suffix: str, *methods: str) -> Callable[[Callable[..., Response]],
                                                   Callable[..., Response]]:
    """Register ``handler(ctx, prefix, ...)`` under ``/1.0/{instances,containers,...}``."""

    def register(handler: Callable[..., Response]) -> Callable[..., Response]:
        for prefix in PREFIXES:
            route(f"/1.0/{prefix}{suffix}", *methods)(functools.partial(handler, prefix=prefix))
        return handler

    return register


def instance_type(ctx: Ctx, prefix: str) -> str:
    """The type a request is about, as LXD's ``urlInstanceTypeDetect`` reads it: the alias
    (``/1.0/containers``, ``/1.0/virtual-machines``) decides, else ``?instance-type`` ("" for
    any; anything but ``container`` or ``virtual-machine`` is a 500 ``Invalid instance type``).
    """
    if prefix == "containers":
        return "container"
    if prefix == "virtual-machines":
        return "virtual-machine"
    wanted = ctx.request.args.get("instance-type", "")
    if wanted not in ("", "container", "virtual-machine"):
        raise LXDError(500, "Invalid instance type")
    return wanted


def check_request(ctx: Ctx, name: str, prefix: str) -> str:
    """What a ``/1.0/instances/{name}/...`` handler checks first in LXD: the type asked for
    (returned), then the name (a ``/`` is a 400 ``Invalid instance name``)."""
    kind = instance_type(ctx, prefix)
    if "/" in name:
        raise LXDError(400, "Invalid instance name")
    return kind


def find(ctx: Ctx, name: str, kind: str) -> dict[str, Any]:
    """Instance ``name`` of the request's project if it is of type ``kind`` ("" for any)."""
    inst = get_instance(ctx.state, ctx.project, name)
    if kind and inst["type"] != kind:
        raise LXDError(404, "Instance not found")
    return inst


def lookup(ctx: Ctx, name: str, prefix: str = "instances") -> dict[str, Any]:
    """The instance behind a request, after :func:`check_request` (type-checked against the
    alias or ``?instance-type``)."""
    return find(ctx, name, check_request(ctx, name, prefix))


def fetch(ctx: Ctx, name: str, kind: str) -> dict[str, Any]:
    """The instance as LXD's log and console handlers load it: an unknown project is
    ``Project not found``, a missing instance ``Failed to fetch instance "x" in project "p":
    Instance not found``; then the type (plain ``Instance not found``)."""
    if not ctx.state.has_project(ctx.project):
        raise LXDError(404, "Project not found")
    if name not in ctx.state.families["instances"].get(ctx.project, {}):
        raise LXDError(404, f"Failed to fetch instance {go_quote(name)} in project "
                            f"{go_quote(ctx.project)}: Instance not found")
    return find(ctx, name, kind)


def op_resources(name: str, *extra: str) -> dict[str, list[str]]:
    """An instance operation's resources: LXD 5.0.2 never adds the project to them."""
    names = (name, *extra)
    return {"containers": [instance_url(n, prefix="containers") for n in names],
            "instances": [instance_url(n) for n in names]}


# -- /1.0/instances ---------------------------------------------------------------------------


@routes("", "GET")
def list_instances(ctx: Ctx, prefix: str) -> Response:
    wanted = instance_type(ctx, prefix)  # checked before the filter
    clauses = filters.from_query(ctx.request.args.get("filter", ""))
    all_projects = ctx.request.args.get("all-projects", "").lower() in ("true", "1")
    with ctx.state.lock:
        if all_projects:
            projects = sorted(p for p, v in ctx.state.families["instances"].items() if v)
        else:
            projects = [ctx.project]
        out: list[Any] = []
        for project in projects:
            for name, inst in sorted(ctx.state.families["instances"].get(project, {}).items()):
                complete(inst, name, project)
                if wanted and inst["type"] != wanted:
                    continue
                if clauses or ctx.recursion >= 1:
                    shown = (render_full(ctx.state, project, inst) if ctx.recursion >= 2
                             else render(ctx.state, project, inst))
                    if clauses and not filters.matches(shown, clauses):
                        continue
                    if ctx.recursion >= 1:
                        out.append(shown)
                        continue
                out.append(instance_url(name, project, prefix))
        return responses.sync(out)


@routes("", "POST")
def create_instance(ctx: Ctx, prefix: str) -> Response:
    """LXD 5.0.2's order: the body, ``?instance-type``, the body's ``instance_type``,
    ``?target``, the project, the profiles, the name, the source type, then what that source
    needs (a copy or an image source ignores ``type`` and ``architecture``). A backup
    tarball (``application/octet-stream``) is an import instead."""
    if ctx.request.headers.get("Content-Type", "") == "application/octet-stream":
        from .instance_backups import import_backup

        return import_backup(ctx)
    body = ctx.body(INSTANCES_POST)
    project = ctx.project
    source = body["source"]
    instance_type(ctx, prefix)
    config_sent = dict(body["config"])
    if body["instance_type"]:
        for key, value in instance_type_limits(body["instance_type"]).items():
            if not config_sent.get(key):
                config_sent[key] = value
    if ctx.request.args.get("target", ""):
        raise LXDError(400, "Target only allowed when clustered")
    with ctx.state.lock:
        if not ctx.state.has_project(project):
            raise LXDError(404, "Failed loading project: Project not found")
    raw = first_value(ctx.raw_body())
    sent = raw.get("profiles") if isinstance(raw, dict) else None
    profiles_sent = body["profiles"] if sent is not None else None
    with ctx.state.lock:
        known = _profiles_of(ctx.state, project)
        for name in profiles_sent or []:
            if name not in known:
                raise LXDError(500, f'Requested profile "{name}" doesn\'t exist')
    if "/" in body["name"]:
        raise LXDError(400, 'The character "/" is reserved for snapshots')
    if body["name"]:
        check_instance_name(body["name"])
    if source["type"] not in ("image", "none", "copy", "migration"):
        raise LXDError(400, f"Unknown source type {source['type']}")
    kind = body["type"] or ""

    def check_kind() -> None:
        if kind not in ("", "container", "virtual-machine"):
            raise LXDError(400, "Invalid instance type")

    architecture = body["architecture"]
    if source["type"] == "none":
        check_kind()
        if architecture and architecture not in imagefile.ARCHITECTURES:
            raise LXDError(500, f"Architecture isn't supported: {architecture}")
    elif source["type"] == "migration":
        if source["mode"] in ("pull", "push"):
            if architecture not in imagefile.ARCHITECTURES:
                raise LXDError(400, f"Architecture isn't supported: {architecture}")
            check_kind()
        # Divergence: the fake does not migrate instances.
        raise LXDError(501, f'Mode "{source["mode"]}" not implemented')
    with ctx.state.lock:
        taken = instances_of(ctx.state, project)
        name = body["name"] or petname(taken)
        image: dict[str, Any] | None = None
        copy_from: tuple[dict[str, Any], dict[str, Any] | None] | None = None
        if source["type"] == "image":
            if not (source["alias"] or source["fingerprint"] or source["properties"]):
                raise LXDError(500, "Must specify one of alias, fingerprint or properties for "
                                    "init from image")
            if source["server"]:
                raise LXDError(500, "The fake cannot reach remote image servers")
            image = images_api.find_image(ctx.state, project, source["alias"] or None,
                                          source["fingerprint"] or None,
                                          source["properties"] or None)
            check_kind()
        extra: tuple[str, ...] = ()
        if source["type"] == "copy":
            if not source["source"]:
                raise LXDError(400, "Must specify a source instance")
            src_project = source["project"] or project
            inst_name, _, snap_name = source["source"].partition("/")
            src = ctx.state.families["instances"].get(src_project, {}).get(inst_name)
            if src is None:
                raise LXDError(404, f"Failed to fetch instance {go_quote(source['source'])} in "
                                    f"project {go_quote(src_project)}: Instance not found")
            snap = None
            if snap_name:
                snap = src["snapshots"].get(snap_name)
                if snap is None:
                    raise LXDError(404, f"Failed to fetch snapshot {go_quote(snap_name)} of "
                                        f"instance {go_quote(inst_name)} in project "
                                        f"{go_quote(src_project)}: InstanceSnapshot not found")
            copy_from = (src, snap)
            extra = (source["source"],)
    if profiles_sent is None:
        # LXD applies ["default"] to a missing profile list, except for copies (5.0.2).
        profiles = [] if source["type"] == "copy" else ["default"]
    else:
        profiles = list(profiles_sent)

    def run(op: Operation) -> dict[str, Any] | None:
        instances = instances_of(ctx.state, project)
        record = new_record(name, project, kind or "container", body)
        record["profiles"] = profiles
        result: dict[str, Any] | None = None
        if image is not None:
            img_type = image["type"]
            if kind and img_type != kind:
                raise OperationFailed(f"Requested image's type \"{img_type}\" doesn't match "
                                      f'instance type "{kind}"')
            record["type"] = img_type
        if image is None and source["type"] == "image":
            raise OperationFailed("Image not provided for instance creation")
        if record["type"] == "virtual-machine":
            raise OperationFailed('Failed creating instance record: Instance type '
                                  '"virtual-machine" is not supported on this server: '
                                  "vhost_vsock kernel module not loaded")
        config: dict[str, str] = {}
        if copy_from is not None:
            src, snap = copy_from
            origin = snap if snap is not None else src
            for key, value in origin["config"].items():
                if key.startswith("volatile.") and key not in (
                        "volatile.base_image", "volatile.last_state.idmap"):
                    continue
                config[key] = value
            record["devices"] = {**{k: dict(v) for k, v in origin["devices"].items()},
                                 **record["devices"]}
            record["architecture"] = origin["architecture"]
            record["type"] = src["type"]
            record["files"] = dict(origin["files"])
            record["metadata"] = json.loads(json.dumps(src.get("metadata")))
            record["templates"] = dict(src.get("templates") or {})
            if snap is None and not source["instance_only"]:
                from .instance_snapshots import copy_snapshot

                for snap_name, item in src["snapshots"].items():
                    record["snapshots"][snap_name] = copy_snapshot(item)
            config["volatile.apply_template"] = "copy"
        config.update(config_sent)
        try:
            check_config(config, record["type"])
        except Invalid as exc:
            raise OperationFailed(f"Failed creating instance record: {exc}") from None
        _check_create_devices(record["devices"])
        if name in instances:
            raise OperationFailed('Failed creating instance record: Add instance info to the '
                                  'database: This "instances" entry already exists')
        _, devices = expanded(ctx.state, project, record)
        pool = root_pool(devices)
        if pool is None:
            raise OperationFailed("Failed creating instance record: Failed initialising "
                                  "instance: Failed getting root disk: No root device could "
                                  "be found")
        if pool not in ctx.state.family("storage_pools"):
            raise OperationFailed("Failed creating instance record: Failed initialising "
                                  "instance: Failed loading storage pool: Storage pool not "
                                  "found")
        if image is not None:
            for key, value in image["properties"].items():
                config[f"image.{key}"] = value
            config["volatile.apply_template"] = "create"
            config["volatile.base_image"] = image["fingerprint"]
            record["files"] = images_api.rootfs_of(image)
            record["metadata"] = image_metadata(image)
            record["architecture"] = image["architecture"]
            images_api.mark_used(image)
            result = {"create_instance_from_image_unpack_progress": "Unpack: 100% (17.59MB/s)",
                      "progress": {"percent": "100", "speed": "17593230",
                                   "stage": "create_instance_from_image_unpack"}}
        elif copy_from is None:
            config["volatile.apply_template"] = "create"
            record["files"] = empty_rootfs(name)
        base_volatile(config)
        _nic_volatile(config, devices)
        record["config"] = config
        store(ctx.state, project, record, pool)
        emit(ctx, "instance-created", instance_url(name, project), project,
             {"storage-pool": pool, "type": record["type"]})
        return result

    return ctx.operation("Creating instance", run,
                         resources=op_resources(name, *extra))


# -- /1.0/instances/{name} --------------------------------------------------------------------


@routes("/<name>", "GET")
def get_instance_handler(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        if ctx.recursion >= 1:
            shown = render_full(ctx.state, ctx.project, inst)
        else:
            shown = render(ctx.state, ctx.project, inst)
        return responses.sync(shown, etag=etag(inst))


def _check_profiles(ctx: Ctx, profiles: list[str]) -> None:
    known = _profiles_of(ctx.state, ctx.project)
    for name in profiles:
        if name not in known:
            raise LXDError(404, "Profile not found")


def _updated_config(inst: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    """PUT's config rules: idmap keys must stay, empty values drop."""
    old = inst["config"]
    for key in IDMAP_KEYS:
        if key in old and key not in config:
            raise OperationFailed("Volatile idmap keys can't be deleted by the user")
    for key in ("volatile.idmap.current", "volatile.idmap.next", "volatile.last_state.idmap"):
        if key in config and config[key] == "":
            raise OperationFailed("Initialize LXC: unexpected end of JSON input")
    return {k: v for k, v in config.items() if v != ""}


def _apply_update(ctx: Ctx, project: str, inst: dict[str, Any], *, config: dict[str, str],
                  devices: dict[str, dict[str, str]], profiles: list[str], ephemeral: bool,
                  description: str, architecture: str, sync: bool) -> None:
    """Validate and store an update (PUT runs this in its operation, PATCH inline)."""
    if len(set(profiles)) != len(profiles):
        raise OperationFailed("Duplicate profile found in request") if not sync else \
            LXDError(500, "Duplicate profile found in request")
    try:
        check_config(config, inst["type"])
    except Invalid as exc:
        raise (LXDError(500, f"Invalid config: {exc}") if sync
               else OperationFailed(f"Invalid config: {exc}")) from None
    try:
        check_devices(devices)
    except Invalid as exc:
        raise (LXDError(500, f"Invalid devices: {exc}") if sync
               else OperationFailed(f"Invalid devices: {exc}")) from None
    candidate = {**inst, "profiles": profiles, "devices": devices}
    _, all_devices = expanded(ctx.state, project, candidate)
    if all_devices and root_pool(all_devices) is None:
        message = ("Invalid expanded devices: Failed detecting root disk device: No root "
                   "device could be found")
        raise LXDError(500, message) if sync else OperationFailed(message)
    inst["config"] = config
    inst["devices"] = devices
    inst["profiles"] = profiles
    inst["ephemeral"] = ephemeral
    inst["description"] = description
    if architecture in imagefile.ARCHITECTURES:
        inst["architecture"] = imagefile.canonical_arch(architecture)
    _nic_volatile(inst["config"], {k: v for k, v in devices.items()})
    emit(ctx, "instance-updated", instance_url(inst["name"], project), project)


@routes("/<name>", "PUT")
def put_instance(ctx: Ctx, name: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        ctx.check_etag(etag(inst))
    body = ctx.body(INSTANCE_PUT)
    resources = op_resources(name)
    if body["restore"]:
        from .instance_snapshots import restore

        return restore(ctx, project, name, body["restore"], resources)
    with ctx.state.lock:
        _check_profiles(ctx, body["profiles"])

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        config = _updated_config(inst, body["config"])
        _apply_update(ctx, project, inst, config=config,
                      devices={k: dict(v) for k, v in body["devices"].items()},
                      profiles=list(body["profiles"]), ephemeral=body["ephemeral"],
                      description=body["description"], architecture=body["architecture"],
                      sync=False)

    return ctx.operation("Updating instance", run, resources=resources)


@routes("/<name>", "PATCH")
def patch_instance(ctx: Ctx, name: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        ctx.check_etag(etag(inst))
    body = ctx.body(INSTANCE_PUT)
    if body["restore"]:
        raise LXDError(400, "Can't call PATCH in restore mode")
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        sent = body.present
        profiles = list(body["profiles"]) if "profiles" in sent and body["profiles"] is not None \
            else list(inst["profiles"])
        raw = first_value(ctx.raw_body() or b"null") or {}
        if isinstance(raw, dict) and raw.get("profiles") is None:
            profiles = list(inst["profiles"])
        _check_profiles(ctx, profiles)
        config = dict(inst["config"])
        config.update(body["config"])
        config = {k: v for k, v in config.items() if v != ""}
        devices = {k: dict(v) for k, v in inst["devices"].items()}
        devices.update({k: dict(v) for k, v in body["devices"].items()})
        ephemeral = body["ephemeral"] if isinstance(raw, dict) and \
            isinstance(raw.get("ephemeral"), bool) else inst["ephemeral"]
        _apply_update(ctx, project, inst, config=config, devices=devices, profiles=profiles,
                      ephemeral=ephemeral, description=body["description"],
                      architecture=body["architecture"], sync=True)
    return responses.empty()


def _check_move_target(ctx: Ctx, name: str, kind: str) -> None:
    """``POST /1.0/instances/{name}?target=``: the project, the member (only ``none`` outside
    a cluster), the instance; then LXD 5.0.2 finds its own member offline (no heartbeats)."""
    if not ctx.state.has_project(ctx.project):
        raise LXDError(404, "Failed loading project: Project not found")
    if ctx.request.args.get("target") != "none":
        raise LXDError(404, "Failed to get target node: Cluster member not found")
    inst = ctx.state.families["instances"].get(ctx.project, {}).get(name)
    if inst is None or (kind and inst.get("type", "container") != kind):
        raise LXDError(404, "Failed to get address of instance's member: Instance not found")
    raise LXDError(400, "Target node is offline")


@routes("/<name>", "POST")
def rename_instance(ctx: Ctx, name: str, prefix: str) -> Response:
    """LXD looks the instance (and a ``?target``) up before it reads the body."""
    project = ctx.project
    kind = check_request(ctx, name, prefix)
    with ctx.state.lock:
        if ctx.request.args.get("target", ""):
            _check_move_target(ctx, name, kind)
        find(ctx, name, kind)
    body = ctx.body(INSTANCE_POST)
    if body["migration"]:
        raise LXDError(500, "The fake does not support instance migration")
    new_name = body["name"]
    with ctx.state.lock:
        lookup(ctx, name, prefix)
        if body["pool"] or (body["project"] and body["project"] != project):
            raise LXDError(500, "The fake does not support moving instances")
        if new_name in instances_of(ctx.state, project) or not new_name:
            raise LXDError(409, f'Name "{new_name or name}" already in use')
        check_instance_name(new_name)

    def run(op: Operation) -> None:
        instances = instances_of(ctx.state, project)
        inst = get_instance(ctx.state, project, name)
        if inst["status"] != "Stopped":
            raise OperationFailed("Renaming of running container not allowed")
        if new_name in instances:
            raise OperationFailed(f'Name "{new_name}" already in use')
        pool = pool_of(ctx.state, project, inst)
        instances[new_name] = instances.pop(name)
        inst["name"] = new_name
        # LXD 5.0.2 renews the cloud-init instance-id and (once the create template ran)
        # asks for the rename templates at the next start.
        inst["config"]["volatile.cloud-init.instance-id"] = str(uuid.uuid4())
        inst["config"].setdefault("volatile.apply_template", "rename")
        if pool is not None:
            volumes_api.rename_volume(ctx.state, project, pool, volume_type(inst), name,
                                      new_name)
        emit(ctx, "instance-renamed", instance_url(new_name, project), project,
             {"old_name": name})

    return ctx.operation("Renaming instance", run, resources=op_resources(name))


def remove(ctx: Ctx, project: str, inst: dict[str, Any]) -> None:
    """Drop an instance and its volumes from the state."""
    pool = pool_of(ctx.state, project, inst)
    instances_of(ctx.state, project).pop(inst["name"], None)
    if pool is not None:
        volumes_api.remove_volume(ctx.state, project, pool, volume_type(inst), inst["name"])
    emit(ctx, "instance-deleted", instance_url(inst["name"], project), project)


@routes("/<name>", "DELETE")
def delete_instance(ctx: Ctx, name: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        if inst["status"] != "Stopped":
            raise LXDError(400, "Instance is running")
        if inst["config"].get("security.protection.delete", "").lower() in ("true", "1"):
            raise LXDError(400, "Instance is protected")

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        if inst["status"] != "Stopped":
            raise OperationFailed("Instance is running")
        remove(ctx, project, inst)

    return ctx.operation("Deleting instance", run, resources=op_resources(name))


# -- /state -------------------------------------------------------------------------------------


@routes("/<name>/state", "GET")
def get_state(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        return responses.sync(render_state(ctx.state, ctx.project, inst))


LXC_CONF = ("lxc.log.file = {dir}/{name}/lxc.log\nlxc.log.level = info\n"
            "lxc.console.buffer.size = auto\nlxc.console.size = auto\n"
            "lxc.console.logfile = {dir}/{name}/console.log\n"
            "lxc.mount.auto = proc:rw sys:rw cgroup:mixed\nlxc.autodev = 1\n"
            "lxc.pty.max = 1024\nlxc.uts.name = {name}\n"
            "lxc.rootfs.path = dir:/var/lib/lxd/containers/{name}/rootfs\n")


def start(record: dict[str, Any]) -> bool:
    """Mark ``record`` running; True when this was its first start (idmap remapping)."""
    config = record["config"]
    first = "volatile.idmap.current" not in config
    config.pop("volatile.apply_template", None)
    config["volatile.idmap.current"] = IDMAP
    config["volatile.last_state.idmap"] = IDMAP
    config["volatile.last_state.power"] = "RUNNING"
    record["status"] = "Running"
    record["last_used_at"] = go_time()
    record["started"] = True
    record["pid"] = random.randrange(2000, 60000)
    name = record["name"]
    record["logs"]["lxc.conf"] = LXC_CONF.format(dir=LOG_DIR, name=name).encode()
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    record["logs"]["lxc.log"] = (
        f"lxc {name} {stamp}.000 INFO     lxccontainer - ../src/lxc/lxccontainer.c:"
        f"do_lxcapi_start:998 - Set process title to [lxc monitor] /var/lib/lxd/containers "
        f"{name}\n").encode()
    record["console"] = b""
    return first


def stop(record: dict[str, Any], graceful: bool) -> None:
    record["status"] = "Stopped"
    record["config"]["volatile.last_state.power"] = "STOPPED"
    record["pid"] = 0
    if graceful:
        record["console"] = record.get("console", b"") + CONSOLE_HALT


ACTIONS = {"start": "Starting instance", "stop": "Stopping instance",
           "restart": "Restarting instance", "freeze": "Freezing instance",
           "unfreeze": "Unfreezing instance"}


def change_state(ctx: Ctx, project: str, name: str, body: Body,
                 op: Operation | None = None) -> dict[str, Any] | None:
    """Apply one state action (``body``: an ``InstanceStatePut``) to an instance, inside an
    operation (``op``: its own), with LXD's errors and lifecycle events; the operation's
    metadata, if any."""
    action = body["action"]
    source = instance_url(name, project)
    inst = get_instance(ctx.state, project, name)
    status = inst["status"]
    result = None
    if action == "start":
        if status != "Stopped":
            raise OperationFailed("The instance is already running")
        if start(inst):
            if op is not None:
                op.update_metadata({"container_progress": "Remapping container filesystem"})
            result = {"container_progress": ""}
        emit(ctx, "instance-started", source, project, requestor=True)
    elif action == "stop":
        if status == "Stopped":
            raise OperationFailed("The instance is already stopped")
        if body["stateful"]:
            raise OperationFailed("Unable to perform container live migration. CRIU "
                                  "isn't installed")
        stop(inst, graceful=not body["force"])
        emit(ctx, "instance-stopped" if body["force"] else "instance-shutdown", source,
             project, requestor=True)
        if inst["ephemeral"]:
            remove(ctx, project, inst)
    elif action == "restart":
        if status == "Stopped":
            raise OperationFailed("The instance is already stopped")
        stop(inst, graceful=not body["force"])
        start(inst)
        emit(ctx, "instance-restarted", source, project, requestor=True)
    elif action == "freeze":
        if status == "Stopped":
            raise OperationFailed("The container isn't running")
        if status == "Frozen":
            raise OperationFailed("The container is already frozen")
        inst["status"] = "Frozen"
        emit(ctx, "instance-paused", source, project, requestor=True)
    else:
        if status == "Stopped":
            raise OperationFailed("The container isn't running")
        if status == "Running":
            raise OperationFailed("The container is already running")
        inst["status"] = "Running"
        emit(ctx, "instance-resumed", source, project, requestor=True)
    return result


@routes("/<name>/state", "PUT")
def put_state(ctx: Ctx, name: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:  # LXD looks the instance up before it reads the body
        lookup(ctx, name, prefix)
    body = ctx.body(STATE_PUT)
    action = body["action"]
    if action not in ACTIONS:
        raise LXDError(400, f"Unknown action: '{action}'")

    def run(op: Operation) -> dict[str, Any] | None:
        return change_state(ctx, project, name, body, op)

    return ctx.operation(ACTIONS[action], run,
                         resources={"instances": [instance_url(name)]})


def _bulk_selects(action: str, status: str) -> bool:
    """Whether LXD 5.0.2's ``PUT /1.0/instances`` acts on an instance: it asks whether each
    one runs (a frozen instance counts as running), so ``unfreeze`` picks the *stopped* ones
    (and fails on them) and never a frozen one."""
    running = status != "Stopped"
    return running if action in ("stop", "restart", "freeze") else not running


@routes("", "PUT")
def put_instances(ctx: Ctx, prefix: str) -> Response:
    """Change the state of every instance of the project (``/1.0/containers`` and
    ``/1.0/virtual-machines`` too: 5.0.2 does not filter by type) in one operation; the
    instances it skips are those already in the state asked for."""
    project = ctx.project
    raw = ctx.json()
    body = ctx.body(INSTANCES_PUT)
    if isinstance(raw, dict) and any(k.lower() == "state" for k in raw) and not any(
            raw[k] is not None for k in raw if k.lower() == "state"):
        # {"state": null}: 5.0.2 reads the action through the nil pointer and panics.
        return responses.drop_connection(
            ctx.request.environ,
            "runtime error: invalid memory address or nil pointer dereference")
    change = body["state"]
    action = change["action"]
    if action not in ACTIONS:
        raise LXDError(400, f"Unknown action: '{action}'")
    with ctx.state.lock:
        if not ctx.state.has_project(project):
            raise LXDError(500, f"failed to add {go_quote(ACTIONS[action])} Operation "
                                f"{uuid.uuid4()} to database: Fetch project ID: Project not "
                                "found")
        names = [name for name, inst in sorted(instances_of(ctx.state, project).items())
                 if _bulk_selects(action, inst["status"])]

    def run(op: Operation) -> dict[str, Any] | None:
        failures, result = [], None
        for name in names:
            try:
                result = change_state(ctx, project, name, change, op) or result
            except (OperationFailed, LXDError) as exc:
                failures.append(f" - Instance: {name}: {getattr(exc, 'message', None) or exc}\n")
        if failures:
            raise OperationFailed("The following instances failed to update state:\n"
                                  + "".join(failures))
        return result

    return ctx.operation(ACTIONS[action], run, resources={
        "instances": [instance_url(name) for name in names] or None})


# -- /logs and /console -----------------------------------------------------------------------


def _log_name_ok(name: str) -> bool:
    """LXD 5.0.2's log names: no ``/``, ``\\`` or ``..``, and a known name or prefix."""
    if "/" in name or "\\" in name or ".." in name:
        return False
    return name in ("lxc.log", "lxc.conf", "qemu.log") or name.startswith(
        ("exec_", "migration_", "snapshot_"))


@routes("/<name>/logs", "GET")
def list_logs(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        base = instance_url(name, ctx.project, prefix).split("?")[0]
        suffix = "" if ctx.project == "default" else f"?project={ctx.project}"
        return responses.sync([f"{base}/logs/{log}{suffix}" for log in sorted(inst["logs"])])


def _file_reply(data: bytes, filename: str) -> Response:
    resp = Response(data, status=200, content_type="application/octet-stream")
    resp.headers["Content-Disposition"] = f"inline;filename={filename}"
    return resp


@routes("/<name>/logs/<file>", "GET")
def get_log(ctx: Ctx, name: str, file: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = fetch(ctx, name, check_request(ctx, name, prefix))
        if not _log_name_ok(file):
            raise LXDError(400, f"log file name {file} not valid")
        data = inst["logs"].get(file)
        if data is None:
            problem = "invalid argument" if "\x00" in file else "no such file or directory"
            raise LXDError(500, f"open {LOG_DIR}/{name}/{file}: {problem}")
    # LXD 5.0.2 names the log under /backups/ in this event.
    ctx.lifecycle("instance-log-retrieved", f"/1.0/instances/{name}/backups/{file}")
    resp = _file_reply(bytes(data), file)
    resp.headers["Accept-Ranges"] = "bytes"
    return resp


@routes("/<name>/logs/<file>", "DELETE")
def delete_log(ctx: Ctx, name: str, file: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = fetch(ctx, name, check_request(ctx, name, prefix))
        if not _log_name_ok(file):
            raise LXDError(400, f"log file name {file} not valid")
        if file in ("lxc.log", "lxc.conf"):
            raise LXDError(400, "lxc.log and lxc.conf may not be deleted")
        if "\x00" in file:
            raise LXDError(500, f"remove {LOG_DIR}/{name}/{file}: invalid argument")
        if file not in inst["logs"]:
            raise LXDError(404, f"remove {LOG_DIR}/{name}/{file}: no such file or directory")
        del inst["logs"][file]
    ctx.lifecycle("instance-log-deleted", f"/1.0/instances/{name}/backups/{file}")
    return responses.empty()


@routes("/<name>/console", "GET")
def get_console(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        path = f"{LOG_DIR}/{name}/console.log"
        if not inst["started"]:
            raise LXDError(500, f"open {path}: no such file or directory")
        if inst["status"] != "Stopped":
            # LXD 5.0.2 asks liblxc for the ring buffer of a running container, and fails.
            raise LXDError(500, "open : no such file or directory")
        data = bytes(inst.get("console", b""))
    ctx.lifecycle("instance-console-retrieved", instance_url(name, ctx.project))
    return _file_reply(data, path)


@routes("/<name>/console", "DELETE")
def delete_console(ctx: Ctx, name: str, prefix: str) -> Response:
    """LXD 5.0.2 ignores the type here (alias and ``?instance-type``)."""
    if "/" in name:
        raise LXDError(400, "Invalid instance name")
    with ctx.state.lock:
        inst = fetch(ctx, name, "")
        if not inst["started"]:
            raise LXDError(404, f"stat {LOG_DIR}/{name}/console.log: no such file or directory")
        inst["console"] = b""
    ctx.lifecycle("instance-console-reset", instance_url(name, ctx.project))
    return responses.empty()


# -- /metadata ----------------------------------------------------------------------------------


EMPTY_METADATA = {"architecture": "", "creation_date": 0, "expiry_date": 0,
                  "properties": None, "templates": None}


@routes("/<name>/metadata", "GET")
def get_metadata(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        meta = inst.get("metadata")
    if meta is None:
        return responses.sync(dict(EMPTY_METADATA))
    ctx.lifecycle("instance-metadata-retrieved", f"/1.0/instances/{name}/metadata")
    return responses.sync(meta, etag=responses.etag_of(meta))


@routes("/<name>/metadata", "PUT", "PATCH")
def put_metadata(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        current = inst.get("metadata")  # LXD 5.0.2 does not check If-Match here
    body = ctx.body(METADATA)
    meta = {"architecture": body["architecture"], "creation_date": body["creation_date"],
            "expiry_date": body["expiry_date"],
            "properties": body["properties"] if "properties" in body.present else None,
            "templates": body["templates"] if isinstance(body["templates"], dict) else None}
    if ctx.request.method == "PATCH" and current is not None:
        merged = dict(current)
        for key in body.present:
            merged[key] = meta[key]
        meta = merged
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        inst["metadata"] = meta
    ctx.lifecycle("instance-metadata-updated", f"/1.0/instances/{name}/metadata")
    return responses.empty()


CONTAINERS_DIR = "/var/lib/lxd/containers"


def _template_path(ctx: Ctx, required: bool, mkdir: dict[str, Any] | None = None) -> str:
    """``?path=`` of a template request, checked as LXD 5.0.2 does (after the instance; a
    POST creates the templates directory of ``mkdir`` before it checks the name)."""
    path = ctx.request.args.get("path", "")
    if not path and required:
        raise LXDError(400, "missing path argument")
    if mkdir is not None:
        mkdir["templates_dir"] = True
    if "/" in path:
        raise LXDError(500, "Invalid template filename")
    return path


def _templates_dir(inst: dict[str, Any]) -> bool:
    """Whether the instance's ``templates`` directory exists (a POST creates it)."""
    return bool(inst.get("templates_dir", bool(inst.get("templates"))))


def _template_file(inst: dict[str, Any], path: str) -> str:
    return f"{CONTAINERS_DIR}/{inst['name']}/templates/{path}"


@routes("/<name>/metadata/templates", "GET")
def get_templates(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        path = _template_path(ctx, required=False)
        templates = inst.setdefault("templates", {})
        if not path:
            return responses.sync(sorted(templates))
        if "\x00" in path:
            raise LXDError(500, f"open {_template_file(inst, path)}: invalid argument")
        if path == ".." or (path == "." and _templates_dir(inst)):
            # LXD copies the directory to a temporary file (a random name) and fails.
            raise LXDError(500, f"write /tmp/lxd_template{random.randrange(10**8, 10**9)}: "
                                "copy_file_range: is a directory")
        if path not in templates:
            raise LXDError(404, f"Template {go_quote(path)} not found")
        data = bytes(templates[path])
    ctx.lifecycle("instance-metadata-template-retrieved",
                  f"/1.0/instances/{name}/metadata/templates?path={path}")
    return _file_reply(data, path)


@routes("/<name>/metadata/templates", "POST")
def post_template(ctx: Ctx, name: str, prefix: str) -> Response:
    """LXD 5.0.2 has no PUT here (501 ``not implemented``)."""
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        path = _template_path(ctx, required=True, mkdir=inst)
    data = ctx.raw_body()
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        if "\x00" in path:
            raise LXDError(500, f"open {_template_file(inst, path)}: invalid argument")
        if path in (".", ".."):
            target = f"{CONTAINERS_DIR}/{name}" + ("/templates" if path == "." else "")
            raise LXDError(500, f"open {target}: is a directory")
        inst.setdefault("templates", {})[path] = data
    ctx.lifecycle("instance-metadata-template-created",
                  f"/1.0/instances/{name}/metadata/templates?path={path}")
    return responses.empty()


@routes("/<name>/metadata/templates", "DELETE")
def delete_template(ctx: Ctx, name: str, prefix: str) -> Response:
    """Divergence: ``?path=..`` removes the instance's ``/var/lib/lxd/containers/<name>``
    symlink in LXD 5.0.2 (200, the instance is broken); the fake answers 200 and keeps it."""
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        path = _template_path(ctx, required=True)
        templates = inst.setdefault("templates", {})
        if "\x00" in path:
            raise LXDError(500, f"remove {_template_file(inst, path)}: invalid argument")
        if path == "." and _templates_dir(inst):
            if templates:
                raise LXDError(500, f"remove {CONTAINERS_DIR}/{name}/templates: directory "
                                    "not empty")
            inst["templates_dir"] = False
        elif path != "..":
            if path not in templates:
                raise LXDError(404, f"Template {go_quote(path)} not found")
            del templates[path]
    ctx.lifecycle("instance-metadata-template-deleted",
                  f"/1.0/instances/{name}/metadata/templates?path={path}")
    return responses.empty()


# -- publishing an instance as an image -------------------------------------------------------


def _publish(state: State, project: str, body: Body) -> images_api.Published:
    name = body["source"]["name"]
    inst_name, _, snap_name = name.partition("/")
    inst = state.families["instances"].get(project, {}).get(inst_name)
    if inst is None:
        raise OperationFailed("Instance not found")
    origin = inst
    if snap_name:
        origin = inst["snapshots"].get(snap_name)
        if origin is None:
            raise OperationFailed("Instance snapshot not found")
    elif inst["status"] != "Stopped":
        raise OperationFailed("Instance is running")
    meta = inst.get("metadata") or {}
    properties = dict(meta.get("properties") or {})
    # LXD keeps the image's creation_date (so an unchanged instance publishes to the same
    # fingerprint); an instance without image metadata gets the time of the publish.
    created = meta.get("creation_date") or int(time.time())
    document = {"architecture": origin["architecture"], "creation_date": created,
                "properties": properties, "templates": meta.get("templates") or {}}
    data = imagefile.pack_unified(origin["files"], document)
    return images_api.Published(data=data, properties=properties)


images_api.set_publisher(_publish)


__all__ = ["get_instance", "instance_url", "expanded", "render", "render_state", "ZERO_TIME"]
