"""Request bodies decoded the way LXD's Go handlers decode them.

Each body is declared as a :class:`Struct` of typed fields. Decoding reproduces what Go's
``encoding/json`` does: unknown fields are ignored, ``null`` gives the zero value, and a
syntax or type error yields Go's message (``unexpected EOF``, ``json: cannot unmarshal number
into Go struct field ProfilesPost.config of type string``) as a 400.
"""

from __future__ import annotations

import json
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


class _TypeError(Exception):
    pass


def _convert(value: Any, typ: GoType, path: str, top: str) -> Any:
    if value is None:
        return _zero(typ)
    kind = typ.kind
    ok = {
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "map": isinstance(value, dict),
        "struct": isinstance(value, dict),
        "list": isinstance(value, list),
        "any": True,
    }[kind]
    if kind == "int" and isinstance(value, float) and not isinstance(value, bool):
        if value.is_integer():
            return int(value)
        raise _TypeError(f"json: cannot unmarshal number {value:g} into Go struct field "
                         f"{top}.{path} of type {typ.name}")
    if not ok:
        raise _TypeError(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                         f"{top}.{path} of type {typ.name}")
    if kind == "map":
        return {str(k): _convert(v, typ.item, path, top) for k, v in value.items()}
    if kind == "list":
        return [_convert(v, typ.item, path, top) for v in value]
    if kind == "struct":
        # Go names the innermost struct in type errors: "ImagesPostSource.source.type".
        return _struct(value, typ.item, path, typ.item.name)
    return value


def _zero(typ: GoType) -> Any:
    if typ.kind == "struct":
        return _struct({}, typ.item, "", "")
    return typ.zero()


def _struct(data: dict[str, Any], struct: Struct, prefix: str, top: str) -> Body:
    out = Body()
    lowered = {key.lower(): key for key in data}
    present = set()
    for field, typ in struct.fields.items():
        gtype = typ.type if isinstance(typ, Struct) else typ
        key = field if field in data else lowered.get(field.lower())
        if key is None:
            out[field] = _zero(gtype)
            continue
        present.add(field)
        out[field] = _convert(data[key], gtype, f"{prefix}.{field}" if prefix else field, top)
    out.present = frozenset(present)
    return out


_LITERALS = {"t": "true", "f": "false", "n": "null"}


def syntax_error(text: str) -> str:
    """Go's encoding/json message for a body that is not valid JSON."""
    if not text.strip():
        return "EOF"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        pos = exc.pos
        msg = exc.msg
    except (ValueError, RecursionError):
        return "invalid character looking for beginning of value"
    else:
        return ""
    if pos >= len(text) or not text[pos:].strip():
        return "unexpected EOF"
    char = text[pos]
    if msg.startswith("Expecting value") and char in _LITERALS:
        literal = _LITERALS[char]
        for i, want in enumerate(literal):
            if pos + i >= len(text):
                return "unexpected EOF"
            if text[pos + i] != want:
                return (f"invalid character {_quote(text[pos + i])} in literal {literal} "
                        f"(expecting {_quote(want)})")
        char = text[pos + len(literal)] if pos + len(literal) < len(text) else ""
        if not char:
            return "unexpected EOF"
        return f"invalid character {_quote(char)} after top-level value"
    if msg.startswith("Expecting value"):
        return f"invalid character {_quote(char)} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {_quote(char)} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {_quote(char)} after object key"
    if msg.startswith("Expecting ','"):
        opener = _innermost(text[:pos])
        where = "array element" if opener == "[" else "object key:value pair"
        return f"invalid character {_quote(char)} after {where}"
    if msg.startswith("Extra data"):
        return f"invalid character {_quote(char)} after top-level value"
    if msg.startswith("Invalid control character"):
        return f"invalid character {_quote(char)} in string literal"
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\u"):
        return f"invalid character {_quote(char)} in string escape code"
    return f"invalid character {_quote(char)} looking for beginning of value"


def _quote(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    if not char.isprintable():
        return f"'\\x{ord(char):02x}'" if ord(char) < 256 else repr(char)
    return f"'{char}'"


def _innermost(text: str) -> str:
    stack: list[str] = []
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def decode(raw: bytes, struct: Struct) -> Body:
    """Decode a JSON request body into ``struct``; raise a 400 LXDError as LXD would."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
    problem = syntax_error(text)
    if problem:
        raise LXDError(400, problem)
    data = json.loads(text)
    if data is None:
        return _struct({}, struct, "", struct.name)
    if not isinstance(data, dict):
        raise LXDError(400, f"json: cannot unmarshal {_json_kind(data)} into Go value of type "
                            f"api.{struct.name}")
    try:
        return _struct(data, struct, "", struct.name)
    except _TypeError as exc:
        raise LXDError(400, str(exc)) from None
