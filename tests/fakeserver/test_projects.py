"""Projects: the same requests and the same answers on the fake and on real LXD 5.0.2."""

from __future__ import annotations

import json
import threading
import urllib.parse
from typing import Any

import pytest

from fakeserver.responses import etag_of
from tests.support import API, poll, unique

FRESH_CONFIG = {"features.images": "true", "features.profiles": "true",
                "features.storage.volumes": "true"}


def make(api: API, **body: Any) -> str:
    name = str(body.setdefault("name", unique("p")))
    reply = api.post("/1.0/projects", body)
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{name}")
    return name


def get(api: API, name: str) -> dict[str, Any]:
    reply = api.get(f"/1.0/projects/{name}")
    assert reply.status == 200, reply
    return dict(reply.metadata)


class Lifecycle:
    """Lifecycle events of every project, read from ``/1.0/events`` on either backend."""

    def __init__(self, api: API) -> None:
        self.events: list[dict[str, Any]] = []
        path = urllib.parse.unquote(api.base.removeprefix("http+unix://"))
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._stop = threading.Event()
        ready = threading.Event()
        thread = threading.Thread(target=self._read, args=(path, ready), daemon=True)
        thread.start()
        assert ready.wait(10), "could not connect to /1.0/events"
        api.later(self._stop.set)

    def _read(self, path: str, ready: threading.Event) -> None:
        from websockets.sync.client import unix_connect

        uri = "ws://lxd/1.0/events?type=lifecycle&all-projects=true"
        with unix_connect(path, uri) as ws:
            ready.set()
            while not self._stop.is_set():
                try:
                    event = json.loads(ws.recv(timeout=0.1))
                except TimeoutError:
                    continue
                except Exception:  # noqa: BLE001 - the socket closed
                    return
                with self._lock:
                    self._buffer.append(event)

    def _pop(self) -> dict[str, Any] | None:
        with self._lock:
            return self._buffer.pop(0) if self._buffer else None

    def about(self, source_part: str, count: int) -> list[dict[str, Any]]:
        """The events whose source contains ``source_part`` once ``count`` have arrived."""

        def enough() -> bool:
            while (event := self._pop()) is not None:
                self.events.append(event)
            return len(self.matching(source_part)) >= count

        poll(enough, timeout=5)
        return self.matching(source_part)

    def matching(self, source_part: str) -> list[dict[str, Any]]:
        return [e for e in self.events if source_part in e["metadata"]["source"]]


# -- create ----------------------------------------------------------------------------------
def test_create_returns_201_and_sets_default_features(api: API) -> None:
    name = unique("p")
    reply = api.post("/1.0/projects", {"name": name, "description": "d",
                                       "config": {"user.x": "1"}})
    api.delete_later(f"/1.0/projects/{name}")
    assert reply.status == 201
    assert reply.headers["Location"] == f"/1.0/projects/{name}"
    assert reply.body["metadata"] is None
    got = api.get(f"/1.0/projects/{name}")
    assert list(got.metadata) == ["config", "description", "name", "used_by"]
    assert got.metadata == {"config": {**FRESH_CONFIG, "user.x": "1"}, "description": "d",
                            "name": name, "used_by": [f"/1.0/profiles/default?project={name}"]}
    assert got.headers["ETag"] == f'"{etag_of(["d", {**FRESH_CONFIG, "user.x": "1"}])}"'


def test_new_project_gets_its_own_empty_default_profile(api: API) -> None:
    name = make(api)
    reply = api.get("/1.0/profiles/default", params={"project": name})
    assert reply.metadata == {"config": {}, "devices": {}, "name": "default", "used_by": [],
                              "description": f"Default LXD profile for project {name}"}


def test_sent_features_win_and_empty_values_are_not_stored(api: API) -> None:
    name = make(api, config={"features.images": "", "features.profiles": "false",
                             "features.networks": "false"})
    got = get(api, name)
    assert got["config"] == {"features.networks": "false", "features.profiles": "false",
                             "features.storage.volumes": "true"}
    assert got["used_by"] == []


def test_null_config_means_no_features_at_all(api: API) -> None:
    name = make(api, config=None)
    assert get(api, name) == {"config": {}, "description": "", "name": name, "used_by": []}


def test_duplicate_is_409(api: API) -> None:
    reply = api.post("/1.0/projects", {"name": "default"})
    assert reply.status == 409
    assert reply.error == ('Failed creating project "default": Failed adding database record: '
                           'This "projects" entry already exists')
    assert reply.raw.endswith(b"}\n\n")
    name = make(api)
    assert api.post("/1.0/projects", {"name": name}).status == 409


