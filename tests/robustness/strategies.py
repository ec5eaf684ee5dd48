"""Hypothesis strategies for hostile requests: names, request targets, query strings, bodies
and headers, drawn for one :class:`~tests.robustness.world.Endpoint` of the fake."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from fakeserver.schema import GoType, Struct
from tests.robustness.world import Endpoint, World

ODD_NAMES = [
    "", ".", "..", "/", "//", "a/b", "../..", "../../etc/passwd", "%2F", "a%2Fb", "%2e%2e",
    "%00", "\x00", "a\x00b", "\x01", "\x7f", "é", "日本", "😀", "\u202e", "\ufeff", "\ufffd",
    " ", "a b", " lead", "trail ", "?", "a?b=c", "#", "a#b", "&", "%", "%zz", "+", ";", "\\",
    '"', "'", "<>&", "default/..", "-", "-a", "a-", "_", "a_b", "a.b", "x" * 64, "x" * 300,
    "x" * 5000, "snap0/x", "custom", "null", "true", "0", "-1", "1e9", "NaN",
]

#: Names whose bytes go into the request target as they are (no percent-encoding).
ENCODINGS = ("quote", "quote-keep-slash", "raw")


def odd_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD_NAMES),
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
        st.from_regex(r"[a-z0-9][a-z0-9\-./%_]{0,30}", fullmatch=True),
    )


def encode(text: str, how: str) -> bytes:
    """``text`` for a request target: percent-encoded, or raw bytes (only the characters
    that would break the request line itself, CR, LF and space, are escaped)."""
    if how == "quote":
        return urllib.parse.quote(text, safe="").encode()
    if how == "quote-keep-slash":
        return urllib.parse.quote(text, safe="/").encode()
    raw = text.encode("utf-8", "surrogatepass")
    return raw.replace(b" ", b"%20").replace(b"\r", b"%0D") \
        .replace(b"\n", b"%0A")


QUERY_KEYS = ["recursion", "project", "filter", "target", "timeout", "all-projects",
              "instance-type", "secret", "path", "type", "public", "compress", "force",
              "fingerprint", "fields"]
QUERY_VALUES = [
    "", "0", "1", "2", "3", "-1", "+1", " 1", "1.5", "0x1", "99999999999999999999", "true",
    "false", "TRUE", "yes", "default", "fzproj", "nope", "none", "lxdbr0", "container",
    "virtual-machine", "bogus", "name eq fzinst", "status eq Running", "name eq", "bogus",
    "(", "not", "name eq a and", "name eq a or status eq Stopped", "config.user.x eq 1",
    "name eq 'x'", "%zz", ";", "a;b", "\x00", "é", "../..", "/", "logging,lifecycle",
    "operation", "bogus-type",
]


@st.composite
def query(draw: st.DrawFn) -> bytes:
    """A query string with LXD's parameters (and odd ones), in odd encodings."""
    pairs = draw(st.lists(st.tuples(
        st.one_of(st.sampled_from(QUERY_KEYS), odd_names()),
        st.one_of(st.sampled_from(QUERY_VALUES), odd_names()),
        st.sampled_from(("quote", "quote", "raw", "plus")),
    ), max_size=5))
    parts = []
    for key, value, how in pairs:
        if how == "plus":
            parts.append(urllib.parse.urlencode({key: value}).encode())
        else:
            enc = "quote" if how == "quote" else "raw"
            raw_key = encode(key, enc).replace(b"&", b"%26").replace(b"=", b"%3D")
            raw_value = encode(value, enc).replace(b"&", b"%26")
            parts.append(raw_key + b"=" + raw_value)
    if draw(st.booleans()) and parts:
        parts.append(draw(st.sampled_from([b"", b"&", b"=", b"a", b"%", b"%zz=1", b"&&",
                                           b"project", b"recursion="])))
    return b"&".join(parts)


