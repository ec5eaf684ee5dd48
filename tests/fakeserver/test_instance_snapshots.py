"""Instance snapshots: create, list, get, update, rename, delete and restore, on the fake and on
real LXD 5.0.2."""

from __future__ import annotations

from tests.imagefixtures import Events
from tests.instancefixtures import action, make, op_of
from tests.support import API

ZERO = "0001-01-01T00:00:00Z"
SNAPSHOT_KEYS = ["expires_at", "architecture", "config", "created_at", "devices", "ephemeral",
                 "expanded_config", "expanded_devices", "last_used_at", "name", "profiles",
                 "stateful", "size"]


def snap(api: API, name: str, body: dict | None = None) -> dict:
    return op_of(api, api.post(f"/1.0/instances/{name}/snapshots", body or {}))


def test_create_list_and_get(api: API) -> None:
    name = make(api, config={"user.a": "1"})
    base = f"/1.0/instances/{name}/snapshots"
    assert api.get(base).metadata == []
    reply = api.post(base, {})
    assert reply.status == 202
    assert reply.metadata["description"] == "Snapshotting instance"
    resources = {"containers": [f"/1.0/containers/{name}"],
                 "instances": [f"/1.0/instances/{name}"]}
    assert reply.metadata["resources"] == resources
    op = api.wait(reply)
    assert (op["status"], op["metadata"]) == ("Success", None)
    assert snap(api, name, {"name": "s2", "expires_at": "2030-01-01T00:00:00Z"})["status"] \
        == "Success"
    assert snap(api, name, {"name": ""})["status"] == "Success"
    assert api.get(base).metadata == [f"{base}/snap0", f"{base}/s2", f"{base}/snap1"]
    # Even under the /1.0/containers alias, 5.0.2 lists /1.0/instances URLs.
    assert api.get(f"/1.0/containers/{name}/snapshots").metadata[0] == f"{base}/snap0"
    reply = api.get(f"{base}/snap0")
    got = reply.metadata
    assert list(got) == SNAPSHOT_KEYS
    inst = api.get(f"/1.0/instances/{name}").metadata
    assert got["config"] == inst["config"] and got["config"]["user.a"] == "1"
    assert got["expanded_devices"] == inst["expanded_devices"]
    assert (got["name"], got["expires_at"], got["last_used_at"], got["size"],
            got["stateful"], got["profiles"]) == ("snap0", ZERO, ZERO, -1, False, ["default"])
    # Every snapshot without an expiry has the same ETag in LXD 5.0.2.
    assert reply.headers["ETag"].strip('"').startswith("2c86054b")
    assert api.get(f"{base}/s2").metadata["expires_at"] == "2030-01-01T00:00:00Z"
    listed = api.get(base, params={"recursion": 1}).metadata
    assert [s["name"] for s in listed] == ["snap0", "s2", "snap1"]
    full = api.get(f"/1.0/instances/{name}", params={"recursion": 1}).metadata
    assert [s["name"] for s in full["snapshots"]] == ["snap0", "s2", "snap1"]
    pool = api.get("/1.0/storage-pools/default").metadata["used_by"]
    assert f"/1.0/instances/{name}/snapshots/snap0" in pool


def test_create_errors(api: API) -> None:
    name = make(api)
    base = f"/1.0/instances/{name}/snapshots"
    assert snap(api, name, {"name": "snap0"})["status"] == "Success"
    op = snap(api, name, {"name": "snap0"})
    assert (op["status"], op["err"]) == (
        "Failure", 'Failed creating instance snapshot record "snap0": Add snapshot info to the '
                   'database: This "instances_snapshots" entry already exists')
    op = snap(api, name, {"name": "a b"})
    assert op["err"] == ('Failed creating instance snapshot record "a b": Invalid instance '
                         "snapshot name: Cannot contain space or / characters")
    op = snap(api, name, {"stateful": True})
    assert op["err"] == "Unable to create a stateful snapshot. The instance isn't running"
    reply = api.post(base, {"name": "a/b"})
    assert (reply.status, reply.error) == (400, 'Invalid snapshot name: Cannot contain "/"')
    reply = api.post(base, {"name": "x", "expires_at": "bogus"})
    assert (reply.status, reply.error) == (
        400, 'parsing time "\\"bogus\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse '
             '"bogus\\"" as "2006"')
    reply = api.get(f"{base}/nope")
    assert (reply.status, reply.error) == (
        404, f'Failed to fetch snapshot "nope" of instance "{name}" in project "default": '
             "InstanceSnapshot not found")
    assert api.delete(f"{base}/nope").status == 404
    assert api.post(f"{base}/nope", {"name": "zz"}).status == 404
    assert action(api, name, "start")["status"] == "Success"
    op = snap(api, name, {"stateful": True})
    assert op["err"] == "Unable to create a stateful snapshot. CRIU isn't installed"
    assert snap(api, name, {"name": "live"})["status"] == "Success"


