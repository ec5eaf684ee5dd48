"""Network ACLs: the same requests and the same answers on the fake and on real LXD 5.0.2.

Safety on the real host: every bridge made here has no address (``ipv4.address=none``), and
every ACL, bridge and project has a unique name and is deleted at teardown.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
import requests

from fakeserver import FakeLXD
from tests.support import API, lifecycle_events, unique

ACLS = "/1.0/network-acls"
MISSING = "Network ACL not found"
NO_LOG = "Only OVN log entries may be retrieved at this time"
RULE_ORDER = ["action", "source", "destination", "protocol", "source_port",
              "destination_port", "icmp_type", "icmp_code", "description", "state"]
ALLOW = {"action": "allow", "state": "enabled"}


def acl_name(prefix: str = "acl") -> str:
    """A unique ACL name (letters, digits and hyphens only)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make(api: API, **body: Any) -> str:
    name = str(body.setdefault("name", acl_name()))
    api.delete_later(f"{ACLS}/{name}")
    reply = api.post(ACLS, body)
    assert reply.status == 201, reply
    return name


def bridge(api: API, acls: str = "") -> str:
    name = f"ab{uuid.uuid4().hex[:6]}"
    api.delete_later(f"/1.0/networks/{name}")
    config = {"ipv4.address": "none", "ipv6.address": "none"}
    if acls:
        config["security.acls"] = acls
    reply = api.post("/1.0/networks", {"name": name, "type": "bridge", "config": config})
    assert reply.status == 201, reply
    return name


def project(api: API, config: dict[str, str]) -> str:
    name = unique("ap")
    api.delete_later(f"/1.0/projects/{name}")
    reply = api.post("/1.0/projects", {"name": name, "config": config})
    assert reply.status == 201, reply
    return name


def assert_error(reply: Any, status: int, message: str) -> None:
    assert (reply.status, reply.error) == (status, message), reply
    assert reply.raw.endswith(b"}\n\n")


def go_etag(name: str, description: str, ingress: list[dict[str, str]],
            egress: list[dict[str, str]], config: dict[str, str]) -> str:
    """LXD's ETag: sha256 of Go's JSON of [name, description, ingress, egress, config] (rule
    fields in ``api.NetworkACLRule`` order, map keys sorted) plus a newline."""
    def ordered(rules: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{key: rule[key] for key in RULE_ORDER if rule.get(key)} for rule in rules]

    data = [name, description, ordered(ingress), ordered(egress), dict(sorted(config.items()))]
    return hashlib.sha256((json.dumps(data, separators=(",", ":")) + "\n").encode()).hexdigest()


# -- create, read, list -------------------------------------------------------------------------
def test_create_and_get(api: API) -> None:
    name = acl_name()
    api.delete_later(f"{ACLS}/{name}")
    rule = {"description": "web", "state": "enabled", "destination_port": "443,8000-8080",
            "source_port": "80", "protocol": "tcp", "destination": "10.0.0.2",
            "source": "10.0.0.1", "action": "allow"}
    reply = api.post(ACLS, {"name": name, "description": "d", "config": {"user.b": "2",
                                                                         "user.a": "1"},
                            "ingress": [rule],
                            "egress": [{"action": "drop", "state": "logged",
                                        "protocol": "icmp4", "icmp_type": "8",
                                        "icmp_code": "0"}]})
    assert reply.status == 201
    assert reply.headers["Location"] == f"{ACLS}/{name}"
    assert reply.body["metadata"] is None
    got = api.get(f"{ACLS}/{name}")
    meta = got.metadata
    assert list(meta) == ["name", "description", "egress", "ingress", "config", "used_by"]
    assert list(meta["ingress"][0]) == [key for key in RULE_ORDER if key in rule]
    assert list(meta["egress"][0]) == ["action", "protocol", "icmp_type", "icmp_code", "state"]
    assert meta == {"name": name, "description": "d",
                    "egress": [{"action": "drop", "protocol": "icmp4", "icmp_type": "8",
                                "icmp_code": "0", "state": "logged"}],
                    "ingress": [{key: rule[key] for key in RULE_ORDER if key in rule}],
                    "config": {"user.a": "1", "user.b": "2"}, "used_by": []}
    tag = go_etag(name, "d", [rule], meta["egress"], {"user.b": "2", "user.a": "1"})
    assert got.headers["ETag"] == f'"{tag}"'


def test_minimal_acl_and_empty_values(api: API) -> None:
    """Rule fields are ``omitempty``; empty config values are not stored."""
    name = make(api, config={"user.e": "", "user.f": "x"}, ingress=[ALLOW])
    meta = api.get(f"{ACLS}/{name}").metadata
    assert meta == {"name": name, "description": "", "egress": [],
                    "ingress": [{"action": "allow", "state": "enabled"}],
                    "config": {"user.f": "x"}, "used_by": []}
    bare = make(api, egress=None, ingress=None, config=None)
    assert api.get(f"{ACLS}/{bare}").metadata["ingress"] == []


def test_rules_are_normalised(api: API) -> None:
    """Fields are trimmed (Go's TrimSpace: NBSP yes, U+001C no) and lists re-joined."""
    name = make(api, description=" kept ", ingress=[
        {"action": " allow\u00a0", "state": " enabled ", "protocol": " icmp4 ",
         "icmp_type": " 8 ", "icmp_code": " 08 ", "source": " 10.0.0.1 , 10.0.0.2",
         "description": "\td\n"},
        {"action": "drop", "state": "enabled", "source": " ", "protocol": "tcp",
         "source_port": " ", "destination_port": " 80 , 90-100 "}])
    meta = api.get(f"{ACLS}/{name}").metadata
    assert meta["description"] == " kept "
    assert meta["ingress"] == [
        {"action": "allow", "source": "10.0.0.1,10.0.0.2", "protocol": "icmp4",
         "icmp_type": "8", "icmp_code": "08", "description": "d", "state": "enabled"},
        {"action": "drop", "protocol": "tcp", "destination_port": "80,90-100",
         "state": "enabled"}]
    reply = api.post(ACLS, {"name": acl_name(), "ingress": [{"action": "allow\x1c",
                                                            "state": "enabled"}]})
    assert_error(reply, 500, "Invalid ingress rule 0: Action must be one of: allow, drop, reject")