@st.composite
def target(draw: st.DrawFn, world: World, endpoint: Endpoint, *, odd: float = 0.3,
           with_query: bool = False) -> bytes:
    """A request target for ``endpoint``: its arguments are names of objects in the world
    or (with probability ``odd``) odd names in one of the :data:`ENCODINGS`."""
    values = {}
    for arg, family in endpoint.args:
        known = world.names.get(family) or ["x"]
        if draw(st.floats(0, 1)) < odd:
            name = draw(odd_names())
            how = draw(st.sampled_from(ENCODINGS))
            if "<path:" not in endpoint.template and how == "quote-keep-slash":
                how = "quote"
            values[arg] = encode(name, how).decode("latin-1")
        else:
            values[arg] = urllib.parse.quote(draw(st.sampled_from(known)), safe="")
    path = endpoint.fill(values).encode("latin-1")
    params = draw(query()) if with_query else b""
    if endpoint.template.endswith("/wait"):
        # A running (token) operation is waited on for as long as ``timeout`` says: keep it
        # short (the first value wins, as in Go's FormValue).
        params = b"timeout=0" + (b"&" + params if params else b"")
    return path + (b"?" + params if params else b"")


# -- bodies -----------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)

BAD_JSON = [
    b"", b" ", b"{", b"}", b"[", b"{]", b'{"name":', b'{"name":"x"', b'{"name":"x",}', b"nul",
    b"not json", b"tru", b"{'name':'x'}", b'{"name":"x"}}', b'{"name":"x"} {}', b"\x00",
    b"\xff\xfe\xfd", b'{"name":"\xff"}', b'{"name":"\\ud800"}', b'{"name":"\\x"}',
    b'{"name":"\x01"}', b'{"a":1e999}', b'{"a":-}', b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000, b"1" * 6000, b'{"name":' + b"9" * 5000 + b"}",
    b"\xef\xbb\xbf{}", b'{"name":"x","name":1}', b'"just a string"', b"[]", b"42", b"true",
    b"null", b"{}", b'{"config":null,"devices":null}', b'{"":""}', b"/* c */ {}",
]


@st.composite
def bad_json(draw: st.DrawFn) -> bytes:
    """Bodies that are not JSON, or JSON of the wrong shape at the top."""
    base = draw(st.sampled_from(BAD_JSON))
    if draw(st.booleans()):
        return base
    text = json.dumps(draw(JSON_VALUES)).encode()
    how = draw(st.sampled_from(("truncate", "garble", "prefix", "as-is")))
    if how == "truncate" and len(text) > 1:
        return text[:draw(st.integers(0, len(text) - 1))]
    if how == "garble" and text:
        at = draw(st.integers(0, len(text) - 1))
        return text[:at] + draw(st.binary(min_size=1, max_size=3)) + text[at + 1:]
    if how == "prefix":
        return draw(st.binary(max_size=4)) + text
    return text


