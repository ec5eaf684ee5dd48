"""Request bodies decoded the way LXD's Go handlers decode them.

Each body is declared as a :class:`Struct` of typed fields. Decoding reproduces what Go's
``encoding/json`` does: unknown fields are ignored, ``null`` gives the zero value, and a
syntax or type error yields Go's message (``unexpected EOF``, ``json: cannot unmarshal number
into Go struct field ProfilesPost.config of type string``) as a 400.
"""

from __future__ import annotations

import json
import json.scanner
import re
from dataclasses import dataclass
from typing import Any

from .responses import LXDError


@dataclass(frozen=True)
class GoType:
    """A Go type: its name in error messages, its JSON kind and zero value."""

    name: str
    kind: str  # "string", "bool", "int", "float", "map", "list", "any", "struct"
    item: Any = None

    def zero(self) -> Any:
        return {"string": "", "bool": False, "int": 0, "float": 0.0, "map": {}, "list": [],
                "any": None, "struct": {}}[self.kind]


STR = GoType("string", "string")
BOOL = GoType("bool", "bool")
INT = GoType("int64", "int")
INT_ = GoType("int", "int")
FLOAT = GoType("float64", "float")
ANY = GoType("interface {}", "any")
MAP_STR = GoType("map[string]string", "map", STR)
LIST_STR = GoType("[]string", "list", STR)
DEVICES = GoType("map[string]map[string]string", "map", MAP_STR)
MAP_ANY = GoType("map[string]interface {}", "map", ANY)


class Struct:
    """A Go struct: named, with JSON fields in order."""

    def __init__(self, name: str, /, **fields: GoType | Struct) -> None:
        self.name = name
        self.fields = {key.replace("__", "-").rstrip("_"): typ for key, typ in fields.items()}
        self.type = GoType(f"api.{name}", "struct", self)

    def extend(self, name: str, /, **fields: GoType | Struct) -> Struct:
        merged: dict[str, Any] = dict(self.fields)
        merged.update({key.replace("__", "-").rstrip("_"): typ for key, typ in fields.items()})
        out = Struct(name)
        out.fields = merged
        return out


def list_of(item: GoType | Struct) -> GoType:
    inner = item.type if isinstance(item, Struct) else item
    name = inner.name
    return GoType(f"[]{name}", "list", inner)


class Body(dict):  # type: ignore[type-arg]
    """A decoded body: every field with its value or zero value; ``present`` names those sent."""

    present: frozenset[str]


