"""``/1.0/storage-pools/{pool}/volumes``: storage volumes and their snapshots.

Volumes live in the per-project ``volumes`` family, keyed ``"<pool>/<type>/<name>"``::

    {"name", "type", "pool", "description", "config", "content_type",
     "snapshots": {snap: {"name", "description", "expires_at", "config"}}}

Custom volumes belong to the project that owns volumes for the request (a project without
``features.storage.volumes`` uses the default project's); instance and image volumes belong to
their instance's project. The instance handlers keep instance volumes in step through
:func:`add_volume`, :func:`remove_volume`, :func:`rename_volume`, :func:`add_snapshot` and
friends. ``snapshots`` keeps creation order, which is the order LXD lists them in.

Quirks of LXD 5.0.2 reproduced here: creating a volume answers 200 ``{}``; volume ``created_at``
is always the zero time; events name volumes by their internal ``<project>_<name>``; PATCH
resets ``description`` when omitted; a snapshot renders differently in its list
(``vol/snap``, ``expires_at: null``, ``content_type: ""``) than on its own; snapshot
create/rename/delete are operations while snapshot PUT/PATCH are sync.
"""

from __future__ import annotations

import calendar
import datetime
import json
import re
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from .. import filters, responses
from ..app import Ctx
from ..gourl import go_quote, url_segment, with_project
from ..operations import Operation, OperationFailed
from ..responses import ZERO_TIME, LXDError
from ..schema import ANY, BOOL, MAP_STR, STR, Body, Struct, patch_config
from ..state import State
from ..validation import Invalid
from . import route
from .storage import (
    check_any,
    check_bool,
    check_expiry,
    check_schedule,
    check_size,
    check_target,
    get_pool,
    instance_used_by,
    volume_key,
    volume_path,
    volume_used_by,
)

TYPES = ("container", "image", "custom", "virtual-machine")  # LXD's DB order
CONTENT_TYPES = ("filesystem", "block")
SNAPSHOT_DIRS = {"custom": "custom-snapshots", "container": "containers-snapshots",
                 "virtual-machine": "virtual-machines-snapshots"}

VOLUME_SOURCE = Struct("StorageVolumeSource", name=STR, type=STR, pool=STR, certificate=STR,
                       mode=STR, operation=STR, project=STR, secrets=ANY, volume_only=BOOL,
                       refresh=BOOL)
VOLUMES_POST = Struct("StorageVolumesPost", config=MAP_STR, description=STR, name=STR,
                      type=STR, source=VOLUME_SOURCE, content_type=STR)
VOLUME_PUT = Struct("StorageVolumePut", config=MAP_STR, description=STR, restore=STR)
VOLUME_POST = Struct("StorageVolumePost", name=STR, pool=STR, migration=BOOL, target=ANY,
                     volume_only=BOOL, project=STR)
SNAPSHOTS_POST = Struct("StorageVolumeSnapshotsPost", name=STR, expires_at=ANY)
SNAPSHOT_PUT = Struct("StorageVolumeSnapshotPut", description=STR, expires_at=ANY)
SNAPSHOT_POST = Struct("StorageVolumeSnapshotPost", name=STR, migration=BOOL, target=ANY)

Checker = Callable[[str], None]
VOLUME_KEYS: dict[str, Checker] = {
    "size": check_size, "snapshots.expiry": check_expiry, "snapshots.schedule": check_schedule,
    "snapshots.pattern": check_any, "volatile.idmap.last": check_any,
    "volatile.idmap.next": check_any,
}
FILESYSTEM_KEYS: dict[str, Checker] = {"security.shifted": check_bool,
                                       "security.unmapped": check_bool}


# -- the state: helpers other handlers (instances, projects) may use ---------------------------
def volumes_of(state: State, project: str) -> dict[str, Any]:
    """The volumes stored under ``project`` (no feature resolution)."""
    volumes: dict[str, Any] = state.families["volumes"].setdefault(project, {})
    return volumes


def find_volume(state: State, project: str, pool: str, vtype: str,
                name: str) -> dict[str, Any] | None:
    volume: dict[str, Any] | None = state.families["volumes"].get(project, {}).get(
        volume_key(pool, vtype, name))
    return volume


def add_volume(state: State, project: str, pool: str, vtype: str, name: str, *,
               config: dict[str, str] | None = None, description: str = "",
               content_type: str = "filesystem") -> dict[str, Any]:
    """Store a volume (an instance's root volume, say) under ``project``."""
    volume = {"name": name, "type": vtype, "pool": pool, "description": description,
              "config": dict(config or {}), "content_type": content_type, "snapshots": {}}
    volumes_of(state, project)[volume_key(pool, vtype, name)] = volume
    return volume