def test_list_keeps_creation_order(api: API) -> None:
    first, second, third = (make(api, name=f"{p}-{uuid.uuid4().hex[:8]}")
                            for p in ("zz", "Aa", "aa"))
    urls = api.get(ACLS).metadata
    mine = [u for u in urls if u.rsplit("/", 1)[1] in (first, second, third)]
    assert mine == [f"{ACLS}/{first}", f"{ACLS}/{second}", f"{ACLS}/{third}"]
    objs = api.get(ACLS, params={"recursion": "1"}).metadata
    assert [o["name"] for o in objs if o["name"] in (first, second, third)] == \
        [first, second, third]
    assert api.get(ACLS, params={"recursion": "x"}).metadata == urls
    assert api.get(ACLS, params={"recursion": "2"}).metadata == objs


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "message"), [
    ("", "Name is required"),
    ("a/b", "Name can only contain alphanumeric and hyphen characters"),
    ("a b", "Name can only contain alphanumeric and hyphen characters"),
    (".", "Name can only contain alphanumeric and hyphen characters"),
    ("a_b", "Name can only contain alphanumeric and hyphen characters"),
    ("a,b", "Name can only contain alphanumeric and hyphen characters"),
    ("a\u00e9", "Name can only contain alphanumeric and hyphen characters"),
    ("-a", 'Name must not start with "-" character'),
    ("-", 'Name must not start with "-" character'),
    ("a-", 'Name must not end with "-" character'),
    ("1-", 'Name must not end with "-" character'),
    ("1abc", "Name must not start with a number"),
    ("a" * 64, "Name must be 1-63 characters long"),
    ("\u00e9" * 32, "Name must be 1-63 characters long"),
    ("@internal", "Name cannot start with reserved character '@'"),
    ("%a", "Name cannot start with reserved character '%'"),
])
def test_bad_names(api: API, name: str, message: str) -> None:
    assert_error(api.post(ACLS, {"name": name}), 500, message)


def test_odd_but_valid_names(api: API) -> None:
    for name in ("A" + uuid.uuid4().hex[:8], "a--" + uuid.uuid4().hex[:8],
                 "a" * 55 + uuid.uuid4().hex[:8]):
        make(api, name=name)
        assert api.get(f"{ACLS}/{name}").metadata["name"] == name


def test_duplicate_is_a_400_before_validation(api: API) -> None:
    name = make(api)
    assert_error(api.post(ACLS, {"name": name}), 400, "The network ACL already exists")
    assert_error(api.post(ACLS, {"name": name, "ingress": [{}]}), 400,
                 "The network ACL already exists")


def test_config_keys(api: API) -> None:
    for key in ("foo", "user", "limits.cpu"):
        assert_error(api.post(ACLS, {"name": acl_name(), "config": {key: "1"}}), 500,
                     f'Invalid config option "{key}"')
    name = make(api, config={"user.": "x", "user.x.y": "z"})
    assert api.get(f"{ACLS}/{name}").metadata["config"] == {"user.": "x", "user.x.y": "z"}


def test_body_errors(api: API) -> None:
    for raw, message in [(b"", "EOF"), (b'{"name":"x",', "unexpected EOF"),
                         (b"nope", "invalid character 'o' in literal null (expecting 'u')")]:
        assert_error(api.request("POST", ACLS, data=raw), 400, message)
    for body, message in [
            ({"config": {"user.a": 1}}, "json: cannot unmarshal number into Go struct field "
                                        "NetworkACLsPost.config of type string"),
            ({"description": 5}, "json: cannot unmarshal number into Go struct field "
                                 "NetworkACLsPost.description of type string"),
            ({"ingress": {}}, "json: cannot unmarshal object into Go struct field "
                              "NetworkACLsPost.ingress of type []api.NetworkACLRule"),
            ({"ingress": [[]]}, "json: cannot unmarshal array into Go struct field "
                                "NetworkACLsPost.ingress of type api.NetworkACLRule"),
            ({"ingress": [{"action": 1}]}, "json: cannot unmarshal number into Go struct "
                                           "field NetworkACLRule.ingress.action of type string")]:
        assert_error(api.post(ACLS, {"name": acl_name(), **body}), 400, message)


