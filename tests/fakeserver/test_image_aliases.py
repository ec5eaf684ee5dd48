"""Image aliases: the same requests and answers on the fake and on real LXD 5.0.2."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fakeserver.api.images import alias_etag
from tests.imagefixtures import Events, split, tagged, unified, untrusted, upload
from tests.support import API, unique

ALIASES = "/1.0/images/aliases"


def alias(api: API, target: str, name: str | None = None, description: str = "") -> str:
    name = name or unique("a")
    reply = api.post(ALIASES, {"name": name, "target": target, "description": description})
    assert reply.status == 201, reply
    api.delete_later(f"{ALIASES}/{name}")
    return name


def entry(api: API, name: str) -> dict[str, Any]:
    reply = api.get(f"{ALIASES}/{name}")
    assert reply.status == 200, reply
    return dict(reply.metadata)


def test_create_and_show(api: API) -> None:
    fp = upload(api)
    name = unique("a")
    reply = api.post(ALIASES, {"name": name, "target": fp[:8], "description": "d",
                               "type": "virtual-machine"})
    api.delete_later(f"{ALIASES}/{name}")
    assert (reply.status, reply.body["metadata"]) == (201, None)
    assert reply.headers["Location"] == f"{ALIASES}/{name}"
    got = api.get(f"{ALIASES}/{name}")
    assert list(got.metadata) == ["description", "target", "name", "type"]
    # The type is the image's, whatever the request said.
    assert got.metadata == {"description": "d", "target": fp, "name": name,
                            "type": "container"}
    assert got.headers["ETag"] == f'"{alias_etag(got.metadata)}"'
    image = api.get(f"/1.0/images/{fp}").metadata
    assert image["aliases"] == [{"name": name, "description": "d"}]


def test_alias_of_a_vm_image(api: API) -> None:
    image = split(tagged(), vm=True)
    fp = upload(api, image)
    name = alias(api, fp)
    assert entry(api, name)["type"] == "virtual-machine"


def test_list(api: API) -> None:
    fp = upload(api)
    names = sorted([alias(api, fp, unique("zz")), alias(api, fp, unique("aa"))])
    urls = api.get(ALIASES).metadata
    assert urls == sorted(urls)
    assert {f"{ALIASES}/{n}" for n in names} <= set(urls)
    objs = api.get(ALIASES, params={"recursion": "1"}).metadata
    assert [o["name"] for o in objs] == sorted(o["name"] for o in objs)
    mine = [o for o in objs if o["name"] in names]
    assert mine == [{"description": "", "target": fp, "name": n, "type": "container"}
                    for n in names]
    # An image lists its aliases in the order they were made, not by name.
    image = api.get(f"/1.0/images/{fp}").metadata
    assert image["aliases"] == [{"name": n, "description": ""} for n in reversed(names)]


def test_names_with_slashes_and_spaces(api: API) -> None:
    fp = upload(api)
    name = unique("a") + "/b c"
    reply = api.post(ALIASES, {"name": name, "target": fp})
    api.later(lambda: api.delete(f"{ALIASES}/{name}"))
    assert reply.status == 201
    # LXD 5.0.2 escapes the name twice in URLs.
    escaped = name.replace("/", "%252F").replace(" ", "%2520")
    assert reply.headers["Location"] == f"{ALIASES}/{escaped}"
    assert f"{ALIASES}/{escaped}" in api.get(ALIASES).metadata
    assert entry(api, name)["name"] == name
    assert entry(api, name.replace("/", "%2F").replace(" ", "%20"))["name"] == name


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"name": "", "target": "abc"}, 400, "name and target are required"),
    ({"name": "x"}, 400, "name and target are required"),
    ({"name": 1}, 400, "json: cannot unmarshal number into Go struct field "
                       "ImageAliasesPost.name of type string"),
    (None, 400, "EOF"),
])
def test_create_errors(api: API, body: Any, status: int, message: str) -> None:
    reply = api.post(ALIASES, body) if body is not None else api.request("POST", ALIASES,
                                                                         data=b"")
    assert (reply.status, reply.error) == (status, message)


def test_create_conflicts_and_missing_targets(api: API) -> None:
    fp = upload(api)
    name = alias(api, fp)
    # The name is checked before the target.
    for target in (fp, "nope"):
        reply = api.post(ALIASES, {"name": name, "target": target})
        assert (reply.status, reply.error) == (409, f'Alias "{name}" already exists')
    reply = api.post(ALIASES, {"name": unique("a"), "target": "nope"})
    assert (reply.status, reply.error) == (404, "Image not found")


def test_unknown_alias(api: API) -> None:
    for method in ("GET", "PUT", "PATCH", "POST", "DELETE"):
        reply = api.request(method, f"{ALIASES}/nope", json_body={"target": "x", "name": "y"})
        assert (reply.status, reply.error) == (404, "Image alias not found"), method
    # An empty name is a name like any other.
    reply = api.get(f"{ALIASES}/")
    assert (reply.status, reply.error) == (404, "Image alias not found")


def test_put_replaces(api: API) -> None:
    fp = upload(api)
    other = upload(api)
    name = alias(api, fp, description="before")
    path = f"{ALIASES}/{name}"
    reply = api.put(path, {"description": "x"})
    assert (reply.status, reply.error) == (400, "The target field is required")
    reply = api.put(path, {"target": "nope"})
    assert (reply.status, reply.error) == (404, "Image not found")
    assert api.put(path, {"target": other[:6]}).metadata == {}
    assert entry(api, name) == {"description": "", "target": other, "name": name,
                                "type": "container"}
    tag = api.get(path).headers["ETag"].strip('"')
    reply = api.put(path, {"target": fp}, headers={"If-Match": "stale"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {tag} vs stale")
    reply = api.request("PUT", path, data=b"[]")
    assert (reply.status, reply.error) == (
        400, "json: cannot unmarshal array into Go value of type api.ImageAliasesEntryPut")
    assert api.put(path, {"target": fp, "description": "after"},
                   headers={"If-Match": f'"{tag}"'}).status == 200
    assert entry(api, name)["description"] == "after"


def test_patch_checks(api: API) -> None:
    """Everything PATCH checks before LXD 5.0.2's deadlock (see the next test)."""
    fp = upload(api)
    name = alias(api, fp)
    path = f"{ALIASES}/{name}"
    tag = api.get(path).headers["ETag"].strip('"')
    for data, status, message in [
        (b"", 400, "EOF"),
        (b"[]", 400, "json: cannot unmarshal array into Go value of type shared.Jmap"),
        (b'{"target":5}', 400, "`target` was not a string"),
        (b'{"description":5}', 400, "`description` was not a string"),
        (b'{"target":"nope"}', 404, "Image not found"),
    ]:
        reply = api.request("PATCH", path, data=data)
        assert (reply.status, reply.error) == (status, message), data
    reply = api.patch(path, {}, headers={"If-Match": "stale"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {tag} vs stale")


def test_patch_deadlocks_in_lxd_5_0_2(api: API) -> None:
    """A valid PATCH hangs 20 s in LXD 5.0.2 (nested transaction), then fails with a 500 and
    changes nothing. The fake answers the same at once (its one deliberate difference: no
    wait). On the real host this test costs those 20 s."""
    fp = upload(api)
    name = alias(api, fp, description="dd")
    started = time.monotonic()
    reply = api.patch(f"{ALIASES}/{name}", {"description": "patched"})
    took = time.monotonic() - started
    assert (reply.status, reply.error) == (500, "context deadline exceeded")
    assert took >= 19 if not api.is_fake else took < 5
    assert entry(api, name)["description"] == "dd"


def test_rename(api: API) -> None:
    """A rename works, but in LXD 5.0.2 it first waits for a database transaction to time
    out (10 s, then a retry succeeds). The fake does not wait."""
    fp = upload(api)
    name = alias(api, fp)
    taken = alias(api, fp)
    new = unique("a")
    api.delete_later(f"{ALIASES}/{new}")
    for target in (taken, name):
        reply = api.post(f"{ALIASES}/{name}", {"name": target})
        assert (reply.status, reply.error) == (409, f'Alias "{target}" already exists')
    reply = api.request("POST", f"{ALIASES}/{name}", data=b"")
    assert (reply.status, reply.error) == (400, "EOF")
    events = Events(api)
    try:
        started = time.monotonic()
        reply = api.post(f"{ALIASES}/{name}", {"name": new})
        took = time.monotonic() - started
        assert (reply.status, reply.body["metadata"]) == (201, None)
        assert took >= 9 if not api.is_fake else took < 5
        assert reply.headers["Location"] == f"{ALIASES}/{new}"
        assert events.wait("image-alias-renamed", new)["metadata"] == {
            "action": "image-alias-renamed", "source": f"{ALIASES}/{new}",
            "context": {"old_name": name},
            "requestor": {"username": "root", "protocol": "unix", "address": "@"}}
    finally:
        events.close()
    assert api.get(f"{ALIASES}/{name}").status == 404
    assert entry(api, new)["target"] == fp
    # The renamed alias keeps its place: an image lists its aliases in the order made.
    image = api.get(f"/1.0/images/{fp}").metadata
    assert [a["name"] for a in image["aliases"]] == [new, taken]


def test_rename_to_an_empty_name(api: API) -> None:
    """LXD 5.0.2 accepts an empty name; the alias then lives at ``/1.0/images/aliases/``."""
    fp = upload(api)
    if api.get(f"{ALIASES}/").status == 200:
        pytest.fail("an alias with an empty name already exists on this host")
    name = alias(api, fp)
    api.later(lambda: api.delete(f"{ALIASES}/"))
    reply = api.post(f"{ALIASES}/{name}", {"name": ""})
    assert reply.status == 201
    assert reply.headers["Location"] == f"{ALIASES}/"
    assert f"{ALIASES}/" in api.get(ALIASES).metadata
    assert entry(api, "") == {"description": "", "target": fp, "name": "",
                              "type": "container"}
    assert api.delete(f"{ALIASES}/").status == 200
    assert api.get(f"{ALIASES}/").status == 404


def test_delete(api: API) -> None:
    fp = upload(api)
    name = alias(api, fp)
    assert api.delete(f"{ALIASES}/{name}").metadata == {}
    assert api.get(f"{ALIASES}/{name}").status == 404
    assert api.get(f"/1.0/images/{fp}").metadata["aliases"] == []


def test_untrusted_clients(api: API, tmp_path: Path) -> None:
    private = upload(api)
    public = upload(api, unified(tagged()), headers={"X-LXD-public": "1"})
    hidden, shown = alias(api, private), alias(api, public)
    guest = untrusted(api, str(tmp_path))
    reply = guest.get(f"{ALIASES}/{hidden}")
    assert (reply.status, reply.error) == (404, "Image alias not found")
    assert guest.get(f"{ALIASES}/{shown}").metadata["target"] == public
    for method, path in [("GET", ALIASES), ("POST", ALIASES), ("PUT", f"{ALIASES}/{shown}"),
                         ("POST", f"{ALIASES}/{shown}"), ("DELETE", f"{ALIASES}/{shown}")]:
        reply = guest.request(method, path, json_body={"name": "x", "target": public})
        assert (reply.status, reply.error) == (403, "not authorized"), (method, path)


def test_projects(api: API) -> None:
    fp = upload(api)
    name = alias(api, fp)
    shared, own = unique("p"), unique("p")
    for project, images in ((shared, "false"), (own, "true")):
        body = {"name": project, "config": {"features.images": images,
                                            "features.profiles": "false"}}
        assert api.post("/1.0/projects", body).status == 201
        api.delete_later(f"/1.0/projects/{project}")
    # Without features.images a project uses the default project's aliases.
    assert entry(api.in_project(shared), name)["target"] == fp
    assert f"{ALIASES}/{name}" in api.in_project(shared).get(ALIASES).metadata
    mine = api.in_project(own)
    assert mine.get(ALIASES).metadata == []
    assert mine.get(f"{ALIASES}/{name}").error == "Image alias not found"
    reply = mine.post(ALIASES, {"name": name, "target": fp})
    assert (reply.status, reply.error) == (404, "Image not found")
    upload(mine, unified(tagged()))
    fp2 = mine.get("/1.0/images").metadata[0].rsplit("/", 1)[-1]
    events = Events(api, own)
    try:
        reply = mine.post(ALIASES, {"name": name, "target": fp2})
        assert reply.headers["Location"] == f"{ALIASES}/{name}?project={own}"
        event = events.wait("image-alias-created", name)
        assert (event["project"], event["metadata"]["source"]) == (
            own, f"{ALIASES}/{name}?project={own}")
        assert mine.get(ALIASES).metadata == [f"{ALIASES}/{name}"]
        assert mine.delete(f"{ALIASES}/{name}").status == 200
        events.wait("image-alias-deleted", f"{name}?project={own}")
    finally:
        events.close()
    assert entry(api, name)["target"] == fp


def test_lifecycle_events(api: API) -> None:
    fp = upload(api)
    events = Events(api)
    try:
        name = unique("a")
        assert api.post(ALIASES, {"name": name, "target": fp[:8]}).status == 201
        api.delete_later(f"{ALIASES}/{name}")
        assert api.put(f"{ALIASES}/{name}", {"target": fp[:9], "description": "x"}).status == 200
        assert api.delete(f"{ALIASES}/{name}").status == 200
        requestor = {"username": "root", "protocol": "unix", "address": "@"}
        assert events.wait("image-alias-created", name)["metadata"] == {
            "action": "image-alias-created", "source": f"{ALIASES}/{name}",
            "context": {"target": fp[:8]}, "requestor": requestor}
        assert events.wait("image-alias-updated", name)["metadata"]["context"] == {
            "target": fp[:9]}
        deleted = events.wait("image-alias-deleted", name)["metadata"]
        assert deleted == {"action": "image-alias-deleted", "source": f"{ALIASES}/{name}",
                           "requestor": requestor}
        assert events.actions(name) == ["image-alias-created", "image-alias-updated",
                                        "image-alias-deleted"]
    finally:
        events.close()
