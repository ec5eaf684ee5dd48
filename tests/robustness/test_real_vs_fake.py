"""Hostile requests sent to the real LXD 5.0.2 host and to a fake mirroring it: the same status,
content type and error message, or a documented divergence (``differential.KNOWN``).

Only requests that cannot change the real host go there (``differential.safe_for_real``):
reads, writes aimed at objects that do not exist, and bodies no Go struct can decode. The odd
names test creates profiles with odd names (and removes them at once).
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fakeserver import FakeLXD
from fakeserver.api.profiles import PROFILES_POST
from fakeserver.responses import LXDError
from fakeserver.schema import decode, unmarshal_error
from pytest_lxd.plugin import real_endpoint
from tests import instancefixtures
from tests.robustness import differential as D
from tests.robustness import strategies as S
from tests.robustness.checks import FIGURES
from tests.robustness.conftest import fuzz_settings
from tests.robustness.rawhttp import RawClient, RawReply
from tests.robustness.world import Endpoint, endpoints
from tests.support import API, unique

pytestmark = pytest.mark.real_only

ENDPOINTS = endpoints()
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def mirror() -> Iterator[RawClient]:
    """A fake with the real host's baseline (and its busybox image)."""
    with FakeLXD() as fake:
        client = API.unix("fake", fake.socket_path)
        client.server = fake  # type: ignore[attr-defined]
        instancefixtures.with_busybox(client)
        raw = RawClient(unix=fake.socket_path)
        yield raw
        raw.close()
        assert not fake.handler_errors, fake.handler_errors[0]


@pytest.fixture
def real(api: API, request: pytest.FixtureRequest) -> Iterator[RawClient]:
    raw = RawClient(unix=real_endpoint(request.config))
    yield raw
    raw.close()


def compare(endpoint: Endpoint, target: bytes, body: bytes, fake: RawClient, real: RawClient,
            strategy: str) -> tuple[RawReply, RawReply]:
    got_fake = fake.send(endpoint.method, target, JSON_HEADERS, body)
    got_real = real.send(endpoint.method, target, JSON_HEADERS, body)
    FIGURES.count(f"real-{strategy}", endpoint, got_real.status,
                  D._error(got_real))  # noqa: SLF001
    if not D.same(got_fake, got_real):
        assert D.known(endpoint, target, body, got_fake, got_real), (
            f"{endpoint.id} {target!r} {body[:80]!r}: {D.describe(got_fake, got_real)}")
    return got_fake, got_real


def _sweep_inputs(endpoint: Endpoint) -> Iterator[tuple[dict[str, str], bytes, bytes]]:
    args = [a for a, _ in endpoint.args]
    families = dict(endpoint.args)
    if endpoint.method == "GET":
        known = {a: (D.REAL_NAMES.get(f) or [D.MISSING + "x"])[0] for a, f in endpoint.args}
        if endpoint.template.endswith(("/wait", "/websocket")):
            known = {a: D.MISSING + "op" for a in args}
        variants = [known, {a: D.MISSING + "%2Fx%C3%A9" for a in args}]
        bodies = [b""]
        queries = [b"", b"project=nope", b"recursion=-1", b"target=nope", b"filter=bogus",
                   b"%zz&project=nope", b"all-projects=true"]
    else:
        known = {a: (D.REAL_NAMES.get(f) or ["x"])[0] for a, f in endpoint.args}
        variants = []
        for missing in ("x", "%2Fx%C3%A9"):
            values = dict(known)
            if args and families[args[-1]] != "vtype":
                values[args[-1]] = D.MISSING + missing
            variants.append(values)
        bodies = [b"{", b"", b"[]", b"nul", b"{}", b'{"name":1,"config":"x"}',
                  b'{"name":"rbnxq"} trailing']
        queries = [b"", b"project=nope", b"target=nope"]
    for values in variants:
        for body in bodies:
            if D.safe_for_real(endpoint, values, body):
                for query in queries:
                    yield values, body, query


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_every_endpoint_rejects_as_lxd_does(api: API, mirror: RawClient, real: RawClient,
                                            endpoint: Endpoint) -> None:
    """Missing objects, odd names, unknown projects and targets, bad filters, bad bodies: the
    checks come in LXD's order, with LXD's codes and messages."""
    for values, body, query in _sweep_inputs(endpoint):
        target = endpoint.fill(values).encode() + (b"?" + query if query else b"")
        compare(endpoint, target, body, mirror, real, "sweep")


def _conditions(endpoint: Endpoint) -> dict[str, tuple[str, str, Any]]:
    """Ways a request to ``endpoint`` can be wrong, each alone enough to refuse it."""
    conditions: dict[str, tuple[str, str, Any]] = {}
    for arg, family in endpoint.args:
        if family == "vtype":
            conditions["vtype"] = ("arg", arg, "bogus")
        elif family == "pool":
            conditions["pool"] = ("arg", arg, D.MISSING + "pool")
        else:
            conditions[f"missing-{arg}"] = ("arg", arg, D.MISSING + "miss")
            conditions[f"slash-{arg}"] = ("arg", arg, D.MISSING + "%2Fsl")
    conditions["project"] = ("query", "project=nope", None)
    conditions["target"] = ("query", "target=nope", None)
    if endpoint.method == "GET":
        conditions["filter"] = ("query", "filter=bogus", None)
    else:
        conditions["syntax"] = ("body", "", b"{")
        conditions["empty"] = ("body", "", b"{}")
    return conditions


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_checks_come_in_lxds_order(api: API, mirror: RawClient, real: RawClient,
                                   endpoint: Endpoint) -> None:
    """Two things wrong at once (a missing pool and an unknown project, a bad type and a bad
    body, ...): the fake reports the one LXD checks first."""
    families = dict(endpoint.args)
    args = [a for a, _ in endpoint.args]
    base = {a: (D.REAL_NAMES.get(f) or ["x"])[0] for a, f in endpoint.args}
    last = args[-1] if args and families[args[-1]] != "vtype" else None
    conditions = _conditions(endpoint)
    for first, second in itertools.combinations(sorted(conditions), 2):
        values = dict(base)
        if last and not values[last].startswith(D.MISSING):
            values[last] = D.MISSING + "miss"
        queries: list[str] = []
        body = b"{}" if endpoint.writes else b""
        for name in (first, second):
            kind, where, what = conditions[name]
            if kind == "arg":
                values[where] = what
            elif kind == "query":
                queries.append(where)
            else:
                body = what
        if not D.safe_for_real(endpoint, values, body):
            continue
        target = (endpoint.fill(values) + ("?" + "&".join(queries) if queries else "")).encode()
        compare(endpoint, target, body, mirror, real, "order")


