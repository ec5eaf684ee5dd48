"""Instances: create, list, get, PUT/PATCH, rename, delete, copy, logs, console, metadata and
publishing, with the same requests and answers on the fake and on real LXD 5.0.2."""

from __future__ import annotations

import pytest

from tests.imagefixtures import Events
from tests.instancefixtures import action, make, op_of, remove_later, with_busybox
from tests.support import API, unique

INSTANCE_KEYS = ["architecture", "config", "devices", "ephemeral", "profiles", "stateful",
                 "description", "created_at", "expanded_config", "expanded_devices", "name",
                 "status", "status_code", "last_used_at", "location", "type", "project"]
ROOT = {"root": {"path": "/", "pool": "default", "type": "disk"}}


def busybox_fp(api: API) -> str:
    """The fingerprint behind the ``busybox`` alias (the same image on both backends)."""
    with_busybox(api)
    return str(api.get("/1.0/images/aliases/busybox").metadata["target"])


def get(api: API, name: str) -> dict:
    reply = api.get(f"/1.0/instances/{name}")
    assert reply.status == 200, reply
    return reply.metadata  # type: ignore[no-any-return]


def create(api: API, **body: object) -> tuple[object, dict]:
    """POST /1.0/instances: the 202 reply and the finished operation (cleanup registered)."""
    with_busybox(api)
    reply = api.post("/1.0/instances", body)
    if "name" in body:
        remove_later(api, str(body["name"]))
    return reply, op_of(api, reply)


# -- create ----------------------------------------------------------------------------------


def test_create_from_an_image_alias(api: API) -> None:
    name = unique("i")
    reply, op = create(api, name=name, source={"type": "image", "alias": "busybox"})
    assert reply.status == 202  # type: ignore[attr-defined]
    started = reply.metadata  # type: ignore[attr-defined]
    assert (started["description"], started["class"], started["status"]) == (
        "Creating instance", "task", "Running")
    resources = {"containers": [f"/1.0/containers/{name}"],
                 "instances": [f"/1.0/instances/{name}"]}
    assert started["resources"] == resources
    assert (op["status"], op["err"], op["resources"]) == ("Success", "", resources)
    assert op["metadata"]["progress"]["stage"] == "create_instance_from_image_unpack"
    reply = api.get(f"/1.0/instances/{name}")
    inst = reply.metadata
    assert list(inst) == INSTANCE_KEYS
    assert len(reply.headers["ETag"].strip('"')) == 64
    config = inst["config"]
    assert {k: v for k, v in config.items() if k.startswith("image.")} == {
        "image.architecture": "x86_64", "image.description": "busybox test image",
        "image.os": "busybox", "image.release": "1"}
    assert sorted(k for k in config if k.startswith("volatile.")) == [
        "volatile.apply_template", "volatile.base_image", "volatile.cloud-init.instance-id",
        "volatile.idmap.base", "volatile.idmap.next", "volatile.last_state.idmap",
        "volatile.uuid"]
    assert config["volatile.apply_template"] == "create"
    assert config["volatile.base_image"] == busybox_fp(api)
    assert config["volatile.idmap.base"] == "0"
    assert config["volatile.last_state.idmap"] == "[]"
    assert '"Hostid":100000' in config["volatile.idmap.next"]
    assert inst["expanded_config"] == config
    assert inst["devices"] == {} and inst["expanded_devices"] == ROOT
    assert (inst["architecture"], inst["profiles"], inst["ephemeral"], inst["stateful"]) == (
        "x86_64", ["default"], False, False)
    assert (inst["status"], inst["status_code"], inst["last_used_at"]) == (
        "Stopped", 102, "1970-01-01T00:00:00Z")
    assert (inst["location"], inst["type"], inst["project"], inst["name"]) == (
        "none", "container", "default", name)
    # The same object with ?recursion=1 grows the InstanceFull keys.
    full = api.get(f"/1.0/instances/{name}", params={"recursion": 1}).metadata
    assert list(full) == INSTANCE_KEYS + ["backups", "state", "snapshots"]
    assert (full["backups"], full["snapshots"]) == (None, None)


