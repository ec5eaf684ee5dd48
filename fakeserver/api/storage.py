"""``/1.0/storage-pools``: storage pools, plus the helpers the volume handlers share.

Pools live in the global ``storage_pools`` family as ``{name, driver, description, config}``.
Only the ``dir`` driver can be created through the API: the other drivers fail the way they do
on a host without their tools (the reference host), while a preseed may declare any driver.
``used_by`` is computed from volumes, profiles and instances whenever a pool is rendered.

Quirks of LXD 5.0.2 reproduced here: ``GET /1.0/storage-pools/{p}`` sends no ETag (while the
PUT/PATCH If-Match check hashes ``[name, driver, config]``); PATCH resets ``description`` when
it is omitted; ``storage-pool-updated`` fires before validation; an empty ``used_by`` is
``null``; volume names in URLs are escaped twice (``a b`` -> ``a%2520b``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote, url_segment, with_project
from ..responses import LXDError
from ..schema import MAP_STR, STR, Struct, patch_config
from ..state import State
from ..validation import Invalid, check_name
from . import route

LXD_DIR = "/var/lib/lxd"
POOLS_DIR = f"{LXD_DIR}/storage-pools"

STORAGE_POOLS_POST = Struct("StoragePoolsPost", name=STR, driver=STR, description=STR,
                            config=MAP_STR)
STORAGE_POOL_PUT = Struct("StoragePoolPut", description=STR, config=MAP_STR)

# What creating a pool with another driver answers on the reference host (no tools installed).
MISSING_DRIVERS = {
    "zfs": 'Error loading "zfs" module: Failed to run: modprobe -b zfs: exec: "modprobe": '
           "executable file not found in $PATH",
    "btrfs": 'Required tool "btrfs" is missing',
    "lvm": 'Required tool "lvm" is missing',
    "ceph": "Required tool 'ceph' is missing",
    "cephfs": "Required tool 'ceph' is missing",
    "cephobject": 'Required tool "radosgw-admin" is missing',
}
DRIVERS = ("dir", *MISSING_DRIVERS)


# -- value checks shared by pool and volume config --------------------------------------------
_SIZE = re.compile(r"\d+(B|kB|MB|GB|TB|PB|EB|KiB|MiB|GiB|TiB|PiB|EiB)?")
_EXPIRY = re.compile(r"(\d+)([MHdwmy])")
_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                 "@hourly"}
_CRON_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = ((0, 59, {}), (0, 23, {}), (1, 31, {}),
                (1, 12, {m: i + 1 for i, m in enumerate(
                    "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
                (0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}))
CRON_FORM = ("Schedule must be of the form: <minute> <hour> <day-of-month> <month> "
             "<day-of-week>")


def check_any(value: str) -> None:
    return None


def check_bool(value: str) -> None:
    if value.lower() not in ("", "true", "false", "yes", "no", "on", "off", "1", "0"):
        raise Invalid(f'Invalid value for a boolean {go_quote(value)}')


def check_size(value: str) -> None:
    if value and not _SIZE.fullmatch(value):
        raise Invalid(f"Invalid value: {value}")


def check_expiry(value: str) -> None:
    for token in value.split(" "):
        if token and not _EXPIRY.fullmatch(token):
            raise Invalid("Invalid expiry expression")


def _cron_number(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise Invalid(f'Error parsing schedule: failed to parse int from {text}: '
                      f'strconv.Atoi: parsing {go_quote(text)}: invalid syntax')
    return int(text)


def _cron_field(expr: str, low: int, high: int, names: dict[str, int]) -> None:
    for part in expr.split(","):
        span, _, step = part.partition("/")
        if span in ("*", "?"):
            start, end = low, high
        else:
            first, dash, last = span.partition("-")
            start = _cron_number(first, names)
            end = _cron_number(last, names) if dash else start
        if start < low:
            raise Invalid(f"Error parsing schedule: beginning of range ({start}) below "
                          f"minimum ({low}): {part}")
        if end > high:
            raise Invalid(f"Error parsing schedule: end of range ({end}) above maximum "
                          f"({high}): {part}")
        if start > end:
            raise Invalid(f"Error parsing schedule: beginning of range ({start}) beyond end "
                          f"of range ({end}): {part}")
        if step and (not step.isdigit() or int(step) == 0):
            raise Invalid(f"Error parsing schedule: step of range should be a positive "
                          f"number: {part}")


def check_schedule(value: str) -> None:
    """A cron expression, an ``@alias``, or a comma-separated list of them."""
    if value == "":
        return
    for item in value.split(","):
        item = item.strip()
        if item.startswith("@"):
            if item not in _CRON_ALIASES:
                raise Invalid(CRON_FORM)
            continue
        fields = item.split()
        if len(fields) != 5:
            raise Invalid(CRON_FORM)
        for expr, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
            _cron_field(expr, low, high, names)


Checker = Callable[[str], None]

POOL_KEYS: dict[str, Checker] = {
    "source": check_any, "volatile.initial_source": check_any,
    "rsync.bwlimit": check_size, "rsync.compression": check_bool,
    "volume.size": check_size, "volume.security.shifted": check_bool,
    "volume.security.unmapped": check_bool, "volume.snapshots.expiry": check_expiry,
    "volume.snapshots.schedule": check_schedule, "volume.snapshots.pattern": check_any,
}


def check_pool_config(config: dict[str, str]) -> None:
    """LXD's dir pool config rules; raise :class:`Invalid` with its message."""
    for key in sorted(config):
        checker = POOL_KEYS.get(key)
        if checker is None and key.startswith("user."):
            checker = check_any
        if checker is None:
            raise Invalid(f'Invalid option {go_quote(key)}')
        try:
            checker(config[key])
        except Invalid as exc:
            raise Invalid(f'Invalid value for option {go_quote(key)}: {exc}') from None