@st.composite
def _real_request(draw: st.DrawFn) -> tuple[Endpoint, bytes, bytes]:
    endpoint = draw(st.sampled_from(ENDPOINTS), label="endpoint")
    args = [a for a, _ in endpoint.args]
    values: dict[str, str] = {}
    for index, (arg, family) in enumerate(endpoint.args):
        last = index == len(args) - 1 and family != "vtype"
        if endpoint.writes and last:
            name = D.MISSING + draw(S.odd_names())
        elif draw(st.booleans()):
            name = draw(st.sampled_from(D.REAL_NAMES.get(family) or [D.MISSING]))
        else:
            name = draw(S.odd_names())
        how = draw(st.sampled_from(("quote", "raw")))
        values[arg] = S.encode(name, how).decode("latin-1")
    query = draw(S.query())
    if endpoint.template.endswith("/wait"):
        query = b"timeout=0" + (b"&" + query if query else b"")
    if not endpoint.writes:
        body = b""
    else:
        body = draw(st.one_of(S.bad_json(), S.typed_body(endpoint)), label="body")
    assume(D.safe_for_real(endpoint, values, body))
    target = endpoint.fill(values).encode("latin-1") + (b"?" + query if query else b"")
    return endpoint, target, body


@fuzz_settings(0.5)
@given(request=_real_request())
def test_hostile_requests_match_lxd(api: API, mirror: RawClient, real: RawClient,
                                    request: tuple[Endpoint, bytes, bytes]) -> None:
    """Random odd names (raw and escaped), query strings and bodies, on both."""
    endpoint, target, body = request
    compare(endpoint, target, body, mirror, real, "hypothesis")


PROFILES = next(e for e in ENDPOINTS if e.id == "POST /1.0/profiles")
EXEC = next(e for e in ENDPOINTS if e.id == "POST /1.0/instances/<name>/exec")


def _would_create(body: bytes) -> bool:
    try:
        return bool(decode(body, PROFILES_POST)["name"])
    except LXDError:
        return False


@fuzz_settings(0.5)
@given(body=st.one_of(S.bad_json(), S.typed_body(PROFILES)))
def test_json_bodies_decode_as_in_lxd(api: API, mirror: RawClient, real: RawClient,
                                      body: bytes) -> None:
    """Bodies read by json.Decoder (POST /1.0/profiles) and by json.Unmarshal (exec): the
    fake's decoders (fakeserver.schema) give Go's messages byte for byte."""
    assume(not _would_create(body))
    got_fake, got_real = compare(PROFILES, b"/1.0/profiles", body, mirror, real, "json")
    if got_real.status == 201:  # the fake's decoder refused what Go took: remove it
        real.send("DELETE", got_real.headers["location"].encode())
    target = f"/1.0/instances/{D.MISSING}exec/exec".encode()
    reply = real.send("POST", target, JSON_HEADERS, body)
    problem = unmarshal_error(body)
    if problem:
        assert (reply.status, D._error(reply)) == (400, problem), body  # noqa: SLF001
    else:
        assert D._error(reply) != "" and "JSON input" not in D._error(reply), body  # noqa: SLF001


@fuzz_settings(0.1)
@given(suffix=S.odd_names().filter(lambda text: "\x00" not in text))
def test_odd_profile_names_round_trip_as_in_lxd(api: API, mirror: RawClient, real: RawClient,
                                                suffix: str) -> None:
    """A profile with an odd name: created (or refused) alike, the same Location and list URL,
    readable back through the Location, and removed.

    Divergence left out: LXD 5.0.2's database cuts a stored name at its first NUL (the
    profile ``a\\x00b`` lists as ``a``); the fake keeps the whole name.
    """
    name = unique("rbo") + suffix
    body = json.dumps({"name": name, "config": {"user.a": "1"}}).encode()
    path = "/1.0/profiles/" + urllib.parse.quote(name, safe="")
    api.delete_later(path)
    got_fake, got_real = compare(PROFILES, b"/1.0/profiles", body, mirror, real, "odd-names")
    try:
        if got_real.status != 201:
            return
        assert got_fake.headers["location"] == got_real.headers["location"]
        location = urllib.parse.unquote(got_real.headers["location"])  # escaped twice
        shown = []
        for client in (mirror, real):
            got = client.send("GET", location.encode())
            assert got.status == 200, (location, got)
            shown.append(got.body["metadata"])
            listed = client.send("GET", b"/1.0/profiles").body["metadata"]
            assert got_real.headers["location"] in listed
        assert shown[0] == shown[1]
    finally:
        mirror.send("DELETE", path.encode())
        real.send("DELETE", path.encode())