def _fields(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for struct in endpoint.structs:
        out.update(struct.fields)
    return out


def _wrong(draw: st.DrawFn, typ: GoType | Struct | Any, depth: int = 0) -> Any:
    """A value for a field of type ``typ``: right or (often) wrong."""
    if isinstance(typ, Struct):
        if depth < 2 and draw(st.booleans()):
            return {k: _wrong(draw, t, depth + 1)
                    for k, t in typ.fields.items() if draw(st.booleans())}
        return draw(JSON_VALUES)
    if isinstance(typ, GoType) and draw(st.booleans()):
        right = {"string": st.text(max_size=12), "bool": st.booleans(),
                 "int": st.integers(-(2 ** 64), 2 ** 64), "float": st.floats(allow_nan=False),
                 "map": st.dictionaries(st.text(max_size=12),
                                        st.one_of(st.text(max_size=8), JSON_SCALARS),
                                        max_size=3),
                 "list": st.lists(st.one_of(st.text(max_size=8), JSON_SCALARS), max_size=3),
                 "any": JSON_VALUES, "struct": st.dictionaries(st.text(max_size=8),
                                                               JSON_SCALARS, max_size=3)}
        return draw(right.get(typ.kind, JSON_VALUES))
    return draw(JSON_VALUES)


@st.composite
def typed_body(draw: st.DrawFn, endpoint: Endpoint) -> bytes:
    """A JSON object with the fields of the route's request structs (values of right and
    wrong types, keys in odd case) plus unknown keys."""
    fields = _fields(endpoint)
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True,
                           max_size=min(6, len(fields)))) if fields else []
    body: dict[str, Any] = {}
    for key in chosen:
        casing = draw(st.sampled_from(("same", "same", "upper", "title")))
        out_key = {"same": key, "upper": key.upper(), "title": key.title()}[casing]
        body[out_key] = _wrong(draw, fields[key])
    for _ in range(draw(st.integers(0, 2))):
        body[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    return json.dumps(body, allow_nan=False).encode()


@st.composite
def named_body(draw: st.DrawFn, endpoint: Endpoint) -> bytes:
    """A plausible create/rename body whose ``name`` (and ``source``/``target``) is odd."""
    name = draw(odd_names())
    body: dict[str, Any] = {"name": name}
    fields = _fields(endpoint)
    if "type" in fields and draw(st.booleans()):
        body["type"] = draw(st.sampled_from(["bridge", "custom", "client", "container", ""]))
    if "config" in fields and "networks" in endpoint.template:
        body["config"] = {"ipv4.address": "none", "ipv6.address": "none"}
    if "source" in fields and draw(st.booleans()):
        body["source"] = {"type": "image", "alias": "busybox"}
    if "target" in fields and draw(st.booleans()):
        body["target"] = draw(st.sampled_from(["busybox", name]))
    return json.dumps(body).encode()


@dataclass
class Huge:
    """A large body, built (not drawn byte by byte: hypothesis limits its buffer)."""

    kind: str
    size: int
    body: bytes = field(repr=False, default=b"")


def huge_body(kind: str, size: int) -> bytes:
    if kind == "string":
        return json.dumps({"name": "n" * size, "description": "d" * size}).encode()
    if kind == "config":
        count = max(1, size // 24)
        return json.dumps({"name": "hugecfg", "config": {
            f"user.k{i}": "v" for i in range(count)}}).encode()
    if kind == "array":
        return b"[" + b"1," * (size // 2) + b"1]"
    if kind == "garbage":
        return bytes(range(256)) * max(1, size // 256)
    if kind == "nested":
        depth = min(size, 200_000)
        return b"[" * depth + b"]" * depth
    raise ValueError(kind)


HUGE_KINDS = ("string", "config", "array", "garbage", "nested")
HUGE_SIZES = (70_000, 1_100_000, 5_000_000)

# -- headers ----------------------------------------------------------------------------------

HEADER_VALUES = ["", "0", "-1", "1", "4294967296", "99999999999999999999", "0755", "0o755",
                 "7777", "abc", "file", "directory", "symlink", "bogus", "overwrite", "append",
                 "true", "false", "é", "a\tb", "../../x", "/", "*", '"', '""', 'W/"x"',
                 "x" * 3000, "application/json", "application/octet-stream",
                 "multipart/form-data", "multipart/form-data; boundary=", "text/plain",
                 "multipart/form-data; boundary=xx", "os=busybox&release=1", "%zz", "a=b; c"]
HEADER_NAMES = ["If-Match", "Content-Type", "X-LXD-uid", "X-LXD-gid", "X-LXD-mode",
                "X-LXD-type", "X-LXD-write", "X-LXD-modify-perm", "X-LXD-fingerprint",
                "X-LXD-public", "X-LXD-filename", "X-LXD-properties", "X-LXD-aliases",
                "X-LXD-secret", "X-LXD-name", "X-LXD-pool", "X-LXD-profiles", "X-LXD-project",
                "Content-Encoding", "Expect", "Accept"]


@st.composite
def headers(draw: st.DrawFn) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(HEADER_NAMES))
        value = draw(st.one_of(st.sampled_from(HEADER_VALUES),
                               st.text(st.characters(codec="latin-1",
                                                     exclude_characters="\r\n"), max_size=20)))
        out[name] = value.encode("utf-8") if not value.isascii() else value.encode()
    return out
