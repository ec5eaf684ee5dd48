"""Storage volumes and volume snapshots: the same answers on the fake and on real LXD 5.0.2.

Every test works in a ``dir`` pool it creates (unique name, deleted afterwards), so pool-wide
listings only show the test's own volumes even on a shared real host.
"""

from __future__ import annotations

import datetime
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, unix_connect

from fakeserver.responses import etag_of
from tests.support import API, unique

POOLS = "/1.0/storage-pools"
ZERO = "0001-01-01T00:00:00Z"


def make_pool(api: API, **config: str) -> str:
    name = unique("sv")
    api.delete_later(f"{POOLS}/{name}")
    reply = api.post(POOLS, {"name": name, "driver": "dir", "config": config})
    assert reply.status == 201, reply
    return name


def make_volume(api: API, pool: str, name: str | None = None,
                project: str | None = None, **body: Any) -> str:
    name = name or unique("v")
    params = {"project": project} if project else None
    path = f"{POOLS}/{pool}/volumes/custom/{urllib.parse.quote(name)}"
    api.later(lambda: api.delete(path, params=params))
    reply = api.post(f"{POOLS}/{pool}/volumes/custom", {"name": name, **body}, params=params)
    assert reply.status == 200, reply
    return name


def make_profile(api: API, devices: dict[str, Any], project: str | None = None) -> str:
    name = unique("svp")
    params = {"project": project} if project else None
    reply = api.post("/1.0/profiles", {"name": name, "devices": devices}, params=params)
    assert reply.status == 201, reply
    api.later(lambda: api.delete(f"/1.0/profiles/{name}", params=params))
    return name


def make_project(api: API, **config: str) -> str:
    name = unique("svj")
    reply = api.post("/1.0/projects", {"name": name, "config": config})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{name}")
    return name


def quoted(etag: str) -> str:
    return f'"{etag}"'


def disk(pool: str, volume: str) -> dict[str, dict[str, str]]:
    return {"d": {"type": "disk", "pool": pool, "source": volume, "path": "/mnt"}}


def snapshot(api: API, path: str, body: dict[str, Any] | None = None,
             params: dict[str, str] | None = None) -> dict[str, Any]:
    """POST a snapshot; return the finished operation."""
    reply = api.post(f"{path}/snapshots", body or {}, params=params)
    assert reply.status == 202, reply
    return api.wait(reply)


@contextmanager
def events(api: API) -> Iterator[ClientConnection]:
    path = urllib.parse.unquote(api.base[len("http+unix://"):])
    with unix_connect(path, "ws://localhost/1.0/events?type=lifecycle&all-projects=true",
                      open_timeout=10, close_timeout=2) as ws:
        yield ws


def lifecycle(ws: ClientConnection, wanted: Callable[[dict[str, Any]], bool], count: int,
              timeout: float = 10.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {found} arrived"
        event = json.loads(ws.recv(timeout=left))
        if wanted(event["metadata"]):
            found.append(event)
    return found


# -- creating and reading -----------------------------------------------------------------------
def test_create_answers_200_empty_and_get_shape(api: API) -> None:
    pool = make_pool(api)
    api.delete_later(f"{POOLS}/{pool}/volumes/custom/v1")
    reply = api.post(f"{POOLS}/{pool}/volumes/custom",
                     {"name": "v1", "description": "dd", "config": {"user.a": "1", "size": "1GB"}})
    assert (reply.status, reply.body["metadata"]) == (200, {})
    assert "Location" not in reply.headers
    got = api.get(f"{POOLS}/{pool}/volumes/custom/v1")
    assert list(got.metadata) == ["config", "description", "name", "type", "used_by",
                                  "location", "content_type", "project", "created_at"]
    assert got.metadata == {"config": {"size": "1GB", "user.a": "1"}, "description": "dd",
                            "name": "v1", "type": "custom", "used_by": [], "location": "none",
                            "content_type": "filesystem", "project": "default",
                            "created_at": ZERO}
    assert got.headers["ETag"] == quoted(etag_of(["v1", "custom",
                                                    {"size": "1GB", "user.a": "1"}]))
    assert api.get(f"{POOLS}/{pool}/volumes/custom/v1",
                   params={"recursion": "1"}).metadata == got.metadata


def test_list_by_type_and_recursion(api: API) -> None:
    pool = make_pool(api)
    for name in ("b", "a", "c"):
        make_volume(api, pool, name)
    block = make_volume(api, pool, "blk", content_type="block")
    base = f"{POOLS}/{pool}/volumes"
    urls = [f"{base}/custom/{n}" for n in ("a", "b", block, "c")]
    assert api.get(base).metadata == urls
    assert api.get(f"{base}/custom").metadata == urls
    for vtype in ("container", "virtual-machine", "image"):
        assert api.get(f"{base}/{vtype}").metadata == []
    objs = api.get(base, params={"recursion": "1"}).metadata
    assert [o["name"] for o in objs] == ["a", "b", "blk", "c"]
    assert objs[2]["content_type"] == "block"
    for bad in ("bogus", "containers", "volumes"):
        reply = api.get(f"{base}/{bad}")
        assert (reply.status, reply.error) == (400, "Invalid storage volume type name")


def test_names_are_escaped_twice_in_urls(api: API) -> None:
    pool = make_pool(api)
    make_volume(api, pool, "a b")
    base = f"{POOLS}/{pool}/volumes/custom"
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == [f"{base}/a%2520b"]
    assert api.get(f"{POOLS}/{pool}").metadata["used_by"] == [f"{base}/a%2520b"]
    assert api.get(f"{base}/a%20b").metadata["name"] == "a b"
    assert api.get(f"{base}/a%2520b").status == 404


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/volumes", {"name": "x"}, 400,
     "You must provide a storage volume type of the storage volume"),
    ("/volumes", {"name": "x", "type": "container"}, 400,
     'Currently not allowed to create storage volumes of type "container"'),
    ("/volumes", {"name": "x", "type": "bogus"}, 400,
     'Currently not allowed to create storage volumes of type "bogus"'),
    ("/volumes/container", {"name": "x"}, 400,
     'Currently not allowed to create storage volumes of type "container"'),
    ("/volumes/image", {"name": "x"}, 400,
     'Currently not allowed to create storage volumes of type "image"'),
    ("/volumes/bogus", {"name": "x"}, 400,
     'Currently not allowed to create storage volumes of type "bogus"'),
    ("/volumes/custom", {"name": ""}, 400, "No name provided"),
    ("/volumes/custom", {"name": "", "content_type": "bogus"}, 400, "No name provided"),
    ("/volumes/custom", {"name": "a/b"}, 400, "Storage volume names may not contain slashes"),
    ("/volumes/custom", {"name": "x", "content_type": "bogus", "config": {"foo": "1"}}, 400,
     "Invalid volume content type name"),
    ("/volumes/custom", {"name": "x", "config": {"foo": 1}}, 400,
     "json: cannot unmarshal number into Go struct field StorageVolumesPost.config of type "
     "string"),
])
def test_create_errors(api: API, path: str, body: dict[str, Any], status: int,
                       message: str) -> None:
    pool = make_pool(api)
    reply = api.post(f"{POOLS}/{pool}{path}", body)
    assert (reply.status, reply.error) == (status, message)
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == []


