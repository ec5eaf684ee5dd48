"""The fake bugs the robustness suite found, pinned down one by one on both backends.

Each test states what LXD 5.0.2 answers (the real host agrees) for input the fake used to get
wrong: request targets and query strings as Go reads them, JSON bodies as Go's decoder reads
them, LXD's order of checks, its quoting and its URLs. Writes on the real host only touch
objects the test creates.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest

from pytest_lxd.plugin import real_endpoint
from tests.robustness.rawhttp import RawClient, RawReply
from tests.support import API, unique

JSON_HEADERS = {"Content-Type": "application/json"}
BAD_REQUEST = (400, "text/plain; charset=utf-8", b"400 Bad Request")


@pytest.fixture
def raw(api: API, request: pytest.FixtureRequest) -> Iterator[RawClient]:
    """Byte-exact access to the backend's unix socket."""
    path = api.server.socket_path if api.is_fake else real_endpoint(request.config)  # type: ignore[attr-defined]
    client = RawClient(unix=path)
    yield client
    client.close()


def error(reply: RawReply) -> tuple[int, str]:
    return reply.status, json.loads(reply.raw)["error"]


def send(raw: RawClient, method: str, target: bytes | str, body: bytes = b"") -> RawReply:
    return raw.send(method, target, JSON_HEADERS, body)


# -- request targets and query strings -------------------------------------------------------

def test_escaped_slash_stays_in_one_path_segment(raw: RawClient) -> None:
    """gorilla/mux routes on the escaped path: ``a%2Fb`` names the profile ``a/b``."""
    assert error(send(raw, "GET", "/1.0/profiles/a%2Fb")) == (
        404, "Fetch profile: Profile not found")
    assert error(send(raw, "GET", "/1.0/images/aliases/a%2Fb")) == (404, "Image alias not found")
    assert error(send(raw, "GET", "/1.0/profiles/a#b")) == (
        404, "Fetch profile: Profile not found")  # no fragment in a request target


def test_targets_go_cannot_parse(raw: RawClient) -> None:
    """A control byte anywhere, or a bad escape in the path: Go's plain-text 400."""
    for target in (b"/1.0/profiles/a\x00b", b"/1.0/profiles?recursion=\x01", b"/1.0/profiles/%zz",
                   b"/1.0/profiles/%", b"/1.0/profiles/\x7f"):
        reply = send(raw, "GET", target)
        assert (reply.status, reply.content_type, reply.raw) == BAD_REQUEST, target
    reply = send(raw, "GET", "http://lxd/1.0/profiles")  # the absolute form is served
    assert reply.status == 200


def test_query_strings_as_go_parses_them(raw: RawClient) -> None:
    """A pair Go cannot parse (bad escape, ``;``) voids ``project`` and ``target`` (LXD's
    queryParam gives up on the whole query) but leaves the others (FormValue skips it)."""
    for query in ("%zz=1&project=nope", "a;b=1&project=nope", "project=nope&a;b",
                  "%zz&target=nope"):
        reply = send(raw, "GET", f"/1.0/profiles?{query}")
        assert (reply.status, reply.body["metadata"][:1]) == (200, ["/1.0/profiles/default"])
    listed = send(raw, "GET", "/1.0/profiles?%zz=1&recursion=1").body["metadata"]
    assert listed[0]["name"] == "default"
    assert error(send(raw, "GET", "/1.0/profiles?project=de+fault")) == (
        404, 'Failed loading project "de fault": Project not found')


def test_recursion_is_read_with_atoi(raw: RawClient) -> None:
    """``-1`` lists objects (LXD tests ``!= 0``); `` 1``, ``1.5``, ``0x1`` and an overflow
    are not numbers to Go: URLs."""
    assert isinstance(send(raw, "GET", "/1.0/profiles?recursion=-1").body["metadata"][0], dict)
    for value in ("%201", "+1", "1.5", "0x1", "99999999999999999999999"):
        got = send(raw, "GET", f"/1.0/profiles?recursion={value}").body["metadata"]
        assert got[0] == "/1.0/profiles/default", value


