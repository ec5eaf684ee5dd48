"""Hostile input on every route of the fake: never a traceback, always LXD's envelope, a 5xx
only with LXD's own error text, and nothing changed by a request the fake rejects.

The routes come from the fake's own table, so new routes are fuzzed automatically. Each
hypothesis test runs ``PYTEST_LXD_FUZZ_EXAMPLES`` examples (200 by default; see
docs/robustness.md to run more); ``test_every_endpoint_*`` sweep every route with fixed inputs.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.robustness import strategies as S
from tests.robustness.checks import check
from tests.robustness.conftest import fuzz_settings
from tests.robustness.rawhttp import RawClient
from tests.robustness.world import Endpoint, World, endpoints

ENDPOINTS = endpoints()
WRITES = [e for e in ENDPOINTS if e.writes]
JSON_HEADERS = {"Content-Type": "application/json"}


def _send(world: World, raw: RawClient, endpoint: Endpoint, target: bytes, body: bytes = b"",
          headers: dict[str, object] | None = None, strategy: str = "sweep") -> None:
    world.restore()
    reply = raw.send(endpoint.method, target, headers or {}, body)
    check(world, endpoint, reply, strategy, target=target)


# -- every endpoint, fixed inputs -------------------------------------------------------------

SWEEP_BODIES = [b"", b"{", b"[]", b'"x"', b"null", b"{}", b'{"name":1,"config":"x",'
                b'"devices":[],"type":{},"source":"x","description":7,"profiles":"x"}']


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_every_endpoint_with_fixed_bad_input(world: World, raw: RawClient,
                                             endpoint: Endpoint) -> None:
    """Known names and odd names, bad bodies, an unknown project, and a method the route
    does not serve."""
    known = {arg: (world.names.get(family) or ["x"])[0] for arg, family in endpoint.args}
    odd = {arg: "nope%2Fx" for arg, _ in endpoint.args}
    wait = b"?timeout=0" if endpoint.template.endswith("/wait") else b""
    for values in (known, odd):
        path = endpoint.fill(values).encode()
        for body in SWEEP_BODIES if endpoint.writes else [b""]:
            _send(world, raw, endpoint, path + wait, body, JSON_HEADERS)
        sep = b"&" if wait else b"?"
        for query in (b"project=nope", b"recursion=2&project=fzproj", b"target=nope",
                      b"filter=bogus", b"all-projects=true"):
            _send(world, raw, endpoint, path + wait + sep + query, b"{}", JSON_HEADERS)
    other = {"GET": "PATCH", "POST": "PUT", "PUT": "POST", "PATCH": "POST", "DELETE": "PATCH"}
    path = endpoint.fill(known).encode()
    world.restore()
    reply = raw.send(other.get(endpoint.method, "PATCH"), path + wait, JSON_HEADERS, b"{")
    check(world, endpoint, reply, "sweep")


# -- hypothesis -------------------------------------------------------------------------------

@fuzz_settings()
@given(data=st.data())
def test_bad_json(world: World, raw: RawClient, data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(WRITES), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.1), label="target")
    body = data.draw(S.bad_json(), label="body")
    _send(world, raw, endpoint, target, body, JSON_HEADERS, "bad-json")


@fuzz_settings()
@given(data=st.data())
def test_wrong_types_and_unknown_keys(world: World, raw: RawClient,
                                      data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(WRITES), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.1), label="target")
    body = data.draw(S.typed_body(endpoint), label="body")
    _send(world, raw, endpoint, target, body, JSON_HEADERS, "types")


@fuzz_settings()
@given(data=st.data())
def test_odd_names(world: World, raw: RawClient, data: st.DataObject) -> None:
    """Odd names in the URL and in create/rename bodies; what is created can be read back."""
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.8), label="target")
    body = data.draw(S.named_body(endpoint), label="body") if endpoint.writes else b""
    world.restore()
    reply = raw.send(endpoint.method, target, JSON_HEADERS, body)
    check(world, endpoint, reply, "names", target=target)
    if reply.status == 201 and "location" in reply.headers:
        # LXD escapes names twice in Location (a 5.0.2 quirk): unescape the path once.
        location = reply.headers["location"]
        path, _, query = location.partition("?")
        target_back = urllib.parse.unquote(path) + ("?" + query if query else "")
        got = raw.send("GET", target_back.encode("latin-1"))
        assert got.status == 200, (endpoint.id, body, location, got)


@fuzz_settings()
@given(data=st.data())
def test_query_strings(world: World, raw: RawClient, data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.1, with_query=True), label="target")
    body = b"{}" if endpoint.method in ("PUT", "PATCH") else b""
    if endpoint.method == "POST":
        body = data.draw(S.typed_body(endpoint), label="body")
    _send(world, raw, endpoint, target, body, JSON_HEADERS, "query")


@fuzz_settings()
@given(data=st.data())
def test_headers(world: World, raw: RawClient, data: st.DataObject) -> None:
    """If-Match, content types, the file/image/backup ``X-LXD-*`` headers, chunked bodies."""
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.1), label="target")
    hdrs: dict[str, object] = dict(data.draw(S.headers(), label="headers"))
    body = data.draw(st.one_of(S.typed_body(endpoint), st.binary(max_size=64)), label="body")
    if data.draw(st.booleans(), label="chunked"):
        hdrs["Transfer-Encoding"] = "chunked"
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    _send(world, raw, endpoint, target, body, hdrs, "headers")


@fuzz_settings(0.1)
@given(data=st.data())
def test_huge_bodies(world: World, raw: RawClient, data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(WRITES), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.0), label="target")
    kind = data.draw(st.sampled_from(S.HUGE_KINDS), label="kind")
    size = data.draw(st.sampled_from(S.HUGE_SIZES), label="size")
    _send(world, raw, endpoint, target, S.huge_body(kind, size), JSON_HEADERS, "huge")


@fuzz_settings(0.25)
@given(data=st.data())
def test_truncated_uploads(world: World, data: st.DataObject) -> None:
    """A body shorter than its Content-Length, then the client hangs up: the fake answers
    (or closes) at once, and changes nothing."""
    endpoint = data.draw(st.sampled_from(WRITES), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.0), label="target")
    full = data.draw(st.one_of(S.typed_body(endpoint), st.just(b"\x1f\x8b" + b"\0" * 200)),
                     label="body")
    cut = data.draw(st.integers(0, max(0, len(full) - 1)), label="cut")
    world.restore()
    client = RawClient(unix=world.fake.socket_path, timeout=10)
    try:
        reply = client.send(endpoint.method, target, JSON_HEADERS, full[:cut],
                            content_length=len(full), close_after_body=True)
    finally:
        client.close()
    check(world, endpoint, reply, "truncated", target=target, closed_ok=True)


def test_deep_json_is_an_error_not_a_crash(world: World, raw: RawClient) -> None:
    endpoint = next(e for e in WRITES if e.id == "POST /1.0/profiles")
    for depth in (900, 1000, 5000, 100_000):
        body = b"[" * depth + b"]" * depth
        _send(world, raw, endpoint, b"/1.0/profiles", body, JSON_HEADERS)
        reply = raw.send("POST", b"/1.0/profiles", JSON_HEADERS, body)
        assert reply.status == 400, reply
        assert json.loads(reply.raw)["error"]


FILES = [e for e in ENDPOINTS if e.template.endswith("/files")]
EXECS = [e for e in ENDPOINTS if e.template.endswith("/exec")]
FILE_PATHS = ["/", "/etc/hostname", "/etc", "/tmp/x", "", "rel/path", "/tmp/../etc/x",
              "/tmp/a\x00b", "/" + "d" * 300, "//tmp//x", "/tmp/%zz", "/bin/sh", "/nope/x",
              "/tmp/é", "/tmp/ x"]


@fuzz_settings(0.5)
@given(data=st.data())
def test_file_headers_and_paths(world: World, raw: RawClient, data: st.DataObject) -> None:
    """The files API with odd paths, ``X-LXD-*`` headers (uid, gid, mode, type, write) and
    bodies, on an instance that exists (and on odd names)."""
    endpoint = data.draw(st.sampled_from(FILES), label="endpoint")
    path = data.draw(st.one_of(st.sampled_from(FILE_PATHS), S.odd_names()), label="path")
    target = data.draw(S.target(world, endpoint, odd=0.1), label="target")
    target += b"?path=" + S.encode(path, data.draw(st.sampled_from(("quote", "raw"))))
    hdrs: dict[str, object] = dict(data.draw(S.headers(), label="headers"))
    for name in ("X-LXD-type", "X-LXD-write", "X-LXD-mode", "X-LXD-uid", "X-LXD-gid"):
        if data.draw(st.booleans()):
            hdrs[name] = data.draw(st.sampled_from(S.HEADER_VALUES))
    body = data.draw(st.binary(max_size=256), label="body")
    _send(world, raw, endpoint, target, body, hdrs, "files")


@st.composite
def _exec_body(draw: st.DrawFn) -> bytes:
    words = st.one_of(st.sampled_from(["true", "false", "echo", "cat", "ls", "sh", "-c",
                                       "exit 3", "/bin/sh", "", "\x00", "é"]),
                      st.text(max_size=8))
    body: dict[str, object] = {"command": draw(st.lists(words, max_size=4)),
                               "wait-for-websocket": False, "interactive": False}
    for key, value in (("environment", st.dictionaries(st.text(max_size=6), st.text(max_size=6),
                                                       max_size=3)),
                       ("cwd", st.one_of(st.sampled_from(FILE_PATHS), st.text(max_size=8))),
                       ("user", st.integers(-2, 2 ** 33)), ("group", st.integers(-2, 2 ** 33)),
                       ("width", st.integers(-2, 2 ** 33)), ("record-output", st.booleans())):
        if draw(st.booleans()):
            body[key] = draw(value)
    return json.dumps(body).encode()


@fuzz_settings(0.5)
@given(data=st.data())
def test_exec_bodies(world: World, raw: RawClient, data: st.DataObject) -> None:
    """Exec requests with odd commands, environments, directories and ids (no websockets:
    the operation runs at once and must end)."""
    endpoint = data.draw(st.sampled_from(EXECS), label="endpoint")
    target = data.draw(S.target(world, endpoint, odd=0.1), label="target")
    body = data.draw(st.one_of(_exec_body(), S.bad_json()), label="body")
    _send(world, raw, endpoint, target, body, JSON_HEADERS, "exec")
