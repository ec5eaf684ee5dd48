"""``/1.0/instances/{name}/backups``: instance backups, their export, and import.

A backup lives in its instance's ``backups`` dict (so renames and deletes carry it, and copies
do not, as in LXD)::

    {"name", "created_at", "expires_at", "instance_only", "algorithm",
     "parts": (index, container Part, [snapshot Part]),   # what the tarball is made of
     "lost": bool}                                        # its file was renamed away

The tarball's content is captured when the backup is made; it is built (and compressed) only
when it is first exported. ``POST /1.0/instances`` with ``application/octet-stream`` (what
``lxc import`` sends) lands in :func:`import_backup`.
"""

from __future__ import annotations

import datetime
import time
from email.utils import formatdate
from typing import Any

from werkzeug.wrappers import Response

from .. import backups, responses
from ..app import Ctx
from ..backups import Part, backups_of
from ..operations import Operation, OperationFailed
from ..responses import ZERO_TIME, LXDError
from ..schema import ANY, BOOL, STR, Struct
from ..state import State
from . import instances as inst_api
from . import storage as storage_api
from . import storage_volumes as volumes_api
from .instance_snapshots import render_snapshot
from .instances import check_request, emit, find, get_instance, lookup, routes

BACKUPS_POST = Struct("InstanceBackupsPost", name=STR, expires_at=ANY, instance_only=BOOL,
                      container_only=BOOL, optimized_storage=BOOL, compression_algorithm=STR)
BACKUP_POST = Struct("InstanceBackupPost", name=STR)
BACKUPS_DIR = "/var/lib/lxd/backups/instances"


def render(item: dict[str, Any]) -> dict[str, Any]:
    """``api.InstanceBackup`` (``optimized_storage`` is always false on a dir pool)."""
    return {"name": item["name"], "created_at": item["created_at"],
            "expires_at": item["expires_at"], "instance_only": item["instance_only"],
            "container_only": item["instance_only"], "optimized_storage": False}