@pytest.mark.parametrize(("name", "message"), [
    ("", "No name provided"),
    ("a/b", "Project names may not contain slashes"),
    ("a b", "Project names may not contain spaces"),
    ("a_b", "Project names may not contain underscores"),
    ("a'b", "Project names may not contain quotes"),
    ('a"b', "Project names may not contain quotes"),
    ("*", "Reserved project name"),
    (".", 'Invalid project name "."'),
    ("..", 'Invalid project name ".."'),
])
def test_bad_names(api: API, name: str, message: str) -> None:
    reply = api.post("/1.0/projects", {"name": name})
    assert (reply.status, reply.error) == (400, message)


def test_missing_name_and_bad_bodies(api: API) -> None:
    assert api.post("/1.0/projects", {}).error == "No name provided"
    for raw, message in [
        (b"", "EOF"), (b'{"name":', "unexpected EOF"),
        (b"[]", "json: cannot unmarshal array into Go value of type api.ProjectsPost"),
        (b'{"name":5}', "json: cannot unmarshal number into Go struct field ProjectsPost.name "
                        "of type string"),
        (b'{"name":"x","config":{"user.a":1}}', "json: cannot unmarshal number into Go struct "
                                                "field ProjectsPost.config of type string"),
        (b'{"name":"x","description":5}', "json: cannot unmarshal number into Go struct field "
                                          "ProjectsPost.description of type string"),
    ]:
        reply = api.request("POST", "/1.0/projects", data=raw)
        assert (reply.status, reply.error) == (400, message), raw


def test_name_is_checked_before_config(api: API) -> None:
    reply = api.post("/1.0/projects", {"name": "a/b", "config": {"foo": "1"}})
    assert reply.error == "Project names may not contain slashes"
    reply = api.post("/1.0/projects", {"name": "default", "config": {"foo": "1"}})
    assert (reply.status, reply.error) == (400, 'Invalid project configuration key "foo"')


