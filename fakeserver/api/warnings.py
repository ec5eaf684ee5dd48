"""``/1.0/warnings``: warnings the daemon raised, which clients list, acknowledge and delete.

Real LXD creates warnings internally (a missing cgroup controller, a failed image refresh, …).
The fake starts with none; tests raise them with :func:`add_warning`::

    from fakeserver.api.warnings import add_warning
    uuid = add_warning(fake.state, "Couldn't find the CGroup blkio.weight",
                       "disk priority will be ignored", severity="low")

Raising the same warning again (same type, project and entity) bumps its ``count`` and
``last_seen_at`` as LXD does, and brings a resolved one back to ``new``;
:func:`resolve_warning` marks one resolved, as LXD does when the condition clears.
"""

from __future__ import annotations

import uuid as uuid_mod

from werkzeug.wrappers import Response

from .. import filters, responses
from ..app import Ctx
from ..gourl import go_quote
from ..responses import LXDError, go_time
from ..schema import STR, Struct
from ..state import State
from . import route

WARNING_PUT = Struct("WarningPut", status=STR)
STATUSES = ("new", "acknowledged", "resolved")
SEVERITIES = ("low", "moderate", "high")


def add_warning(state: State, type: str, message: str, *, project: str = "",  # noqa: A002
                severity: str = "low", entity_url: str = "", location: str = "none") -> str:
    """Raise (or re-raise) a warning the way LXD does internally; returns its UUID.

    ``type`` is the human-readable warning type (``"Instance type not operational"``);
    ``project`` is ``""`` for a server-wide warning.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
    now = go_time()
    with state.lock:
        warnings = state.family("warnings")
        for warning in warnings.values():
            if (warning["type"], warning["project"], warning["entity_url"],
                    warning["location"]) == (type, project, entity_url, location):
                warning["count"] += 1
                warning["last_seen_at"] = now
                warning["last_message"] = message
                if warning["status"] == "resolved":
                    warning["status"] = "new"
                return str(warning["uuid"])
        new_uuid = str(uuid_mod.uuid4())
        warnings[new_uuid] = {
            "status": "new", "uuid": new_uuid, "location": location, "project": project,
            "type": type, "count": 1, "first_seen_at": now, "last_seen_at": now,
            "last_message": message, "severity": severity, "entity_url": entity_url,
        }
        return new_uuid


def resolve_warning(state: State, warning_uuid: str) -> None:
    """Mark a warning resolved (LXD does this itself when the condition goes away)."""
    with state.lock:
        state.family("warnings")[warning_uuid]["status"] = "resolved"


# -- handlers --------------------------------------------------------------------------------
def _url(warning_uuid: str) -> str:
    return f"/1.0/warnings/{warning_uuid}"


@route("/1.0/warnings", "GET")
def list_warnings(ctx: Ctx) -> Response:
    clauses = filters.from_query(ctx.request.args.get("filter", ""), "Failed to filter warnings")
    project = ctx.request.args.get("project", "")
    with ctx.state.lock:
        found = [dict(w) for _, w in sorted(ctx.state.family("warnings").items())
                 if (not project or w["project"] == project) and filters.matches(w, clauses)]
    if ctx.recursion != 0:
        return responses.sync(found)
    # LXD returns a nil slice (JSON null) when nothing matches without recursion.
    return responses.sync([_url(w["uuid"]) for w in found] or None)


@route("/1.0/warnings/<warning_uuid>", "GET")
def get_warning(ctx: Ctx, warning_uuid: str) -> Response:
    with ctx.state.lock:
        warning = ctx.state.family("warnings").get(warning_uuid)
        if warning is None:
            raise LXDError(404, "Warning not found")
        return responses.sync(dict(warning))


@route("/1.0/warnings/<warning_uuid>", "PUT", "PATCH")
def update_warning(ctx: Ctx, warning_uuid: str) -> Response:
    status = ctx.body(WARNING_PUT)["status"]
    if status not in STATUSES:
        raise LXDError(400, f'Invalid warning type {go_quote(status)}')
    if status == "resolved":
        raise LXDError(403, 'Status may only be set to "acknowledge" or "new"')
    with ctx.state.lock:
        # LXD's UPDATE touches no row for an unknown UUID and still answers 200.
        warning = ctx.state.family("warnings").get(warning_uuid)
        if warning is not None:
            warning["status"] = status
    action = "warning-acknowledged" if status == "acknowledged" else "warning-reset"
    ctx.lifecycle(action, _url(warning_uuid), project="default")
    return responses.empty()


@route("/1.0/warnings/<warning_uuid>", "DELETE")
def delete_warning(ctx: Ctx, warning_uuid: str) -> Response:
    with ctx.state.lock:
        if ctx.state.family("warnings").pop(warning_uuid, None) is None:
            raise LXDError(404, "Warning not found")
    ctx.lifecycle("warning-deleted", _url(warning_uuid), project="default")
    return responses.empty()
