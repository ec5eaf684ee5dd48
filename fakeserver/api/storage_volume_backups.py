"""``/1.0/storage-pools/{pool}/volumes/custom/{name}/backups``: custom volume backups, their
export, and import (``POST …/volumes/custom`` with a backup tarball, as
``lxc storage volume import`` sends it).

A backup lives in its volume's ``backups`` dict (renames carry it, copies do not)::

    {"name", "created_at", "expires_at", "volume_only", "algorithm",
     "parts": (index, [snapshot names]), "lost": bool}

The fake's volumes hold no files: a tarball has the volume's (and its snapshots') empty
directories, as real LXD's export of an unused volume does.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from .. import backups, responses
from ..app import Ctx
from ..backups import backups_of
from ..gourl import go_quote
from ..imagefile import Entry
from ..operations import Operation, OperationFailed
from ..responses import ZERO_TIME, LXDError
from ..schema import ANY, BOOL, STR, Struct
from . import route
from . import storage_volumes as vol_api
from .instance_backups import (
    check_allowed,
    check_name,
    file_reply,
    new_backup,
    now_seconds,
)
from .storage import get_pool

BACKUPS_POST = Struct("StoragePoolVolumeBackupsPost", name=STR, expires_at=ANY,
                      volume_only=BOOL, optimized_storage=BOOL, compression_algorithm=STR)
BACKUP_POST = Struct("StoragePoolVolumeBackupPost", name=STR)
BASE = "/1.0/storage-pools/<pool>/volumes/<vtype>/<name>/backups"
ROOT = {"/": Entry("directory", 0o711)}


def render(item: dict[str, Any]) -> dict[str, Any]:
    """``api.StoragePoolVolumeBackup``."""
    return {"name": item["name"], "created_at": item["created_at"],
            "expires_at": item["expires_at"], "volume_only": item["volume_only"],
            "optimized_storage": False}


def backup_url(pool: str, name: str, backup: str, project: str) -> str:
    path = f"/1.0/storage-pools/{pool}/volumes/custom/{name}/backups/{backup}"
    return path if project == "default" else f"{path}?project={project}"


def _volume(ctx: Ctx, pool: str, vtype: str, name: str,
            missing: str = "Storage pool volume not found") -> tuple[str, dict[str, Any]]:
    """LXD's order: the type (custom only), the project, the pool, the volume."""
    vol_api._custom_only(vtype)
    project = vol_api._volume_project(ctx, vtype)
    get_pool(ctx, pool)
    volume = vol_api.find_volume(ctx.state, project, pool, vtype, name)
    if volume is None:
        raise LXDError(404, missing)
    return project, volume


def _target(ctx: Ctx) -> str:
    """``?target=``: LXD 5.0.2 answers 404 ``Cluster member not found`` for anything but
    ``none`` (its own placeholder name), and with ``none`` skips the pool and volume checks
    of one backup (it looks the backup up by volume name and project alone)."""
    target = ctx.request.args.get("target", "")
    if target not in ("", "none"):
        raise LXDError(404, "Cluster member not found")
    return target