def test_url_type_wins_and_duplicates_conflict(api: API) -> None:
    pool = make_pool(api)
    make_volume(api, pool, "v", type="container")
    assert api.get(f"{POOLS}/{pool}/volumes/custom/v").metadata["type"] == "custom"
    make_volume(api, pool, "w", type="custom")  # POST /volumes/custom with a body type
    reply = api.post(f"{POOLS}/{pool}/volumes", {"name": "v", "type": "custom"})
    assert (reply.status, reply.error) == (409, "Volume by that name already exists")
    reply = api.post(f"{POOLS}/{pool}/volumes/custom", {"name": "v", "config": {"foo": "1"}})
    assert reply.status == 409


def test_missing_pool_project_and_target(api: API) -> None:
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes"
    reply = api.get(f"{POOLS}/nope/volumes")
    assert (reply.status, reply.error) == (404, "Storage pool not found")
    reply = api.post(f"{POOLS}/nope/volumes/custom", {"name": "x"})
    assert (reply.status, reply.error) == (404, "Storage pool not found")
    for path in (base, f"{base}/custom"):
        reply = api.get(path, params={"project": "nope"})
        assert (reply.status, reply.error) == (404, "Project not found")
        reply = api.get(path, params={"target": "elsewhere"})
        assert (reply.status, reply.error) == (404, "Cluster member not found")
    load = 'Failed to load project "nope": Project not found'
    reply = api.post(f"{POOLS}/nope/volumes/custom", {"name": "x"}, params={"project": "nope"})
    assert (reply.status, reply.error) == (404, load)
    reply = api.get(f"{base}/custom/x", params={"project": "nope"})
    assert (reply.status, reply.error) == (404, load)
    reply = api.post(f"{base}/custom", {"name": "x"}, params={"target": "elsewhere"})
    assert (reply.status, reply.error) == (404, "Cluster member not found")
    reply = api.request("POST", f"{POOLS}/nope/volumes/custom", data=b"{")
    assert (reply.status, reply.error) == (400, "unexpected EOF")
    for path, message in [(f"{base}/custom/x", "Storage pool volume not found"),
                          (f"{base}/container/x", "Storage pool volume not found"),
                          (f"{POOLS}/nope/volumes/custom/x", "Storage pool not found")]:
        reply = api.get(path)
        assert (reply.status, reply.error) == (404, message), path
    reply = api.get(f"{base}/bogus/x")
    assert (reply.status, reply.error) == (400, "Invalid storage volume type name")
    name = make_volume(api, pool)
    snapshot(api, f"{base}/custom/{name}")
    away = {"target": "elsewhere"}
    for method, path in [("GET", f"{base}/custom/{name}"), ("PUT", f"{base}/custom/{name}"),
                         ("DELETE", f"{base}/custom/{name}"), ("POST", f"{base}/custom/{name}"),
                         ("GET", f"{base}/custom/{name}/snapshots/snap0")]:
        reply = api.request(method, path, params=away, json_body={"name": "zz"})
        assert (reply.status, reply.error) == (404, "Cluster member not found"), (method, path)
    # The snapshot list and /state do not look at ?target=.
    assert api.get(f"{base}/custom/{name}/snapshots", params=away).status == 200
    assert api.get(f"{base}/custom/{name}/state", params=away).error == "Not supported"


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "content_type", "message"), [
    ({"foo": "1"}, "", 'Invalid option for volume "default_NAME" option "foo"'),
    ({"volatile.x": "1"}, "", 'Invalid option for volume "default_NAME" option "volatile.x"'),
    ({"block.filesystem": "ext4"}, "",
     'Invalid option for volume "default_NAME" option "block.filesystem"'),
    ({"zfs.use_refquota": "true"}, "",
     'Invalid option for volume "default_NAME" option "zfs.use_refquota"'),
    ({"security.shifted": "true"}, "block",
     'Invalid option for volume "default_NAME" option "security.shifted"'),
    ({"size": "abc"}, "", 'Invalid value for volume "default_NAME" option "size": '
                          "Invalid value: abc"),
    ({"size": "1 GB"}, "", 'Invalid value for volume "default_NAME" option "size": '
                           "Invalid value: 1 GB"),
    ({"size": "1KB"}, "", 'Invalid value for volume "default_NAME" option "size": '
                          "Invalid value: 1KB"),
    ({"size": "-1"}, "", 'Invalid value for volume "default_NAME" option "size": '
                         "Invalid value: -1"),
    ({"security.shifted": "maybe"}, "", 'Invalid value for volume "default_NAME" option '
                                        '"security.shifted": Invalid value for a boolean "maybe"'),
    ({"snapshots.expiry": "1d2d"}, "", 'Invalid value for volume "default_NAME" option '
                                       '"snapshots.expiry": Invalid expiry expression'),
    ({"snapshots.schedule": "@bogus"}, "",
     'Invalid value for volume "default_NAME" option "snapshots.schedule": Schedule must be of '
     "the form: <minute> <hour> <day-of-month> <month> <day-of-week>"),
    ({"snapshots.schedule": "61 * * * *"}, "",
     'Invalid value for volume "default_NAME" option "snapshots.schedule": Error parsing '
     "schedule: end of range (61) above maximum (59): 61"),
])
def test_config_rejected_with_internal_name(api: API, config: dict[str, str],
                                            content_type: str, message: str) -> None:
    """LXD names the volume ``<project>_<name>`` in these 500s."""
    pool = make_pool(api)
    name = unique("v")
    api.delete_later(f"{POOLS}/{pool}/volumes/custom/{name}")
    reply = api.post(f"{POOLS}/{pool}/volumes/custom",
                     {"name": name, "config": config, "content_type": content_type})
    assert (reply.status, reply.error) == (500, message.replace("NAME", name))


