"""``/1.0/cluster`` on a standalone server: the fake answers as LXD 5.0.2 does."""

from __future__ import annotations

import pytest

from tests.support import API


def test_standalone_cluster(api: API) -> None:
    reply = api.get("/1.0/cluster")
    assert reply.status == 200
    meta = reply.metadata
    assert (meta["server_name"], meta["enabled"]) == ("", False)
    # Which pools LXD lists here varies (not always those created by hand); check the shape.
    for entry in meta["member_config"]:
        assert list(entry) == ["entity", "name", "key", "value", "description"]
        assert entry["description"] == f'"source" property for storage pool "{entry["name"]}"'
    assert len(reply.headers["ETag"].strip('"')) == 64


def test_patch_is_not_implemented(api: API) -> None:
    reply = api.patch("/1.0/cluster", {})
    assert (reply.status, reply.error) == (501, "not implemented")


@pytest.mark.fake_only
def test_disabling_is_a_no_op_but_needs_an_empty_name(api: API) -> None:
    """Fake only: on a standalone LXD 5.0.2 this PUT restarts the daemon with an EMPTY
    database (observed: it wiped the shared real host twice), so it is never sent to a real
    host. Both answers below were observed with curl before we knew."""
    assert api.put("/1.0/cluster", {"server_name": "", "enabled": False}).status == 200
    reply = api.put("/1.0/cluster", {"server_name": "x", "enabled": False})
    assert (reply.status, reply.error) == (400,
                                           "ServerName must be empty when disabling clustering")


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("GET", "/1.0/cluster/members", 500, "Server is not clustered"),
    ("GET", "/1.0/cluster/members/foo", 500, "Server is not clustered"),
    ("DELETE", "/1.0/cluster/members/foo", 500, "Server is not clustered"),
    ("PUT", "/1.0/cluster/members/foo", 500, "Server is not clustered"),
    ("POST", "/1.0/cluster/members/foo/state", 404, "Cluster member not found"),
    ("POST", "/1.0/cluster/members", 400, "This server is not clustered"),
    ("PATCH", "/1.0/cluster/members/none", 500, "Server is not clustered"),
    ("GET", "/1.0/cluster/groups", 400, "This server is not clustered"),
    ("POST", "/1.0/cluster/groups", 400, "This server is not clustered"),
    ("GET", "/1.0/cluster/groups/default", 400, "This server is not clustered"),
    ("PUT", "/1.0/cluster/groups/default", 400, "This server is not clustered"),
    ("PATCH", "/1.0/cluster/groups/default", 400, "This server is not clustered"),
    ("POST", "/1.0/cluster/groups/default", 403, 'The "default" group cannot be renamed'),
    ("DELETE", "/1.0/cluster/groups/default", 403,
     "The 'default' cluster group cannot be deleted"),
    ("POST", "/1.0/cluster/groups/rbnx-g", 400, "This server is not clustered"),
    ("PUT", "/1.0/cluster/groups/rbnx-g", 400, "This server is not clustered"),
    ("DELETE", "/1.0/cluster/groups/rbnx-g", 500, "Query deleted 0 rows instead of 1"),
])
def test_member_and_group_endpoints(api: API, method: str, path: str, status: int,
                                    message: str) -> None:
    """A standalone LXD 5.0.2 checks clustering on some verbs only; the ``default`` group's
    refusals come before it (and before the body is read)."""
    reply = api.request(method, path, json_body={"name": "rbnx-other"})
    assert (reply.status, reply.error) == (status, message)
    if path.endswith("/default") and method in ("POST", "DELETE"):
        reply = api.request(method, path, data=b"[1]")
        assert (reply.status, reply.error) == (status, message)


def test_renaming_the_standalone_member_to_its_own_name_conflicts(api: API) -> None:
    """The one safe rename to try on a real host: ``none`` to ``none``. (Renaming ``none`` to
    anything else succeeds on LXD 5.0.2 and breaks instance creation: see the fake's
    ``rename_member``.)"""
    reply = api.post("/1.0/cluster/members/none", {"server_name": "none"})
    assert (reply.status, reply.error) == (409, "Conflict")
    reply = api.post("/1.0/cluster/members/rbnx-m", {"server_name": "rbnx-n"})
    assert (reply.status, reply.error) == (500, "expected to update one row, not 0")


@pytest.mark.fake_only
def test_renaming_the_standalone_member_is_accepted_but_not_done(api: API) -> None:
    """Divergence: LXD 5.0.2 renames its standalone member and then cannot create instances
    (``NOT NULL constraint failed: instances.node_id``), which was seen once on the shared
    host. The fake gives LXD's 200 and keeps ``none``."""
    reply = api.post("/1.0/cluster/members/none", {"server_name": "other"})
    assert (reply.status, reply.metadata) == (200, {})
    assert api.post("/1.0/cluster/members/none", {"server_name": "none"}).status == 409


def test_error_bodies_escape_angle_brackets_like_go(api: API) -> None:
    reply = api.put("/1.0/cluster/certificate", {})
    assert reply.status == 400
    assert reply.error == "Certificate must be base64 encoded PEM certificate: %!w(<nil>)"
    assert b"\\u003cnil\\u003e" in reply.raw


@pytest.mark.fake_only
def test_the_fake_refuses_to_form_a_cluster(api: API) -> None:
    """Divergence: LXD would bootstrap a one-member cluster for good; the fake refuses."""
    reply = api.put("/1.0/cluster", {"server_name": "node1", "enabled": True})
    assert (reply.status, reply.error) == (400,
                                           "Clustering is not supported by the fake LXD server")
    assert api.get("/1.0/cluster").metadata["enabled"] is False