def patch_config(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """LXD's PATCH of a config map: ``changes`` laid over ``config`` in place, an empty value
    removing its key. Returns ``config``."""
    for key, value in changes.items():
        if value == "":
            config.pop(key, None)
        else:
            config[key] = value
    return config


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class GoInt(int):
    """A JSON integer literal; ``literal`` is its text (Go quotes it in type errors)."""

    literal: str


class GoFloat(float):
    """A JSON number literal with a fraction or exponent (or too big for an int)."""

    literal: str


def _go_int(text: str) -> int | float:
    try:
        out: GoInt | GoFloat = GoInt(text)
    except ValueError:  # more digits than Python converts: Go keeps it as a number literal
        out = GoFloat(float("inf") if not text.startswith("-") else float("-inf"))
    out.literal = text
    return out


def _go_float(text: str) -> float:
    out = GoFloat(text)
    out.literal = text
    return out


class _Constant(ValueError):
    """Python's json would accept NaN/Infinity; Go's does not."""


def _no_constant(name: str) -> Any:
    raise _Constant(name)


_DECODER = json.JSONDecoder(parse_int=_go_int, parse_float=_go_float,
                            parse_constant=_no_constant)
_INT64 = (-(1 << 63), (1 << 63) - 1)
#: Go integer types by name (an ``int`` kind field with another name is an int64).
_INT_RANGES = {"int8": (-(1 << 7), (1 << 7) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
               "int32": (-(1 << 31), (1 << 31) - 1), "int64": _INT64, "int": _INT64,
               "uint8": (0, (1 << 8) - 1), "uint16": (0, (1 << 16) - 1),
               "uint32": (0, (1 << 32) - 1), "uint64": (0, (1 << 64) - 1),
               "uint": (0, (1 << 64) - 1)}


class _TypeError(Exception):
    pass


def _literal(value: Any) -> str:
    return getattr(value, "literal", None) or json.dumps(value)


def _float64_ok(value: Any) -> bool:
    return not isinstance(value, float) or value not in (float("inf"), float("-inf"))


def _convert(value: Any, typ: GoType, path: str, top: str) -> Any:
    """``value`` decoded into ``typ`` (Go's rules); raises the first type error met, in
    document order."""
    if value is None:
        return _zero(typ)
    kind = typ.kind
    where = f"Go struct field {top}.{path}" if path else f"Go value of type {top}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _TypeError(f"json: cannot unmarshal {_json_kind(value)} into {where} of type "
                             f"{typ.name}")
        text = _literal(value)
        low, high = _INT_RANGES.get(typ.name, _INT64)
        if (isinstance(value, float) or any(c in text for c in ".eE")
                or not low <= int(value) <= high):
            raise _TypeError(f"json: cannot unmarshal number {text} into {where} of type "
                             f"{typ.name}")
        return int(value)
    ok = {
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "map": isinstance(value, dict),
        "struct": isinstance(value, dict),
        "list": isinstance(value, list),
        "any": True,
    }[kind]
    if not ok:
        raise _TypeError(f"json: cannot unmarshal {_json_kind(value)} into {where} of type "
                         f"{typ.name}")
    if kind == "float":
        if not _float64_ok(float(value)):
            raise _TypeError(f"json: cannot unmarshal number {_literal(value)} into {where} of "
                             f"type {typ.name}")
        return float(value)
    if kind == "any":
        return _plain(value, where)
    if kind == "map":
        return _each({str(k): v for k, v in value.items()}, typ.item, path, top)
    if kind == "list":
        out = []
        first: _TypeError | None = None
        for item in value:
            try:
                out.append(_convert(item, typ.item, path, top))
            except _TypeError as exc:
                first = first or exc
                out.append(_zero(typ.item))
        if first:
            raise first
        return out
    if kind == "struct":
        # Go names the innermost struct in type errors: "ImagesPostSource.source.type".
        return _struct(value, typ.item, path, typ.item.name)
    return value


def _each(data: dict[str, Any], typ: GoType, path: str, top: str) -> dict[str, Any]:
    out = {}
    first: _TypeError | None = None
    for key, item in data.items():
        try:
            out[key] = _convert(item, typ, path, top)
        except _TypeError as exc:
            first = first or exc
    if first:
        raise first
    return out


def _plain(value: Any, where: str) -> Any:
    """An ``interface{}`` value: numbers become float64 (an overflow is Go's type error)."""
    if isinstance(value, dict):
        return {k: _plain(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not _float64_ok(float(value)) or (isinstance(value, int) and abs(value) > 1 << 1024):
            raise _TypeError(f"json: cannot unmarshal number {_literal(value)} into {where} of "
                             "type float64")
        return value
    return value


def _zero(typ: GoType) -> Any:
    if typ.kind == "struct":
        return _struct({}, typ.item, "", "")
    return typ.zero()


def _fold(key: str) -> str:
    """Go's case folding of JSON keys (``bytes.EqualFold``; the Kelvin sign and long s too)."""
    return key.lower().replace("\u212a", "k").replace("\u017f", "s")


def _struct(data: dict[str, Any], struct: Struct, prefix: str, top: str) -> Body:
    """Go's struct decoding: keys in document order, an exact field name before a
    case-insensitive one, a later key overriding an earlier one, unknown keys ignored, the
    first type error reported once everything is decoded."""
    folded: dict[str, str] = {}
    for field in struct.fields:
        folded.setdefault(_fold(field), field)
    values: dict[str, Any] = {}
    present = set()
    first: _TypeError | None = None
    for key, item in data.items():
        field = key if key in struct.fields else folded.get(_fold(key))
        if field is None:
            continue
        typ = struct.fields[field]
        gtype = typ.type if isinstance(typ, Struct) else typ
        present.add(field)
        try:
            values[field] = _convert(item, gtype, f"{prefix}.{field}" if prefix else field, top)
        except _TypeError as exc:
            first = first or exc
    if first:
        raise first
    out = Body()
    for field, typ in struct.fields.items():
        if field in values:
            out[field] = values[field]
        else:
            out[field] = _zero(typ.type if isinstance(typ, Struct) else typ)
    out.present = frozenset(present)
    return out


# -- Go's JSON scanner: the syntax errors of encoding/json, byte for byte --------------------

_WS = b" \t\r\n"
_MAX_DEPTH = 10000


def _quote_byte(c: int) -> str:
    """Go's ``quoteChar``: the offending byte as a quoted rune (a byte >= 0x80 as U+00XX)."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        return "'\\\\'"
    ch = chr(c)
    if ch == " " or (ch.isprintable() and c != 0x7F):
        return f"'{ch}'"
    special = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if c in special:
        return f"'{special[c]}'"
    return f"'\\x{c:02x}'" if c < 0x80 else f"'\\u{c:04x}'"


# Inside a number: the state after a digit, a "." and an "e"/"E" (None: the number ended).
_NUMBER_STEPS = {"num0": (None, "dot", "exp"), "num1": ("num1", "dot", "exp"),
                 "dot0": ("dot0", None, "exp"), "exp0": ("exp0", None, None)}
# States where a number needs a digit next, and Go's complaint when it is not one.
_NUMBER_DIGIT = {"dot": "after decimal point in numeric literal",
                 "exp": "in exponent of numeric literal",
                 "expsign": "in exponent of numeric literal"}


def go_scan(data: bytes) -> str:
    """The error Go's ``json.Decoder`` meets reading the first value of ``data`` ("" if it
    reads one). Trailing bytes after a complete value are never looked at, as in Go."""
    return _scan(data)[0]


def _scan(data: bytes) -> tuple[str, int]:
    """:func:`go_scan`'s error and where the scan stopped (the end of the first value)."""
    stack: list[int] = []  # 0: object key, 1: object value, 2: array
    i, n = 0, len(data)
    while i < n and data[i] in _WS:
        i += 1
    if i == n:
        return "EOF", i

    def err(c: int, context: str) -> str:
        return f"invalid character {_quote_byte(c)} {context}"

    state = "value"
    while True:
        if i >= n:
            if (state == "end" or state in _NUMBER_STEPS) and not stack:
                return "", i
            return "unexpected EOF", i
        c = data[i]
        if state == "value" or state == "value_or_close" or state == "key_or_close":
            if c in _WS:
                i += 1
                continue
            if state == "value_or_close" and c == 0x5D:  # ]
                stack.pop()
                i += 1
                state = "end"
                continue
            if state == "key_or_close":
                if c == 0x7D:  # }
                    stack.pop()
                    i += 1
                    state = "end"
                    continue
                if c != 0x22:
                    return err(c, "looking for beginning of object key string"), i
                state, i = "string", i + 1
                continue
            if c in (0x7B, 0x5B):  # { [
                stack.append(0 if c == 0x7B else 2)
                if len(stack) > _MAX_DEPTH:
                    return err(c, "exceeded max depth"), i
                state, i = "key_or_close" if c == 0x7B else "value_or_close", i + 1
            elif c == 0x22:
                state, i = "string", i + 1
            elif c == 0x2D:
                state, i = "neg", i + 1
            elif c == 0x30:
                state, i = "num0", i + 1
            elif 0x31 <= c <= 0x39:
                state, i = "num1", i + 1
            elif c in b"tfn":
                word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[c]
                for k in range(1, len(word)):
                    if i + k >= n:
                        return "unexpected EOF", i
                    if data[i + k] != word[k]:
                        return err(data[i + k], f"in literal {word.decode()} "
                                                f"(expecting {_quote_byte(word[k])})"), i
                state, i = "end", i + len(word)
            else:
                return err(c, "looking for beginning of value"), i
            continue
        if state == "key":
            if c in _WS:
                i += 1
                continue
            if c != 0x22:
                return err(c, "looking for beginning of object key string"), i
            state, i = "string", i + 1
            continue
        if state == "string":
            if c == 0x22:
                state = "end"
            elif c == 0x5C:
                state = "esc"
            elif c < 0x20:
                return err(c, "in string literal"), i
            i += 1
            continue
        if state == "esc":
            if c in b'bfnrt\\/"':
                state = "string"
            elif c == 0x75:
                for k in range(1, 5):
                    if i + k >= n:
                        return "unexpected EOF", i
                    if data[i + k] not in b"0123456789abcdefABCDEF":
                        return err(data[i + k], "in \\u hexadecimal character escape"), i
                i += 4
                state = "string"
            else:
                return err(c, "in string escape code"), i
            i += 1
            continue
        if state == "neg":
            if c == 0x30:
                state = "num0"
            elif 0x31 <= c <= 0x39:
                state = "num1"
            else:
                return err(c, "in numeric literal"), i
            i += 1
            continue
        if state in _NUMBER_STEPS:
            after = _NUMBER_STEPS[state]
            following = after[0] if 0x30 <= c <= 0x39 else after[1] if c == 0x2E else \
                after[2] if c in b"eE" else None
            if following is None:
                state = "end"  # the number ended before this byte
            else:
                state, i = following, i + 1
            continue
        if state == "exp" and c in b"+-":
            state, i = "expsign", i + 1
            continue
        if state in _NUMBER_DIGIT:
            if not 0x30 <= c <= 0x39:
                return err(c, _NUMBER_DIGIT[state]), i
            state, i = "exp0" if state in ("exp", "expsign") else "dot0", i + 1
            continue
        # state == "end": a value just ended
        if not stack:
            return "", i
        if c in _WS:
            i += 1
            continue
        top = stack[-1]
        if top == 0:
            if c != 0x3A:
                return err(c, "after object key"), i
            stack[-1] = 1
            state, i = "value", i + 1
        else:  # after an object's value (1) or an array's element (2)
            in_object = top == 1
            if c == 0x2C:  # ,
                stack[-1] = 0 if in_object else 2
                state, i = "key" if in_object else "value", i + 1
            elif c == (0x7D if in_object else 0x5D):  # } ]
                stack.pop()
                i += 1
            else:
                return err(c, "after object key:value pair" if in_object
                           else "after array element"), i


def syntax_error(text: str | bytes) -> str:
    """Go's encoding/json message for a body whose first value does not parse ("" if it
    does)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    return go_scan(data)


_SURROGATES = re.compile("[\ud800-\udfff]")


def _clean(value: Any) -> Any:
    """Go's strings: invalid UTF-8 (and lone surrogate escapes) become U+FFFD."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _deep_parse(text: str, start: int) -> Any:
    """An iterative parser for a (Go-valid) value nested deeper than Python's json allows."""
    scan_string = json.decoder.scanstring  # type: ignore[attr-defined]
    number = json.scanner.NUMBER_RE  # type: ignore[attr-defined]
    stack: list[Any] = []
    keys: list[str | None] = []
    i = start
    value: Any = None
    while True:
        while text[i] in " \t\r\n":
            i += 1
        ch = text[i]
        if ch in "{[":
            stack.append({} if ch == "{" else [])
            keys.append(None)
            i += 1
            while text[i] in " \t\r\n":
                i += 1
            if text[i] in "}]":
                i += 1
                value = stack.pop()
                keys.pop()
            elif ch == "{":
                keys[-1], i = scan_string(text, text.index('"', i) + 1)
                i = text.index(":", i) + 1
                continue
            else:
                continue
        elif ch == '"':
            value, i = scan_string(text, i + 1)
        elif ch in "tfn":
            value = {"t": True, "f": False, "n": None}[ch]
            i += {"t": 4, "f": 5, "n": 4}[ch]
        else:
            match = number.match(text, i)
            integer, frac, exp = match.groups()
            value = _go_float(integer + (frac or "") + (exp or "")) if frac or exp \
                else _go_int(integer)
            i = match.end()
        while True:  # attach the value, closing containers as they end
            if not stack:
                return value
            container = stack[-1]
            if isinstance(container, dict):
                container[keys[-1]] = value
            else:
                container.append(value)
            while text[i] in " \t\r\n":
                i += 1
            if text[i] == ",":
                i += 1
                if isinstance(container, dict):
                    keys[-1], i = scan_string(text, text.index('"', i) + 1)
                    i = text.index(":", i) + 1
                break
            i += 1  # } or ]
            value = stack.pop()
            keys.pop()


def first_value(raw: bytes) -> Any:
    """The first JSON value of a body, read as Go's ``json.Decoder`` reads it: trailing bytes
    ignored, Go's syntax errors (as 400s), invalid UTF-8 as U+FFFD, number literals kept
    (:class:`GoInt`, :class:`GoFloat`) for Go's type errors."""
    text = raw.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        raise LXDError(400, "EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # Python stops a top-level number where Go reads on ("1e", "1.x"): ask Go's scan.
            problem = go_scan(raw)
            if problem:
                raise LXDError(400, problem)
    except json.JSONDecodeError as exc:
        # Go is at least as strict as Python up to where Python stopped: scan that far.
        upto = len(text[:exc.pos].encode("utf-8", "surrogateescape")) + 1
        problem = go_scan(raw[:upto]) if exc.pos < len(text) else ""
        if not problem or problem in ("unexpected EOF", "EOF"):
            problem = go_scan(raw)
        raise LXDError(400, problem or "unexpected EOF") from None
    except (_Constant, RecursionError, ValueError):
        problem = go_scan(raw)
        if problem:
            raise LXDError(400, problem) from None
        value = _deep_parse(text, start)
    if "\\u" in text or _SURROGATES.search(text):
        value = _clean(value)
    return value


def unmarshal_error(raw: bytes) -> str:
    """The syntax error of Go's ``json.Unmarshal`` (which, unlike the Decoder, checks the whole
    body: trailing bytes are refused and an incomplete value is "unexpected end of JSON
    input", or the error a space would meet there); "" when the body is valid."""
    problem, end = _scan(raw)
    if problem in ("EOF", "unexpected EOF"):
        spaced, _ = _scan(raw + b" ")
        return spaced if spaced not in ("", "EOF", "unexpected EOF") else \
            "unexpected end of JSON input"
    if problem:
        return problem
    rest = raw[end:].lstrip(b" \t\r\n")
    return f"invalid character {_quote_byte(rest[0])} after top-level value" if rest else ""


def unmarshal(raw: bytes) -> Any:
    """A body read as ``json.Unmarshal`` reads it (see :func:`unmarshal_error`); values as
    :func:`first_value` gives them."""
    problem = unmarshal_error(raw)
    if problem:
        raise LXDError(400, problem)
    return first_value(raw)


def decode_value(data: Any, struct: Struct) -> Body:
    """A parsed JSON value (see :func:`first_value`) decoded into ``struct``."""
    if data is None:
        return _struct({}, struct, "", struct.name)
    if not isinstance(data, dict):
        raise LXDError(400, f"json: cannot unmarshal {_json_kind(data)} into Go value of type "
                            f"api.{struct.name}")
    try:
        return _struct(data, struct, "", struct.name)
    except _TypeError as exc:
        raise LXDError(400, str(exc)) from None


def decode(raw: bytes, struct: Struct) -> Body:
    """Decode a JSON request body into ``struct``; raise a 400 LXDError as LXD would."""
    return decode_value(first_value(raw), struct)