TCP = {**ALLOW, "protocol": "tcp"}
ICMP4 = {**ALLOW, "protocol": "icmp4"}
ICMP6 = {**ALLOW, "protocol": "icmp6"}
RULE_CASES = [
    ({}, "Action must be one of: allow, drop, reject"),
    ({"action": "allow"}, "State must be one of: enabled, disabled, logged"),
    ({"action": "ALLOW", "state": "enabled"}, "Action must be one of: allow, drop, reject"),
    ({"action": "allow", "state": "on"}, "State must be one of: enabled, disabled, logged"),
    ({"state": "enabled"}, "Action must be one of: allow, drop, reject"),
    ({**ALLOW, "source": "bogus"}, 'Invalid Source: Invalid subject "bogus"'),
    ({**ALLOW, "source": "10.0.0.1,"}, 'Invalid Source: Invalid subject ""'),
    ({**ALLOW, "source": ","}, 'Invalid Source: Invalid subject ""'),
    ({**ALLOW, "source": "10.0.0.300"}, 'Invalid Source: Invalid subject "10.0.0.300"'),
    ({**ALLOW, "source": "10.0.0.5-10.0.0.1"},
     'Invalid Source: Invalid subject "10.0.0.5-10.0.0.1"'),
    ({**ALLOW, "source": "10.0.0.1-::2"}, 'Invalid Source: Invalid subject "10.0.0.1-::2"'),
    ({**ALLOW, "source": "10.0.0.1/33"}, 'Invalid Source: Invalid subject "10.0.0.1/33"'),
    ({**ALLOW, "destination": "fd00::/129"},
     'Invalid Destination: Invalid subject "fd00::/129"'),
    ({**ALLOW, "source": "10.0.0.1", "destination": "::1"},
     "Conflicting IP family types used for Source and Destination"),
    ({**ALLOW, "source": "::1", "destination": "10.0.0.0/8,::2"},
     "Conflicting IP family types used for Source and Destination"),
    ({**ALLOW, "protocol": "sctp"}, "Protocol must be one of: icmp4, icmp6, tcp, udp"),
    ({**ALLOW, "protocol": "TCP"}, "Protocol must be one of: icmp4, icmp6, tcp, udp"),
    ({**TCP, "icmp_type": "1"}, "ICMP type cannot be used with non-ICMP protocol"),
    ({**TCP, "icmp_code": "1"}, "ICMP code cannot be used with non-ICMP protocol"),
    ({**TCP, "source_port": "x"}, 'Invalid Source port: Invalid port number "x"'),
    ({**TCP, "source_port": "x-1"}, 'Invalid Source port: Invalid port number "x-1"'),
    ({**TCP, "source_port": "1-x"}, 'Invalid Source port: Invalid end port number "1-x"'),
    ({**TCP, "source_port": "1-2-3"}, 'Invalid Source port: Invalid end port number "1-2-3"'),
    ({**TCP, "source_port": "80,"}, 'Invalid Source port: Invalid port number ""'),
    ({**TCP, "source_port": "+80"}, 'Invalid Source port: Invalid port number "+80"'),
    ({**TCP, "source_port": "-5"}, 'Invalid Source port: Invalid port number "-5"'),
    ({**TCP, "source_port": "4294967296"},
     'Invalid Source port: Invalid port number "4294967296"'),
    ({**TCP, "destination_port": "80-70"},
     "Invalid Destination port: Start port 80 must be lower than end port 70"),
    ({**TCP, "destination_port": "80-80"},
     "Invalid Destination port: Start port 80 must be lower than end port 80"),
    ({**ICMP4, "source_port": "1"}, 'Source port cannot be used with "icmp4" protocol'),
    ({**ICMP6, "destination_port": "1"},
     'Destination port cannot be used with "icmp6" protocol'),
    ({**ICMP4, "source": "::1"}, 'Cannot use IPv6 source addresses with "icmp4" protocol'),
    ({**ICMP4, "destination": "::1"},
     'Cannot use IPv6 destination addresses with "icmp4" protocol'),
    ({**ICMP6, "source": "10.0.0.1"}, 'Cannot use IPv4 source addresses with "icmp6" protocol'),
    ({**ICMP6, "source": "::ffff:10.0.0.1"},
     'Cannot use IPv4 source addresses with "icmp6" protocol'),
    ({**ICMP6, "destination": "10.0.0.1"},
     'Cannot use IPv4 destination addresses with "icmp6" protocol'),
    ({**ICMP4, "icmp_type": "256"},
     'Invalid ICMP type: Invalid value for an integer "256". Must be between 0 and 255'),
    ({**ICMP4, "icmp_type": "-1"},
     'Invalid ICMP type: Invalid value for an integer "-1". Must be between 0 and 255'),
    ({**ICMP4, "icmp_type": "+8"},
     'Invalid ICMP type: Invalid value for an integer "+8". Must be between 0 and 255'),
    ({**ICMP4, "icmp_code": "x"},
     'Invalid ICMP code: Invalid value for an integer "x". Must be between 0 and 255'),
    ({**ALLOW, "icmp_type": "1"}, "ICMP type cannot be used without specifying protocol"),
    ({**ALLOW, "icmp_code": "1"}, "ICMP code cannot be used without specifying protocol"),
    ({**ALLOW, "source_port": "1"}, "Source port cannot be used without specifying protocol"),
    ({**ALLOW, "destination_port": "1"},
     "Destination port cannot be used without specifying protocol"),
]


@pytest.mark.parametrize(("rule", "message"), RULE_CASES)
def test_bad_rules(api: API, rule: dict[str, str], message: str) -> None:
    for direction in ("ingress", "egress"):
        reply = api.post(ACLS, {"name": acl_name(), direction: [ALLOW, rule]})
        assert_error(reply, 500, f"Invalid {direction} rule 1: {message}")


def test_named_subjects(api: API) -> None:
    """Names (``@internal``, ``#external``, the project's ACLs) only as an ingress source or
    an egress destination; an ACL's own name only once it exists."""
    other = make(api)
    for subject in ("@internal", "#internal", "@external", "#external", other):
        make(api, ingress=[{**ALLOW, "source": subject}],
             egress=[{**ALLOW, "destination": f"10.0.0.0/8,{subject}"}])
        assert_error(api.post(ACLS, {"name": acl_name(),
                                     "ingress": [{**ALLOW, "destination": subject}]}), 500,
                     'Invalid ingress rule 0: Invalid Destination: Named subjects not allowed '
                     'in "Destination" for "ingress" rules')
        assert_error(api.post(ACLS, {"name": acl_name(),
                                     "egress": [{**ALLOW, "source": subject}]}), 500,
                     'Invalid egress rule 0: Invalid Source: Named subjects not allowed in '
                     '"Source" for "egress" rules')
    name = acl_name()
    assert_error(api.post(ACLS, {"name": name, "ingress": [{**ALLOW, "source": name}]}), 500,
                 f'Invalid ingress rule 0: Invalid Source: Invalid subject "{name}"')
    make(api, name=name)
    assert api.put(f"{ACLS}/{name}", {"ingress": [{**ALLOW, "source": name}]}).status == 200
    # A name with an address: no family conflict (and IPv6 with a name is fine for icmp4).
    make(api, ingress=[{**ICMP4, "source": other, "destination": "10.0.0.1"}])