def test_update_expiry(api: API) -> None:
    name = make(api)
    snap(api, name)
    path = f"/1.0/instances/{name}/snapshots/snap0"
    reply = api.put(path, {"expires_at": "2031-01-01T00:00:00Z"})
    op = op_of(api, reply)
    assert (op["description"], op["status"]) == ("Updating snapshot", "Success")
    # LXD 5.0.2 names the snapshot without its instance here.
    assert op["resources"] == {"containers": ["/1.0/containers/snap0"],
                               "instances": ["/1.0/instances/snap0"]}
    got = api.get(path)
    assert got.metadata["expires_at"] == "2031-01-01T00:00:00Z"
    etag = got.headers["ETag"].strip('"')
    assert op_of(api, api.patch(path, {}))["status"] == "Success"
    assert api.get(path).metadata["expires_at"] == "2031-01-01T00:00:00Z"
    reply = api.put(path, {}, headers={"If-Match": "bad"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {etag} vs bad")
    reply = api.put(path, {"expires_at": "bad"})
    assert reply.status == 400 and reply.error.startswith('parsing time "\\"bad\\""')


def test_rename_and_delete(api: API) -> None:
    name = make(api)
    base = f"/1.0/instances/{name}/snapshots"
    snap(api, name)
    snap(api, name, {"name": "s2"})
    events = Events(api)
    try:
        op = op_of(api, api.post(f"{base}/snap0", {"name": "renamed"}))
        assert (op["description"], op["status"]) == ("Renaming snapshot", "Success")
        assert op["resources"] == {"containers": [f"/1.0/containers/{name}"],
                                   "instances": [f"/1.0/instances/{name}"]}
        event = events.wait("instance-snapshot-renamed", f"{base}/renamed")["metadata"]
        assert event["context"] == {"old_name": f"{name}/snap0"}
        assert api.get(base).metadata == [f"{base}/renamed", f"{base}/s2"]
        reply = api.post(f"{base}/renamed", {"name": "s2"})
        assert (reply.status, reply.error) == (409, f"Name '{name}/s2' already in use")
        reply = api.post(f"{base}/renamed", {"name": "a/b"})
        assert (reply.status, reply.error) == (400, 'Invalid snapshot name: Cannot contain "/"')
        op = op_of(api, api.delete(f"{base}/renamed"))
        assert (op["description"], op["status"]) == ("Deleting snapshot", "Success")
        assert op["resources"] == {"containers": [f"/1.0/containers/{name}/renamed"],
                                   "instances": [f"/1.0/instances/{name}/renamed"]}
        events.wait("instance-snapshot-deleted", f"{base}/renamed")
        assert api.get(base).metadata == [f"{base}/s2"]
        # The next automatic name counts on from the highest snapN ever seen in the list.
        assert snap(api, name)["status"] == "Success"
        assert api.get(base).metadata == [f"{base}/s2", f"{base}/snap0"]
    finally:
        events.close()


def test_restore(api: API) -> None:
    name = make(api, config={"user.v": "1"})
    snap(api, name, {"name": "s1"})
    path = f"/1.0/instances/{name}"
    assert api.patch(path, {"config": {"user.v": "2", "user.new": "x"}}).status == 200
    events = Events(api)
    try:
        op = op_of(api, api.put(path, {"restore": "s1"}))
        assert (op["description"], op["status"]) == ("Restoring snapshot", "Success")
        assert op["resources"] == {"containers": [f"/1.0/containers/{name}"],
                                   "instances": [f"/1.0/instances/{name}"]}
        event = events.wait("instance-restored", path)["metadata"]
        assert event["context"] == {"snapshot": f"{name}/s1"}
    finally:
        events.close()
    config = api.get(path).metadata["config"]
    assert config["user.v"] == "1" and "user.new" not in config
    op = op_of(api, api.put(path, {"restore": "nope"}))
    assert (op["description"], op["status"], op["err"]) == (
        "Restoring snapshot", "Failure", f"Snapshot {name}/nope does not exist")


def test_snapshot_events(api: API) -> None:
    name = make(api)
    events = Events(api)
    try:
        snap(api, name)
        meta = events.wait("instance-snapshot-created",
                           f"/1.0/instances/{name}/snapshots/snap0")["metadata"]
        assert "requestor" not in meta and "context" not in meta
    finally:
        events.close()