def remove_volume(state: State, project: str, pool: str, vtype: str, name: str) -> None:
    volumes_of(state, project).pop(volume_key(pool, vtype, name), None)


def rename_volume(state: State, project: str, pool: str, vtype: str, old: str,
                  new: str) -> None:
    volumes = volumes_of(state, project)
    volume = volumes.pop(volume_key(pool, vtype, old), None)
    if volume is not None:
        volume["name"] = new
        volumes[volume_key(pool, vtype, new)] = volume


def add_snapshot(volume: dict[str, Any], name: str, *, description: str = "",
                 expires_at: str = ZERO_TIME,
                 config: dict[str, str] | None = None) -> dict[str, Any]:
    snap = {"name": name, "description": description, "expires_at": expires_at,
            "config": dict(volume["config"] if config is None else config)}
    volume["snapshots"][name] = snap
    return snap


def remove_snapshot(volume: dict[str, Any], name: str) -> None:
    volume["snapshots"].pop(name, None)


def rename_snapshot(volume: dict[str, Any], old: str, new: str) -> None:
    """Rename in place, keeping the snapshot's position (LXD keeps its database id)."""
    volume["snapshots"] = {(new if key == old else key): snap
                           for key, snap in volume["snapshots"].items()}
    volume["snapshots"][new]["name"] = new


# -- Go's time.Time JSON decoding, as LXD 5.0.2's Go runtime does it ---------------------------
_TIME_LAYOUT = '"2006-01-02T15:04:05Z07:00"'


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _TimeError(Exception):
    pass


def _days_in(month: int, year: int) -> int:
    return calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 31


def parse_time(raw: Any) -> str:
    """A JSON value decoded into a Go ``time.Time``, rendered back as LXD renders it.

    ``None`` (JSON ``null``) is the zero time. Errors carry Go's ``parsing time`` message.
    """
    if raw is None:
        return ZERO_TIME
    text = json.dumps(raw, ensure_ascii=False) if isinstance(raw, str) else \
        json.dumps(raw, separators=(",", ":"))
    value = text

    def fail(rest: str, elem: str) -> _TimeError:
        return _TimeError(f"parsing time {_go_quote(text)} as {_go_quote(_TIME_LAYOUT)}: "
                          f"cannot parse {_go_quote(rest)} as {_go_quote(elem)}")

    def skip(prefix: str) -> None:
        nonlocal value
        for char in prefix:
            if not value or value[0] != char:
                raise fail(value, prefix)
            value = value[1:]

    def num(elem: str, fixed: bool = True, width: int = 2) -> int:
        nonlocal value
        if width == 4:
            if len(value) < 4 or not value[:4].isdigit():
                raise fail(value, elem)
            out, value = int(value[:4]), value[4:]
            return out
        if not value[:1].isdigit():
            raise fail(value, elem)
        if not value[1:2].isdigit():
            if fixed:
                raise fail(value, elem)
            out, value = int(value[0]), value[1:]
            return out
        out, value = int(value[:2]), value[2:]
        return out

    def out_of_range(what: str) -> _TimeError:
        return _TimeError(f"parsing time {_go_quote(text)}: {what} out of range")

    skip('"')
    year = num("2006", width=4)
    skip("-")
    month = num("01")
    if not 1 <= month <= 12:
        raise out_of_range("month")
    skip("-")
    day = num("02")
    skip("T")
    hour = num("15", fixed=False)
    if hour >= 24:
        raise out_of_range("hour")
    skip(":")
    minute = num("04")
    if minute >= 60:
        raise out_of_range("minute")
    skip(":")
    second = num("05")
    if second >= 60:
        raise out_of_range("second")
    frac = ""
    if len(value) >= 2 and value[0] in ".," and value[1].isdigit():
        match = re.match(r"[.,](\d+)", value)
        assert match is not None
        frac = match.group(1)[:9]
        value = value[match.end():]
    if value.startswith("Z"):
        value = value[1:]
        offset = "Z"
    else:
        if len(value) < 6 or value[3] != ":" or value[0] not in "+-" \
                or not (value[1:3] + value[4:6]).isdigit():
            raise fail(value, "Z07:00")
        if int(value[1:3]) > 24:
            raise out_of_range("time zone offset hour")
        if int(value[4:6]) > 60:
            raise out_of_range("time zone offset minute")
        offset = "Z" if value[1:3] == "00" and value[4:6] == "00" else value[:6]
        value = value[6:]
    skip('"')
    if value:
        raise _TimeError(f"parsing time {_go_quote(text)}: extra text: {_go_quote(value)}")
    if not 1 <= day <= _days_in(month, year):
        raise _TimeError(f"parsing time {_go_quote(text)}: day out of range")
    frac = frac.rstrip("0")
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            + (f".{frac}" if frac else "") + offset)