def test_create_from_none_a_fingerprint_and_properties(api: API) -> None:
    name = unique("i")
    _, op = create(api, name=name, source={"type": "none"}, description="hello",
                   ephemeral=True, config={"user.x": "y"})
    assert op["status"] == "Success"
    inst = get(api, name)
    assert not any(k.startswith("image.") for k in inst["config"])
    assert "volatile.base_image" not in inst["config"]
    assert inst["config"]["user.x"] == "y"
    assert (inst["description"], inst["ephemeral"]) == ("hello", True)
    name = unique("i")
    fingerprint = busybox_fp(api)
    _, op = create(api, name=name, source={"type": "image", "fingerprint": fingerprint[:12]})
    assert op["status"] == "Success"
    assert get(api, name)["config"]["volatile.base_image"] == fingerprint
    name = unique("i")
    _, op = create(api, name=name, source={"type": "image", "properties": {"os": "busybox"}})
    assert op["status"] == "Success"


def test_create_without_a_name_picks_a_petname(api: API) -> None:
    _, op = create(api, source={"type": "none"})
    assert op["status"] == "Success"
    url = op["resources"]["instances"][0]
    name = url.rsplit("/", 1)[1]
    remove_later(api, name)
    assert "-" in name and name.replace("-", "").isalpha()
    assert get(api, name)["name"] == name


def test_lxc_body_with_null_profiles_gets_the_default_profile(api: API) -> None:
    name = unique("i")
    with_busybox(api)
    fp = api.get("/1.0/images/aliases/busybox").metadata["target"]
    _, op = create(api, architecture="", config={}, devices={}, ephemeral=False, profiles=None,
                   stateful=False, description="", name=name, instance_type="",
                   type="container", source={"type": "image", "certificate": "",
                                             "fingerprint": fp, "allow_inconsistent": False})
    assert op["status"] == "Success"
    assert get(api, name)["profiles"] == ["default"]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"name": "bad_name x", "source": {"type": "none"}}, 400,
     "Invalid instance name: Name can only contain alphanumeric and hyphen characters"),
    ({"name": "-bad", "source": {"type": "none"}}, 400,
     'Invalid instance name: Name must not start with "-" character'),
    ({"name": "1bad", "source": {"type": "none"}}, 400,
     "Invalid instance name: Name must not start with a number"),
    ({"name": "a" * 64, "source": {"type": "none"}}, 400,
     "Invalid instance name: Name must be 1-63 characters long"),
    ({"name": "x-pl"}, 400, "Unknown source type "),
    ({"name": "x-pl", "source": {"type": "bogus"}}, 400, "Unknown source type bogus"),
    ({"name": "x-pl", "type": "bogus", "source": {"type": "none"}}, 400,
     "Invalid instance type"),
    ({"name": "x-pl", "source": {"type": "none"}, "instance_type": "c1.micro"}, 400,
     "Bad custom instance type: c1.micro"),
    ({"name": "x-pl", "source": {"type": "none"}, "architecture": "bogus"}, 500,
     "Architecture isn't supported: bogus"),
    ({"name": "x-pl", "source": {"type": "none"}, "profiles": ["missing"]}, 500,
     'Requested profile "missing" doesn\'t exist'),
    ({"name": "x-pl", "source": {"type": "image"}}, 500,
     "Must specify one of alias, fingerprint or properties for init from image"),
    ({"name": "x-pl", "source": {"type": "image", "alias": "nope-missing"}}, 404,
     "Image alias not found"),
    ({"name": "x-pl", "source": {"type": "image", "properties": {"os": "nope"}}}, 500,
     "No matching image could be found"),
    ({"name": "x-pl", "source": {"type": "copy"}}, 400, "Must specify a source instance"),
    ({"name": "x-pl", "source": {"type": "copy", "source": "nope-missing"}}, 404,
     'Failed to fetch instance "nope-missing" in project "default": Instance not found'),
    ({"name": "x-pl", "source": {"type": "migration"}}, 501, 'Mode "" not implemented'),
])
def test_create_errors_answered_at_once(api: API, body: dict, status: int,
                                        message: str) -> None:
    with_busybox(api)
    reply = api.post("/1.0/instances", body)
    assert (reply.status, reply.error) == (status, message)


