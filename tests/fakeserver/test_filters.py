"""``?filter=``: the one parser and matcher (``fakeserver.filters``) behind instances, images,
storage volumes and warnings, and what LXD 5.0.2 answers on each endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from fakeserver import filters
from fakeserver.filters import Clause, FilterError
from fakeserver.responses import LXDError
from tests.fakeserver.test_storage_volumes import POOLS, make_pool, make_volume
from tests.fakeserver.test_warnings import some_warning
from tests.imagefixtures import tagged, unified, upload
from tests.instancefixtures import make
from tests.support import API

# -- the parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "clauses"), [
    ("", []),
    ("name eq c1", [Clause("name", "eq", "c1")]),
    ("NOT name ne c1 or type eq x", [Clause("name", "ne", "c1", negate=True),
                                     Clause("type", "eq", "x", logical="or")]),
    ('description eq "a   b" and x eq y', [Clause("description", "eq", "a b"),
                                           Clause("x", "eq", "y")]),
    ('d eq " x"', [Clause("d", "eq", " x")]),
    ('d eq "a b""', [Clause("d", "eq", 'a b"')]),
    ('d eq a"b', [Clause("d", "eq", 'a"b')]),
])
def test_parse(text: str, clauses: list[Clause]) -> None:
    assert filters.parse(text) == clauses


@pytest.mark.parametrize(("text", "message"), [
    ("not", "incomplete not clause"), ("bogus", "clause has no operator"),
    ("a eq", "clause has no value"), ("a eq b and", "unterminated compound clause"),
    ("a eq b xor c eq d", "invalid clause composition"),
    ("a eq b AND c eq d", "invalid clause composition"),
    ('a eq "b', "unterminated quote"), ('a eq ""', "unterminated quote"),
    ('a eq "b" or', "unterminated quote"), ('a eq "b c" d', "invalid clause composition"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=f"^{message}$"):
        filters.parse(text)


def test_from_query_prefix() -> None:
    with pytest.raises(LXDError) as caught:
        filters.from_query("bogus", "Failed to filter warnings")
    assert (caught.value.code, caught.value.message) == (
        500, "Failed to filter warnings: clause has no operator")


# -- the matcher ----------------------------------------------------------------------------

OBJ: dict[str, Any] = {"name": "Web-1", "stateful": False, "size": 5, "profiles": ["default"],
                       "config": {"user.k": "Xy", "volatile.a.b": "c"},
                       "devices": {"root": {"path": "/"}}, "created_at": "2024-01-01"}


@pytest.mark.parametrize(("text", "hit"), [
    ("name eq web-1", True), ("name eq web", False), ("name eq w.*", True),
    ("name eq ^web", True), ("name eq 1$", True), ("name eq Web-1|zz", True),
    ("name eq zz|Web", False), ("name eq [", False), ("name ne [", True),
    ("name ne web-1", False), ("name gt web-1", True), ("name EQ web-1", True),
    ("NAME eq web-1", False), ("config.user.k eq xy", True), ("config.volatile.a.b eq c", True),
    ("devices.root.path eq /", True), ("config.nope ne x", True), ("nope eq .*", False),
    ("stateful eq false", False), ("stateful ne false", True), ("size eq 5", False),
    ("profiles eq default", False), ("created_at eq .*", False), ("config eq .*", False),
    ("not name eq zz", True), ("not name ne zz", False),
    ("name eq web-1 or name eq zz and name eq zz", False),
    ("name eq zz and name eq zz or name eq web-1", True),
])
def test_matches(text: str, hit: bool) -> None:
    assert filters.matches(OBJ, filters.parse(text)) is hit


# -- on the endpoints (both backends) -------------------------------------------------------


def _endpoints(pool: str) -> dict[str, str]:
    """Each endpoint that filters, and the prefix of its error."""
    return {"/1.0/instances": "Invalid filter", "/1.0/images": "Invalid filter",
            f"{POOLS}/{pool}/volumes": "Invalid filter",
            "/1.0/warnings": "Failed to filter warnings"}


@pytest.mark.parametrize(("text", "message"), [
    ('name eq "x', "unterminated quote"), ('name eq ""', "unterminated quote"),
    ('name eq "x" or', "unterminated quote"),
    ("name eq x AND name eq y", "invalid clause composition"),
    ("NOT", "incomplete not clause"), ("name eq x or", "unterminated compound clause"),
])
def test_malformed_on_every_endpoint(api: API, text: str, message: str) -> None:
    pool = make_pool(api)
    for path, prefix in _endpoints(pool).items():
        reply = api.get(path, params={"filter": text})
        assert (reply.status, reply.error) == (500, f"{prefix}: {message}"), path


def test_volumes(api: API) -> None:
    pool = make_pool(api)
    base = f"{POOLS}/{pool}/volumes"
    name = make_volume(api, pool, config={"user.k": "Xy"}, description="Some Desc")

    def hit(text: str) -> bool:
        reply = api.get(base, params={"filter": text, "recursion": "1"})
        assert reply.status == 200, (text, reply)
        return [v["name"] for v in reply.metadata] == [name]

    for text, expected in [
        (f"name eq {name.upper()}", True), (f"name eq {name[:4]}.*", True),
        (f"name eq ^{name[:4]}", True), (f"name eq {name[-3:]}", False),
        (f"name eq {name[:4]}|zz", True), (f"name eq zz|{name[:4]}", False),
        ("config.user.k eq xy", True), ("Config.user.k eq xy", False),
        ('description eq "some   desc"', True), ('description eq "Some Desc""', False),
        ("type eq CUSTOM", True), ("used_by ne x", True), ("created_at eq .*", False),
        (f"NOT name eq {name}", False), (f"Not name ne {name}", True),
        (f"name like {name}", True), (f"name NE {name}", True), (f"name ne {name}", False),
        (f"name eq {name} or name eq zz and name eq zz", False),
        (f"name eq zz and name eq zz or name eq {name}", True),
    ]:
        assert hit(text) is expected, text


def test_instances(api: API) -> None:
    name = make(api, source={"type": "none"}, config={"user.tag": "Blue"})

    def hit(text: str) -> bool:
        reply = api.get("/1.0/instances", params={"filter": text})
        assert reply.status == 200, (text, reply)
        return f"/1.0/instances/{name}" in reply.metadata

    for text, expected in [
        (f"name eq {name} and config.user.tag eq blue", True),
        (f"name eq {name} and expanded_devices.root.path eq /", True),
        (f"name eq {name} and stateful ne false", True),
        (f"name eq {name} and stateful eq false", False),
        (f"name eq {name} and created_at eq .*", False),
        (f"name eq {name} and profiles eq default", False),
        (f"name eq {name} and status eq STOPPED", True),
        (f"NOT name eq {name}", False),
    ]:
        assert hit(text) is expected, text


def test_warnings(api: API) -> None:
    warning = some_warning(api)
    uuid, status = str(warning["uuid"]), str(warning["status"])

    def hit(text: str) -> bool:
        reply = api.get("/1.0/warnings", params={"filter": text})
        assert reply.status == 200, (text, reply)
        return f"/1.0/warnings/{uuid}" in (reply.metadata or [])

    for text, expected in [
        (f"uuid eq {uuid[:8]}.*", True), (f"uuid eq {uuid} and status eq {status.upper()}", True),
        (f"uuid eq {uuid} and count eq {warning['count']}", False),
        (f"uuid eq {uuid} and count ne {warning['count']}", True),
        (f"uuid eq {uuid} and first_seen_at eq .*", False),
        (f"uuid eq {uuid} and status like {status}", True),
        (f"NOT uuid eq {uuid}", False),
    ]:
        assert hit(text) is expected, text


@pytest.mark.fake_only
@pytest.mark.divergence("LXD 5.0.2 filters by walking Go structs: a field through a nil pointer "
                        "(update_source.alias on a local image) panics the handler and the "
                        "connection drops; the fake reads the field as missing")
def test_field_through_a_nil_pointer(api: API) -> None:
    ident = tagged()["test.id"]
    fp = upload(api, unified({"test.id": ident}))
    reply = api.get("/1.0/images", params={
        "filter": f"properties.test.id eq {ident} and update_source.alias ne x"})
    assert reply.metadata == [f"/1.0/images/{fp}"]
