"""Request targets, query strings and quoted names the way LXD's Go stack handles them.

* ``net/http`` refuses a target with a control byte or a bad ``%`` escape in its path (a plain
  ``400 Bad Request``, no envelope), keeps ``#`` as part of the path, and accepts the
  absolute form (``http://host/1.0``).
* gorilla/mux (LXD uses ``UseEncodedPath``) routes on the *escaped* path, so ``a%2Fb`` is one
  path segment; LXD then unescapes each URL variable.
* ``r.FormValue`` drops the query pairs Go cannot parse (a bad escape, a ``;``) and keeps the
  rest, while LXD's ``queryParam`` (``project``, ``target``, ``all-projects``) gives up on the
  whole query string when any pair is bad.
* ``%q`` (``strconv.Quote``) quotes names in many of LXD's messages.
"""

from __future__ import annotations

import re
import urllib.parse

_HEX = "0123456789abcdefABCDEF"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")
_PATH_OK = _UNRESERVED | frozenset(b"$&+,/:;=@")  # what Go's escape() leaves alone in a path
_VALID_ENCODED = _PATH_OK | frozenset(b"!'()*[]%")

#: Parameters LXD 5.0.2 reads with ``queryParam`` (all or nothing) rather than ``FormValue``.
STRICT_PARAMS = ("project", "target", "all-projects")


class BadTarget(ValueError):
    """Go's ``net/http`` cannot parse the request target (it answers a plain 400)."""


def _unescape(text: bytes, plus: bool = False) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == 0x25:  # %
            pair = text[i + 1:i + 3]
            if len(pair) < 2 or any(chr(b) not in _HEX for b in pair):
                raise BadTarget("invalid URL escape")
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(0x20 if plus and c == 0x2B else c)
        i += 1
    return bytes(out)


def _escape_path(path: bytes) -> bytes:
    return b"".join(bytes([b]) if b in _PATH_OK else b"%%%02X" % b for b in path)


def path_escape(segment: str) -> str:
    """Go's ``url.PathEscape``: one path segment (``/``, ``;``, ``,``, ``?`` escaped too)."""
    return urllib.parse.quote(segment, safe="$&+:=@")


def url_segment(name: str) -> str:
    """A name in an object URL as LXD 5.0.2 writes it (Location headers, URL lists,
    ``used_by``): ``api.NewURL().Path()`` path-escapes it and ``String()`` escapes the ``%``
    again, so ``a b`` is ``a%2520b``."""
    return path_escape(name).replace("%", "%25")


def with_project(path: str, project: str) -> str:
    """``path`` plus the ``?project=`` (query-escaped) LXD adds to the URL of an object outside
    the ``default`` project."""
    return path if project == "default" else f"{path}?project={urllib.parse.quote_plus(project)}"


def parse_target(target: bytes) -> tuple[str, bytes]:
    """``(escaped path to route on, raw query)`` of a request target, as ``net/http`` and
    gorilla/mux see them; raises :class:`BadTarget` where Go answers 400."""
    if any(b < 0x20 or b == 0x7F for b in target):
        raise BadTarget("invalid control character in URL")
    if target == b"*":
        return "*", b""
    rest, _, query = target.partition(b"?")
    match = _SCHEME.match(rest.decode("latin-1"))
    if match:
        rest = rest[match.end():]
        if not rest.startswith(b"//"):
            raise BadTarget("invalid URI for request")
        slash = rest.find(b"/", 2)
        rest = rest[slash:] if slash >= 0 else b""
    elif not rest.startswith(b"/"):
        raise BadTarget("invalid URI for request")
    decoded = _unescape(rest)  # raises on a bad escape, as url.setPath does
    if all(b in _VALID_ENCODED for b in rest):
        escaped = rest  # EscapedPath() keeps a valid RawPath as it is
    else:
        escaped = _escape_path(decoded)
    return escaped.decode("latin-1"), query


def unescape_segment(text: str) -> str:
    """``url.PathUnescape`` of a routed URL variable (invalid UTF-8 becomes U+FFFD)."""
    try:
        return _unescape(text.encode("latin-1")).decode("utf-8", "replace")
    except (BadTarget, UnicodeEncodeError):
        return text


def parse_query(raw: bytes) -> tuple[list[tuple[str, str]], bool]:
    """Go's ``url.ParseQuery``: the pairs it keeps, and whether it met an error."""
    pairs: list[tuple[str, str]] = []
    failed = False
    for part in raw.split(b"&"):
        if not part:
            continue
        if b";" in part:
            failed = True
            continue
        key, _, value = part.partition(b"=")
        try:
            k = _unescape(key, plus=True).decode("utf-8", "replace")
            v = _unescape(value, plus=True).decode("utf-8", "replace")
        except BadTarget:
            failed = True
            continue
        pairs.append((k, v))
    return pairs, failed


def go_quote(text: object) -> str:
    """Go's ``strconv.Quote`` (``%q``): printable characters as they are, others escaped."""
    out = ['"']
    for ch in str(text):
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