def test_valid_subjects_and_ports(api: API) -> None:
    name = make(api, ingress=[
        {**ALLOW, "source": "10.0.0.0/8, 192.168.1.1-192.168.1.5 ,::1"},
        {**ALLOW, "source": "10.0.0.1-10.0.0.1"},
        {**ALLOW, "source": "10.0.0.1/8", "destination": "10.1.0.0/16"},
        {**TCP, "source_port": "4294967295", "destination_port": "0,080,1-65535"},
        {**ICMP6, "icmp_type": "255", "icmp_code": "0"}])
    assert len(api.get(f"{ACLS}/{name}").metadata["ingress"]) == 5


def test_duplicate_rules(api: API) -> None:
    drop = {"action": "drop", "state": "enabled"}
    for rules, index in ([[ALLOW, ALLOW], 0], [[drop, ALLOW, ALLOW], 1],
                         [[{**ALLOW, "source": "10.0.0.1, 10.0.0.2"},
                           {**ALLOW, "source": "10.0.0.1,10.0.0.2"}], 0],
                         [[ALLOW, {}, ALLOW], 0]):
        for direction in ("ingress", "egress"):
            reply = api.post(ACLS, {"name": acl_name(), direction: rules})
            assert_error(reply, 500, f"Duplicate of {direction} rule {index}")


def test_checks_run_config_ingress_egress(api: API) -> None:
    reply = api.post(ACLS, {"name": acl_name(), "config": {"x": "1"}, "ingress": [{}],
                            "egress": [{}]})
    assert_error(reply, 500, 'Invalid config option "x"')
    reply = api.post(ACLS, {"name": acl_name(), "ingress": [ALLOW, {}], "egress": [{}]})
    assert_error(reply, 500, "Invalid ingress rule 1: Action must be one of: allow, drop, reject")
    reply = api.post(ACLS, {"name": "1bad", "config": {"x": "1"}})
    assert_error(reply, 500, "Name must not start with a number")


# -- update ------------------------------------------------------------------------------------
def test_put_replaces_everything(api: API) -> None:
    name = make(api, description="d", config={"user.a": "1"}, ingress=[ALLOW],
                egress=[ALLOW])
    path = f"{ACLS}/{name}"
    assert api.put(path, {"config": {"user.x": "5"}}).body["metadata"] == {}
    assert api.get(path).metadata == {"name": name, "description": "", "egress": [],
                                      "ingress": [], "config": {"user.x": "5"},
                                      "used_by": []}
    assert api.put(path, {"description": "x", "ingress": [TCP],
                          "name": "ignored"}).status == 200
    meta = api.get(path).metadata
    assert (meta["description"], meta["ingress"], meta["config"]) == ("x", [TCP], {})


def test_patch_merges_config_and_wipes_rules(api: API) -> None:
    """LXD 5.0.2's PATCH is its PUT with the config merged: unsent rules and description go."""
    name = make(api, description="d", config={"user.a": "1", "user.b": "2"},
                ingress=[ALLOW], egress=[ALLOW])
    path = f"{ACLS}/{name}"
    assert api.patch(path, {"description": "patched", "config": {}}).status == 200
    assert api.get(path).metadata == {"name": name, "description": "patched", "egress": [],
                                      "ingress": [],
                                      "config": {"user.a": "1", "user.b": "2"},
                                      "used_by": []}
    assert api.patch(path, {"config": {"user.a": "", "user.c": "3"},
                            "egress": [ALLOW]}).status == 200
    meta = api.get(path).metadata
    assert (meta["description"], meta["config"], meta["egress"]) == (
        "", {"user.b": "2", "user.c": "3"}, [ALLOW])


def test_patch_without_config_drops_the_connection(api: API) -> None:
    """LXD 5.0.2 merges the ACL's config into the request's nil map and panics; Go's HTTP
    server closes the connection without an answer. Nothing changes. An ACL without config has
    nothing to merge and takes the PATCH."""
    name = make(api, description="keep", config={"user.a": "1"}, ingress=[ALLOW])
    for body in ({"description": "x"}, {"config": None, "ingress": []}):
        with pytest.raises(requests.ConnectionError):
            api.patch(f"{ACLS}/{name}", body)
    meta = api.get(f"{ACLS}/{name}").metadata
    assert (meta["description"], meta["ingress"]) == ("keep", [ALLOW])
    # Go matches JSON keys case-insensitively, the last one winning.
    assert api.patch(f"{ACLS}/{name}", {"CONFIG": {"user.b": "2"}}).status == 200
    with pytest.raises(requests.ConnectionError):
        api.patch(f"{ACLS}/{name}", {"config": {"user.c": "3"}, "Config": None})
    assert api.get(f"{ACLS}/{name}").metadata["config"] == {"user.a": "1", "user.b": "2"}
    bare = make(api, description="keep", ingress=[ALLOW])
    assert api.patch(f"{ACLS}/{bare}", {"description": "y"}).status == 200
    meta = api.get(f"{ACLS}/{bare}").metadata
    assert (meta["description"], meta["ingress"]) == ("y", [])