PREFIX = 'Invalid project configuration key "{}" value: '
BAD_CONFIG = [
    ("foo", "1", 'Invalid project configuration key "foo"'),
    ("volatile.x", "1", 'Invalid project configuration key "volatile.x"'),
    ("features.networks.zones", "true",
     'Invalid project configuration key "features.networks.zones"'),
    ("limits.disk.pool.default", "1GiB",
     'Invalid project configuration key "limits.disk.pool.default"'),
    ("features.images", "maybe", 'Invalid value for a boolean "maybe"'),
    ("restricted", "zz", 'Invalid value for a boolean "zz"'),
    ("limits.cpu", "abc",
     'Invalid value for uint32 "abc": strconv.ParseUint: parsing "abc": invalid syntax'),
    ("limits.cpu", "-1",
     'Invalid value for uint32 "-1": strconv.ParseUint: parsing "-1": invalid syntax'),
    ("limits.instances", "4294967296", 'Invalid value for uint32 "4294967296": '
     'strconv.ParseUint: parsing "4294967296": value out of range'),
    ("limits.memory", "50%", "Invalid value: 50%"),
    ("limits.memory", "1.5GiB", "Invalid value: 1.5GiB"),
    ("limits.disk", "1Kib", "Invalid value: 1Kib"),
    ("images.auto_update_interval", "1.5", 'Invalid value for an integer "1.5"'),
    ("images.remote_cache_expiry", " 1", 'Invalid value for an integer " 1"'),
    ("backups.compression_algorithm", "", "No compression algorithm specified"),
    ("backups.compression_algorithm", "lz4", 'Invalid compression algorithm "lz4"'),
    ("images.compression_algorithm", "zzbad", 'Invalid compression algorithm "zzbad"'),
    ("restricted.containers.nesting", "zz", 'Invalid value "zz" (not one of [block allow])'),
    ("restricted.devices.nic", "zz", 'Invalid value "zz" (not one of [block allow managed])'),
    ("restricted.containers.privilege", "zz",
     'Invalid value "zz" (not one of [allow unprivileged isolated])'),
    ("restricted.containers.interception", "zz",
     'Invalid value "zz" (not one of [allow block full])'),
    ("restricted.devices.disk.paths", "/a,,/b", 'Item "": Must be absolute file path'),
    ("restricted.idmap.uid", "1000-", 'Item "1000-": Invalid end number "1000-"'),
    ("restricted.idmap.gid", "a-b", 'Item "a-b": Invalid number "a-b"'),
    ("restricted.idmap.uid", "2000-1000",
     'Item "2000-1000": Start number 2000 must be lower than end number 1000'),
    ("restricted.networks.subnets", "zz",
     'Subnet "zz" invalid, must be in the format of "<uplink network>:<subnet>"'),
    ("restricted.networks.subnets", "nope:10.0.0.0/24",
     'Invalid uplink network "nope": Network not found'),
    ("restricted.networks.subnets", "lxdbr0:10.0.0.1/24",
     'Not an IP network address "10.0.0.1/24"'),
    ("restricted.networks.subnets", "lxdbr0:bogus", "invalid CIDR address: bogus"),
    ("restricted.networks.subnets", "lxdbr0:10.0.0.0/24",
     "Uplink network \"lxdbr0\" doesn't contain \"10.0.0.0/24\" in its routes"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_CONFIG)
def test_config_validation_on_create(api: API, key: str, value: str, message: str) -> None:
    reply = api.post("/1.0/projects", {"name": unique("p"), "config": {key: value}})
    if not message.startswith("Invalid project configuration key"):
        message = PREFIX.format(key) + message
    assert (reply.status, reply.error) == (400, message)


def test_architecture_list_in_message(api: API) -> None:
    reply = api.post("/1.0/projects", {"name": unique("p"),
                                       "config": {"images.default_architecture": "amd64"}})
    assert reply.status == 400
    head = PREFIX.format("images.default_architecture") + 'Invalid value "amd64" (not one of ['
    assert reply.error.startswith(head)
    # Go prints a map, so the order varies from call to call on real LXD.
    assert set(reply.error[len(head):-2].split()) == {
        "i686", "x86_64", "armv6l", "armv7l", "armv8l", "aarch64", "ppc", "ppc64", "ppc64le",
        "mips", "mips64", "riscv32", "riscv64", "s390x"}


def test_valid_config_is_stored(api: API) -> None:
    config = {
        "backups.compression_algorithm": "gzip -9", "images.compression_algorithm": "none",
        "images.auto_update_cached": "TRUE", "images.auto_update_interval": "-1",
        "images.default_architecture": "x86_64", "images.remote_cache_expiry": "10",
        "limits.instances": "4294967295", "limits.containers": "0", "limits.cpu": "2",
        "limits.memory": "1GiB", "limits.disk": "10GB", "limits.processes": "100",
        "limits.networks": "3", "limits.virtual-machines": "1", "restricted": "no",
        "restricted.backups": "allow", "restricted.snapshots": "block",
        "restricted.cluster.groups": "anything", "restricted.cluster.target": "allow",
        "restricted.containers.interception": "full", "restricted.containers.lowlevel": "allow",
        "restricted.containers.privilege": "isolated",
        "restricted.devices.disk": "managed", "restricted.devices.disk.paths": "/a, /b",
        "restricted.devices.gpu": "allow", "restricted.devices.pci": "block",
        "restricted.devices.proxy": "allow", "restricted.devices.usb": "allow",
        "restricted.idmap.uid": "1000, 2000-3000", "restricted.networks.access": "x",
        "restricted.networks.uplinks": "y", "restricted.networks.zones": "z",
        "restricted.virtual-machines.lowlevel": "allow", "user.anything": "",
        "features.networks": "off",
    }
    name = make(api, config=config)
    stored = {k: v for k, v in {**FRESH_CONFIG, **config}.items() if v}
    assert get(api, name)["config"] == stored


# -- read ------------------------------------------------------------------------------------
def test_list_and_recursion(api: API) -> None:
    name = make(api)
    urls = api.get("/1.0/projects").metadata
    assert "/1.0/projects/default" in urls and f"/1.0/projects/{name}" in urls
    names = [u.rsplit("/", 1)[1] for u in urls]
    assert names == sorted(names)  # by name, bytewise: "Z…" comes before "default"
    objs = api.get("/1.0/projects", params={"recursion": "1"}).metadata
    # (Other sessions may add or remove projects on the real host between the two calls.)
    full_names = [o["name"] for o in objs]
    assert full_names == sorted(full_names) and name in full_names
    default = objs[full_names.index("default")]
    assert default["description"] == "Default LXD project"
    assert default["config"] == {**FRESH_CONFIG, "features.networks": "true"}
    assert "/1.0/profiles/default" in default["used_by"]
    assert f"/1.0/projects/{name}" in api.get("/1.0/projects",
                                              params={"recursion": "abc"}).metadata


def test_names_with_special_characters_are_escaped_twice_in_urls(api: API) -> None:
    name = unique("p?é+:")
    escaped_once = urllib.parse.quote(name, safe="$&+:=@")
    twice = urllib.parse.quote(escaped_once, safe="$&+:=@")
    reply = api.post("/1.0/projects", {"name": name})
    api.delete_later(f"/1.0/projects/{urllib.parse.quote(name, safe='')}")
    assert reply.status == 201
    assert reply.headers["Location"] == f"/1.0/projects/{twice}"
    assert f"/1.0/projects/{twice}" in api.get("/1.0/projects").metadata
    got = api.get(f"/1.0/projects/{urllib.parse.quote(name, safe='')}").metadata
    assert got["name"] == name
    query = urllib.parse.quote_plus(name)
    assert got["used_by"] == [f"/1.0/profiles/default?project={query}"]


def test_not_found_messages(api: API) -> None:
    for method in ("GET", "PUT", "PATCH"):
        reply = api.request(method, "/1.0/projects/nope", json_body={})
        assert (reply.status, reply.error) == (404, "Project not found"), method
    reply = api.delete("/1.0/projects/nope")
    assert (reply.status, reply.error) == (404, 'Fetch project "nope": Project not found')
    reply = api.get("/1.0/projects/nope/state")
    assert (reply.status, reply.error) == (404,
                                           "Fetch project database object: Project not found")
    for method, path in [("PUT", "/1.0/projects/default/state"), ("DELETE", "/1.0/projects")]:
        reply = api.request(method, path, json_body={})
        assert (reply.status, reply.error) == (501, "not implemented"), path
    # ?target is not checked on these endpoints.
    assert api.get("/1.0/projects/default", params={"target": "foo"}).status == 200
    assert api.get("/1.0/projects/default/state", params={"target": "foo"}).status == 200


# -- update ----------------------------------------------------------------------------------
def test_put_replaces_everything(api: API) -> None:
    name = make(api, description="d", config={"user.a": "1"})
    body = {"config": {**FRESH_CONFIG, "limits.cpu": "2"}}
    assert api.put(f"/1.0/projects/{name}", body).status == 200
    assert get(api, name)["config"] == {**FRESH_CONFIG, "limits.cpu": "2"}
    assert get(api, name)["description"] == ""


def test_patch_replaces_config_on_5_0_2(api: API) -> None:
    """5.0.2 merges the old keys into a copy it then discards: the sent map wins whole."""
    name = make(api, description="d", config={"user.a": "1"})
    body = {"config": {**FRESH_CONFIG, "user.b": "2", "user.c": ""}}
    assert api.patch(f"/1.0/projects/{name}", body).status == 200
    got = get(api, name)
    assert got["config"] == {**FRESH_CONFIG, "user.b": "2"}
    assert got["description"] == "d"


def test_patch_without_config_keeps_it(api: API) -> None:
    name = make(api, description="d", config={"user.a": "1"})
    for body in ({"description": "e"}, {"config": None}, {"description": None}, None,
                 {"name": "ignored"}, {"Config": {"user.z": "1"}}):
        reply = api.request("PATCH", f"/1.0/projects/{name}", data=json.dumps(body))
        assert reply.status == 200, (body, reply)
    got = get(api, name)
    assert got["config"] == {**FRESH_CONFIG, "user.a": "1"}
    assert got["description"] == "e"
    assert api.patch(f"/1.0/projects/{name}", {"description": ""}).status == 200
    assert get(api, name)["description"] == ""


def test_patch_that_drops_features_profiles_removes_own_default_profile(api: API) -> None:
    name = make(api)
    assert api.patch(f"/1.0/projects/{name}", {"config": {"limits.cpu": "4"}}).status == 200
    got = get(api, name)
    assert (got["config"], got["used_by"]) == ({"limits.cpu": "4"}, [])
    # Now the project uses the default project's profiles (URLs without ?project=).
    urls = api.get("/1.0/profiles", params={"project": name}).metadata
    assert "/1.0/profiles/default" in urls and not any("?project=" in u for u in urls)


def test_removing_a_missing_default_profile_fails_and_changes_nothing(api: API) -> None:
    name = make(api, config={"features.profiles": "false"})
    reply = api.patch(f"/1.0/projects/{name}", {"config": {"limits.cpu": "4"}})
    assert (reply.status, reply.error) == (404, "Delete project default profile: "
                                                "Profile not found")
    assert get(api, name)["config"] == {"features.images": "true", "features.profiles": "false",
                                        "features.storage.volumes": "true"}


def test_enabling_profiles_again_conflicts_with_existing_default_profile(api: API) -> None:
    name = make(api, config={"features.profiles": "1"})
    reply = api.patch(f"/1.0/projects/{name}",
                      {"config": {**FRESH_CONFIG, "features.profiles": "true"}})
    assert (reply.status, reply.error) == (409, 'Add default profile to database: This '
                                                '"profiles" entry already exists')
    assert get(api, name)["config"]["features.profiles"] == "1"


def test_enabling_profiles_creates_the_default_profile(api: API) -> None:
    name = make(api, config={"features.profiles": "false"})
    assert get(api, name)["used_by"] == []
    body = {"config": {**FRESH_CONFIG, "features.profiles": "true"}}
    assert api.put(f"/1.0/projects/{name}", body).status == 200
    assert get(api, name)["used_by"] == [f"/1.0/profiles/default?project={name}"]


def test_update_validation(api: API) -> None:
    name = make(api, config={"user.a": "1"})
    reply = api.put(f"/1.0/projects/{name}", {"config": {**FRESH_CONFIG, "bogus": "1"}})
    assert (reply.status, reply.error) == (400, 'Invalid project configuration key "bogus"')
    reply = api.patch(f"/1.0/projects/{name}", {"config": {**FRESH_CONFIG, "limits.cpu": "x"}})
    assert reply.status == 400
    assert reply.error == PREFIX.format("limits.cpu") + (
        'Invalid value for uint32 "x": strconv.ParseUint: parsing "x": invalid syntax')
    for method, raw, message in [
        ("PATCH", b"", "EOF"), ("PATCH", b"[", "unexpected EOF"),
        ("PATCH", b"[]", "json: cannot unmarshal array into Go value of type shared.Jmap"),
        ("PATCH", b'{"config":"x"}', "json: cannot unmarshal string into Go struct field "
                                     "ProjectPut.config of type map[string]string"),
        ("PATCH", b'{"description":5}', "json: cannot unmarshal number into Go struct field "
                                        "ProjectPut.description of type string"),
        ("PUT", b"", "EOF"),
        ("PUT", b"[]", "json: cannot unmarshal array into Go value of type api.ProjectPut"),
        ("PUT", b'{"config":{"a":1}}', "json: cannot unmarshal number into Go struct field "
                                       "ProjectPut.config of type string"),
    ]:
        reply = api.request(method, f"/1.0/projects/{name}", data=raw)
        assert (reply.status, reply.error) == (400, message), (method, raw)
    assert get(api, name)["config"] == {**FRESH_CONFIG, "user.a": "1"}


def test_etag_if_match(api: API) -> None:
    name = make(api)
    etag = api.get(f"/1.0/projects/{name}").headers["ETag"]
    body = {"config": {**FRESH_CONFIG, "user.a": "1"}, "description": "v2"}
    assert api.put(f"/1.0/projects/{name}", body, headers={"If-Match": etag}).status == 200
    current = api.get(f"/1.0/projects/{name}").headers["ETag"].strip('"')
    assert current == etag_of(["v2", {**FRESH_CONFIG, "user.a": "1"}])
    stale = api.patch(f"/1.0/projects/{name}", {}, headers={"If-Match": etag})
    assert (stale.status, stale.error) == (
        412, f"ETag doesn't match: {current} vs {etag.strip(chr(34))}")
    # The ETag is checked before the body is read.
    stale = api.request("PUT", f"/1.0/projects/{name}", data=b"[", headers={"If-Match": "x"})
    assert stale.status == 412


def test_default_project_features_cannot_change(api: API) -> None:
    before = get(api, "default")
    for method in ("PUT", "PATCH"):
        reply = api.request(method, "/1.0/projects/default", json_body={"config": {"user.x": "1"}})
        assert (reply.status, reply.error) == (
            400, "You can't change the features of the default project"), method
    body = {"config": {**before["config"], "bogus": "1"}}
    reply = api.patch("/1.0/projects/default", body)
    assert (reply.status, reply.error) == (400, 'Invalid project configuration key "bogus"')
    assert get(api, "default")["config"] == before["config"]


def test_features_of_a_non_empty_project(api: API) -> None:
    name = make(api)
    api.in_project(name).post("/1.0/profiles", {"name": "extra"})
    api.delete_later(f"/1.0/profiles/extra?project={name}")
    reply = api.patch(f"/1.0/projects/{name}",
                      {"config": {**FRESH_CONFIG, "features.images": "false"}})
    assert (reply.status, reply.error) == (
        400, 'Project feature "features.images" cannot be disabled on non-empty projects')
    # From unset to "false" is a change LXD lets through; from "false" on it is "enabling".
    body = {"config": {**FRESH_CONFIG, "features.networks": "false"}}
    assert api.put(f"/1.0/projects/{name}", body).status == 200
    reply = api.put(f"/1.0/projects/{name}",
                    {"config": {**FRESH_CONFIG, "features.networks": ""}})
    assert (reply.status, reply.error) == (
        400, 'Project feature "features.networks" cannot be enabled on non-empty projects')
    assert api.put(f"/1.0/projects/{name}", {"config": {**body["config"], "limits.cpu": "2"}}
                   ).status == 200


# -- rename ----------------------------------------------------------------------------------
def test_rename_is_an_operation(api: API) -> None:
    name = make(api, description="d")
    new = unique("p")
    api.delete_later(f"/1.0/projects/{new}")
    reply = api.post(f"/1.0/projects/{name}", {"name": new})
    assert reply.status == 202
    op = reply.metadata
    assert (op["description"], op["resources"], op["class"]) == ("Renaming project", None,
                                                                 "task")
    done = api.wait(reply)
    assert (done["status"], done["err"]) == ("Success", "")
    assert api.get(f"/1.0/projects/{name}").status == 404
    got = get(api, new)
    assert (got["description"], got["used_by"]) == ("d", [f"/1.0/profiles/default?project={new}"])
    # The default profile moves along and keeps the description naming the old project.
    profile = api.get("/1.0/profiles/default", params={"project": new}).metadata
    assert profile["description"] == f"Default LXD profile for project {name}"


@pytest.mark.parametrize(("target", "err"), [
    ("default", 'A project named "default" already exists'),
    ("a/b", "Project names may not contain slashes"),
    ("", "No name provided"),
])
def test_rename_failures_happen_in_the_operation(api: API, target: str, err: str) -> None:
    name = make(api)
    reply = api.post(f"/1.0/projects/{name}", {"name": target})
    assert reply.status == 202
    done = api.wait(reply)
    assert (done["status"], done["status_code"], done["err"]) == ("Failure", 400, err)
    assert api.get(f"/1.0/projects/{name}").status == 200


def test_rename_of_missing_or_non_empty_project(api: API) -> None:
    done = api.wait(api.post("/1.0/projects/nope", {"name": unique("p")}))
    assert done["err"] == 'Failed loading project "nope": Project not found'
    name = make(api)
    api.in_project(name).post("/1.0/profiles", {"name": "extra"})
    api.delete_later(f"/1.0/profiles/extra?project={name}")
    done = api.wait(api.post(f"/1.0/projects/{name}", {"name": "a/b"}))
    assert done["err"] == "Only empty projects can be renamed"


def test_rename_default_and_bad_bodies(api: API) -> None:
    reply = api.post("/1.0/projects/default", {"name": unique("p")})
    assert (reply.status, reply.error) == (403, "The 'default' project cannot be renamed")
    name = make(api)
    for raw, message in [(b"", "EOF"), (b"[]", "json: cannot unmarshal array into Go value "
                                               "of type api.ProjectPost")]:
        reply = api.request("POST", f"/1.0/projects/{name}", data=raw)
        assert (reply.status, reply.error) == (400, message)


# -- delete ----------------------------------------------------------------------------------
def test_delete(api: API) -> None:
    reply = api.delete("/1.0/projects/default")
    assert (reply.status, reply.error) == (403, "The 'default' project cannot be deleted")
    name = make(api)
    assert api.delete(f"/1.0/projects/{name}").status == 200
    assert api.get(f"/1.0/projects/{name}").status == 404
    reply = api.get("/1.0/profiles", params={"project": name})
    assert (reply.status, reply.error) == (404, f'Failed loading project "{name}": '
                                                "Project not found")


def test_delete_refuses_a_non_empty_project(api: API) -> None:
    name = make(api)
    assert api.in_project(name).post("/1.0/profiles", {"name": "extra"}).status == 201
    api.delete_later(f"/1.0/profiles/extra?project={name}")
    reply = api.delete(f"/1.0/projects/{name}")
    assert (reply.status, reply.error) == (500, "Only empty projects can be removed")
    assert api.delete(f"/1.0/profiles/extra?project={name}").status == 200
    assert api.delete(f"/1.0/projects/{name}").status == 200


# -- used_by, features -----------------------------------------------------------------------
def test_used_by_lists_own_profiles_sorted(api: API) -> None:
    name = make(api)
    scoped = api.in_project(name)
    for profile in ("pb", "pa"):
        reply = scoped.post("/1.0/profiles", {"name": profile})
        assert reply.status == 201
        assert reply.headers["Location"] == f"/1.0/profiles/{profile}?project={name}"
        api.delete_later(f"/1.0/profiles/{profile}?project={name}")
    assert get(api, name)["used_by"] == [f"/1.0/profiles/{p}?project={name}"
                                         for p in ("default", "pa", "pb")]
    assert scoped.get("/1.0/profiles").metadata == [f"/1.0/profiles/{p}?project={name}"
                                                    for p in ("default", "pa", "pb")]


def test_project_without_features_profiles_uses_the_default_projects(api: API) -> None:
    name = make(api, config={"features.profiles": "false"})
    scoped = api.in_project(name)
    urls = scoped.get("/1.0/profiles").metadata
    assert "/1.0/profiles/default" in urls and not any("?project=" in u for u in urls)
    mine = unique("pr")
    reply = scoped.post("/1.0/profiles", {"name": mine})
    api.delete_later(f"/1.0/profiles/{mine}")
    assert reply.status == 201
    assert reply.headers["Location"] == f"/1.0/profiles/{mine}"
    assert api.get(f"/1.0/profiles/{mine}").status == 200
    assert f"/1.0/profiles/{mine}" in scoped.get("/1.0/profiles").metadata
    assert f"/1.0/profiles/{mine}" in get(api, "default")["used_by"]
    assert get(api, name)["used_by"] == []


# -- /state ----------------------------------------------------------------------------------
def test_state_of_an_empty_project(api: API) -> None:
    name = make(api)
    reply = api.get(f"/1.0/projects/{name}/state")
    assert "ETag" not in reply.headers
    resources = reply.metadata["resources"]
    assert list(resources) == ["containers", "cpu", "disk", "instances", "memory", "networks",
                               "processes", "virtual-machines"]
    assert all(value == {"Limit": -1, "Usage": 0} for value in resources.values())


def test_state_parses_limits(api: API) -> None:
    name = make(api, config={"limits.cpu": "2", "limits.memory": "1GiB", "limits.disk": "10GB",
                             "limits.instances": "5", "limits.containers": "3",
                             "limits.virtual-machines": "0", "limits.networks": "1",
                             "limits.processes": "100"})
    resources = api.get(f"/1.0/projects/{name}/state").metadata["resources"]
    assert {k: v["Limit"] for k, v in resources.items()} == {
        "containers": 3, "cpu": 2, "disk": 10_000_000_000, "instances": 5,
        "memory": 1073741824, "networks": 1, "processes": 100, "virtual-machines": 0}
    assert {v["Usage"] for v in resources.values()} == {0}


# -- events ----------------------------------------------------------------------------------
def test_lifecycle_events(api: API) -> None:
    events = Lifecycle(api)
    name = make(api)
    assert api.patch(f"/1.0/projects/{name}", {"config": {"limits.cpu": "x"}}).status == 400
    assert api.put(f"/1.0/projects/{name}", {"config": {"bogus": "1"}}).status == 400
    assert api.patch(f"/1.0/projects/{name}", {"description": "x"},
                     headers={"If-Match": "nope"}).status == 412
    assert api.request("PATCH", f"/1.0/projects/{name}", data=b"[").status == 400
    assert api.patch(f"/1.0/projects/{name}", {"description": "x"}).status == 200
    new = unique("p")
    api.delete_later(f"/1.0/projects/{new}")
    assert api.wait(api.post(f"/1.0/projects/{name}", {"name": new}))["status"] == "Success"
    assert api.delete(f"/1.0/projects/{new}").status == 200
    got = events.about(f"/1.0/projects/{name}", 4) + events.about(f"/1.0/projects/{new}", 2)
    summary = [(e["metadata"]["action"], e["metadata"]["source"], e["project"],
                e["metadata"].get("context")) for e in got]
    # project-updated fires for the two updates that fail validation too (not for a 412 or
    # an unreadable body): LXD emits it before validating.
    assert summary == [
        ("project-created", f"/1.0/projects/{name}", name, None),
        ("project-updated", f"/1.0/projects/{name}", name, None),
        ("project-updated", f"/1.0/projects/{name}", name, None),
        ("project-updated", f"/1.0/projects/{name}", name, None),
        ("project-renamed", f"/1.0/projects/{new}", new, {"old_name": name}),
        ("project-deleted", f"/1.0/projects/{new}", new, None),
    ]
    assert got[0]["metadata"]["requestor"] == {"username": "root", "protocol": "unix",
                                               "address": "@"}


def test_features_take_any_true_spelling(api: API) -> None:
    name = make(api, config={"features.profiles": "1", "features.images": "TRUE"})
    scoped = api.in_project(name)
    assert scoped.get("/1.0/profiles").metadata == [f"/1.0/profiles/default?project={name}"]
    reply = scoped.post("/1.0/profiles", {"name": "q1"})
    api.delete_later(f"/1.0/profiles/q1?project={name}")
    assert reply.headers["Location"] == f"/1.0/profiles/q1?project={name}"
    assert api.get("/1.0/profiles/q1").status == 404
    assert get(api, name)["used_by"] == [f"/1.0/profiles/{p}?project={name}"
                                         for p in ("default", "q1")]


# -- instances and volumes in a project --------------------------------------------------------
def add_container(api: API, project: str, name: str, config: dict[str, str]) -> None:
    """A stopped container in ``project``: created on the real host, seeded into the fake.

    The fake's instances belong to another module; seeding one keeps this test about what
    projects compute from them.
    """
    if api.is_fake:
        state = api.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.families["instances"].setdefault(project, {})[name] = {
                "name": name, "type": "container", "project": project, "config": config,
                "devices": {}, "profiles": ["default"], "status": "Stopped"}
        return
    reply = api.post("/1.0/instances", {"name": name, "config": config,
                                        "source": {"type": "image", "alias": "busybox"}},
                     params={"project": project})
    assert reply.status == 202, reply
    api.delete_later(f"/1.0/instances/{name}?project={project}")
    assert api.wait(reply)["status"] == "Success"


def add_custom_volume(api: API, project: str, name: str, size: str) -> None:
    reply = api.post("/1.0/storage-pools/default/volumes/custom",
                     {"name": name, "config": {"size": size}}, params={"project": project})
    assert reply.status == 200, reply
    api.delete_later(f"/1.0/storage-pools/default/volumes/custom/{name}?project={project}")


OWN_STORAGE = {"features.images": "false", "features.profiles": "false",
               "features.storage.volumes": "true"}


def test_used_by_state_and_limits_with_an_instance_and_a_volume(api: API) -> None:
    name = make(api, config={**OWN_STORAGE, "limits.cpu": "8"})
    container = unique("c")
    add_container(api, name, container, {"limits.cpu": "2", "limits.memory": "64MB"})
    add_custom_volume(api, name, "v1", "5GiB")
    # Only custom volumes count, not the container's own volume.
    assert get(api, name)["used_by"] == [
        f"/1.0/instances/{container}?project={name}",
        f"/1.0/storage-pools/default/volumes/custom/v1?project={name}"]
    resources = api.get(f"/1.0/projects/{name}/state").metadata["resources"]
    assert resources == {
        "containers": {"Limit": -1, "Usage": 1}, "cpu": {"Limit": 8, "Usage": 2},
        "disk": {"Limit": -1, "Usage": 5368709120}, "instances": {"Limit": -1, "Usage": 1},
        "memory": {"Limit": -1, "Usage": 64000000}, "networks": {"Limit": -1, "Usage": 0},
        "processes": {"Limit": -1, "Usage": 0}, "virtual-machines": {"Limit": -1, "Usage": 0}}
    for key, value, message in [
        ("limits.instances", "0", f'Can\'t change limits.instances in project "{name}": '
         f'"limits.instances" is too low: there currently are 1 total instances in project '
         f'"{name}"'),
        ("limits.containers", "0", f'Can\'t change "limits.containers" in project "{name}": '
         f'"limits.containers" is too low: there currently are 1 instances of type container '
         f'in project "{name}"'),
        ("limits.cpu", "1", '"limits.cpu" is too low: current total is "2"'),
        ("limits.memory", "1MB", '"limits.memory" is too low: current total is "61.0MiB"'),
        ("limits.processes", "1", f'Instance "{container}" in project "{name}" has no '
         '"limits.processes" config, either directly or via a profile'),
        ("limits.disk", "1MB", f'Instance "{container}" in project "{name}" has no "size" '
         "config set on the root device either directly or via a profile"),
    ]:
        reply = api.patch(f"/1.0/projects/{name}", {"config": {**OWN_STORAGE, key: value}})
        assert (reply.status, reply.error) == (500, message), key
    assert get(api, name)["config"] == {**OWN_STORAGE, "limits.cpu": "8"}
    body = {"config": {**OWN_STORAGE, "limits.virtual-machines": "0", "limits.cpu": "2"}}
    assert api.patch(f"/1.0/projects/{name}", body).status == 200
    body = {"config": {"features.images": "false", "features.profiles": "false"}}
    reply = api.patch(f"/1.0/projects/{name}", body)
    assert (reply.status, reply.error) == (400, 'Project feature "features.storage.volumes" '
                                                "cannot be disabled on non-empty projects")
    reply = api.delete(f"/1.0/projects/{name}")
    assert (reply.status, reply.error) == (500, "Only empty projects can be removed")