# -- URLs -------------------------------------------------------------------------------------
def pool_url(name: str) -> str:
    return f"/1.0/storage-pools/{name}"


def volume_path(pool: str, vtype: str, name: str) -> str:
    """The path of a volume (``vol/snap`` names give the snapshot's path)."""
    vol, _, snap = name.partition("/")
    path = f"/1.0/storage-pools/{pool}/volumes/{vtype}/{url_segment(vol)}"
    return f"{path}/snapshots/{url_segment(snap)}" if snap else path


# -- volumes in the state (the family is owned by storage_volumes, read here for used_by) ----
def volume_key(pool: str, vtype: str, name: str) -> str:
    return f"{pool}/{vtype}/{name}"


def all_volumes(state: State) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every volume of every project: ``(project, volume)``."""
    for project, volumes in state.families["volumes"].items():
        for volume in volumes.values():
            yield project, volume


def instance_devices(state: State, project: str, inst: dict[str, Any]) -> dict[str, Any]:
    """An instance's expanded devices (its profiles' devices overlaid by its own)."""
    expanded = inst.get("expanded_devices")
    if isinstance(expanded, dict):
        return expanded
    devices: dict[str, Any] = {}
    profiles = state.families["profiles"].get(state.owner("profiles", project), {})
    for name in inst.get("profiles") or []:
        devices.update((profiles.get(name) or {}).get("devices") or {})
    devices.update(inst.get("devices") or {})
    return devices


def _disks(devices: dict[str, Any]) -> Iterator[dict[str, str]]:
    for device in (devices or {}).values():
        if isinstance(device, dict) and device.get("type") == "disk":
            yield device


def instance_used_by(project: str, vtype: str, name: str) -> list[str]:
    """What an instance volume (or its ``inst/snap`` snapshot) is used by."""
    inst, _, snap = name.partition("/")
    path = f"/1.0/instances/{inst}" + (f"/snapshots/{snap}" if snap else "")
    if vtype == "image":
        path = f"/1.0/images/{name}"
    return [with_project(path, project)]


def pool_used_by(state: State, pool: str) -> list[str]:
    """Volumes, instances and profiles (of every project) that use ``pool``, sorted."""
    urls = set()
    for project, volume in all_volumes(state):
        if volume["pool"] != pool:
            continue
        names = [volume["name"]] + [f"{volume['name']}/{s}" for s in volume["snapshots"]]
        for name in names:
            if volume["type"] == "custom":
                urls.add(with_project(volume_path(pool, "custom", name), project))
            else:
                urls.update(instance_used_by(project, volume["type"], name))
    for project, profiles in state.families["profiles"].items():
        for pname, profile in profiles.items():
            if any(d.get("pool") == pool for d in _disks(profile.get("devices") or {})):
                urls.add(with_project(f"/1.0/profiles/{pname}", project))
    return sorted(urls)


def volume_used_by(state: State, project: str, pool: str, name: str) -> list[str]:
    """Profiles and instances of ``project`` with a disk ``pool=<pool> source=<name>``.

    LXD 5.0.2 looks in the *requested* project, so a project without ``features.profiles``
    sees no profile using a volume of the default project.
    """
    def uses(devices: dict[str, Any]) -> bool:
        return any(d.get("pool") == pool and d.get("source") == name for d in _disks(devices))

    urls = []
    for pname, profile in sorted(state.families["profiles"].get(project, {}).items()):
        if uses(profile.get("devices") or {}):
            urls.append(with_project(f"/1.0/profiles/{pname}", project))
    for iname, inst in sorted(state.families["instances"].get(project, {}).items()):
        if uses(instance_devices(state, project, inst)):
            urls.append(with_project(f"/1.0/instances/{iname}", project))
    return urls


# -- pools --------------------------------------------------------------------------------------
def new(name: str, driver: str, description: str = "",
        config: dict[str, str] | None = None) -> dict[str, Any]:
    config = {k: v for k, v in (config or {}).items() if v != ""}
    if driver == "dir":
        config.setdefault("source", f"{POOLS_DIR}/{name}")
    return {"name": name, "driver": driver, "description": description, "config": config}


def seed(state: State, items: list[dict[str, Any]]) -> None:
    """Preseed: create pools (any known driver) or merge config into existing ones."""
    pools = state.family("storage_pools")
    for item in items:
        name = str(item.get("name", ""))
        check_name(name, "Storage pool")
        driver = str(item.get("driver") or "dir")
        if driver not in DRIVERS:
            raise LXDError(500, "Unknown driver")
        config = {str(k): str(v) for k, v in (item.get("config") or {}).items()}
        if driver == "dir":
            try:
                check_pool_config(config)
            except Invalid as exc:
                raise LXDError(500, str(exc)) from None
        if name in pools:
            pools[name]["config"].update(config)
            if "description" in item:
                pools[name]["description"] = str(item["description"] or "")
        else:
            pools[name] = new(name, driver, str(item.get("description") or ""), config)


def render(state: State, pool: dict[str, Any]) -> dict[str, Any]:
    return {"config": pool["config"], "description": pool["description"],
            "name": pool["name"], "driver": pool["driver"],
            "used_by": pool_used_by(state, pool["name"]) or None,
            "status": "Created", "locations": ["none"]}


def put_etag(pool: dict[str, Any]) -> str:
    """What PUT/PATCH compare If-Match with (GET sends no ETag at all in 5.0.2)."""
    return responses.etag_of([pool["name"], pool["driver"], pool["config"]])


def check_target(ctx: Ctx) -> None:
    """A standalone server knows no cluster member but its own placeholder ``none``."""
    if ctx.request.args.get("target", "") not in ("", "none"):
        raise LXDError(404, "Cluster member not found")


def get_pool(ctx: Ctx, name: str, code: int = 404) -> dict[str, Any]:
    pool: dict[str, Any] | None = ctx.state.family("storage_pools").get(name)
    if pool is None:
        raise LXDError(code, "Storage pool not found")
    return pool


def _check_source(pools: dict[str, Any], name: str, source: str) -> str:
    """The dir driver's checks on a pool's ``source`` (the host's disk is not consulted)."""
    if not source:
        path = os.path.normpath(f"{POOLS_DIR}/{name}")
        if path != f"{POOLS_DIR}/{name}":
            raise LXDError(500, f'Storage pool directory {go_quote(path)} already exists')
        return f"{POOLS_DIR}/{name}"
    if not source.startswith("/"):
        raise LXDError(500, f"Source path '{source}' doesn't exist")
    path = os.path.normpath(source)
    if path == LXD_DIR or path.startswith(LXD_DIR + "/"):
        raise LXDError(500, f"Source path '{source}' is within the LXD directory")
    for other in pools.values():
        theirs = other["config"].get("source", "")
        if theirs and os.path.normpath(theirs) == path:
            raise LXDError(500, f"Source path '{source}' isn't empty")
    return source


@route("/1.0/storage-pools", "GET")
def list_pools(ctx: Ctx) -> Response:
    with ctx.state.lock:
        pools = ctx.state.family("storage_pools")
        names = sorted(pools)
        if ctx.recursion >= 1:
            return responses.sync([render(ctx.state, pools[n]) for n in names])
        return responses.sync([pool_url(n) for n in names])


@route("/1.0/storage-pools", "POST")
def create_pool(ctx: Ctx) -> Response:
    """LXD's order: the body (name, driver), then the target."""
    body = ctx.body(STORAGE_POOLS_POST)
    name, driver = body["name"], body["driver"]
    check_name(name, "Storage pool")
    if not driver:
        raise LXDError(400, "No driver provided")
    check_target(ctx)
    with ctx.state.lock:
        pools = ctx.state.family("storage_pools")
        if name in pools:
            raise LXDError(409, "The storage pool already exists: The record already exists")
        if driver in MISSING_DRIVERS:
            raise LXDError(500, MISSING_DRIVERS[driver])
        if driver != "dir":
            raise LXDError(500, "Unknown driver")
        if any(ch.isspace() for ch in name):
            raise LXDError(500, "Storage name cannot contain white space")
        try:
            check_pool_config(body["config"])
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        config = dict(body["config"])
        config["source"] = _check_source(pools, name, config.get("source", ""))
        pools[name] = new(name, driver, body["description"], config)
    ctx.lifecycle("storage-pool-created", pool_url(name), project="default")
    return responses.created(pool_url(name))


@route("/1.0/storage-pools/<name>", "GET")
def get_pool_handler(ctx: Ctx, name: str) -> Response:
    check_target(ctx)
    with ctx.state.lock:
        return responses.sync(render(ctx.state, get_pool(ctx, name)))


@route("/1.0/storage-pools/<name>", "PUT", "PATCH")
def update_pool(ctx: Ctx, name: str) -> Response:
    check_target(ctx)
    with ctx.state.lock:
        pool = get_pool(ctx, name)
        body = ctx.body(STORAGE_POOL_PUT)
        ctx.check_etag(put_etag(pool))
        # LXD emits the event before it validates anything, so failing updates show it too.
        ctx.lifecycle("storage-pool-updated", pool_url(name), project="default")
        config = dict(body["config"]) if ctx.request.method == "PUT" else \
            patch_config(dict(pool["config"]), body["config"])
        try:
            if pool["driver"] == "dir":
                check_pool_config(config)
        except Invalid as exc:
            raise LXDError(400, str(exc)) from None
        if config.get("source", "") != pool["config"].get("source", ""):
            raise LXDError(500, "Pool source cannot be changed when not in pending state")
        pool["config"] = {k: v for k, v in config.items() if v != ""}
        pool["description"] = body["description"]
    return responses.empty()


@route("/1.0/storage-pools/<name>", "DELETE")
def delete_pool(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        get_pool(ctx, name)
        users = [u for u in pool_used_by(ctx.state, name) if not u.startswith("/1.0/images/")]
        if users:
            raise LXDError(400, "The storage pool is currently in use")
        for volumes in ctx.state.families["volumes"].values():
            for key in [k for k, v in volumes.items() if v["pool"] == name]:
                del volumes[key]  # image volumes go with the pool
        del ctx.state.family("storage_pools")[name]
    ctx.lifecycle("storage-pool-deleted", pool_url(name), project="default")
    return responses.empty()


# Figures from the reference host's dir pool: the fake has no disk to measure.
RESOURCES = {"space": {"used": 23450853376, "total": 270553174016},
             "inodes": {"used": 408375, "total": 16777216}}


@route("/1.0/storage-pools/<name>/resources", "GET")
def pool_resources(ctx: Ctx, name: str) -> Response:
    check_target(ctx)
    with ctx.state.lock:
        get_pool(ctx, name, code=500)
    return responses.sync({k: dict(v) for k, v in RESOURCES.items()})