def test_names_in_messages_are_quoted_as_go_quotes_them(raw: RawClient) -> None:
    cases = {"%00": "\\x00", "%7F": "\\x7f", "%22": '\\"', "%5C": "\\\\", "%09": "\\t",
             "%E2%80%AE": "\\u202e", "%C2%85": "\\u0085", "%F0%9F%98%80": "\U0001f600"}
    for escaped, quoted in cases.items():
        assert error(send(raw, "GET", f"/1.0/profiles?project={escaped}")) == (
            404, f'Failed loading project "{quoted}": Project not found'), escaped


# -- JSON bodies ------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (b"", "EOF"),
    (b"{", "unexpected EOF"),
    (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),
    (b"\xff", "invalid character '\u00ff' looking for beginning of value"),
    (b"\\null", "invalid character '\\\\' looking for beginning of value"),
    (b"\t\x01", "invalid character '\\x01' looking for beginning of value"),
    (b'{"name":"a\\x"}', "invalid character 'x' in string escape code"),
    (b'{"name": -}', "invalid character '}' in numeric literal"),
    (b'{"name": 1.}', "invalid character '}' after decimal point in numeric literal"),
    (b'{"name": 1e}', "invalid character '}' in exponent of numeric literal"),
    (b'{"name": NaN}', "invalid character 'N' looking for beginning of value"),
    (b'{"a":"\\u12G4"}', "invalid character 'G' in \\u hexadecimal character escape"),
    (b"[" * 5000 + b"]" * 5000, "json: cannot unmarshal array into Go value of type "
                                "api.ProfilesPost"),
    (b"[" * 10001 + b"]" * 10001, "invalid character '[' exceeded max depth"),
    (b'{"config":"x","name":1}', "json: cannot unmarshal string into Go struct field "
                                 "ProfilesPost.config of type map[string]string"),
    (b'{"name":' + b"9" * 5000 + b"}", "json: cannot unmarshal number into Go struct field "
                                      "ProfilesPost.name of type string"),
    (b'{"name":""} trailing', "No name provided"),
    (b"nullx", "No name provided"),
    (b'{"name":"x","NAME":""}', "No name provided"),
])
def test_bodies_are_read_as_go_reads_them(raw: RawClient, body: bytes, message: str) -> None:
    """json.Decoder: the first value only, its exact syntax errors, the first type error in
    document order, keys matched case-insensitively with the last one winning."""
    assert error(send(raw, "POST", "/1.0/profiles", body)) == (400, message)


def test_server_config_values(api: API) -> None:
    """``user.*`` keys are free; a value must be a string or null (type checked first)."""
    key = f"user.{unique('rb')}"
    api.later(lambda: api.patch("/1.0", {"config": {key: ""}}))
    assert api.patch("/1.0", {"config": {key: "x"}}).status == 200
    assert api.get("/1.0").metadata["config"][key] == "x"
    assert api.patch("/1.0", {"config": {key: None}}).status == 200
    assert key not in api.get("/1.0").metadata["config"]
    for value, kind in [(1, "float64"), (1.5, "float64"), (True, "bool"), ([], "slice"),
                        ({}, "map")]:
        reply = api.patch("/1.0", {"config": {"bogus.key": value}})
        assert (reply.status, reply.error) == (400, f"cannot set 'bogus.key': invalid type "
                                                    f"{kind}")


# -- LXD's order of checks, messages and URLs ----------------------------------------------