@pytest.mark.parametrize(("extra", "message"), [
    ({"config": {"foo.bar": "1"}},
     "Failed creating instance record: Unknown configuration key: foo.bar"),
    ({"config": {"limits.cpu": "abc"}},
     "Failed creating instance record: Invalid CPU limit syntax"),
    ({"config": {"security.nesting": "maybe"}},
     'Failed creating instance record: Invalid value for a boolean "maybe"'),
    ({"config": {"volatile.foo": "1"}},
     "Failed creating instance record: Unknown configuration key: volatile.foo"),
    ({"config": {"raw.qemu": "x"}},
     "Failed creating instance record: Unknown configuration key: raw.qemu"),
    ({"devices": {"x": {"type": "bogus"}}},
     "Failed creating instance record: Invalid device type bogus"),
    ({"devices": {"x": {}}}, "Failed creating instance record: Invalid device type "),
    ({"devices": {"x": {"type": "disk"}}},
     "Failed creating instance record: Failed initialising instance: Invalid devices: Device "
     'validation failed for "x": Disk entry is missing the required "source" or "path" '
     "property"),
    ({"devices": {"root": {"type": "disk", "path": "/", "pool": "nope"}}},
     "Failed creating instance record: Failed initialising instance: Failed loading storage "
     "pool: Storage pool not found"),
    ({"profiles": []},
     "Failed creating instance record: Failed initialising instance: Failed getting root "
     "disk: No root device could be found"),
    ({"type": "virtual-machine"},
     'Failed creating instance record: Instance type "virtual-machine" is not supported on '
     "this server: vhost_vsock kernel module not loaded"),
])
def test_create_errors_inside_the_operation(api: API, extra: dict, message: str) -> None:
    name = unique("i")
    reply, op = create(api, name=name, source={"type": "none"}, **extra)
    assert reply.status == 202  # type: ignore[attr-defined]
    assert (op["status"], op["err"]) == ("Failure", message)
    assert api.get(f"/1.0/instances/{name}").status == 404


def test_create_failures_for_images_and_duplicates(api: API) -> None:
    name = unique("i")
    _, op = create(api, name=name, source={"type": "image", "fingerprint": "deadbeef"})
    assert (op["status"], op["err"]) == ("Failure", "Image not provided for instance creation")
    _, op = create(api, name=name, source={"type": "image", "alias": "busybox"},
                   type="virtual-machine")
    assert (op["status"], op["err"]) == (
        "Failure", 'Requested image\'s type "container" doesn\'t match instance type '
                   '"virtual-machine"')
    make(api, name, {"type": "none"})
    _, op = create(api, name=name, source={"type": "none"})
    assert (op["status"], op["err"]) == (
        "Failure", 'Failed creating instance record: Add instance info to the database: This '
                   '"instances" entry already exists')


def test_nic_devices_get_volatile_keys_and_stateful_is_ignored(api: API) -> None:
    name = unique("i")
    _, op = create(api, name=name, source={"type": "none"}, stateful=True,
                   devices={"eth0": {"type": "nic", "nictype": "bridged", "parent": "missing"}})
    assert op["status"] == "Success"
    inst = get(api, name)
    assert inst["stateful"] is False
    assert inst["config"]["volatile.eth0.name"] == "eth0"
    assert inst["config"]["volatile.eth0.hwaddr"].startswith("00:16:3e:")
    assert inst["expanded_devices"] == {**ROOT, "eth0": {"nictype": "bridged",
                                                         "parent": "missing", "type": "nic"}}


def test_expanded_config_and_devices_follow_the_profiles(api: API) -> None:
    profile = unique("p")
    assert api.post("/1.0/profiles", {"name": profile, "config": {"user.a": "profile",
                                                                  "user.b": "profile"},
                                      "devices": {"d1": {"type": "disk", "path": "/mnt",
                                                         "source": "/srv"}}}).status == 201
    api.delete_later(f"/1.0/profiles/{profile}")
    name = make(api, profiles=["default", profile], config={"user.b": "local"},
                source={"type": "none"})
    inst = get(api, name)
    assert inst["config"]["user.b"] == "local" and "user.a" not in inst["config"]
    assert inst["expanded_config"]["user.a"] == "profile"
    assert inst["expanded_config"]["user.b"] == "local"
    assert inst["expanded_devices"] == {**ROOT, "d1": {"path": "/mnt", "source": "/srv",
                                                       "type": "disk"}}
    used = api.get(f"/1.0/profiles/{profile}").metadata["used_by"]
    assert used == [f"/1.0/instances/{name}"]


# -- list ------------------------------------------------------------------------------------


