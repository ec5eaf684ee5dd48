"""LXD's ``?filter=`` on instances, images, storage volumes and warnings: one parser, one matcher.

The language, as LXD 5.0.2 reads it (checked on the real daemon): ``[not] field op value``
clauses joined by ``and``/``or`` and folded left to right (no precedence: ``a or b and c`` is
``(a or b) and c``). Words are split on white space.

* ``not`` is case-insensitive; ``and``/``or`` are not (``AND``: "invalid clause composition").
* A value starting with ``"`` runs to the next *later* word ending with ``"`` (its words joined
  by one space, one closing quote dropped): ``"a b"`` is ``a b``, but ``"a"`` alone, ``""`` or
  a quote never closed is "unterminated quote".
* ``ne`` negates; every other operator (``eq``, ``gt``, ``EQ``, ...) compares for equality.
* Only strings compare: the value is a case-insensitive regular expression, anchored
  (``^value$``) unless it holds ``^`` or ``$``; an invalid one compares as plain text. Booleans,
  numbers, lists, maps, times (``created_at``...) and missing fields equal nothing (so ``ne``
  holds for them).
* A field is a JSON name, case-sensitive; dots walk into objects and maps (``config.user.k``,
  ``expanded_devices.root.path``).

Divergence: LXD walks Go structs, so a path through a nil pointer (``update_source.alias`` on a
local image) panics and drops the connection; the fake treats it as missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .responses import LXDError

# Go time.Time fields: never equal to a filter value, although the fake renders them as text.
TIME_FIELDS = frozenset({"created_at", "last_used_at", "expires_at", "uploaded_at",
                         "first_seen_at", "last_seen_at"})


class FilterError(ValueError):
    """A malformed filter; the text is LXD's (each endpoint adds its own prefix)."""


@dataclass(frozen=True)
class Clause:
    field: str
    operator: str
    value: str
    negate: bool = False
    logical: str = "and"  # how it joins what came before


def parse(text: str) -> list[Clause]:
    """The clauses of a filter (``[]`` for an empty one), or :class:`FilterError`."""
    parts = text.split()
    clauses: list[Clause] = []
    index, logical = 0, "and"
    while index < len(parts):
        negate = parts[index].lower() == "not"
        if negate:
            index += 1
            if index == len(parts):
                raise FilterError("incomplete not clause")
        field = parts[index]
        index += 1
        if index == len(parts):
            raise FilterError("clause has no operator")
        operator = parts[index]
        index += 1
        if index == len(parts):
            raise FilterError("clause has no value")
        value = parts[index]
        if value.startswith('"'):
            value = value[1:]
            while True:
                index += 1
                if index == len(parts):
                    raise FilterError("unterminated quote")
                value += " " + parts[index]
                if parts[index].endswith('"'):
                    break
            value = value[:-1]
        index += 1
        clauses.append(Clause(field, operator, value, negate, logical))
        if index < len(parts):
            logical = parts[index]
            if logical not in ("and", "or"):
                raise FilterError("invalid clause composition")
            index += 1
            if index == len(parts):
                raise FilterError("unterminated compound clause")
    return clauses


def from_query(text: str, prefix: str = "Invalid filter") -> list[Clause]:
    """:func:`parse` for a handler: a malformed filter is LXD's 500 ``<prefix>: <why>``."""
    try:
        return parse(text)
    except FilterError as exc:
        raise LXDError(500, f"{prefix}: {exc}") from None


def value_of(obj: Any, path: str) -> Any:
    """The value at a dotted ``path`` (the rest of it may be one map key), or None."""
    if not isinstance(obj, Mapping):
        return None
    if path in obj:
        return obj[path]
    head, _, rest = path.partition(".")
    return value_of(obj[head], rest) if rest and head in obj else None


def _equals(value: Any, wanted: str) -> bool:
    if not isinstance(value, str):
        return False
    pattern = wanted if "^" in wanted or "$" in wanted else f"^{wanted}$"
    try:
        return re.search(pattern, value, re.IGNORECASE) is not None
    except re.error:
        return value.lower() == wanted.lower()


def matches(obj: Mapping[str, Any], clauses: list[Clause]) -> bool:
    """Does the rendered object pass the filter? (An empty filter passes everything.)"""
    result = True
    for index, clause in enumerate(clauses):
        value = None if clause.field in TIME_FIELDS else value_of(obj, clause.field)
        hit = _equals(value, clause.value)
        if clause.operator == "ne":
            hit = not hit
        if clause.negate:
            hit = not hit
        if index == 0:
            result = hit
        elif clause.logical == "and":
            result = result and hit
        else:
            result = result or hit
    return result