def _get(ctx: Ctx, pool: str, vtype: str, name: str,
         backup: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    vol_api._custom_only(vtype)
    project = vol_api._volume_project(ctx, vtype)
    if _target(ctx):
        for volume in ctx.state.families["volumes"].get(project, {}).values():
            if volume["type"] == "custom" and volume["name"] == name \
                    and backup in backups_of(volume):
                return project, volume, backups_of(volume)[backup]
        raise LXDError(404, "Storage volume backup not found")
    project, volume = _volume(ctx, pool, vtype, name)
    item = backups_of(volume).get(backup)
    if item is None:
        raise LXDError(404, "Storage volume backup not found")
    return project, volume, item


def _files_dir(pool: str, project: str, name: str) -> str:
    return f"/var/lib/lxd/backups/custom/{pool}/{project}_{name}"


def capture(state: Any, project: str, volume: dict[str, Any],
            volume_only: bool) -> tuple[dict[str, Any], list[str]]:
    """index.yaml of a backup made now, and the snapshots it holds."""
    pool = volume["pool"]
    driver = (state.family("storage_pools").get(pool) or {}).get("driver", "dir")
    snaps = [] if volume_only else list(volume["snapshots"].values())
    config: dict[str, Any] = {"volume": {
        "config": dict(volume["config"]), "description": volume["description"],
        "name": volume["name"], "type": "custom", "used_by": [], "location": "none",
        "content_type": volume["content_type"], "project": project,
        "created_at": ZERO_TIME}}
    if snaps:
        config["volume_snapshots"] = [
            {"description": s["description"], "expires_at": s["expires_at"],
             "name": s["name"], "config": dict(s["config"]),
             "content_type": volume["content_type"], "created_at": ZERO_TIME}
            for s in snaps]
    index: dict[str, Any] = {"name": volume["name"], "backend": driver, "pool": pool}
    if snaps:
        index["snapshots"] = [s["name"] for s in snaps]
    index.update({"optimized": False, "optimized_header": False, "type": "custom",
                  "config": config})
    return index, [s["name"] for s in snaps]


@route(BASE, "GET")
def list_backups(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    with ctx.state.lock:
        # The list looks at the project before the type.
        vol_api._project(ctx, f"Failed to load project {go_quote(ctx.project)}: Project not "
                              "found")
        if ctx.request.args.get("target", ""):
            # With any ?target= LXD 5.0.2 lists without checking the volume exists.
            vol_api._custom_only(vtype)
            project = vol_api._volume_project(ctx, vtype)
            get_pool(ctx, pool)
            volume = vol_api.find_volume(ctx.state, project, pool, vtype, name) or {}
        else:
            _, volume = _volume(ctx, pool, vtype, name)
        found = backups_of(volume) if volume else {}
        # In creation order (instance backups are listed by name).
        if ctx.recursion >= 1:
            return responses.sync([render(item) for item in found.values()])
        return responses.sync([f"/1.0/storage-pools/{pool}/volumes/custom/{name}/backups/{b}"
                               for b in found])


@route(BASE, "POST")
def create_backup(ctx: Ctx, pool: str, vtype: str, name: str) -> Response:
    vol_api._custom_only(vtype)
    with ctx.state.lock:
        vol_api._volume_project(ctx, vtype)
        check_allowed(ctx.state, ctx.project)
        target = _target(ctx)
        project, volume = _volume(ctx, pool, vtype, name, "Storage volume not found" if target
                                  else "Storage pool volume not found")
    body = ctx.body(BACKUPS_POST)
    backup, expires, algorithm = new_backup(ctx, body, volume)
    volume_only = body["volume_only"]

    def run(op: Operation) -> None:
        current = vol_api.find_volume(ctx.state, project, pool, "custom", name)
        if current is None:
            raise OperationFailed("Storage pool volume not found")
        found = backups_of(current, create=True)
        if backup in found:
            raise OperationFailed(f'Create volume backup: Backup "{name}/{backup}" already '
                                  "exists")
        found[backup] = {"name": backup, "created_at": now_seconds(), "expires_at": expires,
                         "volume_only": volume_only, "algorithm": algorithm,
                         "parts": capture(ctx.state, project, current, volume_only),
                         "lost": False}
        ctx.lifecycle("storage-volume-backup-created", backup_url(pool, name, backup, project),
                      context={"type": "custom"}, project=project)

    return ctx.operation("Creating custom volume backup", run, project=project, resources={
        "backups": [f"/1.0/backups/{backup}"],
        "storage_volumes": [f"/1.0/storage_volumes/{name}"]})


@route(f"{BASE}/<backup>", "GET")
def get_backup(ctx: Ctx, pool: str, vtype: str, name: str, backup: str) -> Response:
    with ctx.state.lock:
        _, _, item = _get(ctx, pool, vtype, name, backup)
        return responses.sync(render(item))


@route(f"{BASE}/<backup>", "POST")
def rename_backup(ctx: Ctx, pool: str, vtype: str, name: str, backup: str) -> Response:
    with ctx.state.lock:
        project, _, _ = _get(ctx, pool, vtype, name, backup)
    new_name = ctx.body(BACKUP_POST)["name"]
    check_name(new_name)

    def run(op: Operation) -> None:
        current = vol_api.find_volume(ctx.state, project, pool, "custom", name)
        item = backups_of(current).get(backup) if current is not None else None
        if current is None or item is None:
            raise OperationFailed("Storage volume backup not found")
        found = backups_of(current)
        base = _files_dir(pool, project, name)
        target = f"{base}/{new_name}" if new_name else base
        if item["lost"]:
            raise OperationFailed(f"rename {base}/{backup} {target}: no such file or directory")
        if not new_name:
            raise OperationFailed(f"rename {base}/{backup} {target}: file exists")
        if new_name != backup and new_name in found:
            # LXD moves the file over the other backup's, fails on the database and moves it
            # back: the other backup is left without its file.
            found[new_name].update({"parts": None, "lost": True})
            raise OperationFailed("UNIQUE constraint failed: storage_volumes_backups."
                                  "storage_volume_id, storage_volumes_backups.name")
        # Listed in creation order: the renamed backup keeps its place.
        renamed = {(new_name if key == backup else key): value for key, value in found.items()}
        found.clear()
        found.update(renamed)
        item["name"] = new_name
        ctx.lifecycle("storage-volume-backup-renamed",
                      backup_url(pool, name, new_name, project),
                      context={"old_name": f"{name}/{backup}"}, project=project)

    return ctx.operation("Renaming custom volume backup", run, project=project,
                         resources={"volume": [f"/1.0/volume/{name}"]})


@route(f"{BASE}/<backup>", "DELETE")
def delete_backup(ctx: Ctx, pool: str, vtype: str, name: str, backup: str) -> Response:
    with ctx.state.lock:
        project, _, _ = _get(ctx, pool, vtype, name, backup)

    def run(op: Operation) -> None:
        current = vol_api.find_volume(ctx.state, project, pool, "custom", name)
        if current is None or backups_of(current).pop(backup, None) is None:
            raise OperationFailed("Storage volume backup not found")
        ctx.lifecycle("storage-volume-backup-deleted", backup_url(pool, name, backup, project),
                      project=project)

    return ctx.operation("Deleting custom volume backup", run, project=project,
                         resources={"volume": [f"/1.0/volume/{name}"]})


@route(f"{BASE}/<backup>/export", "GET")
def export_backup(ctx: Ctx, pool: str, vtype: str, name: str, backup: str) -> Response:
    with ctx.state.lock:
        project, _, item = _get(ctx, pool, vtype, name, backup)
        if item["lost"]:
            raise LXDError(500, f"open {_files_dir(pool, project, name)}/{backup}: no such "
                                "file or directory")
        index, snaps = item["parts"]
        created = item["created_at"]
        algorithm = item["algorithm"]
        ctx.lifecycle("storage-volume-backup-retrieved", backup_url(pool, name, backup, project),
                      project=project)
    data = backups.volume_tarball(index, dict(ROOT), [(s, dict(ROOT)) for s in snaps],
                                  algorithm)
    return file_reply(data, created)


# -- import ------------------------------------------------------------------------------------


def _unpack_error(kind: str, pool: str, project: str, name: str, member: str) -> str:
    flags = backups.TAR_FLAGS[kind]
    escaped = member.replace("/", "\\/")
    return (f"Create custom volume from backup: Error starting unpack: Failed to run: tar "
            f"{flags} - --xattrs-include=* --restrict --force-local --numeric-owner -C "
            f"/var/lib/lxd/storage-pools/{pool}/custom/{project}_{name} "
            f"--transform=s/^{escaped}/./ {member}: Process exited with non-zero value 2 "
            f"(tar: {member}: Not found in archive\ntar: Exiting with failure status due to "
            f"previous errors)")


def import_backup(ctx: Ctx, pool: str) -> Response:
    """``POST …/volumes/custom`` with a backup tarball: ``X-LXD-name`` overrides the name."""
    with ctx.state.lock:
        project = vol_api._project(ctx, f"Failed to load project {go_quote(ctx.project)}: "
                                        "Project not found")
    parsed = backups.read(ctx.raw_body())
    with ctx.state.lock:
        if pool not in ctx.state.family("storage_pools"):
            raise LXDError(500, "Storage pool not found: Storage pool not found")
    index = parsed.index
    name = ctx.request.headers.get("X-LXD-name", "") or str(index.get("name") or "")
    raw_config = index.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    raw_doc = config.get("volume")
    doc: dict[str, Any] = raw_doc if isinstance(raw_doc, dict) else {}
    snap_docs = {str(s.get("name")): s for s in config.get("volume_snapshots") or []
                 if isinstance(s, dict)}
    snaps = [str(s) for s in index.get("snapshots") or []]
    kind = parsed.kind

    def run(op: Operation) -> None:
        prefix = (f'Create custom volume from backup: Error inserting volume "{name}" for '
                  f'project "{project}" in pool "{pool}" of type "custom" into database ')
        if not doc:
            raise OperationFailed("Create custom volume from backup: Valid volume config not "
                                  "found in index")
        if any(snap not in snap_docs for snap in snaps):
            raise OperationFailed("Create custom volume from backup: Valid volume snapshot "
                                  "config not found in index")
        content_type = str(doc.get("content_type") or "")
        if content_type not in vol_api.CONTENT_TYPES:
            raise OperationFailed("Create custom volume from backup: Invalid volume content "
                                  "type")
        if "/" in name:
            raise OperationFailed(prefix + '"Volume name may not be a snapshot"')
        if vol_api.find_volume(ctx.state, project, pool, "custom", name) is not None:
            raise OperationFailed(
                prefix + '"UNIQUE constraint failed: storage_volumes.storage_pool_id, '
                'storage_volumes.node_id, storage_volumes.project_id, storage_volumes.name, '
                'storage_volumes.type"')
        for snap in snaps:
            if f"volume-snapshots/{snap}" not in parsed.trees:
                raise OperationFailed(_unpack_error(kind, pool, project, name,
                                                   f"backup/volume-snapshots/{snap}"))
        if "volume" not in parsed.trees:
            raise OperationFailed(_unpack_error(kind, pool, project, name, "backup/volume"))
        volume = vol_api.add_volume(
            ctx.state, project, pool, "custom", name,
            config={str(k): str(v) for k, v in (doc.get("config") or {}).items()},
            description=str(doc.get("description") or ""), content_type=content_type)
        for snap in snaps:
            item = snap_docs.get(snap, {})
            vol_api.add_snapshot(
                volume, snap, description=str(item.get("description") or ""),
                expires_at=str(item.get("expires_at") or ZERO_TIME),
                config={str(k): str(v) for k, v in (item.get("config") or {}).items()})
        # LXD 5.0.2 names the volume by its internal name here, and sends no requestor.
        ctx.events.lifecycle("storage-volume-created",
                             vol_api._event_source(pool, "custom", project, name), project,
                             {"type": "custom"})

    return ctx.operation("Restoring custom volume backup", run, project=project,
                         resources={"storage_volumes": [f"/1.0/storage_volumes/{name}"]})