def test_list_shapes_and_aliases(api: API) -> None:
    name = make(api)
    urls = api.get("/1.0/instances").metadata
    assert f"/1.0/instances/{name}" in urls
    assert f"/1.0/containers/{name}" in api.get("/1.0/containers").metadata
    assert f"/1.0/virtual-machines/{name}" not in api.get("/1.0/virtual-machines").metadata
    assert api.get(f"/1.0/virtual-machines/{name}").error == "Instance not found"
    assert api.get(f"/1.0/containers/{name}").metadata["name"] == name
    ones = api.get("/1.0/instances", params={"recursion": 1}).metadata
    mine = [i for i in ones if i["name"] == name]
    assert len(mine) == 1 and list(mine[0]) == INSTANCE_KEYS
    twos = api.get("/1.0/instances", params={"recursion": 2}).metadata
    mine = [i for i in twos if i["name"] == name]
    assert list(mine[0]) == INSTANCE_KEYS + ["backups", "state", "snapshots"]
    assert mine[0]["state"] == {
        "status": "Stopped", "status_code": 102, "disk": {},
        "memory": {"usage": 0, "usage_peak": 0, "swap_usage": 0, "swap_usage_peak": 0},
        "network": None, "pid": 0, "processes": 0, "cpu": {"usage": 0}}
    typed = api.get("/1.0/instances", params={"instance-type": "virtual-machine"}).metadata
    assert f"/1.0/instances/{name}" not in typed


def test_list_filter(api: API) -> None:
    name = make(api, config={"user.tag": "blue"})
    other = make(api, source={"type": "none"})
    found = api.get("/1.0/instances", params={"filter": f"name eq {name}"}).metadata
    assert found == [f"/1.0/instances/{name}"]
    found = api.get("/1.0/instances", params={"filter": f"name eq {name}",
                                              "recursion": 2}).metadata
    assert [i["name"] for i in found] == [name]
    found = api.get("/1.0/instances", params={"filter": "config.user.tag eq blue"}).metadata
    assert f"/1.0/instances/{name}" in found and f"/1.0/instances/{other}" not in found
    found = api.get("/1.0/instances", params={"filter": "status eq Running"}).metadata
    assert f"/1.0/instances/{name}" not in found
    reply = api.get("/1.0/instances", params={"filter": "bogus"})
    assert (reply.status, reply.error) == (500, "Invalid filter: clause has no operator")
    assert api.get("/1.0/instances", params={"project": "nope-missing"}).metadata == []


def test_all_projects(api: API) -> None:
    name = make(api, source={"type": "none"})
    everything = api.get("/1.0/instances", params={"all-projects": "true",
                                                   "recursion": 1}).metadata
    mine = [i for i in everything if i["name"] == name]
    assert len(mine) == 1 and mine[0]["project"] == "default"


# -- PUT / PATCH ------------------------------------------------------------------------------


def test_put_needs_the_volatile_keys(api: API) -> None:
    name = make(api, source={"type": "none"})
    inst = get(api, name)
    op = op_of(api, api.put(f"/1.0/instances/{name}", {
        "config": {"user.put": "1"}, "profiles": ["default"], "devices": {},
        "description": "put desc"}))
    assert (op["description"], op["status"], op["err"]) == (
        "Updating instance", "Failure", "Volatile idmap keys can't be deleted by the user")
    assert op["resources"] == {"containers": [f"/1.0/containers/{name}"],
                               "instances": [f"/1.0/instances/{name}"]}
    config = {**inst["config"], "user.put": "1"}
    op = op_of(api, api.put(f"/1.0/instances/{name}", {
        "config": config, "profiles": ["default"], "devices": {}, "description": "put desc"}))
    assert op["status"] == "Success", op
    got = get(api, name)
    assert got["config"] == config and got["description"] == "put desc"
    # Other volatile keys may go.
    trimmed = {k: v for k, v in config.items()
               if k not in ("volatile.uuid", "volatile.apply_template")}
    op = op_of(api, api.put(f"/1.0/instances/{name}", {"config": trimmed,
                                                       "profiles": ["default"]}))
    assert op["status"] == "Success"
    got = get(api, name)
    assert "volatile.uuid" not in got["config"]
    assert "volatile.apply_template" not in got["config"]
    assert got["description"] == ""