def test_profile_checks_come_in_lxds_order(raw: RawClient, api: API) -> None:
    missing = unique("rbx")
    assert error(send(raw, "PUT", f"/1.0/profiles/{missing}", b"{")) == (
        404, f'Failed to retrieve profile "{missing}": Profile not found')
    assert error(send(raw, "PATCH", f"/1.0/profiles/{missing}", b"{")) == (
        404, f'Failed to retrieve profile="{missing}": Profile not found')
    assert error(send(raw, "POST", "/1.0/profiles?project=nope", b"{")) == (
        404, 'Failed loading project "nope": Project not found')
    assert error(send(raw, "POST", f"/1.0/profiles/{missing}", b'{"name":"x"}')) == (
        500, "Query affected 0 rows instead of 1")
    a, b = unique("rba"), unique("rbb")
    for name in (a, b):
        assert api.post("/1.0/profiles", {"name": name}).status == 201
        api.delete_later(f"/1.0/profiles/{name}")
    assert error(send(raw, "POST", f"/1.0/profiles/{a}", json.dumps({"name": b}).encode())) \
        == (500, f'Name "{b}" already in use')


def test_profile_urls_escape_names_twice(api: API) -> None:
    name = unique("rb") + " é?%"
    api.delete_later("/1.0/profiles/" + urllib.parse.quote(name, safe=""))
    reply = api.post("/1.0/profiles", {"name": name})
    # url.PathEscape, then URL.String() escapes each "%" once more
    once = urllib.parse.quote(name, safe="$&+:=@")
    location = reply.headers["Location"]
    assert location == "/1.0/profiles/" + once.replace("%", "%25")
    assert location in api.get("/1.0/profiles").metadata
    assert api.get(f"/1.0/profiles/{once}").metadata["name"] == name


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/1.0/networks/rbnx?project=nope", b"{", 404,
     'Failed to load project "nope": Project not found'),
    ("POST", "/1.0/images/aliases?project=nope", b"{}", 400, "name and target are required"),
    ("PUT", "/1.0/images/aliases/rbnx", b"{", 400, "unexpected EOF"),
    ("PATCH", "/1.0/images/aliases/rbnx", b"[]", 400,
     "json: cannot unmarshal array into Go value of type shared.Jmap"),
    ("POST", "/1.0/storage-pools?target=nope", b"{}", 400, "No name provided"),
    ("GET", "/1.0/storage-pools/rbnx/volumes?filter=bogus", b"", 500,
     "Invalid filter: clause has no operator"),
    ("GET", "/1.0/storage-pools/rbnx/volumes/bogus", b"", 400,
     "Invalid storage volume type name"),
    ("GET", "/1.0/storage-pools/rbnx/volumes?project=nope", b"", 404,
     "Storage pool not found"),
    ("POST", "/1.0/storage-pools/rbnx/volumes?project=nope", b"{}", 400, "No name provided"),
    ("POST", "/1.0/storage-pools/default/volumes/custom?project=nope", b"{", 404,
     'Failed to load project "nope": Project not found'),
    ("PATCH", "/1.0/storage-pools/default/volumes/custom/rbnx%2Fx", b"{", 400,
     "Invalid volume name"),
    ("POST", "/1.0/storage-pools/default/volumes/bogus/rbnx%2Fx", b"{", 400,
     "Invalid volume name"),
    ("DELETE", "/1.0/storage-pools/default/volumes/custom/rbnx%2Fx", b"", 400,
     'Invalid storage volume "rbnx/x"'),
    ("POST", "/1.0/storage-pools/default/volumes/custom/rbnx/snapshots", b"{", 404,
     "Storage pool volume not found"),
    ("POST", "/1.0/storage-pools/rbnx/volumes/container/rbnx/snapshots/s", b"{}", 400,
     'Invalid storage volume type "container"'),
    ("DELETE", "/1.0/storage-pools/rbnx/volumes/image/rbnx/snapshots/s?project=nope", b"", 400,
     'Invalid storage volume type "image"'),
    ("POST", "/1.0/cluster/members", b"[]", 400,
     "json: cannot unmarshal array into Go value of type api.ClusterMembersPost"),
    ("POST", "/1.0/cluster/members/rbnx", b"{}", 500, "expected to update one row, not 0"),
    ("DELETE", "/1.0/cluster/groups/rbnx", b"", 500, "Query deleted 0 rows instead of 1"),
])
def test_checks_come_in_lxds_order(raw: RawClient, method: str, path: str, body: bytes,
                                   status: int, message: str) -> None:
    """Two things wrong at once: LXD reports the one it checks first."""
    assert error(send(raw, method, path, body)) == (status, message)


