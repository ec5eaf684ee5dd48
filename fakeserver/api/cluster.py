"""``/1.0/cluster``: a standalone (never clustered) server, answered as LXD 5.0.2 answers.

The fake does not form clusters: enabling clustering is refused with a clear error, a known
divergence (LXD would bootstrap a one-member cluster, for good).
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..responses import LXDError
from ..schema import ANY, BOOL, STR, Struct, list_of
from . import route

CLUSTER_PUT = Struct("ClusterPut", server_name=STR, enabled=BOOL, member_config=list_of(ANY),
                     cluster_address=STR, cluster_certificate=STR, server_address=STR,
                     cluster_password=STR)
MEMBERS_POST = Struct("ClusterMembersPost", server_name=STR)
MEMBER_POST = Struct("ClusterMemberPost", server_name=STR)
CERTIFICATE_PUT = Struct("ClusterCertificatePut", cluster_certificate=STR,
                         cluster_certificate_key=STR)


def _member_config(ctx: Ctx) -> list[dict[str, Any]]:
    pools = ctx.state.family("storage_pools")
    return [{"entity": "storage-pool", "name": name, "key": "source", "value": "",
             "description": f'"source" property for storage pool "{name}"'}
            for name in sorted(pools)]


def _cluster(ctx: Ctx) -> dict[str, Any]:
    return {"server_name": "", "enabled": False, "member_config": _member_config(ctx)}


@route("/1.0/cluster", "GET")
def get_cluster(ctx: Ctx) -> Response:
    with ctx.state.lock:
        meta = _cluster(ctx)
    return responses.sync(meta, etag=responses.etag_of(meta))


@route("/1.0/cluster", "PUT")
def update_cluster(ctx: Ctx) -> Response:
    body = ctx.body(CLUSTER_PUT)
    with ctx.state.lock:
        ctx.check_etag(responses.etag_of(_cluster(ctx)))
    if not body["enabled"]:
        if body["server_name"]:
            raise LXDError(400, "ServerName must be empty when disabling clustering")
        return responses.empty()
    raise LXDError(400, "Clustering is not supported by the fake LXD server")


@route("/1.0/cluster/certificate", "PUT")
def update_cluster_certificate(ctx: Ctx) -> Response:
    body = ctx.body(CERTIFICATE_PUT)
    if not body["cluster_certificate"]:
        raise LXDError(400, "Certificate must be base64 encoded PEM certificate: %!w(<nil>)")
    raise LXDError(400, "This server is not clustered")


@route("/1.0/cluster/members", "GET")
def list_members(ctx: Ctx) -> Response:
    raise LXDError(500, "Server is not clustered")


@route("/1.0/cluster/members", "POST")
def add_member(ctx: Ctx) -> Response:
    ctx.body(MEMBERS_POST)  # LXD decodes the request before it looks at the cluster
    raise LXDError(400, "This server is not clustered")


@route("/1.0/cluster/members/<name>", "GET", "PUT", "PATCH", "DELETE")
def member(ctx: Ctx, name: str) -> Response:
    raise LXDError(500, "Server is not clustered")


@route("/1.0/cluster/members/<name>", "POST")
def rename_member(ctx: Ctx, name: str) -> Response:
    """LXD decodes the body, then renames the member's database row, clustered or not: no row
    for another name, a 409 for the name it already has.

    Divergence: on a standalone LXD 5.0.2 renaming ``none`` (the one row) succeeds, and the
    daemon can then no longer create instances (``NOT NULL constraint failed:
    instances.node_id``) until the row is named ``none`` again. The fake answers the same
    200 and keeps its member as it is."""
    body = ctx.body(MEMBER_POST)
    if name != "none":
        raise LXDError(500, "expected to update one row, not 0")
    if body.get("server_name") == "none":
        raise LXDError(409, "Conflict")
    return responses.sync({})


@route("/1.0/cluster/members/<name>/state", "POST")
def member_state(ctx: Ctx, name: str) -> Response:
    raise LXDError(404, "Cluster member not found")


@route("/1.0/cluster/groups", "GET", "POST")
def groups(ctx: Ctx) -> Response:
    raise LXDError(400, "This server is not clustered")


@route("/1.0/cluster/groups/<name>", "GET", "PUT", "PATCH", "POST", "DELETE")
def group(ctx: Ctx, name: str) -> Response:
    """LXD 5.0.2 checks only some verbs for clustering: it refuses to rename or delete the
    ``default`` group first, and deletes another group's row without any check."""
    method = ctx.request.method
    if name == "default" and method == "POST":
        raise LXDError(403, 'The "default" group cannot be renamed')
    if name == "default" and method == "DELETE":
        raise LXDError(403, "The 'default' cluster group cannot be deleted")
    if method == "DELETE":
        raise LXDError(500, "Query deleted 0 rows instead of 1")
    raise LXDError(400, "This server is not clustered")