def test_put_errors(api: API) -> None:
    name = make(api, source={"type": "none"})
    config = get(api, name)["config"]
    path = f"/1.0/instances/{name}"
    op = op_of(api, api.put(path, {"config": {**config, "foo.bar": "1"},
                                   "profiles": ["default"]}))
    assert op["err"] == "Invalid config: Unknown configuration key: foo.bar"
    op = op_of(api, api.put(path, {"config": {**config, "volatile.uuid": "x"},
                                   "profiles": ["default"]}))
    assert op["err"] == "Invalid config: Invalid UUID"
    op = op_of(api, api.put(path, {"config": config, "profiles": ["default"],
                                   "devices": {"x": {"type": "bogus"}}}))
    assert op["err"] == ('Invalid devices: Device validation failed for "x": Failed loading '
                         'device "x": Unsupported device type')
    op = op_of(api, api.put(path, {"config": config, "profiles": ["default", "default"]}))
    assert op["err"] == "Duplicate profile found in request"
    reply = api.put(path, {"config": config, "profiles": ["missing"]})
    assert (reply.status, reply.error) == (404, "Profile not found")
    reply = api.put(path, {"config": config}, headers={"If-Match": "stale"})
    current = api.get(path).headers["ETag"].strip('"')
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {current} vs stale")
    assert get(api, name)["config"] == config


def test_put_keeps_architecture_on_a_bad_value_and_ignores_stateful(api: API) -> None:
    name = make(api, source={"type": "none"})
    config = get(api, name)["config"]
    path = f"/1.0/instances/{name}"
    op = op_of(api, api.put(path, {"config": config, "profiles": ["default"],
                                   "architecture": "i686", "ephemeral": True,
                                   "stateful": True}))
    assert op["status"] == "Success"
    got = get(api, name)
    assert (got["architecture"], got["ephemeral"], got["stateful"]) == ("i686", True, False)
    op = op_of(api, api.put(path, {"config": config, "profiles": ["default"],
                                   "architecture": "bogus"}))
    assert op["status"] == "Success"
    assert get(api, name)["architecture"] == "i686"


