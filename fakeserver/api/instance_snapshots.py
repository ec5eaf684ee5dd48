"""``/1.0/instances/{name}/snapshots``: instance snapshots, and restoring one.

A snapshot is kept in its instance's ``snapshots`` dict (creation order, as LXD lists them)::

    {"name", "architecture", "config", "devices", "profiles", "ephemeral", "stateful",
     "created_at", "expires_at", "last_used_at", "description", "files"}

Each snapshot has its own copy of the instance's ``files`` (``Entry`` is immutable, so a
dict copy is enough). Snapshot volumes of the root pool follow in ``storage_volumes``.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..operations import Operation, OperationFailed
from ..responses import ZERO_TIME, LXDError, go_time
from ..schema import ANY, BOOL, STR, Struct
from ..state import State
from . import instances as inst_api
from . import storage_volumes as volumes_api
from .instances import (
    check_request,
    emit,
    expanded,
    find,
    get_instance,
    instance_type,
    instance_url,
    lookup,
    routes,
)

SNAPSHOTS_POST = Struct("InstanceSnapshotsPost", name=STR, stateful=BOOL, expires_at=ANY)
SNAPSHOT_PUT = Struct("InstanceSnapshotPut", expires_at=ANY)
SNAPSHOT_POST = Struct("InstanceSnapshotPost", name=STR, migration=BOOL, target=ANY, live=BOOL)
POOLS_DIR = "/var/lib/lxd/storage-pools"


def copy_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """A copy of a snapshot record (for instance copies)."""
    out = dict(snap)
    out["config"] = dict(snap["config"])
    out["devices"] = {k: dict(v) for k, v in snap["devices"].items()}
    out["profiles"] = list(snap["profiles"])
    out["files"] = dict(snap["files"])
    return out


def render_snapshot(state: State, project: str, inst: dict[str, Any],
                    snap: dict[str, Any]) -> dict[str, Any]:
    """``api.InstanceSnapshot`` in LXD's field order (``size`` is -1 on a dir pool)."""
    config, devices = expanded(state, project, snap)
    out: dict[str, Any] = {
        "expires_at": snap["expires_at"], "architecture": snap["architecture"],
        "config": dict(sorted(snap["config"].items())), "created_at": snap["created_at"],
        "devices": snap["devices"], "ephemeral": snap["ephemeral"],
    }
    if config:
        out["expanded_config"] = config
    if devices:
        out["expanded_devices"] = devices
    out.update({"last_used_at": snap["last_used_at"], "name": snap["name"],
                "profiles": list(snap["profiles"]), "stateful": snap["stateful"], "size": -1})
    return out


def etag(snap: dict[str, Any]) -> str:
    return responses.etag_of([snap["expires_at"]])


def snapshot_url(inst: str, snap: str, project: str, prefix: str = "instances") -> str:
    path = f"/1.0/{prefix}/{inst}/snapshots/{snap}"
    return path if project == "default" else f"{path}?project={project}"


