"""The same hostile request on the fake and on the real LXD host, and what may differ.

Only requests that cannot change the real host are sent to it (:func:`safe_for_real`):
reads, writes aimed at objects that do not exist (their last URL argument starts with
:data:`MISSING`), and bodies that no Go struct can decode. Both sides must then answer the same
status, content type and (for errors) message, unless the difference is a known, documented
divergence (:data:`KNOWN`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakeserver.schema import go_scan
from tests.robustness.rawhttp import RawReply
from tests.robustness.world import Endpoint

#: Prefix of every object name a write aims at on the real host: no such object exists, and
#: no fingerprint or SQL LIKE prefix (certificates, images) can match it.
MISSING = "rbnx"

#: Objects of the real host's baseline (scripts/lxd-host) the reads may name.
REAL_NAMES = {
    "profile": ["default"], "project": ["default"], "network": ["lxdbr0", "lo"],
    "pool": ["default"], "vtype": ["custom", "container", "image"], "alias": ["busybox"],
    "group": ["default"], "member": ["none"],
}


def unescaped(segment: str) -> str:
    return urllib.parse.unquote(segment, errors="replace")


def decode_fails(body: bytes) -> bool:
    """Whether every Go struct refuses ``body``: a syntax error, or a first value that is
    neither an object nor null."""
    if go_scan(body):
        return True
    text = body.decode("utf-8", "replace").lstrip(" \t\r\n")
    return bool(text) and text[0] not in "{n"


def safe_for_real(endpoint: Endpoint, values: dict[str, str], body: bytes) -> bool:
    """Whether the request cannot change anything on the real host."""
    if endpoint.method == "GET":
        if endpoint.template.endswith(("/wait", "/websocket")):
            return all(unescaped(v).startswith(MISSING) for v in values.values())
        return True
    args = [arg for arg, _ in endpoint.args]
    families = dict(endpoint.args)
    if args and families[args[-1]] != "vtype":
        return unescaped(values[args[-1]]).startswith(MISSING)
    return decode_fails(body)  # a collection or the server itself: only undecodable bodies


@dataclass
class Known:
    """A documented divergence: ``match(endpoint, target, body, fake, real)`` says it
    applies."""

    why: str
    match: Callable[[Endpoint, bytes, bytes, RawReply, RawReply], bool]


def _summary(reply: RawReply) -> tuple[Any, ...]:
    if reply.closed:
        return ("closed",)
    if reply.content_type == "application/json":
        body = json.loads(reply.raw)
        meta = body["metadata"]
        # A list may be null when empty (a Go nil slice): the hosts' contents differ.
        shape: Any = (body["error"] if reply.status >= 400 else
                      "list" if meta is None or isinstance(meta, list) else type(meta).__name__)
        return (reply.status, body["type"], shape)
    if reply.status == 200:  # files, exports, metrics: contents depend on the host's objects
        return (reply.status, reply.content_type.split(";")[0])
    return (reply.status, reply.content_type.split(";")[0], reply.raw[:100])


def same(fake: RawReply, real: RawReply) -> bool:
    if real.closed and fake.status == 400 and fake.raw == b"400 Bad Request":
        return True  # Go closes after its 400; a client still sending may lose the reply
    return _summary(fake) == _summary(real)


def describe(fake: RawReply, real: RawReply) -> str:
    return f"fake {_summary(fake)} / real {_summary(real)}"


_HTML = re.compile(rb"<!DOCTYPE HTML>", re.I)


def _error(reply: RawReply) -> str:
    if reply.content_type != "application/json" or reply.status < 400:
        return ""
    return str(json.loads(reply.raw).get("error", ""))


KNOWN: list[Known] = [
    Known("Python's http.server (fakeserver/server.py) answers a request line it cannot split "
          "with its own HTML 400; Go answers a plain-text 400 or serves the target",
          lambda e, t, b, f, r: f.status == 400 and bool(_HTML.search(f.raw))),
    # The instance modules' divergences once listed here ('/' in names, ?instance-type,
    # ?target, lookups before bodies, log/console/snapshot messages, templates, exec's
    # json.Unmarshal) were fixed; tests/fakeserver/test_instance_requests.py keeps them so.
]


def known(endpoint: Endpoint, target: bytes, body: bytes, fake: RawReply,
          real: RawReply) -> Known | None:
    for item in KNOWN:
        if item.match(endpoint, target, body, fake, real):
            return item
    return None