def test_patch_merges_and_is_sync(api: API) -> None:
    name = make(api, source={"type": "none"})
    path = f"/1.0/instances/{name}"
    reply = api.patch(path, {"config": {"user.a": "1", "user.b": "2"}, "description": "pd"})
    assert (reply.status, reply.metadata) == (200, {})
    got = get(api, name)
    assert (got["config"]["user.a"], got["config"]["user.b"], got["description"]) == (
        "1", "2", "pd")
    assert api.patch(path, {"config": {"user.a": ""}}).status == 200
    got = get(api, name)
    assert "user.a" not in got["config"] and got["config"]["user.b"] == "2"
    assert got["description"] == ""  # 5.0.2: PATCH resets an unsent description
    assert api.patch(path, {"devices": {"d1": {"type": "disk", "path": "/mnt",
                                               "source": "/srv"}}}).status == 200
    assert api.patch(path, {"ephemeral": True}).status == 200
    got = get(api, name)
    assert got["devices"] == {"d1": {"path": "/mnt", "source": "/srv", "type": "disk"}}
    assert got["ephemeral"] is True and got["profiles"] == ["default"]
    assert api.patch(path, {}).status == 200
    assert get(api, name)["ephemeral"] is True
    for body, status, message in [
        ({"config": {"foo.bar": "1"}}, 500, "Invalid config: Unknown configuration key: foo.bar"),
        ({"devices": {"d2": {"type": "bogus"}}}, 500,
         'Invalid devices: Device validation failed for "d2": Failed loading device "d2": '
         "Unsupported device type"),
        ({"devices": {"d2": {}}}, 500,
         'Invalid devices: Device validation failed for "d2": Failed loading device "d2": '
         "Missing device type in config"),
        ({"profiles": ["missing"]}, 404, "Profile not found"),
        ({"profiles": []}, 500, "Invalid expanded devices: Failed detecting root disk device: "
                                "No root device could be found"),
        ({"restore": "snap0"}, 400, "Can't call PATCH in restore mode"),
    ]:
        reply = api.patch(path, body)
        assert (reply.status, reply.error) == (status, message), body
    etag = api.get(path).headers["ETag"].strip('"')
    reply = api.patch(path, {}, headers={"If-Match": "stale"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {etag} vs stale")


def test_etag_is_stable_and_follows_changes(api: API) -> None:
    name = make(api, source={"type": "none"})
    path = f"/1.0/instances/{name}"
    first = api.get(path).headers["ETag"]
    assert api.get(path).headers["ETag"] == first
    assert api.patch(path, {"config": {"user.x": "1"}}, headers={"If-Match": first}).status \
        == 200
    assert api.get(path).headers["ETag"] != first


# -- rename / delete / copy --------------------------------------------------------------------


def test_rename(api: API) -> None:
    name = make(api, source={"type": "none"})
    other = make(api, source={"type": "none"})
    path = f"/1.0/instances/{name}"
    for new, status, message in [
        (other, 409, f'Name "{other}" already in use'),
        ("", 409, f'Name "{name}" already in use'),
        (name, 409, f'Name "{name}" already in use'),
        ("bad name", 400, "Invalid instance name: Name can only contain alphanumeric and "
                          "hyphen characters"),
    ]:
        reply = api.post(path, {"name": new})
        assert (reply.status, reply.error) == (status, message)
    op_of(api, api.post(f"{path}/snapshots", {"name": "s1"}))
    new = unique("i")
    remove_later(api, new)
    events = Events(api)
    try:
        reply = api.post(path, {"name": new})
        op = op_of(api, reply)
        assert (op["description"], op["status"]) == ("Renaming instance", "Success")
        assert op["resources"] == {"containers": [f"/1.0/containers/{name}"],
                                   "instances": [f"/1.0/instances/{name}"]}
        event = events.wait("instance-renamed", f"/1.0/instances/{new}")
        assert event["metadata"]["context"] == {"old_name": name}
        assert "requestor" not in event["metadata"]
    finally:
        events.close()
    assert api.get(path).status == 404
    assert get(api, new)["name"] == new
    assert api.get(f"/1.0/instances/{new}/snapshots").metadata == [
        f"/1.0/instances/{new}/snapshots/s1"]


def test_rename_and_delete_a_running_instance(api: API) -> None:
    name = make(api)
    assert action(api, name, "start")["status"] == "Success"
    op = op_of(api, api.post(f"/1.0/instances/{name}", {"name": unique("i")}))
    assert (op["status"], op["err"]) == ("Failure", "Renaming of running container not allowed")
    reply = api.delete(f"/1.0/instances/{name}")
    assert (reply.status, reply.error) == (400, "Instance is running")
    assert action(api, name, "stop", force=True)["status"] == "Success"
    op = op_of(api, api.delete(f"/1.0/instances/{name}"))
    assert (op["description"], op["status"]) == ("Deleting instance", "Success")
    assert op["resources"] == {"containers": [f"/1.0/containers/{name}"],
                               "instances": [f"/1.0/instances/{name}"]}
    assert api.get(f"/1.0/instances/{name}").error == "Instance not found"
    for method in ("GET", "DELETE"):
        assert api.request(method, "/1.0/instances/nope-missing/state").status in (404, 501)
    assert api.delete("/1.0/instances/nope-missing").error == "Instance not found"


def test_copy(api: API) -> None:
    source = make(api, config={"user.src": "1"})
    op_of(api, api.post(f"/1.0/instances/{source}/snapshots", {"name": "s1"}))
    copy = unique("i")
    reply, op = create(api, name=copy, source={"type": "copy", "source": source},
                       profiles=["default"])
    assert op["status"] == "Success", op
    assert op["resources"]["instances"] == [f"/1.0/instances/{copy}",
                                            f"/1.0/instances/{source}"]
    got = get(api, copy)["config"]
    src = get(api, source)["config"]
    assert got["user.src"] == "1" and got["volatile.apply_template"] == "copy"
    assert got["volatile.base_image"] == busybox_fp(api)
    assert got["volatile.uuid"] != src["volatile.uuid"]
    assert api.get(f"/1.0/instances/{copy}/snapshots").metadata == [
        f"/1.0/instances/{copy}/snapshots/s1"]
    only = unique("i")
    _, op = create(api, name=only, source={"type": "copy", "source": source,
                                           "instance_only": True},
                   profiles=["default"], config={"user.x": "1"})
    assert op["status"] == "Success"
    assert api.get(f"/1.0/instances/{only}/snapshots").metadata == []
    assert get(api, only)["config"]["user.x"] == "1"
    from_snap = unique("i")
    _, op = create(api, name=from_snap, source={"type": "copy", "source": f"{source}/s1"},
                   profiles=["default"])
    assert op["status"] == "Success"
    assert op["resources"]["instances"][1] == f"/1.0/instances/{source}/s1"
    # Without profiles, 5.0.2 copies with none: no root disk.
    _, op = create(api, name=unique("i"), source={"type": "copy", "source": source})
    assert (op["status"], op["err"]) == (
        "Failure", "Failed creating instance record: Failed initialising instance: Failed "
                   "getting root disk: No root device could be found")
    reply = api.post("/1.0/instances", {"name": unique("i"),
                                        "source": {"type": "copy", "source": f"{source}/nope"}})
    assert (reply.status, reply.error) == (
        404, f'Failed to fetch snapshot "nope" of instance "{source}" in project "default": '
             "InstanceSnapshot not found")


# -- logs, console, metadata -------------------------------------------------------------------


def test_logs(api: API) -> None:
    name = make(api)
    base = f"/1.0/instances/{name}/logs"
    assert api.get(base).metadata == [f"{base}/lxc.log"]
    reply = api.get(f"{base}/lxc.log")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["Content-Disposition"] == "inline;filename=lxc.log"
    assert action(api, name, "start")["status"] == "Success"
    assert api.get(base).metadata == [f"{base}/lxc.conf", f"{base}/lxc.log"]
    assert b"lxc.console.logfile" in api.get(f"{base}/lxc.conf").raw
    for file, method, status, message in [
        ("nope.log", "GET", 400, "log file name nope.log not valid"),
        ("console.log", "GET", 400, "log file name console.log not valid"),
        ("nope.log", "DELETE", 400, "log file name nope.log not valid"),
        ("lxc.log", "DELETE", 400, "lxc.log and lxc.conf may not be deleted"),
        ("lxc.conf", "DELETE", 400, "lxc.log and lxc.conf may not be deleted"),
        ("exec_x.stdout", "GET", 500,
         f"open /var/lib/lxd/logs/{name}/exec_x.stdout: no such file or directory"),
        ("snapshot_x", "GET", 500,
         f"open /var/lib/lxd/logs/{name}/snapshot_x: no such file or directory"),
        ("exec_x.stdout", "DELETE", 404,
         f"remove /var/lib/lxd/logs/{name}/exec_x.stdout: no such file or directory"),
    ]:
        reply = api.request(method, f"{base}/{file}")
        assert (reply.status, reply.error) == (status, message), (file, method)
    assert api.get("/1.0/instances/nope-missing/logs").error == "Instance not found"


def test_console(api: API) -> None:
    name = make(api)
    path = f"/1.0/instances/{name}/console"
    reply = api.get(path)
    assert (reply.status, reply.error) == (
        500, f"open /var/lib/lxd/logs/{name}/console.log: no such file or directory")
    reply = api.delete(path)
    assert (reply.status, reply.error) == (
        404, f"stat /var/lib/lxd/logs/{name}/console.log: no such file or directory")
    assert action(api, name, "start")["status"] == "Success"
    reply = api.get(path)
    assert (reply.status, reply.error) == (500, "open : no such file or directory")
    assert action(api, name, "stop", force=True)["status"] == "Success"
    reply = api.get(path)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["Content-Disposition"] == (
        f"inline;filename=/var/lib/lxd/logs/{name}/console.log")
    assert api.delete(path).status == 200


def test_metadata(api: API) -> None:
    name = make(api)
    path = f"/1.0/instances/{name}/metadata"
    reply = api.get(path)
    assert reply.metadata == {
        "architecture": "x86_64", "creation_date": 1700000000, "expiry_date": 0,
        "properties": {"architecture": "x86_64", "description": "busybox test image",
                       "os": "busybox", "release": "1"},
        "templates": {}}
    etag = reply.headers["ETag"].strip('"')
    assert etag == "4b43ad11a22c3c3b4e46d23d967f1ea15dcb7e0d5dfdf126c79c891943d8d1ca"
    assert api.get(f"{path}/templates").metadata == []
    bare = make(api, source={"type": "none"})
    reply = api.get(f"/1.0/instances/{bare}/metadata")
    assert reply.metadata == {"architecture": "", "creation_date": 0, "expiry_date": 0,
                              "properties": None, "templates": None}
    assert "ETag" not in reply.headers


def test_metadata_put(api: API) -> None:
    name = make(api)
    path = f"/1.0/instances/{name}/metadata"
    meta = api.get(path).metadata
    meta["properties"]["user.extra"] = "1"
    reply = api.put(path, meta)
    assert (reply.status, reply.metadata) == (200, {})
    assert api.get(path).metadata == meta
    # 5.0.2 ignores If-Match on metadata.
    assert api.put(path, meta, headers={"If-Match": "stale"}).status == 200


# -- publishing and events -----------------------------------------------------------------------


def test_publish_an_instance_as_an_image(api: API) -> None:
    name = make(api)
    reply = api.post("/1.0/images", {"source": {"type": "instance", "name": name},
                                     "properties": {"os": "published"}})
    op = op_of(api, reply)
    assert (op["description"], op["status"]) == ("Downloading image", "Success"), op
    fp = op["metadata"]["fingerprint"]
    api.delete_later(f"/1.0/images/{fp}")
    image = api.get(f"/1.0/images/{fp}").metadata
    assert image["properties"] == {"os": "published"}
    assert (image["filename"], image["type"]) == ("", "container")
    # An instance made from the published image has the files of the first.
    child = make(api, source={"type": "image", "fingerprint": fp})
    assert get(api, child)["config"]["volatile.base_image"] == fp


def test_lifecycle_events(api: API) -> None:
    with_busybox(api)
    events = Events(api)
    try:
        name = make(api)
        source = f"/1.0/instances/{name}"
        created = events.wait("instance-created", source)["metadata"]
        assert created["context"] == {"storage-pool": "default", "type": "container"}
        assert "requestor" not in created
        assert api.patch(source, {"config": {"user.a": "1"}}).status == 200
        updated = events.wait("instance-updated", source)["metadata"]
        assert "requestor" not in updated
        assert api.get(f"{source}/metadata").status == 200
        retrieved = events.wait("instance-metadata-retrieved", source)["metadata"]
        assert retrieved["source"] == f"{source}/metadata" and "requestor" in retrieved
        assert api.get(f"{source}/logs/lxc.log").status == 200
        event = events.wait("instance-log-retrieved", source)["metadata"]
        assert event["source"] == f"{source}/backups/lxc.log"  # sic, LXD 5.0.2
        op_of(api, api.delete(source))
        assert "requestor" not in events.wait("instance-deleted", source)["metadata"]
    finally:
        events.close()


# -- the fake's records (the contract with files and exec) ---------------------------------------


@pytest.mark.fake_only
def test_records_carry_files_through_snapshots_copies_and_publishing(api: API) -> None:
    """The fake keeps each instance's root filesystem in its record: snapshots and copies get
    their own copy, restore brings it back, and publishing packs it into the image."""
    from fakeserver.api import images
    from fakeserver.api.instances import get_instance, instance_url
    from fakeserver.imagefile import Entry

    state = api.server.state  # type: ignore[attr-defined]
    name = make(api)
    with state.lock:
        record = get_instance(state, "default", name)
        assert record["files"]["/bin/busybox"].type == "file"
        assert record["logs"] == {"lxc.log": b""}
        record["files"]["/srv/before"] = Entry("file", 0o644, content=b"1")
    op_of(api, api.post(f"/1.0/instances/{name}/snapshots", {"name": "s1"}))
    copy = make(api, source={"type": "copy", "source": name}, profiles=["default"])
    with state.lock:
        record["files"]["/srv/after"] = Entry("file", 0o644, content=b"2")
        assert "/srv/after" not in record["snapshots"]["s1"]["files"]
        copied = get_instance(state, "default", copy)
        assert "/srv/before" in copied["files"] and "/srv/after" not in copied["files"]
        assert "/srv/after" not in copied["snapshots"]["s1"]["files"]
    assert op_of(api, api.put(f"/1.0/instances/{name}", {"restore": "s1"}))["status"] == \
        "Success"
    with state.lock:
        assert "/srv/after" not in get_instance(state, "default", name)["files"]
    op = op_of(api, api.post("/1.0/images", {"source": {"type": "instance", "name": name}}))
    fp = op["metadata"]["fingerprint"]
    with state.lock:
        tree = images.rootfs_of(images.images_of(state, "default")[fp])
    assert tree["/srv/before"].content == b"1"
    assert instance_url(name, "p1", "containers") == f"/1.0/containers/{name}?project=p1"
    with pytest.raises(Exception, match="Instance not found"):
        get_instance(state, "default", "nope")


@pytest.mark.fake_only
def test_hand_seeded_records_are_completed(api: API) -> None:
    state = api.server.state  # type: ignore[attr-defined]
    with state.lock:
        state.families["instances"].setdefault("default", {})["seeded"] = {
            "name": "seeded", "type": "container", "config": {}, "devices": {},
            "profiles": ["default"], "status": "Stopped"}
    inst = get(api, "seeded")
    # An empty expanded_config is left out, as LXD's omitempty does.
    assert list(inst) == [k for k in INSTANCE_KEYS if k != "expanded_config"]
    assert inst["status"] == "Stopped"
    assert api.get("/1.0/instances", params={"recursion": 2}).status == 200