def time_arg(raw: Any) -> str:
    """:func:`parse_time` with Go's error as LXD's 400."""
    try:
        return parse_time(raw)
    except _TimeError as exc:
        raise LXDError(400, str(exc)) from None


def expiry_from(expression: str, now_ns: int | None = None) -> str:
    """``now`` plus a ``snapshots.expiry`` expression (``1d``, ``2w 3H``...), in UTC."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    secs, nanos = divmod(now_ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(secs, tz=datetime.timezone.utc)
    for count, unit in re.findall(r"(\d+)([MHdwmy])", expression):
        n = int(count)
        if unit in "MH":
            moment += datetime.timedelta(minutes=n if unit == "M" else 60 * n)
            continue
        years, months, days = {"d": (0, 0, n), "w": (0, 0, 7 * n), "m": (0, n, 0),
                               "y": (n, 0, 0)}[unit]
        month_index = moment.month - 1 + months
        year = moment.year + years + month_index // 12
        base = moment.replace(year=year, month=month_index % 12 + 1, day=1)
        moment = base + datetime.timedelta(days=moment.day - 1 + days)  # Go normalises
    digits = f"{nanos:09d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "") + "Z"


# -- validation -------------------------------------------------------------------------------
def check_volume_config(config: dict[str, str], content_type: str, internal: str) -> None:
    """LXD's dir volume rules; ``internal`` is the ``<project>_<name>`` LXD names it by."""
    for key in sorted(config):
        checker = VOLUME_KEYS.get(key)
        if checker is None and content_type == "filesystem":
            checker = FILESYSTEM_KEYS.get(key)
        if checker is None and key.startswith("user."):
            checker = check_any
        if checker is None:
            raise LXDError(500, f'Invalid option for volume {go_quote(internal)} option '
                                f'{go_quote(key)}')
        try:
            checker(config[key])
        except Invalid as exc:
            raise LXDError(500, f'Invalid value for volume {go_quote(internal)} option '
                                f'{go_quote(key)}: '
                                f"{exc}") from None


def pool_defaults(pool: dict[str, Any], config: dict[str, str],
                  content_type: str) -> dict[str, str]:
    """``config`` with the pool's ``volume.*`` defaults filled in where unset."""
    out = {k: v for k, v in config.items() if v != ""}
    for key, value in pool["config"].items():
        if not key.startswith("volume."):
            continue
        sub = key[len("volume."):]
        if sub in FILESYSTEM_KEYS and content_type != "filesystem":
            continue
        out.setdefault(sub, value)
    return out


def _check_type(vtype: str) -> None:
    if vtype not in TYPES:
        raise LXDError(400, "Invalid storage volume type name")


def _custom_only(vtype: str) -> None:
    """Snapshot changes: a known type, and a custom one."""
    _check_type(vtype)
    if vtype != "custom":
        raise LXDError(400, f"Invalid storage volume type {go_quote(vtype)}")


def _new_name(body: Body) -> str:
    """The ``name`` a rename asks for."""
    name: str = body["name"]
    if not name:
        raise LXDError(400, "No name provided")
    if "/" in name:
        raise LXDError(400, "Storage volume names may not contain slashes")
    return name


def _missing(name: str, project: str, vtype: str, pool: str) -> str:
    return (f"Storage volume {go_quote(name)} in project {go_quote(project)} of type "
            f"{go_quote(vtype)} does not exist on pool {go_quote(pool)}: Storage volume not "
            "found")


def _project(ctx: Ctx, message: str) -> str:
    """The project owning custom volumes for this request (404 when it does not exist)."""
    if not ctx.state.has_project(ctx.project):
        raise LXDError(404, message)
    return ctx.state.owner("volumes", ctx.project)


def _volume_project(ctx: Ctx, vtype: str) -> str:
    """Where a volume of ``vtype`` lives for this request."""
    owner = _project(ctx, f'Failed to load project {go_quote(ctx.project)}: Project not found')
    return owner if vtype == "custom" else ctx.project


def _internal(project: str, name: str) -> str:
    return f"{project}_{name}"


def _event_source(pool: str, vtype: str, project: str, name: str,
                  snap: str | None = None) -> str:
    path = volume_path(pool, vtype, _internal(project, name))
    if snap is not None:
        path += f"/snapshots/{url_segment(snap)}"
    return with_project(path, project)


# -- rendering --------------------------------------------------------------------------------
def render(state: State, request_project: str, project: str, volume: dict[str, Any],
           snap: dict[str, Any] | None = None) -> dict[str, Any]:
    """A volume (or one of its snapshots, as ``vol/snap``) as a StorageVolume."""
    name = volume["name"] if snap is None else f"{volume['name']}/{snap['name']}"
    if volume["type"] == "custom":
        used_by = [] if snap is not None else volume_used_by(
            state, request_project, volume["pool"], volume["name"])
    else:
        used_by = instance_used_by(project, volume["type"], name)
    item = volume if snap is None else snap
    return {"config": item["config"], "description": item["description"], "name": name,
            "type": volume["type"], "used_by": used_by, "location": "none",
            "content_type": volume["content_type"], "project": project,
            "created_at": ZERO_TIME}