def test_config_accepted(api: API) -> None:
    pool = make_pool(api)
    config = {"size": "10", "user.x": "1", "user.": "2", "security.shifted": "true",
              "security.unmapped": "yes", "snapshots.expiry": "1M 2H 3d 4w 5m 6y",
              "snapshots.schedule": "@hourly, 0 6 * * *", "snapshots.pattern": "s%d",
              "volatile.idmap.last": "[]", "volatile.idmap.next": "[]"}
    name = make_volume(api, pool, config=config)
    got = api.get(f"{POOLS}/{pool}/volumes/custom/{name}").metadata["config"]
    assert got == config
    for size in ("1GiB", "1kB", "1EiB", "1B", "0"):
        make_volume(api, pool, config={"size": size})
    empty = make_volume(api, pool, config={"size": ""})
    assert api.get(f"{POOLS}/{pool}/volumes/custom/{empty}").metadata["config"] == {}


def test_pool_volume_defaults_fill_new_volumes(api: API) -> None:
    pool = make_pool(api, **{"volume.size": "2GB", "volume.security.shifted": "true",
                             "volume.snapshots.expiry": "1d"})
    base = f"{POOLS}/{pool}/volumes/custom"
    fs = make_volume(api, pool)
    assert api.get(f"{base}/{fs}").metadata["config"] == {
        "security.shifted": "true", "size": "2GB", "snapshots.expiry": "1d"}
    blk = make_volume(api, pool, content_type="block")
    assert api.get(f"{base}/{blk}").metadata["config"] == {"size": "2GB",
                                                           "snapshots.expiry": "1d"}
    own = make_volume(api, pool, config={"size": "5GB"})
    assert api.get(f"{base}/{own}").metadata["config"]["size"] == "5GB"


# -- updating -----------------------------------------------------------------------------------
def test_put_replaces_patch_merges(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool, description="d", config={"size": "1GB"})
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    assert api.put(path, {"config": {"user.a": "1"}, "description": "put"}).body == {
        "type": "sync", "status": "Success", "status_code": 200, "operation": "",
        "error_code": 0, "error": "", "metadata": {}}
    got = api.get(path).metadata
    assert (got["config"], got["description"]) == ({"user.a": "1"}, "put")
    assert api.patch(path, {"config": {"user.b": "2"}}).status == 200
    got = api.get(path).metadata
    assert (got["config"], got["description"]) == ({"user.a": "1", "user.b": "2"}, "")
    assert api.patch(path, {"config": {"user.b": ""}, "description": "pp"}).status == 200
    got = api.get(path).metadata
    assert (got["config"], got["description"]) == ({"user.a": "1"}, "pp")
    etag = api.get(path).headers["ETag"]
    assert api.patch(path, {}).status == 200
    assert api.get(path).headers["ETag"] == etag  # the ETag ignores the description


