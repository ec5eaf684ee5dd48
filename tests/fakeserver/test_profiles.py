"""Profiles: the same requests and the same answers on the fake and on real LXD."""

from __future__ import annotations

from tests.support import API, unique


def make(api: API, **body: object) -> str:
    name = str(body.setdefault("name", unique("p")))
    reply = api.post("/1.0/profiles", body)
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/profiles/{name}")
    return name


def test_create_returns_201_with_location_and_null_metadata(api: API) -> None:
    name = unique("p")
    reply = api.post("/1.0/profiles", {"name": name, "description": "d",
                                       "config": {"limits.cpu": "1"}, "devices": {}})
    api.delete_later(f"/1.0/profiles/{name}")
    assert reply.status == 201
    assert reply.headers["Location"] == f"/1.0/profiles/{name}"
    assert reply.body["metadata"] is None
    assert reply.body["type"] == "sync"
    got = api.get(f"/1.0/profiles/{name}")
    assert got.metadata == {"config": {"limits.cpu": "1"}, "description": "d", "devices": {},
                            "name": name, "used_by": []}
    assert len(got.headers["ETag"].strip('"')) == 64


def test_lxc_sends_nulls_on_create(api: API) -> None:
    name = unique("p")
    reply = api.post("/1.0/profiles", {"config": None, "description": "", "devices": None,
                                       "name": name})
    api.delete_later(f"/1.0/profiles/{name}")
    assert reply.status == 201
    assert api.get(f"/1.0/profiles/{name}").metadata["config"] == {}


def test_duplicate_profile_is_a_500_on_lxd_5_0_2(api: API) -> None:
    name = make(api)
    reply = api.post("/1.0/profiles", {"name": name})
    assert reply.status == 500
    assert reply.error == f'Error inserting "{name}" into database: The profile already exists'
    assert reply.raw.endswith(b"}\n\n")


def test_bad_names_and_bodies(api: API) -> None:
    assert api.post("/1.0/profiles", {"name": ""}).error == "No name provided"
    reply = api.post("/1.0/profiles", {"name": "p/bad"})
    assert (reply.status, reply.error) == (400, "Profile names may not contain slashes")
    for raw, message in [(b'{"name":"p2",', "unexpected EOF"), (b"", "EOF"),
                         (b"not json", "invalid character 'o' in literal null (expecting 'u')")]:
        reply = api.request("POST", "/1.0/profiles", data=raw)
        assert (reply.status, reply.error) == (400, message)
    reply = api.post("/1.0/profiles", {"name": unique("p"), "config": {"limits.cpu": 1}})
    assert reply.status == 400
    assert reply.error == ("json: cannot unmarshal number into Go struct field "
                           "ProfilesPost.config of type string")


def test_config_and_device_validation(api: API) -> None:
    reply = api.post("/1.0/profiles", {"name": unique("p"), "config": {"foo.bar": "1"}})
    assert (reply.status, reply.error) == (400, "Unknown configuration key: foo.bar")
    reply = api.post("/1.0/profiles", {"name": unique("p"), "devices": {"x": {"type": "bogus"}}})
    assert (reply.status, reply.error) == (
        400, 'Device validation failed for "x": Failed loading device "x": '
             "Unsupported device type")
    name = make(api, config={"user.a": "1"})
    reply = api.put(f"/1.0/profiles/{name}", {"config": {"foo.bar": "1"}, "devices": {}})
    assert (reply.status, reply.error) == (500, "Unknown configuration key: foo.bar")
    reply = api.patch(f"/1.0/profiles/{name}", {"config": {"limits.cpu": "abc"}})
    assert (reply.status, reply.error) == (500, "Invalid CPU limit syntax")
    reply = api.patch(f"/1.0/profiles/{name}", {"devices": {"d1": {}}})
    assert reply.status == 500
    assert reply.error.endswith("Missing device type in config")
    assert api.get(f"/1.0/profiles/{name}").metadata["config"] == {"user.a": "1"}