def etag(name: str, vtype: str, config: dict[str, str]) -> str:
    return responses.etag_of([name, vtype, config])


def render_snapshot(volume: dict[str, Any], snap: dict[str, Any],
                    listed: bool = False) -> dict[str, Any]:
    """A StorageVolumeSnapshot: LXD's list renders it unlike its own GET."""
    if listed:
        expires: Any = None if snap["expires_at"] == ZERO_TIME else snap["expires_at"]
        return {"description": snap["description"], "expires_at": expires,
                "name": f"{volume['name']}/{snap['name']}", "config": snap["config"],
                "content_type": "", "created_at": ZERO_TIME}
    return {"description": snap["description"], "expires_at": snap["expires_at"],
            "name": snap["name"], "config": snap["config"],
            "content_type": volume["content_type"], "created_at": ZERO_TIME}


def snapshot_etag(snap: dict[str, Any]) -> str:
    return responses.etag_of([snap["description"], snap["expires_at"]])


# -- list and create ----------------------------------------------------------------------------
def _listed(ctx: Ctx, pool: str, vtype: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``(project, volume)`` pairs this request lists, in LXD's order."""
    if ctx.request.args.get("all-projects") == "true":
        sources = list(ctx.state.families["volumes"].items())
    else:
        owner = ctx.state.owner("volumes", ctx.project)
        sources = [(owner, {k: v for k, v in ctx.state.families["volumes"].get(owner, {})
                            .items() if v["type"] == "custom"}),
                   (ctx.project, {k: v for k, v in ctx.state.families["volumes"]
                                  .get(ctx.project, {}).items() if v["type"] != "custom"})]
    found = [(project, volume) for project, volumes in sources for volume in volumes.values()
             if volume["pool"] == pool and (vtype is None or volume["type"] == vtype)]
    return found


def _list(ctx: Ctx, pool_name: str, vtype: str | None) -> Response:
    """LXD's order: the target, the type, the filter, the pool, then the project."""
    check_target(ctx)
    if vtype is not None:
        _check_type(vtype)
    clauses = filters.from_query(ctx.request.args.get("filter", ""))
    with ctx.state.lock:
        get_pool(ctx, pool_name)
        _project(ctx, "Project not found")
        rows = []
        for project, volume in _listed(ctx, pool_name, vtype):
            rows.append((TYPES.index(volume["type"]), volume["name"], project, volume, None))
            rows.extend((TYPES.index(volume["type"]), f"{volume['name']}/{snap['name']}",
                         project, volume, snap) for snap in volume["snapshots"].values())
        rows.sort(key=lambda row: row[:3])
        entries = []
        for _, full_name, project, volume, snap in rows:
            obj = render(ctx.state, ctx.project, project, volume, snap)
            if clauses and not filters.matches(obj, clauses):
                continue
            entries.append(obj if ctx.recursion >= 1 else with_project(
                volume_path(pool_name, volume["type"], full_name), project))
        return responses.sync(entries)


@route("/1.0/storage-pools/<pool>/volumes/<vtype>", "GET")
@route("/1.0/storage-pools/<pool>/volumes", "GET")
def list_volumes(ctx: Ctx, pool: str, vtype: str | None = None) -> Response:
    return _list(ctx, pool, vtype)


@route("/1.0/storage-pools/<pool>/volumes/<vtype>", "POST")
@route("/1.0/storage-pools/<pool>/volumes", "POST")
def create_volume(ctx: Ctx, pool: str, vtype: str | None = None) -> Response:
    if vtype == "custom" and \
            ctx.request.headers.get("Content-Type", "") == "application/octet-stream":
        from .storage_volume_backups import import_backup  # a backup tarball

        return import_backup(ctx, pool)
    return _create(ctx, pool, vtype)


def _create(ctx: Ctx, pool_name: str, url_type: str | None) -> Response:
    """LXD's order: the target, the body (name, type), then the project and the pool; the
    typed URL (``…/volumes/custom``) checks the project before the body."""
    check_target(ctx)
    if url_type is not None:
        _project(ctx, f"Failed to load project {go_quote(ctx.project)}: Project not found")
    body = ctx.body(VOLUMES_POST)
    name = body["name"]
    if not name:
        raise LXDError(400, "No name provided")
    vtype = url_type if url_type is not None else body["type"]
    if not vtype:
        raise LXDError(400, "You must provide a storage volume type of the storage volume")
    if "/" in name:
        raise LXDError(400, "Storage volume names may not contain slashes")
    if vtype != "custom":
        raise LXDError(400, f"Currently not allowed to create storage volumes of type "
                            f"{go_quote(vtype)}")
    with ctx.state.lock:
        owner = _project(ctx, f"Failed to load project {go_quote(ctx.project)}: "
                              "Project not found")
        pool = get_pool(ctx, pool_name)
        content_type = body["content_type"] or "filesystem"
        if content_type not in CONTENT_TYPES:
            raise LXDError(400, "Invalid volume content type name")
        if find_volume(ctx.state, owner, pool_name, "custom", name) is not None:
            raise LXDError(409, "Volume by that name already exists")
        source = body["source"]
        if source["type"] == "copy":
            return _copy(ctx, owner, pool, name, body)
        if source["type"] in ("migration", "upload"):
            raise LXDError(501, "not implemented")
        if source["type"]:
            raise LXDError(400, f'Unknown source type {go_quote(source["type"])}')
        check_volume_config(body["config"], content_type, _internal(owner, name))
        add_volume(ctx.state, owner, pool_name, "custom", name,
                   config=pool_defaults(pool, body["config"], content_type),
                   description=body["description"], content_type=content_type)
    ctx.lifecycle("storage-volume-created", _event_source(pool_name, "custom", owner, name),
                  context={"type": "custom"}, project=owner)
    return responses.empty()


def _copy(ctx: Ctx, owner: str, pool: dict[str, Any], name: str, body: Body) -> Response:
    """``source.type: copy`` on this server: an operation copying config and snapshots."""
    source = body["source"]
    src_project = source["project"] or owner

    def run(op: Operation) -> None:
        if source["pool"] not in ctx.state.family("storage_pools"):
            raise OperationFailed("Storage pool not found")
        original = find_volume(ctx.state, src_project, source["pool"], "custom",
                               source["name"])
        if original is None:
            raise OperationFailed("Failed generating volume copy config: " + _missing(
                source["name"], src_project, "custom", source["pool"]))
        if find_volume(ctx.state, owner, pool["name"], "custom", name) is not None:
            raise OperationFailed("Volume by that name already exists")
        config = dict(original["config"])
        config.update(body["config"])
        copy = add_volume(ctx.state, owner, pool["name"], "custom", name, config=config,
                          description=body["description"] or original["description"],
                          content_type=original["content_type"])
        if not source["volume_only"]:
            for snap in original["snapshots"].values():
                add_snapshot(copy, snap["name"], description=snap["description"],
                             expires_at=snap["expires_at"], config=snap["config"])
        ctx.lifecycle("storage-volume-created",
                      _event_source(pool["name"], "custom", owner, name),
                      context={"type": "custom"}, project=owner)

    return ctx.operation("Copying storage volume", run, resources=None, project=owner)


# -- one volume ---------------------------------------------------------------------------------
def _pool_and_volume(ctx: Ctx, project: str, pool: str, vtype: str,
                     name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pool_obj = get_pool(ctx, pool)
    volume = find_volume(ctx.state, project, pool, vtype, name)
    if volume is None:
        raise LXDError(404, "Storage pool volume not found")
    return pool_obj, volume


def _lookup(ctx: Ctx, pool_name: str, vtype: str, name: str,
            pool_first: bool = False) -> tuple[str, dict[str, Any]]:
    """LXD's order: the type, the project, then the target and the pool (PUT and PATCH look
    at the pool before the target), then the volume."""
    _check_type(vtype)
    project = _volume_project(ctx, vtype)
    if pool_first:
        get_pool(ctx, pool_name)
    check_target(ctx)
    _, volume = _pool_and_volume(ctx, project, pool_name, vtype, name)
    return project, volume


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>", "GET")
def get_volume(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    """A volume; ``…/volumes/custom/vol%2Fsnap`` (one escaped path segment) serves snapshot
    ``snap`` as a volume named ``vol/snap``, as LXD does."""
    with ctx.state.lock:
        if "/" in name:
            parent, _, snap = name.partition("/")
            project, volume = _lookup(ctx, pool, vtype, parent)
            item = volume["snapshots"].get(snap)
            if item is None:
                raise LXDError(404, "Storage pool volume not found")
            return responses.sync(render(ctx.state, ctx.project, project, volume, item),
                                  etag=etag(name, vtype, item["config"]))
        project, volume = _lookup(ctx, pool, vtype, name)
        return responses.sync(render(ctx.state, ctx.project, project, volume),
                              etag=etag(name, vtype, volume["config"]))


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>", "PUT", "PATCH")
def update_volume(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        if ctx.request.method == "PATCH":
            if "/" in name:
                raise LXDError(400, "Invalid volume name")
            if vtype in TYPES and vtype != "custom":
                _volume_project(ctx, vtype)
                get_pool(ctx, pool)
                raise LXDError(400, f'Invalid storage volume type {go_quote(vtype)}')
        project, volume = _lookup(ctx, pool, vtype, name, pool_first=True)
        body = ctx.body(VOLUME_PUT)
        ctx.check_etag(etag(name, vtype, volume["config"]))
        if body["restore"]:
            if body["restore"] not in volume["snapshots"]:
                raise LXDError(500, "Snapshot not found")
            ctx.lifecycle("storage-volume-restored",
                          _event_source(pool, vtype, project, name),
                          context={"snapshot": body["restore"]}, project=project)
            return responses.empty()
        config = dict(body["config"]) if ctx.request.method == "PUT" else \
            patch_config(dict(volume["config"]), body["config"])
        if vtype == "custom":
            check_volume_config(config, volume["content_type"], _internal(project, name))
        volume["config"] = {k: v for k, v in config.items() if v != ""}
        volume["description"] = body["description"]
    ctx.lifecycle("storage-volume-updated", _event_source(pool, vtype, project, name),
                  project=project)
    return responses.empty()


def _used_by_running(state: State, project: str, pool: str, name: str) -> bool:
    users = set(volume_used_by(state, project, pool, name))
    return any(with_project(f"/1.0/instances/{iname}", project) in users
               and str(inst.get("status", "")) == "Running"
               for iname, inst in state.families["instances"].get(project, {}).items())


def _retarget_devices(state: State, project: str, pool: str, old: str, new: str) -> None:
    """Disk devices of ``project``'s profiles and instances follow a renamed volume."""
    holders = list(state.families["profiles"].get(project, {}).values())
    holders += list(state.families["instances"].get(project, {}).values())
    for holder in holders:
        for device in (holder.get("devices") or {}).values():
            if isinstance(device, dict) and device.get("type") == "disk" \
                    and device.get("pool") == pool and device.get("source") == old:
                device["source"] = new


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>", "POST")
def rename_volume_handler(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    """LXD's order: the name in the URL, the body, the type, then project, target, pool."""
    if "/" in name:
        raise LXDError(400, "Invalid volume name")
    body = ctx.body(VOLUME_POST)
    new_name = _new_name(body)
    if vtype != "custom":
        raise LXDError(400, f"Renaming storage volumes of type {go_quote(vtype)} is not "
                            "allowed")
    _project(ctx, f"Failed to load project {go_quote(ctx.project)}: Project not found")
    check_target(ctx)
    with ctx.state.lock:
        project, volume = _lookup(ctx, pool, vtype, name)
        if body["project"] or body["pool"] not in ("", pool):
            # A move; LXD takes the body's pool as is, so a project move needs one too.
            get_pool(ctx, body["pool"])
            dest_project = body["project"] or project
            if ctx.state.has_project(dest_project):
                dest_project = ctx.state.owner("volumes", dest_project)
            if find_volume(ctx.state, dest_project, body["pool"], "custom",
                           new_name) is not None:
                raise LXDError(409, "Volume by that name already exists")
            return _move(ctx, project, volume, dest_project, body["pool"], new_name)
        if find_volume(ctx.state, project, pool, "custom", new_name) is not None:
            raise LXDError(409, "Volume by that name already exists")
        if _used_by_running(ctx.state, project, pool, name):
            raise LXDError(400, "Volume is still in use by running instances")
        rename_volume(ctx.state, project, pool, "custom", name, new_name)
        _retarget_devices(ctx.state, project, pool, name, new_name)
    ctx.lifecycle("storage-volume-renamed", _event_source(pool, "custom", project, new_name),
                  context={"old_name": name}, project=project)
    return responses.created(with_project(volume_path(pool, "custom", new_name), project))


def _move(ctx: Ctx, project: str, volume: dict[str, Any], dest_project: str, dest_pool: str,
          new_name: str) -> Response:
    """Moving a volume to another pool or project: an operation (created, then deleted)."""
    pool, name = volume["pool"], volume["name"]

    def run(op: Operation) -> None:
        if find_volume(ctx.state, project, pool, "custom", name) is not volume:
            raise OperationFailed("Storage pool volume not found")
        if not ctx.state.has_project(dest_project):
            raise OperationFailed(
                f'Error inserting volume {go_quote(new_name)} for project '
                f'{go_quote(dest_project)} in pool '
                f'{go_quote(dest_pool)} of type "custom" into database "NOT NULL constraint '
                'failed: '
                'storage_volumes.project_id"')
        remove_volume(ctx.state, project, pool, "custom", name)
        volume["pool"], volume["name"] = dest_pool, new_name
        volumes_of(ctx.state, dest_project)[volume_key(dest_pool, "custom", new_name)] = volume
        ctx.lifecycle("storage-volume-created",
                      _event_source(dest_pool, "custom", dest_project, new_name),
                      context={"type": "custom"}, project=dest_project)
        _deleted_events(ctx, pool, project, name, list(volume["snapshots"]))

    return ctx.operation("Moving storage volume", run, resources=None, project=project)


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>", "DELETE")
def delete_volume(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    if "/" in name:
        raise LXDError(400, f"Invalid storage volume {go_quote(name)}")
    with ctx.state.lock:
        project, volume = _lookup(ctx, pool, vtype, name)
        if vtype not in ("custom", "image"):
            raise LXDError(400, f'Storage volumes of type {go_quote(vtype)} cannot be deleted with '
                                "the storage API")
        if vtype == "custom" and volume_used_by(ctx.state, ctx.project, pool, name):
            raise LXDError(400, "The storage volume is still in use")
        remove_volume(ctx.state, project, pool, vtype, name)
    _deleted_events(ctx, pool, project, name, list(volume["snapshots"]), vtype)
    return responses.empty()


def _deleted_events(ctx: Ctx, pool: str, project: str, name: str, snaps: list[str],
                    vtype: str = "custom") -> None:
    """A volume goes: one event per snapshot, then one for the volume."""
    for snap in snaps:
        ctx.lifecycle("storage-volume-snapshot-deleted",
                      _event_source(pool, vtype, project, name, snap), project=project)
    ctx.lifecycle("storage-volume-deleted", _event_source(pool, vtype, project, name),
                  project=project)


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/state", "GET")
def volume_state(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    _check_type(vtype)
    with ctx.state.lock:
        project = _volume_project(ctx, vtype)
        get_pool(ctx, pool)
        if vtype == "custom":
            if find_volume(ctx.state, project, pool, vtype, name) is None:
                raise LXDError(404, _missing(name, project, vtype, pool))
        elif vtype != "image" and name not in ctx.state.families["instances"].get(project, {}):
            raise LXDError(404, "Instance not found")
    raise LXDError(500, "Not supported")  # the dir driver cannot measure usage


# -- snapshots ------------------------------------------------------------------------------------
def _next_snapshot_name(volume: dict[str, Any]) -> str:
    """``snap<N>``, one above the highest taken (5.0.2 ignores ``snapshots.pattern`` here)."""
    taken = [int(m.group(1)) for s in volume["snapshots"]
             if (m := re.fullmatch(r"snap(\d+)", s))]
    return f"snap{max(taken) + 1 if taken else 0}"


def _check_snapshot_name(name: str) -> None:
    if "/" in name:
        raise LXDError(400, 'Storage name cannot contain "/"')
    if any(ch.isspace() for ch in name):
        raise LXDError(400, "Storage name cannot contain white space")


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/snapshots", "GET")
def list_snapshots(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    _check_type(vtype)
    with ctx.state.lock:
        project = _volume_project(ctx, vtype)
        get_pool(ctx, pool)
        volume = find_volume(ctx.state, project, pool, vtype, name)
        if volume is None:
            return responses.sync([])  # LXD lists no snapshots rather than a 404
        snaps = list(volume["snapshots"].values())
        if ctx.recursion >= 1:
            return responses.sync([render_snapshot(volume, s, listed=True) for s in snaps])
        # This list, unlike every other, leaves names unescaped.
        return responses.sync([f"/1.0/storage-pools/{pool}/volumes/{vtype}/{name}/snapshots/"
                               f"{s['name']}" for s in snaps])


def _snapshot_request(ctx: Ctx, vtype: str) -> str:
    """Creating or renaming a snapshot, in LXD's order: the type (a custom one), the project,
    the target; then (:func:`_pool_and_volume`) the pool, the volume, and last the body."""
    _custom_only(vtype)
    project = _volume_project(ctx, vtype)
    check_target(ctx)
    ctx.raw_body()  # read before taking the lock
    return project


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/snapshots", "POST")
def create_snapshot(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    project = _snapshot_request(ctx, vtype)
    with ctx.state.lock:
        pool_obj, volume = _pool_and_volume(ctx, project, pool, vtype, name)
        body = ctx.body(SNAPSHOTS_POST)
        snap_name = body["name"] or _next_snapshot_name(volume)
        _check_snapshot_name(snap_name)
        if snap_name in volume["snapshots"]:
            raise LXDError(409, f'Snapshot {go_quote(snap_name)} already in use')
        if "expires_at" in body.present and body["expires_at"] is not None:
            expires_at = time_arg(body["expires_at"])
        elif volume["config"].get("snapshots.expiry"):
            expires_at = expiry_from(volume["config"]["snapshots.expiry"])
        else:
            expires_at = ZERO_TIME

    def run(op: Operation) -> None:
        current = find_volume(ctx.state, project, pool, vtype, name)
        if current is None:
            raise OperationFailed("Storage pool volume not found")
        if snap_name in current["snapshots"]:
            raise OperationFailed(f'Snapshot {go_quote(snap_name)} already in use')
        add_snapshot(current, snap_name, expires_at=expires_at,
                     config=pool_defaults(pool_obj, current["config"],
                                          current["content_type"]))
        ctx.lifecycle("storage-volume-snapshot-created",
                      _event_source(pool, vtype, project, name, snap_name),
                      context={"type": vtype}, project=project)

    return ctx.operation("Creating storage volume snapshot", run, project=project,
                         resources={"storage_volumes": [f"/1.0/storage_volumes/{name}"]})


def _snapshot(ctx: Ctx, pool: str, vtype: str, name: str,
              snap: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    project, volume = _lookup(ctx, pool, vtype, name)
    item = volume["snapshots"].get(snap)
    if item is None:
        raise LXDError(404, "Storage pool volume not found")
    return project, volume, item


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/snapshots/<snap>", "GET")
def get_snapshot(ctx: Ctx, pool: str, vtype: str, name: str, snap: str) -> Response:
    with ctx.state.lock:
        _, volume, item = _snapshot(ctx, pool, vtype, name, snap)
        return responses.sync(render_snapshot(volume, item), etag=snapshot_etag(item))


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/snapshots/<snap>", "PUT", "PATCH")
def update_snapshot(ctx: Ctx, pool: str, vtype: str, name: str, snap: str) -> Response:
    with ctx.state.lock:
        project, _volume, item = _snapshot(ctx, pool, vtype, name, snap)
        body = ctx.body(SNAPSHOT_PUT)
        expires_at = time_arg(body["expires_at"])
        ctx.check_etag(snapshot_etag(item))
        if ctx.request.method == "PUT" or "description" in body.present:
            item["description"] = body["description"]
        if ctx.request.method == "PUT" or "expires_at" in body.present:
            item["expires_at"] = expires_at
    ctx.lifecycle("storage-volume-snapshot-updated",
                  with_project(volume_path(pool, vtype, f"{name}/{snap}"), project),
                  project=project)
    return responses.empty()


def _snapshot_resources(name: str) -> dict[str, list[str]]:
    return {"storage_volume_snapshots": [f"/1.0/storage_volume_snapshots/{name}"]}


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/snapshots/<snap>", "POST")
def rename_snapshot_handler(ctx: Ctx, pool: str, vtype: str, name: str, snap: str) -> Response:
    project = _snapshot_request(ctx, vtype)
    with ctx.state.lock:
        pool_obj, _ = _pool_and_volume(ctx, project, pool, vtype, name)
    new_name = _new_name(ctx.body(SNAPSHOT_POST))

    def run(op: Operation) -> None:
        volume = find_volume(ctx.state, project, pool, vtype, name)
        if volume is None or snap not in volume["snapshots"]:
            raise OperationFailed(f'Storage volume "{name}/{snap}" in project '
                                  f'{go_quote(project)} of '
                                  f'type {go_quote(vtype)} does not exist on pool '
                                  f'{go_quote(pool)}: Storage '
                                  "volume not found")
        if new_name in volume["snapshots"]:
            base = (f"{pool_obj['config'].get('source', '')}/{SNAPSHOT_DIRS.get(vtype, vtype)}"
                    f"/{_internal(project, name)}")
            old_path, new_path = f"{base}/{snap}", f"{base}/{new_name}"
            raise OperationFailed(f'Failed to rename {go_quote(old_path)} to '
                                  f'{go_quote(new_path)}: rename '
                                  f"{old_path} {new_path}: file exists")
        rename_snapshot(volume, snap, new_name)
        ctx.lifecycle("storage-volume-snapshot-renamed",
                      _event_source(pool, vtype, project, name, snap),
                      context={"old_name": snap}, project=project)

    return ctx.operation("Renaming storage volume snapshot", run, project=project,
                         resources=_snapshot_resources(name))


@route("/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/snapshots/<snap>", "DELETE")
def delete_snapshot(ctx: Ctx, pool: str, vtype: str, name: str, snap: str) -> Response:
    _custom_only(vtype)  # before the pool and the project, as in LXD
    with ctx.state.lock:
        project, _volume, _item = _snapshot(ctx, pool, vtype, name, snap)

    def run(op: Operation) -> None:
        volume = find_volume(ctx.state, project, pool, vtype, name)
        if volume is None or snap not in volume["snapshots"]:
            raise OperationFailed("Storage pool volume not found")
        remove_snapshot(volume, snap)
        ctx.lifecycle("storage-volume-snapshot-deleted",
                      _event_source(pool, vtype, project, name, snap), project=project)

    return ctx.operation("Deleting storage volume snapshot", run, project=project,
                         resources=_snapshot_resources(name))