@pytest.mark.parametrize(("device", "message"), [
    ({"type": "nic", "network": "rbnxnet"},
     'Failed loading device "d": Failed to load network "rbnxnet" for project "default": '
     "Network not found"),
    ({"type": "nic", "network": "lo"},
     'Failed loading device "d": Failed to load network "lo" for project "default": '
     "Network not found"),
    ({"type": "nic", "network": "lxdbr0", "nictype": "bridged"},
     'Cannot use "nictype" property in conjunction with "network" property'),
    ({"type": "nic", "network": "lxdbr0", "parent": "x"},
     'Cannot use "parent" property in conjunction with "network" property'),
    ({"type": "nic"}, 'Failed loading device "d": Unsupported device type'),
    ({"type": "nic", "nictype": "macvlan"},
     'Invalid value for device option "parent": Required value'),
    ({"type": "nic", "nictype": "bridged", "parent": "x", "mtu": "abc"},
     'Invalid value for device option "mtu": Invalid MTU "abc"'),
    ({"type": "disk", "path": "/"}, 'Root disk entry must have a "pool" property set'),
    ({"type": "disk", "path": "/", "pool": "default", "source": "x"},
     'Root disk entry may not have a "source" property set'),
    ({"type": "disk", "pool": "default", "path": "/m"},
     'Disk entry is missing the required "source" or "path" property'),
    ({"type": "disk", "source": "v"}, "Source path must be absolute for local sources"),
    ({"type": "disk", "source": "/x", "path": "/m", "bogus": "1"},
     'Invalid device option "bogus"'),
    ({"type": "disk", "source": "/x", "path": "/m", "readonly": "maybe"},
     'Invalid value for device option "readonly": Invalid value for a boolean "maybe"'),
])
def test_profile_devices_are_validated(api: API, device: dict[str, str], message: str) -> None:
    """Creation answers 400; an update 500, or 404 when a network is missing."""
    name = unique("rbd")
    api.delete_later(f"/1.0/profiles/{name}")
    reply = api.post("/1.0/profiles", {"name": name, "devices": {"d": device}})
    assert (reply.status, reply.error) == (400, f'Device validation failed for "d": {message}')
    assert api.post("/1.0/profiles", {"name": name}).status == 201
    reply = api.patch(f"/1.0/profiles/{name}", {"devices": {"d": device}})
    code = 404 if "Network not found" in message else 500
    assert (reply.status, reply.error) == (code, f'Device validation failed for "d": {message}')
    for fine in ({"type": "nic", "network": "lxdbr0"},
                 {"type": "nic", "nictype": "bridged", "parent": "nope"},
                 {"type": "disk", "pool": "nope", "source": "v", "path": "/m"},
                 {"type": "disk", "source": "/x"}):
        assert api.patch(f"/1.0/profiles/{name}", {"devices": {"d": fine}}).status == 200


def test_replies_hold_no_surrogates() -> None:
    """A message carrying bytes that are not UTF-8 (kept as surrogates) used to make the
    reply unencodable (an empty 500 from the listener); Go's encoder writes U+FFFD."""
    from fakeserver import responses

    body = responses.error(500, 'sftp: "symlink \udcff\udcfe /x: file exists"').get_data()
    assert json.loads(body)["error"] == 'sftp: "symlink \ufffd\ufffd /x: file exists"'
    assert responses.dumps(["\ud800", "é"]) == '["\ufffd","é"]'