def test_update_validation(api: API) -> None:
    name = make(api, config={"user.a": "1"}, ingress=[ALLOW])
    path = f"{ACLS}/{name}"
    assert_error(api.put(path, {"config": {"bad": "5"}}), 500, 'Invalid config option "bad"')
    assert_error(api.patch(path, {"config": {}, "ingress": [{}]}), 500,
                 "Invalid ingress rule 0: Action must be one of: allow, drop, reject")
    assert_error(api.put(path, {"egress": [ALLOW, ALLOW]}), 500, "Duplicate of egress rule 0")
    assert_error(api.put(path, {"ingress": 7}), 400,
                 "json: cannot unmarshal number into Go struct field NetworkACLPut.ingress of "
                 "type []api.NetworkACLRule")
    assert_error(api.request("PUT", path, data=b""), 400, "EOF")
    assert_error(api.request("PUT", path, data=b"{"), 400, "unexpected EOF")
    meta = api.get(path).metadata
    assert (meta["config"], meta["ingress"]) == ({"user.a": "1"}, [ALLOW])


def test_etag_if_match(api: API) -> None:
    name = make(api, description="d", ingress=[TCP])
    path = f"{ACLS}/{name}"
    got = api.get(path)
    tag = got.headers["ETag"].strip('"')
    assert tag == go_etag(name, "d", [TCP], [], {})
    for method in ("PUT", "PATCH"):
        reply = api.request(method, path, json_body={"config": {}},
                            headers={"If-Match": '"bogus"'})
        assert_error(reply, 412, f"ETag doesn't match: {tag} vs bogus")
    assert api.put(path, {"description": "v2"}, headers={"If-Match": f'"{tag}"'}).status == 200
    new_tag = api.get(path).headers["ETag"].strip('"')
    assert new_tag == go_etag(name, "v2", [], [], {})
    assert_error(api.put(path, {}, headers={"If-Match": tag}), 412,
                 f"ETag doesn't match: {new_tag} vs {tag}")
    # The ETag is checked before the body is read.
    assert_error(api.request("PUT", path, data=b"{", headers={"If-Match": "x"}), 412,
                 f"ETag doesn't match: {new_tag} vs x")


# -- rename, delete, used_by ---------------------------------------------------------------------
def test_rename(api: API) -> None:
    before, name, after = make(api), make(api), make(api)
    new = acl_name()
    api.delete_later(f"{ACLS}/{new}")
    reply = api.post(f"{ACLS}/{name}", {"name": new})
    assert reply.status == 201
    assert reply.headers["Location"] == f"{ACLS}/{new}"
    assert reply.body["metadata"] is None
    assert_error(api.get(f"{ACLS}/{name}"), 404, MISSING)
    assert api.get(f"{ACLS}/{new}").metadata["name"] == new
    urls = [u.rsplit("/", 1)[1] for u in api.get(ACLS).metadata]
    assert [u for u in urls if u in (before, new, after)] == [before, new, after]
    for target, message in [(new, "An ACL by that name exists already"),
                            (before, "An ACL by that name exists already"),
                            ("", "Name is required"),
                            ("bad name", "Name can only contain alphanumeric and hyphen "
                                         "characters")]:
        assert_error(api.post(f"{ACLS}/{new}", {"name": target}), 500, message)
    assert_error(api.post(f"{ACLS}/{new}", {}), 500, "Name is required")
    assert_error(api.post(f"{ACLS}/{name}", {"name": acl_name()}), 404, MISSING)
    assert_error(api.request("POST", f"{ACLS}/{name}", data=b"{"), 400, "unexpected EOF")


def test_acl_used_by_other_acls(api: API) -> None:
    target = make(api)
    user = make(api, ingress=[{**ALLOW, "source": target}])
    user2 = make(api, egress=[{**ALLOW, "destination": f"@internal,{target}"}],
                 ingress=[{**ALLOW, "source": "@internal"}])
    meta = api.get(f"{ACLS}/{target}").metadata
    assert meta["used_by"] == [f"{ACLS}/{user}", f"{ACLS}/{user2}"]
    listed = {o["name"]: o for o in api.get(ACLS, params={"recursion": "1"}).metadata}
    assert listed[target]["used_by"] == meta["used_by"]
    assert listed[user]["used_by"] == []
    assert_error(api.delete(f"{ACLS}/{target}"), 500, "Cannot delete an ACL that is in use")
    assert_error(api.post(f"{ACLS}/{target}", {"name": acl_name()}), 500,
                 "Cannot rename an ACL that is in use")
    # A taken name is refused before the use.
    assert_error(api.post(f"{ACLS}/{target}", {"name": user}), 500,
                 "An ACL by that name exists already")
    # An ACL referring to itself is not in use.
    own = make(api)
    assert api.put(f"{ACLS}/{own}", {"ingress": [{**ALLOW, "source": own}]}).status == 200
    assert api.get(f"{ACLS}/{own}").metadata["used_by"] == []
    assert api.put(f"{ACLS}/{user}", {}).status == 200
    assert api.put(f"{ACLS}/{user2}", {}).status == 200
    assert api.get(f"{ACLS}/{target}").metadata["used_by"] == []
    assert api.delete(f"{ACLS}/{target}").body["metadata"] == {}
    assert_error(api.get(f"{ACLS}/{target}"), 404, MISSING)


def test_bridge_uses_acl(api: API) -> None:
    """``security.acls`` on a bridge: it shows in ``used_by`` and blocks delete and rename."""
    first, second = make(api), make(api)
    net = bridge(api, first)
    assert api.get(f"{ACLS}/{first}").metadata["used_by"] == [f"/1.0/networks/{net}"]
    assert_error(api.delete(f"{ACLS}/{first}"), 500, "Cannot delete an ACL that is in use")
    assert_error(api.post(f"{ACLS}/{first}", {"name": acl_name()}), 500,
                 "Cannot rename an ACL that is in use")
    assert api.patch(f"/1.0/networks/{net}",
                     {"config": {"security.acls": f" {second} "}}).status == 200
    assert api.get(f"{ACLS}/{first}").metadata["used_by"] == []
    assert api.get(f"{ACLS}/{second}").metadata["used_by"] == [f"/1.0/networks/{net}"]
    # Rules the bridge's nftables can apply.
    rules = {"ingress": [{**ICMP4, "state": "logged", "source": "10.0.0.0/8",
                          "icmp_type": "8"},
                         {**TCP, "source_port": "65535"}],
             "egress": [{"action": "drop", "state": "disabled", "destination": "::1-::5",
                         "protocol": "udp", "source_port": "1-1000"}]}
    assert api.put(f"{ACLS}/{second}", rules).status == 200
    assert api.get(f"{ACLS}/{second}").metadata["egress"][0]["destination"] == "::1-::5"