def test_update_errors(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    reply = api.put(path, {"config": {"foo": "1"}})
    assert (reply.status, reply.error) == (
        500, f'Invalid option for volume "default_{name}" option "foo"')
    reply = api.patch(path, {"config": {"size": "abc"}})
    assert (reply.status, reply.error) == (
        500, f'Invalid value for volume "default_{name}" option "size": Invalid value: abc')
    current = etag_of([name, "custom", {}])
    reply = api.put(path, {"config": {"user.a": "1"}}, headers={"If-Match": "x"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {current} vs x")
    assert api.put(path, {"config": {"user.a": "1"}},
                   headers={"If-Match": f'"{current}"'}).status == 200
    for bad_path, status, message in [
            (f"{POOLS}/{pool}/volumes/custom/nope", 404, "Storage pool volume not found"),
            (f"{POOLS}/{pool}/volumes/bogus/{name}", 400, "Invalid storage volume type name"),
            (f"{POOLS}/nope/volumes/custom/{name}", 404, "Storage pool not found")]:
        for method in ("PUT", "PATCH"):
            reply = api.request(method, bad_path, json_body={"config": {}})
            assert (reply.status, reply.error) == (status, message), (method, bad_path)
    # PUT looks the volume up; PATCH refuses any type but custom first.
    reply = api.put(f"{POOLS}/{pool}/volumes/container/{name}", {"config": {}})
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    for vtype in ("container", "virtual-machine", "image"):
        reply = api.patch(f"{POOLS}/{pool}/volumes/{vtype}/{name}", {"config": {}})
        assert (reply.status, reply.error) == (400, f'Invalid storage volume type "{vtype}"')
    reply = api.put(path, {"config": {"user.a": 1}})
    assert (reply.status, reply.error) == (
        400, "json: cannot unmarshal number into Go struct field StorageVolumePut.config of "
             "type string")


def test_restore_from_snapshot(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool, config={"user.a": "1"})
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    snapshot(api, path)
    assert api.patch(path, {"config": {"user.b": "2"}, "description": "changed"}).status == 200
    assert api.put(path, {"restore": "snap0"}).body["metadata"] == {}
    got = api.get(path).metadata  # restoring brings back the data, not the config
    assert (got["config"], got["description"]) == ({"user.a": "1", "user.b": "2"}, "changed")
    reply = api.put(path, {"restore": "nope"})
    assert (reply.status, reply.error) == (500, "Snapshot not found")


# -- renaming, moving, copying --------------------------------------------------------------------
def test_rename(api: API) -> None:
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes/custom"
    name = make_volume(api, pool, config={"user.a": "1"})
    other = make_volume(api, pool)
    snapshot(api, f"{base}/{name}")
    api.later(lambda: api.delete(f"{base}/x%20y"))
    reply = api.post(f"{base}/{name}", {"name": "x y"})
    assert (reply.status, reply.body["metadata"]) == (201, None)
    assert reply.headers["Location"] == f"{base}/x%2520y"
    assert api.get(f"{base}/{name}").status == 404
    assert api.get(f"{base}/x%20y").metadata["config"] == {"user.a": "1"}
    # The snapshot list is the one list that leaves names unescaped.
    assert api.get(f"{base}/x%20y/snapshots").metadata == [f"{base}/x y/snapshots/snap0"]
    for body, status, message in [
            ({"name": other}, 409, "Volume by that name already exists"),
            ({"name": "x y"}, 409, "Volume by that name already exists"),
            ({"name": ""}, 400, "No name provided"), ({}, 400, "No name provided"),
            ({"name": "a/b"}, 400, "Storage volume names may not contain slashes")]:
        reply = api.post(f"{base}/x%20y", body)
        assert (reply.status, reply.error) == (status, message), body
    reply = api.post(f"{base}/nope", {"name": "zz"})
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    reply = api.post(f"{POOLS}/nope/volumes/custom/{other}", {"name": "zz"})
    assert (reply.status, reply.error) == (404, "Storage pool not found")
    for vtype in ("container", "bogus"):
        reply = api.post(f"{POOLS}/{pool}/volumes/{vtype}/{other}", {"name": "zz"})
        assert (reply.status, reply.error) == (
            400, f'Renaming storage volumes of type "{vtype}" is not allowed')
    # Naming the current pool is a plain rename.
    api.later(lambda: api.delete(f"{base}/back"))
    reply = api.post(f"{base}/x%20y", {"name": "back", "pool": pool})
    assert (reply.status, reply.headers["Location"]) == (201, f"{base}/back")


def test_rename_follows_into_profiles(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    base = f"{POOLS}/{pool}/volumes/custom"
    api.later(lambda: api.delete(f"{base}/{name}r"))  # runs after the profile is gone
    profile = make_profile(api, disk(pool, name))
    assert api.post(f"{base}/{name}", {"name": f"{name}r"}).status == 201
    device = api.get(f"/1.0/profiles/{profile}").metadata["devices"]["d"]
    assert device["source"] == f"{name}r"
    assert api.get(f"{base}/{name}r").metadata["used_by"] == [f"/1.0/profiles/{profile}"]


def test_move_to_another_pool(api: API) -> None:
    pool, dest = make_pool(api), make_pool(api)
    name = make_volume(api, pool, config={"user.a": "1"})
    snapshot(api, f"{POOLS}/{pool}/volumes/custom/{name}")
    api.later(lambda: api.delete(f"{POOLS}/{dest}/volumes/custom/{name}m"))
    reply = api.post(f"{POOLS}/{pool}/volumes/custom/{name}", {"name": f"{name}m", "pool": dest})
    assert reply.status == 202
    op = api.wait(reply)
    assert (op["description"], op["status"], op["resources"]) == (
        "Moving storage volume", "Success", None)
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == []
    moved = api.get(f"{POOLS}/{dest}/volumes/custom/{name}m").metadata
    assert moved["config"] == {"user.a": "1"}


def test_move_to_another_project(api: API) -> None:
    pool = make_pool(api)
    project = make_project(api, **{"features.storage.volumes": "true"})
    name = make_volume(api, pool)
    base = f"{POOLS}/{pool}/volumes/custom"
    snapshot(api, f"{base}/{name}")
    # LXD 5.0.2 takes the body's pool as is: a project move without one finds no pool.
    reply = api.post(f"{base}/{name}", {"name": name, "project": project})
    assert (reply.status, reply.error) == (404, "Storage pool not found")
    reply = api.post(f"{base}/nope", {"name": "x", "pool": "nope"})
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    op = api.wait(api.post(f"{base}/{name}", {"name": "x", "project": "nope", "pool": pool}))
    assert (op["status"], op["err"]) == (
        "Failure", f'Error inserting volume "x" for project "nope" in pool "{pool}" of type '
                   '"custom" into database "NOT NULL constraint failed: '
                   'storage_volumes.project_id"')
    params = {"project": project}
    api.later(lambda: api.delete(f"{base}/{name}m", params=params))
    with events(api) as ws:
        reply = api.post(f"{base}/{name}", {"name": f"{name}m", "project": project,
                                             "pool": pool})
        assert reply.status == 202
        op = api.wait(reply)
        got = lifecycle(ws, lambda m: name in m["source"], 3)
    assert (op["description"], op["status"]) == ("Moving storage volume", "Success")
    assert [o["name"] for o in api.get(f"{base}", params={**params, "recursion": "1"})
            .metadata] == [f"{name}m", f"{name}m/snap0"]
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == []
    assert [(e["metadata"]["action"], e["metadata"]["source"], e["project"]) for e in got] == [
        ("storage-volume-created", f"{base}/{project}_{name}m?project={project}", project),
        ("storage-volume-snapshot-deleted", f"{base}/default_{name}/snapshots/snap0",
         "default"),
        ("storage-volume-deleted", f"{base}/default_{name}", "default")]


def test_copy(api: API) -> None:
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes/custom"
    name = make_volume(api, pool, description="orig", config={"user.a": "1"})
    snapshot(api, f"{base}/{name}")
    copies = {}
    for suffix, volume_only in (("c1", False), ("c2", True)):
        target = f"{name}{suffix}"
        api.delete_later(f"{base}/{target}")
        reply = api.post(base, {"name": target, "source": {"type": "copy", "pool": pool,
                                                           "name": name,
                                                           "volume_only": volume_only}})
        assert reply.status == 202
        op = api.wait(reply)
        assert (op["description"], op["status"], op["resources"]) == (
            "Copying storage volume", "Success", None)
        copies[suffix] = target
    got = api.get(f"{base}/{copies['c1']}").metadata
    assert (got["config"], got["description"]) == ({"user.a": "1"}, "orig")
    assert api.get(f"{base}/{copies['c1']}/snapshots").metadata == [
        f"{base}/{copies['c1']}/snapshots/snap0"]
    assert api.get(f"{base}/{copies['c2']}/snapshots").metadata == []
    reply = api.post(base, {"name": name, "source": {"type": "copy", "pool": pool,
                                                     "name": name}})
    assert (reply.status, reply.error) == (409, "Volume by that name already exists")
    reply = api.post(base, {"name": "x", "source": {"type": "bogus"}})
    assert (reply.status, reply.error) == (400, 'Unknown source type "bogus"')
    for source, err in [
            ({"pool": pool, "name": "nope"},
             f'Failed generating volume copy config: Storage volume "nope" in project '
             f'"default" of type "custom" does not exist on pool "{pool}": Storage volume not '
             "found"),
            ({"pool": "nope", "name": name}, "Storage pool not found"),
            ({"name": name}, "Storage pool not found")]:  # the source pool is not implied
        target = unique("c")
        api.delete_later(f"{base}/{target}")
        op = api.wait(api.post(base, {"name": target, "source": {"type": "copy", **source}}))
        assert (op["status"], op["err"]) == ("Failure", err), source


# -- deleting, used_by, state ---------------------------------------------------------------------
def test_delete_and_in_use(api: API) -> None:
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes/custom"
    name = make_volume(api, pool)
    profile = make_profile(api, disk(pool, name))
    assert api.get(f"{base}/{name}").metadata["used_by"] == [f"/1.0/profiles/{profile}"]
    listed = api.get(f"{POOLS}/{pool}/volumes", params={"recursion": "1"}).metadata
    assert listed[0]["used_by"] == [f"/1.0/profiles/{profile}"]
    reply = api.delete(f"{base}/{name}")
    assert (reply.status, reply.error) == (400, "The storage volume is still in use")
    assert api.delete(f"/1.0/profiles/{profile}").status == 200
    snapshot(api, f"{base}/{name}")
    assert api.delete(f"{base}/{name}").body["metadata"] == {}
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == []
    for path, status, message in [
            (f"{base}/{name}", 404, "Storage pool volume not found"),
            (f"{POOLS}/{pool}/volumes/container/{name}", 404, "Storage pool volume not found"),
            (f"{POOLS}/{pool}/volumes/bogus/{name}", 400, "Invalid storage volume type name")]:
        reply = api.delete(path)
        assert (reply.status, reply.error) == (status, message), path


def test_state_is_not_supported_on_dir(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    base = f"{POOLS}/{pool}/volumes"
    reply = api.get(f"{base}/custom/{name}/state")
    assert (reply.status, reply.error) == (500, "Not supported")
    reply = api.get(f"{base}/custom/nope/state")
    assert (reply.status, reply.error) == (
        404, f'Storage volume "nope" in project "default" of type "custom" does not exist on '
             f'pool "{pool}": Storage volume not found')
    reply = api.get(f"{base}/container/nope/state")
    assert (reply.status, reply.error) == (404, "Instance not found")


# -- projects -----------------------------------------------------------------------------------
def test_project_with_its_own_volumes(api: API) -> None:
    pool = make_pool(api)
    project = make_project(api, **{"features.storage.volumes": "true",
                                   "features.profiles": "true"})
    params = {"project": project}
    name = make_volume(api, pool, project=project)
    base = f"{POOLS}/{pool}/volumes"
    assert api.get(base, params=params).metadata == [
        f"{base}/custom/{name}?project={project}"]
    assert api.get(base).metadata == []
    got = api.get(f"{base}/custom/{name}", params=params).metadata
    assert got["project"] == project
    assert api.get(f"{base}/custom/{name}").status == 404
    reply = api.post(f"{base}/custom", {"name": "bad", "config": {"foo": "1"}}, params=params)
    assert (reply.status, reply.error) == (
        500, f'Invalid option for volume "{project}_bad" option "foo"')
    make_volume(api, pool, name)  # the same name is free in the default project
    api.later(lambda: api.delete(f"{base}/custom/{name}r", params=params))
    profile = make_profile(api, disk(pool, name), project=project)
    assert api.get(f"{base}/custom/{name}", params=params).metadata["used_by"] == [
        f"/1.0/profiles/{profile}?project={project}"]
    assert api.get(f"{base}/custom/{name}").metadata["used_by"] == []
    reply = api.post(f"{base}/custom/{name}", {"name": f"{name}r"}, params=params)
    assert reply.headers["Location"] == f"{base}/custom/{name}r?project={project}"
    snapshot(api, f"{base}/custom/{name}r", params=params)
    # The snapshot list has no ?project= suffix; the volume list does.
    assert api.get(f"{base}/custom/{name}r/snapshots", params=params).metadata == [
        f"{base}/custom/{name}r/snapshots/snap0"]
    assert api.get(base, params=params).metadata == [
        f"{base}/custom/{name}r?project={project}",
        f"{base}/custom/{name}r/snapshots/snap0?project={project}"]


def test_project_without_volumes_uses_default(api: API) -> None:
    """Volumes land in the default project; used_by only looks at the requested project."""
    pool = make_pool(api)
    project = make_project(api, **{"features.storage.volumes": "false",
                                   "features.profiles": "false"})
    params = {"project": project}
    name = make_volume(api, pool, project=project)
    base = f"{POOLS}/{pool}/volumes"
    assert api.get(base, params=params).metadata == [f"{base}/custom/{name}"]
    assert api.get(base).metadata == [f"{base}/custom/{name}"]
    assert api.get(f"{base}/custom/{name}", params=params).metadata["project"] == "default"
    profile = make_profile(api, disk(pool, name))
    assert api.get(f"{base}/custom/{name}").metadata["used_by"] == [f"/1.0/profiles/{profile}"]
    assert api.get(f"{base}/custom/{name}", params=params).metadata["used_by"] == []
    reply = api.post(f"{base}/custom", {"name": "bad", "config": {"foo": "1"}}, params=params)
    assert reply.error == 'Invalid option for volume "default_bad" option "foo"'


# -- snapshots ------------------------------------------------------------------------------------
def test_snapshot_operations_and_names(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    reply = api.post(f"{path}/snapshots", {})
    assert reply.status == 202
    started = reply.body["metadata"]
    assert (started["description"], started["resources"], started["may_cancel"]) == (
        "Creating storage volume snapshot", {"storage_volumes": [f"/1.0/storage_volumes/{name}"]},
        False)
    assert api.wait(reply)["status"] == "Success"
    snapshot(api, path, {"name": "mysnap"})
    snapshot(api, path, {"name": ""})
    assert api.get(f"{path}/snapshots").metadata == [
        f"{path}/snapshots/{s}" for s in ("snap0", "mysnap", "snap1")]  # creation order
    reply = api.post(f"{path}/snapshots", {"name": "mysnap"})
    assert (reply.status, reply.error) == (409, 'Snapshot "mysnap" already in use')
    for bad, message in [("a/b", 'Storage name cannot contain "/"'),
                         ("a b", "Storage name cannot contain white space")]:
        reply = api.post(f"{path}/snapshots", {"name": bad})
        assert (reply.status, reply.error) == (400, message)
    reply = api.post(f"{POOLS}/{pool}/volumes/custom/nope/snapshots", {})
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    reply = api.post(f"{POOLS}/{pool}/volumes/container/{name}/snapshots", {})
    assert (reply.status, reply.error) == (400, 'Invalid storage volume type "container"')


def test_snapshot_names_ignore_the_pattern(api: API) -> None:
    """LXD 5.0.2 names volume snapshots snap<N> (highest + 1) whatever snapshots.pattern says."""
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes/custom"
    names = {}
    for pattern in ("s%d", "fixed"):
        name = make_volume(api, pool, config={"snapshots.pattern": pattern})
        for _ in range(2):
            snapshot(api, f"{base}/{name}")
        names[pattern] = name
    for name in names.values():
        assert [u.rsplit("/", 1)[1] for u in api.get(f"{base}/{name}/snapshots").metadata] == [
            "snap0", "snap1"]
    path = f"{base}/{names['fixed']}"
    api.wait(api.delete(f"{path}/snapshots/snap0"))
    snapshot(api, path)
    assert [u.rsplit("/", 1)[1] for u in api.get(f"{path}/snapshots").metadata] == [
        "snap1", "snap2"]


def test_names_with_spaces_in_snapshot_urls(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool, "x y")
    raw = f"{POOLS}/{pool}/volumes/custom/x y"
    snapshot(api, f"{POOLS}/{pool}/volumes/custom/x%20y", {"name": "s1"})
    op = api.wait(api.post(f"{POOLS}/{pool}/volumes/custom/x%20y/snapshots/s1", {"name": "s 2"}))
    assert op["resources"] == {
        "storage_volume_snapshots": [f"/1.0/storage_volume_snapshots/{name}"]}
    assert api.get(f"{POOLS}/{pool}/volumes/custom/x%20y/snapshots").metadata == [
        f"{raw}/snapshots/s 2"]
    escaped = f"{POOLS}/{pool}/volumes/custom/x%2520y"
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == [escaped,
                                                           f"{escaped}/snapshots/s%25202"]


def test_snapshot_shapes_differ_between_list_and_get(api: API) -> None:
    pool = make_pool(api, **{"volume.size": "2GB"})
    name = make_volume(api, pool, config={"size": ""}, content_type="filesystem")
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    assert api.put(path, {"config": {"user.a": "1"}}).status == 200
    snapshot(api, path)
    snapshot(api, path, {"name": "exp", "expires_at": "2030-01-01T00:00:00Z"})
    listed = api.get(f"{path}/snapshots", params={"recursion": "1"}).metadata
    # Snapshots take the volume's config plus the pool's volume.* defaults.
    config = {"size": "2GB", "user.a": "1"}
    assert listed == [
        {"description": "", "expires_at": None, "name": f"{name}/snap0", "config": config,
         "content_type": "", "created_at": ZERO},
        {"description": "", "expires_at": "2030-01-01T00:00:00Z", "name": f"{name}/exp",
         "config": config, "content_type": "", "created_at": ZERO}]
    got = api.get(f"{path}/snapshots/snap0")
    assert got.metadata == {"description": "", "expires_at": ZERO, "name": "snap0",
                            "config": config, "content_type": "filesystem", "created_at": ZERO}
    assert got.headers["ETag"] == quoted(etag_of(["", ZERO]))
    reply = api.get(f"{path}/snapshots/nope")
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    # Every volume list shows snapshots as volumes named vol/snap, sorted by name.
    objs = api.get(f"{POOLS}/{pool}/volumes", params={"recursion": "1"}).metadata
    assert [o["name"] for o in objs] == [name, f"{name}/exp", f"{name}/snap0"]
    assert objs[1]["config"] == config and objs[1]["used_by"] == []
    assert api.get(f"{POOLS}/{pool}/volumes").metadata == [
        path, f"{path}/snapshots/exp", f"{path}/snapshots/snap0"]
    assert api.get(f"{POOLS}/{pool}").metadata["used_by"] == [
        path, f"{path}/snapshots/exp", f"{path}/snapshots/snap0"]
    # …and GET …/volumes/custom/vol%2Fsnap serves one of them as a volume.
    as_volume = api.get(f"{path}%2Fsnap0")
    assert as_volume.metadata["name"] == f"{name}/snap0"
    assert as_volume.headers["ETag"] == quoted(etag_of([f"{name}/snap0", "custom", config]))
    assert api.get(f"{POOLS}/{pool}/volumes/custom/nope/snapshots").metadata == []
    reply = api.get(f"{POOLS}/{pool}/volumes/bogus/{name}/snapshots")
    assert (reply.status, reply.error) == (400, "Invalid storage volume type name")
    reply = api.get(f"{POOLS}/nope/volumes/custom/{name}/snapshots")
    assert (reply.status, reply.error) == (404, "Storage pool not found")


def test_snapshot_expiry(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool, config={"snapshots.expiry": "1d"})
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    snapshot(api, path)
    snapshot(api, path, {"expires_at": None})
    snapshot(api, path, {"name": "tz", "expires_at": "2030-01-01T00:00:00.123456789+02:00"})
    snapshot(api, path, {"name": "utc", "expires_at": "2030-01-01T00:00:00.5000+00:00"})
    now = datetime.datetime.now(datetime.timezone.utc)
    for snap in ("snap0", "snap1"):
        expires = api.get(f"{path}/snapshots/{snap}").metadata["expires_at"]
        when = datetime.datetime.fromisoformat(expires[:26].rstrip("Z") + "+00:00")
        assert abs((when - now) - datetime.timedelta(days=1)) < datetime.timedelta(minutes=5)
    assert api.get(f"{path}/snapshots/tz").metadata["expires_at"] == \
        "2030-01-01T00:00:00.123456789+02:00"
    assert api.get(f"{path}/snapshots/utc").metadata["expires_at"] == "2030-01-01T00:00:00.5Z"


@pytest.mark.parametrize(("value", "message"), [
    ("2030-01-01", 'parsing time "\\"2030-01-01\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": '
                   'cannot parse "\\"" as "T"'),
    ("bogus", 'parsing time "\\"bogus\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": '
              'cannot parse "bogus\\"" as "2006"'),
    (5, 'parsing time "5" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "5" as "\\""'),
    ("2030-13-01T00:00:00Z", 'parsing time "\\"2030-13-01T00:00:00Z\\"": month out of range'),
    ("2030-01-01T00:00:00", 'parsing time "\\"2030-01-01T00:00:00\\"" as '
                            '"\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "\\"" as "Z07:00"'),
])
def test_snapshot_expires_at_parse_errors(api: API, value: Any, message: str) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    reply = api.post(f"{POOLS}/{pool}/volumes/custom/{name}/snapshots",
                     {"name": "s", "expires_at": value})
    assert (reply.status, reply.error) == (400, message)


def test_snapshot_put_and_patch_are_sync(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    path = f"{POOLS}/{pool}/volumes/custom/{name}/snapshots/s"
    snapshot(api, path.rsplit("/snapshots/", 1)[0], {"name": "s"})
    later = "2031-01-01T00:00:00Z"
    reply = api.put(path, {"description": "sd", "expires_at": later})
    assert (reply.status, reply.body["metadata"]) == (200, {})
    got = api.get(path)
    assert (got.metadata["description"], got.metadata["expires_at"]) == ("sd", later)
    assert got.headers["ETag"] == quoted(etag_of(["sd", later]))
    assert api.patch(path, {"description": "sd2"}).status == 200
    assert api.get(path).metadata["expires_at"] == later  # PATCH keeps what it is not sent
    assert api.patch(path, {}).status == 200
    got = api.get(path).metadata
    assert (got["description"], got["expires_at"]) == ("sd2", later)
    assert api.put(path, {"description": "x"}).status == 200  # PUT resets expires_at
    assert api.get(path).metadata["expires_at"] == ZERO
    current = etag_of(["x", ZERO])
    reply = api.put(path, {"description": "y"}, headers={"If-Match": "zz"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {current} vs zz")
    reply = api.put(path[:-1] + "nope", {"description": "y"})
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")


def test_snapshot_rename_and_delete(api: API) -> None:
    pool = make_pool(api)
    name = make_volume(api, pool)
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    for _ in range(2):
        snapshot(api, path)
    reply = api.post(f"{path}/snapshots/snap0", {"name": "first"})
    assert reply.status == 202
    op = api.wait(reply)
    assert (op["description"], op["status"], op["resources"]) == (
        "Renaming storage volume snapshot", "Success",
        {"storage_volume_snapshots": [f"/1.0/storage_volume_snapshots/{name}"]})
    assert api.get(f"{path}/snapshots").metadata == [f"{path}/snapshots/first",
                                                     f"{path}/snapshots/snap1"]
    for body, message in [({"name": ""}, "No name provided"),
                          ({"name": "a/b"}, "Storage volume names may not contain slashes")]:
        reply = api.post(f"{path}/snapshots/first", body)
        assert (reply.status, reply.error) == (400, message)
    # Missing snapshots and taken names fail inside the operation.
    op = api.wait(api.post(f"{path}/snapshots/nope", {"name": "x"}))
    assert (op["status"], op["err"]) == (
        "Failure", f'Storage volume "{name}/nope" in project "default" of type "custom" does '
                   f'not exist on pool "{pool}": Storage volume not found')
    op = api.wait(api.post(f"{path}/snapshots/first", {"name": "snap1"}))
    base = f"/var/lib/lxd/storage-pools/{pool}/custom-snapshots/default_{name}"
    assert (op["status"], op["err"]) == (
        "Failure", f'Failed to rename "{base}/first" to "{base}/snap1": rename {base}/first '
                   f"{base}/snap1: file exists")
    op = api.wait(api.post(f"{path}/snapshots/first", {"name": "with space"}))
    assert op["status"] == "Success"  # unlike creation, renaming allows spaces
    reply = api.delete(f"{path}/snapshots/with%20space")
    assert reply.status == 202
    op = api.wait(reply)
    assert (op["description"], op["status"], op["resources"]) == (
        "Deleting storage volume snapshot", "Success",
        {"storage_volume_snapshots": [f"/1.0/storage_volume_snapshots/{name}"]})
    reply = api.delete(f"{path}/snapshots/with%20space")
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    assert api.get(f"{path}/snapshots").metadata == [f"{path}/snapshots/snap1"]


# -- filters --------------------------------------------------------------------------------------
def test_filter(api: API) -> None:
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes"
    one = make_volume(api, pool, config={"user.k": "x"})
    two = make_volume(api, pool)
    snapshot(api, f"{base}/custom/{one}")

    def names(expr: str) -> list[str]:
        return [o["name"] for o in api.get(base, params={"filter": expr,
                                                         "recursion": "1"}).metadata]

    assert api.get(base, params={"filter": f"name eq {two}"}).metadata == [
        f"{base}/custom/{two}"]
    assert names("type eq custom") == sorted([one, f"{one}/snap0", two])
    assert names("config.user.k eq x") == [one, f"{one}/snap0"]
    assert names(f"name eq {one} or name eq {two}") == sorted([one, two])
    assert names(f"not name eq {one}") == sorted([f"{one}/snap0", two])
    assert api.get(base, params={"filter": ""}).status == 200
    reply = api.get(base, params={"filter": "bogus"})
    assert (reply.status, reply.error) == (500, "Invalid filter: clause has no operator")


# -- events ---------------------------------------------------------------------------------------
def test_volume_lifecycle_events(api: API) -> None:
    pool = make_pool(api)
    name = unique("v")
    base = f"{POOLS}/{pool}/volumes/custom"
    internal = f"{base}/default_{name}"
    api.later(lambda: api.delete(f"{base}/{name}%20r"))
    with events(api) as ws:
        make_volume(api, pool, name)
        assert api.patch(f"{base}/{name}", {"description": "q"}).status == 200
        assert api.put(f"{base}/{name}", {"config": {"foo": "1"}}).status == 500  # no event
        snapshot(api, f"{base}/{name}")
        assert api.put(f"{base}/{name}", {"restore": "snap0"}).status == 200
        assert api.patch(f"{base}/{name}/snapshots/snap0", {}).status == 200
        api.wait(api.post(f"{base}/{name}/snapshots/snap0", {"name": "s 1"}))
        api.wait(api.delete(f"{base}/{name}/snapshots/s%201"))
        assert api.post(f"{base}/{name}", {"name": f"{name} r"}).status == 201
        snapshot(api, f"{base}/{name}%20r")
        assert api.delete(f"{base}/{name}%20r").status == 200
        got = lifecycle(ws, lambda m: m["source"].startswith((internal, f"{base}/{name}/")), 11)
    seen = [(e["metadata"]["action"], e["metadata"]["source"], e["metadata"].get("context"))
            for e in got]
    assert seen == [
        ("storage-volume-created", internal, {"type": "custom"}),
        ("storage-volume-updated", internal, None),
        ("storage-volume-snapshot-created", f"{internal}/snapshots/snap0", {"type": "custom"}),
        ("storage-volume-restored", internal, {"snapshot": "snap0"}),
        ("storage-volume-snapshot-updated", f"{base}/{name}/snapshots/snap0", None),
        ("storage-volume-snapshot-renamed", f"{internal}/snapshots/snap0",
         {"old_name": "snap0"}),
        ("storage-volume-snapshot-deleted", f"{internal}/snapshots/s%25201", None),
        ("storage-volume-renamed", f"{internal}%2520r", {"old_name": name}),
        ("storage-volume-snapshot-created", f"{internal}%2520r/snapshots/snap0",
         {"type": "custom"}),
        # Deleting a volume reports each of its snapshots first.
        ("storage-volume-snapshot-deleted", f"{internal}%2520r/snapshots/snap0", None),
        ("storage-volume-deleted", f"{internal}%2520r", None)]
    assert {e["project"] for e in got} == {"default"}


def test_events_in_a_project(api: API) -> None:
    pool = make_pool(api)
    project = make_project(api, **{"features.storage.volumes": "true"})
    params = {"project": project}
    name = unique("v")
    base = f"{POOLS}/{pool}/volumes/custom"
    with events(api) as ws:
        make_volume(api, pool, name, project=project)
        snapshot(api, f"{base}/{name}", params=params)
        assert api.patch(f"{base}/{name}/snapshots/snap0", {}, params=params).status == 200
        got = lifecycle(ws, lambda m: name in m["source"], 3)
    assert [(e["metadata"]["source"], e["project"]) for e in got] == [
        (f"{base}/{project}_{name}?project={project}", project),
        (f"{base}/{project}_{name}/snapshots/snap0?project={project}", project),
        (f"{base}/{name}/snapshots/snap0?project={project}", project)]


# -- the fake only --------------------------------------------------------------------------------
@pytest.mark.fake_only
def test_instance_volumes_from_the_instance_handlers(api: API) -> None:
    """Instance handlers register root volumes through the module's helpers."""
    from fakeserver.api import storage_volumes as sv

    server = api.server  # type: ignore[attr-defined]
    with server.state.lock:
        volume = sv.add_volume(server.state, "default", "default", "container", "c1")
        sv.add_snapshot(volume, "snap0")
    base = f"{POOLS}/default/volumes"
    objs = api.get(f"{base}/container", params={"recursion": "1"}).metadata
    assert [(o["name"], o["used_by"]) for o in objs] == [
        ("c1", ["/1.0/instances/c1"]), ("c1/snap0", ["/1.0/instances/c1/snapshots/snap0"])]
    used = api.get(f"{POOLS}/default").metadata["used_by"]
    assert {"/1.0/instances/c1", "/1.0/instances/c1/snapshots/snap0"} <= set(used)
    reply = api.delete(f"{base}/container/c1")
    assert (reply.status, reply.error) == (
        400, 'Storage volumes of type "container" cannot be deleted with the storage API')
    reply = api.post(f"{base}/container/c1", {"name": "c2"})
    assert reply.error == 'Renaming storage volumes of type "container" is not allowed'


@pytest.mark.fake_only
def test_volume_used_by_instance_disk(api: API) -> None:
    """An instance with a disk on a volume shows in used_by and blocks deletion."""
    server = api.server  # type: ignore[attr-defined]
    pool = make_pool(api)
    name = make_volume(api, pool)
    with server.state.lock:
        server.state.families["instances"].setdefault("default", {})["i1"] = {
            "name": "i1", "profiles": ["default"], "status": "Running",
            "devices": disk(pool, name)}
    path = f"{POOLS}/{pool}/volumes/custom/{name}"
    assert api.get(path).metadata["used_by"] == ["/1.0/instances/i1"]
    assert api.delete(path).error == "The storage volume is still in use"
    reply = api.post(path, {"name": "other"})
    assert (reply.status, reply.error) == (400, "Volume is still in use by running instances")


@pytest.mark.fake_only
def test_snapshot_operation_faults(api: API) -> None:
    server = api.server  # type: ignore[attr-defined]
    pool = make_pool(api)
    name = make_volume(api, pool)
    server.operations.fail("disk full", kind="Creating storage volume snapshot")
    op = api.wait(api.post(f"{POOLS}/{pool}/volumes/custom/{name}/snapshots", {}))
    assert (op["status"], op["err"]) == ("Failure", "disk full")
    assert api.get(f"{POOLS}/{pool}/volumes/custom/{name}/snapshots").metadata == []