def _get(ctx: Ctx, name: str, snap: str, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The instance and its snapshot (LXD 5.0.2 does not refuse a ``/`` in the instance name
    here: no such instance)."""
    inst = find(ctx, name, instance_type(ctx, prefix))
    item = inst["snapshots"].get(snap)
    if item is None:
        raise LXDError(404, f'Failed to fetch snapshot "{snap}" of instance "{name}" in '
                            f'project "{ctx.project}": InstanceSnapshot not found')
    return inst, item


def _check_name(name: str) -> None:
    if "/" in name:
        raise LXDError(400, 'Invalid snapshot name: Cannot contain "/"')


def _next_name(inst: dict[str, Any]) -> str:
    taken = [int(m.group(1)) for s in inst["snapshots"] if (m := re.fullmatch(r"snap(\d+)", s))]
    return f"snap{max(taken) + 1 if taken else 0}"


def _volume(ctx: Ctx, project: str, inst: dict[str, Any]) -> dict[str, Any] | None:
    return inst_api.instance_volume(ctx.state, project, inst)


@routes("/<name>/snapshots", "GET")
def list_snapshots(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = lookup(ctx, name, prefix)
        if ctx.recursion >= 1:
            return responses.sync([render_snapshot(ctx.state, ctx.project, inst, s)
                                   for s in inst["snapshots"].values()])
        # LXD 5.0.2 lists /1.0/instances URLs whatever alias the request used.
        return responses.sync([snapshot_url(name, s, ctx.project)
                               for s in inst["snapshots"]])


@routes("/<name>/snapshots", "POST")
def create_snapshot(ctx: Ctx, name: str, prefix: str) -> Response:
    project = ctx.project
    kind = check_request(ctx, name, prefix)
    with ctx.state.lock:
        if not ctx.state.has_project(project):
            raise LXDError(404, "Project not found")
        find(ctx, name, kind)
    body = ctx.body(SNAPSHOTS_POST)
    _check_name(body["name"])
    expires = None
    if "expires_at" in body.present and body["expires_at"] is not None:
        expires = volumes_api.time_arg(body["expires_at"])

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        snap_name = body["name"] or _next_name(inst)
        if " " in snap_name:
            raise OperationFailed(f'Failed creating instance snapshot record "{snap_name}": '
                                  "Invalid instance snapshot name: Cannot contain space or / "
                                  "characters")
        if body["stateful"] and inst["status"] == "Stopped":
            raise OperationFailed("Unable to create a stateful snapshot. The instance isn't "
                                  "running")
        if body["stateful"]:
            raise OperationFailed("Unable to create a stateful snapshot. CRIU isn't installed")
        if snap_name in inst["snapshots"]:
            raise OperationFailed(f'Failed creating instance snapshot record "{snap_name}": '
                                  "Add snapshot info to the database: This "
                                  '"instances_snapshots" entry already exists')
        expiry = expires
        if expiry is None:
            rule = expanded(ctx.state, project, inst)[0].get("snapshots.expiry", "")
            expiry = volumes_api.expiry_from(rule) if rule else ZERO_TIME
        inst["snapshots"][snap_name] = {
            "name": snap_name, "architecture": inst["architecture"],
            "config": dict(inst["config"]),
            "devices": {k: dict(v) for k, v in inst["devices"].items()},
            "profiles": list(inst["profiles"]), "ephemeral": inst["ephemeral"],
            "stateful": False, "created_at": go_time(), "expires_at": expiry,
            "last_used_at": ZERO_TIME, "description": "", "files": dict(inst["files"]),
        }
        volume = _volume(ctx, project, inst)
        if volume is not None:
            volumes_api.add_snapshot(volume, snap_name)
        emit(ctx, "instance-snapshot-created", snapshot_url(name, snap_name, project), project)

    return ctx.operation("Snapshotting instance", run,
                         resources=inst_api.op_resources(name))


@routes("/<name>/snapshots/<snap>", "GET")
def get_snapshot(ctx: Ctx, name: str, snap: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst, item = _get(ctx, name, snap, prefix)
        return responses.sync(render_snapshot(ctx.state, ctx.project, inst, item),
                              etag=etag(item))


@routes("/<name>/snapshots/<snap>", "PUT", "PATCH")
def update_snapshot(ctx: Ctx, name: str, snap: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        _, item = _get(ctx, name, snap, prefix)
        ctx.check_etag(etag(item))
    body = ctx.body(SNAPSHOT_PUT)
    expires: str | None = None
    if "expires_at" in body.present:
        expires = volumes_api.time_arg(body["expires_at"])
    elif ctx.request.method == "PUT":
        expires = ZERO_TIME

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        current = inst["snapshots"].get(snap)
        if current is None:
            raise OperationFailed("Instance snapshot not found")
        if expires is not None:
            current["expires_at"] = expires

    # LXD 5.0.2 names the snapshot without its instance in these resources.
    return ctx.operation("Updating snapshot", run,
                         resources=inst_api.op_resources(snap))


@routes("/<name>/snapshots/<snap>", "POST")
def rename_snapshot(ctx: Ctx, name: str, snap: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        inst, _ = _get(ctx, name, snap, prefix)
    body = ctx.body(SNAPSHOT_POST)
    if body["migration"]:
        raise LXDError(500, "The fake does not support snapshot migration")
    new_name = body["name"]
    _check_name(new_name)
    with ctx.state.lock:
        if new_name in inst["snapshots"]:
            raise LXDError(409, f"Name '{name}/{new_name}' already in use")

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        if snap not in inst["snapshots"]:
            raise OperationFailed("Instance snapshot not found")
        if not new_name:
            pool = inst_api.pool_of(ctx.state, project, inst) or "default"
            base = f"{POOLS_DIR}/{pool}/containers-snapshots/{name}"
            raise OperationFailed(f'Rename instance snapshot: Failed to rename "{base}/{snap}" '
                                  f'to "{base}": rename {base}/{snap} {base}: file exists')
        if new_name in inst["snapshots"]:
            raise OperationFailed(f"Name '{name}/{new_name}' already in use")
        inst["snapshots"] = {(new_name if key == snap else key): value
                             for key, value in inst["snapshots"].items()}
        inst["snapshots"][new_name]["name"] = new_name
        volume = _volume(ctx, project, inst)
        if volume is not None and snap in volume["snapshots"]:
            volumes_api.rename_snapshot(volume, snap, new_name)
        emit(ctx, "instance-snapshot-renamed", snapshot_url(name, new_name, project), project,
             {"old_name": f"{name}/{snap}"})

    return ctx.operation("Renaming snapshot", run,
                         resources=inst_api.op_resources(name))


@routes("/<name>/snapshots/<snap>", "DELETE")
def delete_snapshot(ctx: Ctx, name: str, snap: str, prefix: str) -> Response:
    project = ctx.project
    with ctx.state.lock:
        _get(ctx, name, snap, prefix)

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        if inst["snapshots"].pop(snap, None) is None:
            raise OperationFailed("Instance snapshot not found")
        volume = _volume(ctx, project, inst)
        if volume is not None:
            volumes_api.remove_snapshot(volume, snap)
        emit(ctx, "instance-snapshot-deleted", snapshot_url(name, snap, project), project)

    return ctx.operation("Deleting snapshot", run,
                         resources=inst_api.op_resources(f"{name}/{snap}"))


def restore(ctx: Ctx, project: str, name: str, snap: str,
            resources: dict[str, list[str]]) -> Response:
    """``PUT /1.0/instances/{name} {"restore": snap}``: config, devices and files come back."""

    def run(op: Operation) -> None:
        inst = get_instance(ctx.state, project, name)
        item = inst["snapshots"].get(snap)
        if item is None:
            raise OperationFailed(f"Snapshot {name}/{snap} does not exist")
        was_running = inst["status"] != "Stopped"
        if was_running:
            inst_api.stop(inst, graceful=False)
        inst["config"] = dict(item["config"])
        inst["devices"] = {k: dict(v) for k, v in item["devices"].items()}
        inst["profiles"] = list(item["profiles"])
        inst["ephemeral"] = item["ephemeral"]
        inst["architecture"] = item["architecture"]
        inst["files"] = dict(item["files"])
        if was_running:
            inst_api.start(inst)
        emit(ctx, "instance-restored", instance_url(name, project), project,
             {"snapshot": f"{name}/{snap}"})

    return ctx.operation("Restoring snapshot", run, resources=resources)