def test_bridge_firewall_refuses_named_subjects(api: API) -> None:
    """nftables has no named subjects: an update of an ACL a bridge uses fails and the old
    rules stay. LXD applies the enabled rules of the bridge's ACLs drop, reject, then allow."""
    other, used = make(api), make(api, ingress=[ALLOW])
    bridge(api, used)
    path = f"{ACLS}/{used}"
    drop = {"action": "drop", "state": "enabled"}
    for body, subject in [
            ({"ingress": [{**ALLOW, "source": "@internal"}]}, "@internal"),
            ({"ingress": [{**ALLOW, "source": "#internal"}]}, "#internal"),
            ({"ingress": [{**ALLOW, "source": f"10.0.0.1,{other}"}]}, other),
            ({"egress": [{**ALLOW, "destination": used}]}, used),
            ({"ingress": [{**ALLOW, "source": "@internal"}],
              "egress": [{**ALLOW, "state": "logged", "destination": "@external"}]},
             "@internal"),
            ({"ingress": [{**ALLOW, "source": "@internal"}],
              "egress": [{**drop, "destination": "@external"}]}, "@external"),
            ({"ingress": [{**ALLOW, "source": "@internal"},
                          {"action": "reject", "state": "enabled", "source": "#external"}]},
             "#external"),
            ({"ingress": [{**ALLOW, "source": "@internal"}],
              "egress": [{**ALLOW, "destination": "@external"}],
              "config": {"user.a": "1"}}, "@internal")]:
        assert_error(api.put(path, body), 500, f'Unsupported nftables subject "{subject}"')
    meta = api.get(path).metadata
    assert (meta["ingress"], meta["egress"], meta["config"]) == ([ALLOW], [], {})
    # A disabled rule is not applied.
    assert api.put(path, {"ingress": [{**ALLOW, "state": "disabled",
                                       "source": "@internal"}]}).status == 200
    # A bridge whose ACLs are not in use is not touched: any subject goes.
    assert api.put(f"{ACLS}/{other}", {"ingress": [{**ALLOW, "source": "@internal"}]}
                   ).status == 200


def nft_error(*reports: tuple[int, str, str]) -> str:
    """LXD's error when ``nft -f -`` refuses the ruleset: nft's report of each bad line
    (line number, the rule, the refused value)."""
    parts = []
    for number, rule, value in reports:
        offset = rule.index(value)
        parts.append(f"/dev/stdin:{number}:{offset + 3}-{offset + 2 + len(value)}: Error: "
                     f"Service out of range\n\t\t{rule}\n\t\t{' ' * offset}{'^' * len(value)}")
    return "Failed to run: nft -f -: exit status 1 (" + "\n".join(parts) + ")"


def test_bridge_firewall_refuses_ports_above_65535(api: API) -> None:
    """Ports up to 2^32-1 pass LXD's checks; nft refuses those above 65535 and LXD reports
    nft's words: the line of the generated ruleset (rules drop, reject, allow; a rule with
    IPv4 and IPv6 subjects makes two lines), the column, the first bad value of the line.
    The old rules stay. A named subject is refused before nft runs."""
    used = make(api)
    net = bridge(api, used)
    path = f"{ACLS}/{used}"
    reply = api.put(path, {"ingress": [{**TCP, "destination_port": "70000,80-99999"}]})
    assert_error(reply, 500, nft_error(
        (7, f"oifname {net} meta l4proto tcp th dport {{70000,80-99999}} accept", "70000")))
    reply = api.put(path, {"egress": [{**TCP, "destination_port": "0-65536"}]})
    assert_error(reply, 500, nft_error(
        (7, f"iifname {net} meta l4proto tcp th dport {{0-65536}} accept", "65536")))
    body = {"ingress": [{**ALLOW, "state": "logged", "protocol": "udp", "source_port": "70000"},
                        {"action": "drop", "state": "enabled", "source": "10.0.0.1,::1",
                         "protocol": "tcp", "destination_port": "1"}],
            "egress": [{"action": "reject", "state": "logged", "destination": "10.0.0.0/8",
                        "protocol": "icmp4", "icmp_type": "3", "icmp_code": "1"},
                       {**ICMP6},
                       {**TCP, "source_port": "65536", "destination_port": "4294967295"}]}
    assert_error(api.put(path, body), 500, nft_error(
        (10, f'oifname {net} meta l4proto udp th sport {{70000}} log prefix '
             f'"{net}-ingress-0 " accept', "70000"),
        (12, f"iifname {net} meta l4proto tcp th sport {{65536}} th dport {{4294967295}} "
             "accept", "65536")))
    reply = api.put(path, {"ingress": [{**TCP, "destination_port": "70000"}],
                           "egress": [{**ALLOW, "destination": "@external"}]})
    assert_error(reply, 500, 'Unsupported nftables subject "@external"')
    assert api.get(path).metadata["ingress"] == []
    body["egress"] = body["egress"][:2]
    body["ingress"][0]["source_port"] = "65535"
    assert api.put(path, body).status == 200