def render_all(inst: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The ``backups`` of a full instance (``null`` when there are none)."""
    found = backups_of(inst)
    return [render(found[name]) for name in sorted(found)] or None


def op_resources(name: str) -> dict[str, list[str]]:
    """An instance operation's resources (LXD 5.0.2 adds no project to them)."""
    return {"containers": [f"/1.0/containers/{name}"], "instances": [f"/1.0/instances/{name}"]}


def backup_url(inst: str, name: str, project: str) -> str:
    path = f"/1.0/instances/{inst}/backups/{name}"
    return path if project == "default" else f"{path}?project={project}"


def _get(ctx: Ctx, name: str, backup: str, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    inst = lookup(ctx, name, prefix)
    item = backups_of(inst).get(backup)
    if item is None:
        raise LXDError(404, "Load backup from database: Instance backup not found")
    return inst, item


def next_name(found: dict[str, Any]) -> str:
    """LXD's pick: one past the highest ``backup<N>`` (digits read as Go's ``%d``)."""
    top = 0
    for taken in found:
        if not taken.startswith("backup"):
            continue
        digits = ""
        for ch in taken[len("backup"):]:
            if not (ch.isdigit() or (not digits and ch in "+-")):
                break
            digits += ch
        try:
            number = int(digits)
        except ValueError:
            continue
        if number >= top:
            top = number + 1
    return f"backup{top}"


def now_seconds() -> str:
    """A backup's ``created_at``: LXD keeps whole seconds."""
    now = datetime.datetime.fromtimestamp(int(time.time()), tz=datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_backup(ctx: Ctx, body: Any, owner: dict[str, Any]) -> tuple[str, str, str]:
    """A new backup of ``owner`` (an instance or a volume) as LXD reads the request body:
    its name (``backupN`` when none is given), its expiry and its compression algorithm (the
    server's ``backups.compression_algorithm``, else gzip, when none is given)."""
    expires = ZERO_TIME
    if "expires_at" in body.present and body["expires_at"] is not None:
        expires = volumes_api.time_arg(body["expires_at"])
    with ctx.state.lock:
        name = body["name"] or next_name(backups_of(owner))
    check_name(name)
    algorithm = body["compression_algorithm"]
    backups.check_compression(algorithm)
    if not algorithm:
        algorithm = ctx.state.config.get("backups.compression_algorithm", "") or "gzip"
    return name, expires, algorithm


def check_allowed(state: State, project: str) -> None:
    """A restricted project with ``restricted.backups=block`` refuses backups (a 500)."""
    config = (state.families["projects"].get(project) or {}).get("config") or {}
    if config.get("restricted", "").lower() in ("true", "1") \
            and config.get("restricted.backups") == "block":
        raise LXDError(500, f'Project "{project}" doesn\'t allow for backup creation')


def check_name(name: str) -> None:
    if "/" in name:
        raise LXDError(400, "Backup names may not contain slashes")


# -- what a backup holds -------------------------------------------------------------------------


def _pool_doc(state: State, pool: str) -> dict[str, Any]:
    record = state.family("storage_pools").get(pool)
    if record is None:
        return {"config": {}, "description": "", "name": pool, "driver": "dir", "used_by": [],
                "status": "Created", "locations": ["none"]}
    out = storage_api.render(state, record)
    out["used_by"] = []
    return out


def _profile_docs(state: State, project: str, names: list[str]) -> list[dict[str, Any]]:
    known = state.families["profiles"].get(state.owner("profiles", project), {})
    docs = []
    for name in names:
        profile = known.get(name)
        if profile is None:
            continue
        docs.append({"config": dict(profile.get("config") or {}),
                     "description": profile.get("description", ""),
                     "devices": {k: dict(v) for k, v in (profile.get("devices") or {}).items()},
                     "name": name, "used_by": []})
    return docs


def _volume_doc(inst: dict[str, Any], project: str) -> dict[str, Any]:
    return {"config": {}, "description": "", "name": inst["name"],
            "type": inst_api.volume_type(inst), "used_by": [], "location": "none",
            "content_type": "filesystem", "project": project, "created_at": ZERO_TIME}


def _volume_snapshot_doc(name: str) -> dict[str, Any]:
    return {"description": "", "expires_at": ZERO_TIME, "name": name, "config": {},
            "content_type": "filesystem", "created_at": ZERO_TIME}


def capture(state: State, project: str, inst: dict[str, Any],
            instance_only: bool) -> tuple[dict[str, Any], Part, list[Part]]:
    """What a backup made now holds: index.yaml and the directories of the tarball."""
    pool = inst_api.pool_of(state, project, inst) or "default"
    driver = (state.family("storage_pools").get(pool) or {}).get("driver", "dir")
    shown = inst_api.render(state, project, inst)
    snaps = [] if instance_only else list(inst["snapshots"].values())
    config: dict[str, Any] = {"container": shown}
    if snaps:
        config["snapshots"] = [render_snapshot(state, project, inst, s) for s in snaps]
    config["pool"] = _pool_doc(state, pool)
    config["profiles"] = _profile_docs(state, project, list(inst["profiles"]))
    config["volume"] = _volume_doc(inst, project)
    if snaps:
        config["volume_snapshots"] = [_volume_snapshot_doc(s["name"]) for s in snaps]
    index: dict[str, Any] = {"name": inst["name"], "backend": driver, "pool": pool}
    if snaps:
        index["snapshots"] = [s["name"] for s in snaps]
    index.update({"optimized": False, "optimized_header": False, "type": inst["type"],
                  "config": config})
    plain = {k: v for k, v in config.items() if k not in ("snapshots", "volume_snapshots")}
    container = Part("container", config, dict(inst["files"]), inst.get("metadata"),
                     dict(inst.get("templates") or {}))
    parts = []
    for snap in snaps:
        as_instance = dict(shown)
        for key in ("architecture", "config", "devices", "ephemeral", "profiles",
                    "created_at"):
            as_instance[key] = snap[key]
        parts.append(Part(snap["name"], {**plain, "container": as_instance},
                          dict(snap["files"]), inst.get("metadata")))
    return index, container, parts


_BUILT: dict[int, tuple[Any, str, bytes]] = {}


def tarball(item: dict[str, Any]) -> bytes:
    """The backup's tarball, built at its first export (a few are cached, outside the state:
    an export changes nothing)."""
    parts = item["parts"]
    hit = _BUILT.get(id(parts))
    if hit is not None and hit[0] is parts and hit[1] == item["algorithm"]:
        return hit[2]
    index, container, snaps = parts
    data = backups.instance_tarball(index, container, snaps, item["algorithm"])
    if len(_BUILT) >= 8:
        _BUILT.pop(next(iter(_BUILT)))
    _BUILT[id(parts)] = (parts, item["algorithm"], data)
    return data


# -- routes --------------------------------------------------------------------------------------


@routes("/<name>/backups", "GET")
def list_backups(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        found = backups_of(inst)
        if ctx.recursion >= 1:
            return responses.sync([render(found[b]) for b in sorted(found)])
        # LXD 5.0.2 lists /1.0/instances URLs (names unescaped) whatever alias was used.
        return responses.sync([f"/1.0/instances/{name}/backups/{b}" for b in sorted(found)])


@routes("/<name>/backups", "POST")
def create_backup(ctx: Ctx, name: str, prefix: str) -> Response:
    project = ctx.project
    kind = check_request(ctx, name, prefix)
    with ctx.state.lock:
        if not ctx.state.has_project(project):
            raise LXDError(404, "Project not found")
        check_allowed(ctx.state, project)
        inst = find(ctx, name, kind)
    body = ctx.body(BACKUPS_POST)
    backup, expires, algorithm = new_backup(ctx, body, inst)
    instance_only = body["instance_only"] or body["container_only"]

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        found = backups_of(inst, create=True)
        if backup in found:
            raise OperationFailed(f'Create backup: Backup "{name}/{backup}" already exists')
        found[backup] = {
            "name": backup, "created_at": now_seconds(),
            "expires_at": expires, "instance_only": instance_only, "algorithm": algorithm,
            "parts": capture(ctx.state, project, inst, instance_only), "lost": False,
        }
        emit(ctx, "instance-backup-created", backup_url(name, backup, project), project)

    resources = {"backups": [f"/1.0/backups/{backup}"], **op_resources(name)}
    return ctx.operation("Backing up instance", run, resources=resources)


@routes("/<name>/backups/<backup>", "GET")
def get_backup(ctx: Ctx, name: str, backup: str, prefix: str) -> Response:
    with ctx.state.lock:
        _, item = _get(ctx, name, backup, prefix)
        return responses.sync(render(item))


@routes("/<name>/backups/<backup>", "POST")
def rename_backup(ctx: Ctx, name: str, backup: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        _get(ctx, name, backup, prefix)
    body = ctx.body(BACKUP_POST)
    new_name = body["name"]
    check_name(new_name)

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        found = backups_of(inst)
        item = found.get(backup)
        if item is None:
            raise OperationFailed("Load backup from database: Instance backup not found")
        base = f"{BACKUPS_DIR}/{name}"
        target = f"{base}/{new_name}" if new_name else base
        # LXD renames the tarball first, then the database record.
        if item["lost"]:
            raise OperationFailed(f"rename {base}/{backup} {target}: no such file or directory")
        if not new_name:
            raise OperationFailed(f"rename {base}/{backup} {target}: file exists")
        if new_name != backup and new_name in found:
            other = found[new_name]
            other.update({"parts": item["parts"], "lost": False,
                          "algorithm": item["algorithm"]})
            item.update({"parts": None, "lost": True})
            raise OperationFailed("UNIQUE constraint failed: instances_backups.instance_id, "
                                  "instances_backups.name")
        found[new_name] = found.pop(backup)
        item["name"] = new_name
        emit(ctx, "instance-backup-renamed", backup_url(name, new_name, project), project,
             {"old_name": f"{name}/{backup}"})

    return ctx.operation("Renaming instance backup", run,
                         resources=op_resources(name))


@routes("/<name>/backups/<backup>", "DELETE")
def delete_backup(ctx: Ctx, name: str, backup: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        _get(ctx, name, backup, prefix)

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        if backups_of(inst).pop(backup, None) is None:
            raise OperationFailed("Load backup from database: Instance backup not found")
        emit(ctx, "instance-backup-deleted", backup_url(name, backup, project), project)

    # Sic: LXD 5.0.2 names the resource "container" with a singular path.
    return ctx.operation("Removing instance backup", run,
                         resources={"container": [f"/1.0/container/{name}"]})


@routes("/<name>/backups/<backup>/export", "GET")
def export_backup(ctx: Ctx, name: str, backup: str, prefix: str) -> Response:
    with ctx.state.lock:
        _, item = _get(ctx, name, backup, prefix)
        if item["lost"]:
            raise LXDError(500, f"open {BACKUPS_DIR}/{name}/{backup}: no such file or "
                                "directory")
        data = tarball(item)
        created = item["created_at"]
        emit(ctx, "instance-backup-retrieved", backup_url(name, backup, ctx.project),
             ctx.project)
    return file_reply(data, created)


def file_reply(data: bytes, created: str) -> Response:
    """A backup export: LXD 5.0.2 sends an empty file name."""
    resp = Response(data, status=200, content_type="application/octet-stream")
    resp.headers["Content-Disposition"] = "inline;filename="
    resp.headers["Accept-Ranges"] = "bytes"
    stamp = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    resp.headers["Last-Modified"] = formatdate(stamp.timestamp(), usegmt=True)
    return resp


# -- import ------------------------------------------------------------------------------------


def _root_pool_of_profiles(state: State, project: str) -> str | None:
    profiles = state.families["profiles"].get(state.owner("profiles", project), {})
    devices = (profiles.get("default") or {}).get("devices") or {}
    return inst_api.root_pool(devices)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in value.items()}


def _devices(value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        return {}
    return {str(k): _str_map(v) for k, v in value.items()}


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def import_backup(ctx: Ctx) -> Response:
    """``POST /1.0/instances`` with a backup tarball: ``X-LXD-name`` and ``X-LXD-pool``
    override the name and pool the backup was made with."""
    project = ctx.project
    with ctx.state.lock:
        if not ctx.state.has_project(project):
            raise LXDError(500, "Fetch project database object: Project not found")
    parsed = backups.read(ctx.raw_body())
    index = parsed.index
    pool_sent = ctx.request.headers.get("X-LXD-pool", "")
    name = ctx.request.headers.get("X-LXD-name", "") or _text(index.get("name"))
    pool = pool_sent or _text(index.get("pool"))
    with ctx.state.lock:
        if pool not in ctx.state.family("storage_pools"):
            if pool_sent or index.get("optimized"):
                raise LXDError(500, "Storage pool not found: Storage pool not found")
            pool = _root_pool_of_profiles(ctx.state, project) or pool
    config = index.get("config")
    if not isinstance(config, dict):
        config = parsed.docs.get("backup/container/backup.yaml") or {}
    container = config.get("container") if isinstance(config, dict) else None
    container = container if isinstance(container, dict) else {}
    snap_docs = [s for s in (config.get("snapshots") or []) if isinstance(s, dict)] \
        if isinstance(config, dict) else []
    snap_names = [str(s) for s in index.get("snapshots") or []]
    kind = parsed.kind

    def run(op: Operation) -> None:
        instances = inst_api.instances_of(ctx.state, project)
        if name in instances:
            raise OperationFailed("Create instance from backup: Cannot restore volume, already "
                                  "exists on target")
        if "container" not in parsed.trees:
            flags = backups.TAR_FLAGS[kind]
            raise OperationFailed(
                f"Create instance from backup: Error starting unpack: Failed to run: tar "
                f"{flags} - --xattrs-include=* --restrict --force-local --numeric-owner -C "
                f"/var/lib/lxd/storage-pools/{pool}/containers/{name} --strip-components=2 "
                f"backup/container: Process exited with non-zero value 2 (tar: "
                f"backup/container: Not found in archive\ntar: Exiting with failure status due "
                f"to previous errors)")
        try:
            inst_api.check_instance_name(name)
        except LXDError as exc:
            raise OperationFailed(f"Failed importing backup: Failed creating instance record: "
                                  f"{exc.message}") from None
        profiles = [str(p) for p in container.get("profiles") or []]
        known = ctx.state.families["profiles"].get(ctx.state.owner("profiles", project), {})
        record: dict[str, Any] = {
            "name": name, "type": _text(container.get("type"), "container"),
            "status": "Stopped", "project": project,
            "architecture": _text(container.get("architecture"), "x86_64"),
            "config": _str_map(container.get("config")),
            "devices": _devices(container.get("devices")),
            "profiles": [p for p in profiles if p in known],
            "ephemeral": bool(container.get("ephemeral")), "stateful": False,
            "description": _text(container.get("description")),
            "created_at": _text(container.get("created_at"), responses.go_time()),
            "last_used_at": _text(container.get("last_used_at"), ZERO_TIME),
            "snapshots": {}, "files": parsed.trees["container"], "logs": {"lxc.log": b""},
            "console": b"", "started": False, "metadata": None, "templates": {}, "pid": 0,
        }
        meta = parsed.raw.get("backup/container/metadata.yaml")
        if meta is not None:
            try:
                loaded = backups.load(meta)
                record["metadata"] = loaded if isinstance(loaded, dict) else None
            except LXDError:
                pass
        prefix = "backup/container/templates/"
        record["templates"] = {k[len(prefix):]: v for k, v in parsed.raw.items()
                               if k.startswith(prefix)}
        if inst_api.pool_of(ctx.state, project, record) != pool:
            root = {"path": "/", "pool": pool, "type": "disk"}
            for device in record["devices"].values():
                if device.get("type") == "disk" and device.get("path") == "/":
                    device["pool"] = pool
                    break
            else:
                record["devices"]["root"] = root
        docs = {str(d.get("name")): d for d in snap_docs}
        for snap in snap_names:
            doc = docs.get(snap, {})
            record["snapshots"][snap] = {
                "name": snap,
                "architecture": _text(doc.get("architecture"), record["architecture"]),
                "config": _str_map(doc.get("config")), "devices": _devices(doc.get("devices")),
                "profiles": [str(p) for p in doc.get("profiles") or [] if str(p) in known],
                "ephemeral": bool(doc.get("ephemeral")), "stateful": False,
                "created_at": _text(doc.get("created_at"), responses.go_time()),
                "expires_at": _text(doc.get("expires_at"), ZERO_TIME),
                "last_used_at": _text(doc.get("last_used_at"), ZERO_TIME),
                "description": "",
                "files": parsed.trees.get(f"snapshots/{snap}", {"/": record["files"]["/"]}),
            }
        inst_api.store(ctx.state, project, record, pool)
        emit(ctx, "instance-created", inst_api.instance_url(name, project), project,
             {"storage-pool": pool, "type": record["type"]})
        for snap in record["snapshots"]:
            emit(ctx, "instance-snapshot-created",
                 f"/1.0/instances/{name}/snapshots/{snap}"
                 + ("" if project == "default" else f"?project={project}"), project)

    return ctx.operation("Restoring backup", run, resources=op_resources(name))
