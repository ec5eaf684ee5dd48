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

from fakeserver.schema import go_scan, unmarshal_error
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
_INSTANCE = re.compile(r"^/1\.0/(instances|containers|virtual-machines)/<name>")


def _error(reply: RawReply) -> str:
    if reply.content_type != "application/json" or reply.status < 400:
        return ""
    return str(json.loads(reply.raw).get("error", ""))


def _instance_name(target: bytes) -> str:
    parts = target.split(b"?")[0].split(b"/")
    return unescaped(parts[3].decode("latin-1")) if len(parts) > 3 else ""


def _on_instance(e: Endpoint) -> bool:
    return bool(_INSTANCE.match(e.template))


KNOWN: list[Known] = [
    Known("Python's http.server (fakeserver/server.py) answers a request line it cannot split "
          "with its own HTML 400; Go answers a plain-text 400 or serves the target",
          lambda e, t, b, f, r: f.status == 400 and bool(_HTML.search(f.raw))),
    # -- reported to the owners of fakeserver/api/instances*.py (not this suite's files) --
    Known("instances: LXD refuses an instance name with a '/' (400 'Invalid instance name') "
          "before anything else; the fake looks it up",
          lambda e, t, b, f, r: _on_instance(e) and _error(r) == "Invalid instance name"
          and "/" in _instance_name(t)),
    Known("instances: POST /1.0/instances/<name> and PUT …/state look the instance (and the "
          "target) up before decoding the body; the fake decodes first",
          lambda e, t, b, f, r: _on_instance(e) and e.method in ("POST", "PUT")
          and e.template.endswith(("<name>", "/state")) and f.status == 400
          and r.status == 404),
    Known("instances: with a ?target, POST /1.0/instances/<name> loads the project ('Failed "
          "loading project: Project not found') and the member ('Failed to get target node: "
          "Cluster member not found') first in LXD; the fake ignores the target",
          lambda e, t, b, f, r: _on_instance(e) and b"target=" in t
          and _error(r) in ("Failed to get target node: Cluster member not found",
                            "Failed loading project: Project not found")),
    Known("instances: GET/DELETE …/logs/<file> and DELETE …/console say 'Failed to fetch "
          "instance \"x\" in project \"p\": Instance not found' (or 'Project not found') in "
          "LXD; the fake says 'Instance not found'",
          lambda e, t, b, f, r: _on_instance(e) and ("/logs/" in e.template
                                                  or e.template.endswith("/console"))
          and _error(f) == "Instance not found"
          and (_error(r).startswith("Failed to fetch instance") or
               _error(r) == "Project not found")),
    Known("instances: LXD checks ?instance-type on every /1.0/instances route (500 'Invalid "
          "instance type' for anything but container, virtual-machine or empty); the fake "
          "ignores it",
          lambda e, t, b, f, r: e.template.startswith(("/1.0/instances", "/1.0/containers",
                                                       "/1.0/virtual-machines"))
          and _error(r) == "Invalid instance type"),
    Known("instances: the fake's …/logs/<file> route takes slashes in the file name; LXD's "
          "does not ('not found')",
          lambda e, t, b, f, r: _on_instance(e) and "/logs/" in e.template
          and _error(r) == "not found"),
    Known("instances: POST …/snapshots with an unknown ?project is 'Project not found' in LXD",
          lambda e, t, b, f, r: _on_instance(e) and e.template.endswith("/snapshots")
          and _error(r) == "Project not found" and _error(f) == "Instance not found"),
    Known("instances: …/metadata/templates checks ?path before the instance (LXD the other way "
          "round) and LXD has no PUT there (501)",
          lambda e, t, b, f, r: _on_instance(e) and e.template.endswith("/metadata/templates")
          and (_error(f) == "missing path argument"
               or (e.method == "PUT" and _error(r) == "not implemented"))),
    Known("instances: POST …/exec reads its body with json.Unmarshal in LXD (the whole body: "
          "'unexpected end of JSON input', trailing bytes refused: fakeserver.schema.unmarshal "
          "gives these); the fake's exec uses the Decoder",
          lambda e, t, b, f, r: _on_instance(e) and e.template.endswith("/exec")
          and f.status in (400, 404) and r.status == 400
          and _error(r) == unmarshal_error(b)),
]


def known(endpoint: Endpoint, target: bytes, body: bytes, fake: RawReply,
          real: RawReply) -> Known | None:
    for item in KNOWN:
        if item.match(endpoint, target, body, fake, real):
            return item
    return None
