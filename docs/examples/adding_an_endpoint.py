"""A new endpoint for the fake, end to end: LXD's network ACLs (create, list, get, delete).

In the project this is ``fakeserver/api/network_acls.py`` plus a family in
``fakeserver/state.py`` and ``tests/fakeserver/test_network_acls.py``; tests/docs runs this
file as a whole (the test against a fake started below).
"""

# --8<-- [start:state]
from fakeserver import state

# In fakeserver/state.py: network ACLs belong to a project (LXD: features.networks).
state.PROJECT_FAMILIES += ("network_acls",)
state.FEATURES["network_acls"] = "features.networks"
# --8<-- [end:state]

# --8<-- [start:module]
from typing import Any

from werkzeug.wrappers import Response

from fakeserver import responses
from fakeserver.api import route
from fakeserver.app import Ctx
from fakeserver.responses import LXDError
from fakeserver.schema import MAP_ANY, MAP_STR, STR, Struct, list_of
from fakeserver.validation import check_name

# The request body as LXD's Go struct: unknown fields are ignored, wrong types are 400s.
ACLS_POST = Struct("NetworkACLsPost", name=STR, description=STR, config=MAP_STR,
                   ingress=list_of(MAP_ANY), egress=list_of(MAP_ANY))


def render(acl: dict[str, Any]) -> dict[str, Any]:
    """LXD's field order; used_by is computed, never stored."""
    return {"name": acl["name"], "description": acl["description"], "egress": acl["egress"],
            "ingress": acl["ingress"], "config": acl["config"], "used_by": []}


def url(ctx: Ctx, name: str) -> str:
    return ctx.url(f"/1.0/network-acls/{name}")


@route("/1.0/network-acls", "GET")
def list_acls(ctx: Ctx) -> Response:
    with ctx.state.lock:
        acls = ctx.state.in_project("network_acls", ctx.project)
        if ctx.recursion >= 1:
            return responses.sync([render(acls[name]) for name in sorted(acls)])
        return responses.sync([url(ctx, name) for name in sorted(acls)])


@route("/1.0/network-acls", "POST")
def create_acl(ctx: Ctx) -> Response:
    body = ctx.body(ACLS_POST)  # Go's decoding errors become LXD's 400s
    with ctx.state.lock:
        if not body["name"]:
            raise LXDError(500, "Name is required")  # LXD's code and message
        check_name(body["name"], "Network ACL")
        acls = ctx.state.in_project("network_acls", ctx.project)
        acls[body["name"]] = {"name": body["name"], "description": body["description"],
                              "config": body["config"], "ingress": body["ingress"] or [],
                              "egress": body["egress"] or []}
        ctx.lifecycle("network-acl-created", url(ctx, body["name"]))
        return responses.created(url(ctx, body["name"]))


def find(ctx: Ctx, name: str) -> dict[str, Any]:
    acl = ctx.state.in_project("network_acls", ctx.project).get(name)
    if acl is None:
        raise LXDError(404, "Network ACL not found")
    return acl


@route("/1.0/network-acls/<name>", "GET")
def get_acl(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        acl = find(ctx, name)
        etag = responses.etag_of([acl["description"], acl["config"], acl["ingress"],
                                  acl["egress"]])
        return responses.sync(render(acl), etag=etag)


@route("/1.0/network-acls/<name>", "DELETE")
def delete_acl(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        find(ctx, name)
        del ctx.state.in_project("network_acls", ctx.project)[name]
        ctx.lifecycle("network-acl-deleted", url(ctx, name))
        return responses.empty()
# --8<-- [end:module]


# --8<-- [start:test]
from tests.support import API, unique


def test_network_acl_lifecycle(api: API) -> None:
    name = unique("acl")
    reply = api.post("/1.0/network-acls", {"name": name, "description": "web"})
    assert (reply.status, reply.headers["Location"]) == (201, f"/1.0/network-acls/{name}")
    api.delete_later(f"/1.0/network-acls/{name}")  # even if the test fails

    got = api.get(f"/1.0/network-acls/{name}")
    assert got.metadata == {"name": name, "description": "web", "egress": [], "ingress": [],
                            "config": {}, "used_by": []}
    assert f"/1.0/network-acls/{name}" in api.get("/1.0/network-acls").metadata

    reply = api.post("/1.0/network-acls", {"name": ""})
    assert (reply.status, reply.error) == (500, "Name is required")
    missing = api.get(f"/1.0/network-acls/{unique('acl')}")
    assert (missing.status, missing.error) == (404, "Network ACL not found")
# --8<-- [end:test]


if __name__ == "__main__":  # what tests/docs does with this file
    from fakeserver import FakeLXD

    with FakeLXD() as fake:  # made after the routes were registered
        api = API.unix("fake", fake.socket_path)
        test_network_acl_lifecycle(api)
        api.run_cleanups()
        assert not api.get("/1.0/network-acls").metadata
        assert not fake.handler_errors, fake.handler_errors[0]