def test_bridge_refuses_acls_its_firewall_cannot_apply(api: API) -> None:
    """Creating or updating a bridge applies its ACLs: the same refusals (500), and LXD
    reverts (no network is left; the old config stays)."""
    named = make(api, ingress=[{**ALLOW, "source": "@internal"}])
    ports = make(api, egress=[{**TCP, "destination_port": "70000"}])
    plain = make(api)
    for acl, message in [(named, 'Unsupported nftables subject "@internal"'),
                         (ports, None)]:
        name = f"ab{uuid.uuid4().hex[:6]}"
        api.delete_later(f"/1.0/networks/{name}")
        reply = api.post("/1.0/networks", {"name": name, "type": "bridge", "config": {
            "ipv4.address": "none", "ipv6.address": "none", "security.acls": acl}})
        assert_error(reply, 500, message or nft_error(
            (7, f"iifname {name} meta l4proto tcp th dport {{70000}} accept", "70000")))
        assert api.get(f"/1.0/networks/{name}").status == 404
    net = bridge(api, plain)
    reply = api.patch(f"/1.0/networks/{net}", {"config": {"security.acls": ports}})
    assert_error(reply, 500, nft_error(
        (7, f"iifname {net} meta l4proto tcp th dport {{70000}} accept", "70000")))
    reply = api.put(f"/1.0/networks/{net}", {"config": {
        "ipv4.address": "none", "ipv6.address": "none", "security.acls": f"{plain},{named}"}})
    assert_error(reply, 500, 'Unsupported nftables subject "@internal"')
    assert api.get(f"/1.0/networks/{net}").metadata["config"]["security.acls"] == plain
    assert api.get(f"{ACLS}/{ports}").metadata["used_by"] == []


def test_nics_take_no_acls_without_ovn(api: API) -> None:
    """Only OVN NICs take ``security.acls`` in LXD 5.0.2: on this host every NIC refuses it,
    so profiles and instances never use an ACL here."""
    acl = make(api)
    for device in ({"type": "nic", "network": "lxdbr0", "security.acls": acl},
                   {"type": "nic", "nictype": "bridged", "parent": "lxdbr0",
                    "security.acls": acl},
                   {"type": "nic", "nictype": "macvlan", "parent": "eth0",
                    "security.acls": ""}):
        name = unique("p")
        api.delete_later(f"/1.0/profiles/{name}")
        reply = api.post("/1.0/profiles", {"name": name, "devices": {"eth0": device}})
        assert_error(reply, 400, 'Device validation failed for "eth0": Invalid device option '
                                 '"security.acls"')
    assert api.get(f"{ACLS}/{acl}").metadata["used_by"] == []


def test_not_found(api: API) -> None:
    path = f"{ACLS}/{acl_name()}"
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        assert_error(api.request(method, path, json_body={}), 404, MISSING)
    assert_error(api.post(path, {"name": acl_name()}), 404, MISSING)
    assert_error(api.get(f"{path}/log"), 404, MISSING)
    # The ACL is looked up before the body is read.
    assert_error(api.request("PUT", path, data=b"{"), 404, MISSING)


def test_unknown_project(api: API) -> None:
    message = 'Failed to load project "nope-pl": Project not found'
    params = {"project": "nope-pl"}
    path = f"{ACLS}/{acl_name()}"
    assert_error(api.get(ACLS, params=params), 404, message)
    assert_error(api.post(ACLS, {"name": acl_name()}, params=params), 404, message)
    for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
        assert_error(api.request(method, path, json_body={}, params=params), 404, message)
    assert_error(api.get(f"{path}/log", params=params), 404, message)


def test_log_needs_ovn(api: API) -> None:
    name = make(api)
    assert_error(api.get(f"{ACLS}/{name}/log"), 500, NO_LOG)


def test_unrouted_methods(api: API) -> None:
    assert_error(api.put(ACLS, {}), 501, "not implemented")
    assert_error(api.post(f"{ACLS}/{acl_name()}/log", {}), 501, "not implemented")


# -- projects ----------------------------------------------------------------------------------
def test_project_without_features_networks_uses_default(api: API) -> None:
    proj = project(api, {})
    name = acl_name()
    api.delete_later(f"{ACLS}/{name}")
    reply = api.post(ACLS, {"name": name}, params={"project": proj})
    assert reply.status == 201
    assert reply.headers["Location"] == f"{ACLS}/{name}"
    assert api.get(f"{ACLS}/{name}").metadata["name"] == name
    assert f"{ACLS}/{name}" in api.get(ACLS, params={"project": proj}).metadata
    assert api.get(f"{ACLS}/{name}", params={"project": proj}).metadata["name"] == name


def test_project_with_features_networks_has_its_own(api: API) -> None:
    proj = project(api, {"features.networks": "true"})
    papi = api.in_project(proj)
    outside = make(api)
    name = acl_name()
    api.delete_later(f"{ACLS}/{name}?project={proj}")
    reply = papi.post(ACLS, {"name": name})
    assert reply.status == 201
    assert reply.headers["Location"] == f"{ACLS}/{name}?project={proj}"
    assert papi.get(ACLS).metadata == [f"{ACLS}/{name}"]
    assert_error(api.get(f"{ACLS}/{name}"), 404, MISSING)
    assert_error(papi.get(f"{ACLS}/{outside}"), 404, MISSING)
    # Subjects are the project's own ACLs.
    assert_error(papi.post(ACLS, {"name": acl_name(), "ingress": [{**ALLOW,
                                                                   "source": outside}]}),
                 500, f'Invalid ingress rule 0: Invalid Source: Invalid subject "{outside}"')
    user = acl_name()
    api.delete_later(f"{ACLS}/{user}?project={proj}")
    assert papi.post(ACLS, {"name": user, "ingress": [{**ALLOW, "source": name}]}).status == 201
    assert papi.get(f"{ACLS}/{name}").metadata["used_by"] == [f"{ACLS}/{user}?project={proj}"]
    renamed = acl_name()
    api.delete_later(f"{ACLS}/{renamed}?project={proj}")
    reply = papi.post(f"{ACLS}/{user}", {"name": renamed})
    assert reply.headers["Location"] == f"{ACLS}/{renamed}?project={proj}"
    assert_error(papi.get(f"{ACLS}/{name}/log"), 500, NO_LOG)
    # Same name in two projects.
    assert papi.post(ACLS, {"name": outside}).status == 201
    api.delete_later(f"{ACLS}/{outside}?project={proj}")