def test_patch_merges_and_put_replaces(api: API) -> None:
    name = make(api, description="v2",
                config={"limits.cpu": "2", "user.a": "1"},
                devices={"d1": {"type": "disk", "path": "/mnt", "source": "/srv"}})
    assert api.patch(f"/1.0/profiles/{name}",
                     {"config": {"user.b": "2", "user.a": ""}}).status == 200
    got = api.get(f"/1.0/profiles/{name}").metadata
    assert got["config"] == {"limits.cpu": "2", "user.b": "2"}
    assert got["description"] == "v2"
    assert api.patch(f"/1.0/profiles/{name}", {"description": ""}).status == 200
    assert api.get(f"/1.0/profiles/{name}").metadata["description"] == ""
    assert api.patch(f"/1.0/profiles/{name}", {"name": "ignored"}).status == 200
    assert api.put(f"/1.0/profiles/{name}", {"description": "put-only"}).status == 200
    got = api.get(f"/1.0/profiles/{name}").metadata
    assert (got["config"], got["devices"], got["description"]) == ({}, {}, "put-only")


def test_etag_if_match(api: API) -> None:
    name = make(api, config={"limits.cpu": "1"})
    etag = api.get(f"/1.0/profiles/{name}").headers["ETag"]
    body = {"config": {"limits.cpu": "2"}, "description": "v2", "devices": {}}
    assert api.put(f"/1.0/profiles/{name}", body, headers={"If-Match": etag}).status == 200
    current = api.get(f"/1.0/profiles/{name}").headers["ETag"].strip('"')
    assert current != etag.strip('"')
    stale = api.put(f"/1.0/profiles/{name}", body, headers={"If-Match": etag})
    assert stale.status == 412
    assert stale.error == f"ETag doesn't match: {current} vs {etag.strip(chr(34))}"
    star = api.patch(f"/1.0/profiles/{name}", {}, headers={"If-Match": "*"})
    assert (star.status, star.error) == (412, f"ETag doesn't match: {current} vs *")
    assert api.patch(f"/1.0/profiles/{name}", {}).status == 200
    assert api.get(f"/1.0/profiles/{name}").headers["ETag"].strip('"') == current


def test_rename_and_delete(api: API) -> None:
    name = make(api)
    new = unique("p")
    api.delete_later(f"/1.0/profiles/{new}")
    reply = api.post(f"/1.0/profiles/{name}", {"name": new})
    assert reply.status == 201
    assert reply.headers["Location"] == f"/1.0/profiles/{new}"
    assert api.get(f"/1.0/profiles/{name}").status == 404
    assert api.get(f"/1.0/profiles/{new}").status == 200
    assert api.delete(f"/1.0/profiles/{new}").status == 200
    assert api.get(f"/1.0/profiles/{new}").status == 404


def test_not_found_messages(api: API) -> None:
    assert api.get("/1.0/profiles/nope").error == "Fetch profile: Profile not found"
    reply = api.put("/1.0/profiles/nope", {})
    assert (reply.status, reply.error) == (404,
                                           'Failed to retrieve profile "nope": Profile not found')
    assert api.delete("/1.0/profiles/nope").error == "Profile not found"
    reply = api.get("/1.0/profiles", params={"project": "nope"})
    assert (reply.status, reply.error) == (404,
                                           'Failed loading project "nope": Project not found')


def test_default_profile_is_protected(api: API) -> None:
    reply = api.delete("/1.0/profiles/default")
    assert reply.status == 403
    assert reply.error == 'The "default" profile cannot be deleted'
    reply = api.post("/1.0/profiles/default", {"name": unique("p")})
    assert (reply.status, reply.error) == (403, 'The "default" profile cannot be renamed')


def test_list_recursion(api: API) -> None:
    name = make(api)
    urls = api.get("/1.0/profiles").metadata
    assert f"/1.0/profiles/{name}" in urls and "/1.0/profiles/default" in urls
    objs = api.get("/1.0/profiles", params={"recursion": "1"}).metadata
    assert {o["name"] for o in objs} >= {name, "default"}
    assert api.get("/1.0/profiles", params={"recursion": "abc"}).metadata == urls