def test_project_lists_its_acls_and_takes_them_along(api: API) -> None:
    """A project's ``used_by`` ends with its ACLs (by name), which block turning
    ``features.networks`` off but neither a rename nor a delete: the ACLs go with it."""
    proj = project(api, {"features.networks": "true"})
    papi = api.in_project(proj)
    for name in ("zz-acl", "aa-acl"):
        assert papi.post(ACLS, {"name": name}).status == 201
    assert api.get(f"/1.0/projects/{proj}").metadata["used_by"] == [
        f"/1.0/profiles/default?project={proj}", f"{ACLS}/aa-acl?project={proj}",
        f"{ACLS}/zz-acl?project={proj}"]
    config = {**api.get(f"/1.0/projects/{proj}").metadata["config"],
              "features.networks": "false"}
    reply = api.put(f"/1.0/projects/{proj}", {"config": config})
    assert_error(reply, 400, 'Project feature "features.networks" cannot be disabled on '
                             "non-empty projects")
    new = unique("ap")
    api.delete_later(f"/1.0/projects/{new}")
    assert api.wait(api.post(f"/1.0/projects/{proj}", {"name": new}))["status"] == "Success"
    assert api.get(ACLS, params={"project": new}).metadata == [f"{ACLS}/zz-acl",
                                                               f"{ACLS}/aa-acl"]
    assert api.delete(f"/1.0/projects/{new}").status == 200
    again = project(api, {"features.networks": "true"})
    assert api.get(ACLS, params={"project": again}).metadata == []
    # The default project lists its ACLs after its networks.
    name = make(api)
    urls = api.get("/1.0/projects/default").metadata["used_by"]
    assert urls.index(f"{ACLS}/{name}") > urls.index("/1.0/networks/lxdbr0")


# -- events ------------------------------------------------------------------------------------
def test_lifecycle_events(api: API) -> None:
    name, new = acl_name(), acl_name()
    api.delete_later(f"{ACLS}/{new}")
    api.delete_later(f"{ACLS}/{name}")
    with lifecycle_events(api) as events:
        assert api.post(ACLS, {"name": name}).status == 201
        assert api.put(f"{ACLS}/{name}", {"description": "x"}).status == 200
        assert api.put(f"{ACLS}/{name}", {"config": {"bad": "1"}}).status == 500
        assert api.post(f"{ACLS}/{name}", {"name": new}).status == 201
        assert api.delete(f"{ACLS}/{new}").status == 200
    mine = [e for e in events if e["metadata"]["action"].startswith("network-acl-")
            and e["metadata"]["source"] in (f"{ACLS}/{name}", f"{ACLS}/{new}")]
    requestor = {"username": "root", "protocol": "unix", "address": "@"}
    assert [e["metadata"] for e in mine] == [
        {"action": "network-acl-created", "source": f"{ACLS}/{name}", "requestor": requestor},
        {"action": "network-acl-updated", "source": f"{ACLS}/{name}", "requestor": requestor},
        {"action": "network-acl-renamed", "source": f"{ACLS}/{new}",
         "context": {"old_name": name}, "requestor": requestor},
        {"action": "network-acl-deleted", "source": f"{ACLS}/{new}", "requestor": requestor}]
    assert {(e["project"], e["location"], e["type"]) for e in mine} == {
        ("default", "none", "lifecycle")}


# -- the fake only -----------------------------------------------------------------------------
@pytest.mark.fake_only
def test_nic_devices_count_as_use(fake: FakeLXD) -> None:
    """LXD counts profiles and instances whose NICs on a managed network name the ACL. On LXD
    5.0.2 only OVN NICs take ``security.acls`` (this host has no OVN), so the state is seeded."""
    api = API.unix("fake", fake.socket_path)
    name = make(api)
    nic = {"type": "nic", "network": "lxdbr0", "security.acls": f"x,{name}"}
    with fake.state.lock:
        profiles = fake.state.in_project("profiles", "default")
        profiles["aclprof"] = {"name": "aclprof", "description": "", "config": {},
                               "devices": {"eth1": dict(nic)}}
        profiles["plain"] = {"name": "plain", "description": "", "config": {},
                             "devices": {"eth1": {**nic, "network": ""}}}
        fake.state.in_project("instances", "default")["aclinst"] = {
            "name": "aclinst", "profiles": ["default", "aclprof"], "devices": {}}
    assert api.get(f"{ACLS}/{name}").metadata["used_by"] == [
        "/1.0/profiles/aclprof", "/1.0/instances/aclinst"]
    assert_error(api.delete(f"{ACLS}/{name}"), 500, "Cannot delete an ACL that is in use")
    assert not fake.handler_errors


@pytest.mark.fake_only
def test_snapshot_and_reset_cover_acls(fake: FakeLXD) -> None:
    api = API.unix("fake", fake.socket_path)
    snap = fake.snapshot()
    name = make(api, ingress=[ALLOW])
    assert api.get(ACLS).metadata == [f"{ACLS}/{name}"]
    fake.restore(snap)
    assert api.get(ACLS).metadata == []
    make(api, name=name)
    fake.reset()
    assert api.get(ACLS).metadata == []
