"""What every reply of the fake must satisfy, whatever was sent, and the figures of a run.

* no traceback: ``fake.handler_errors`` stays empty;
* LXD's envelope (7 keys in order, error framing), or one of the raw bodies LXD documents;
* a 5xx only with LXD's own error text, never the fake's ``Internal error in the fake``;
* a rejected request (4xx/5xx, or an operation that failed) leaves the state exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.robustness.rawhttp import RawReply, check_envelope
from tests.robustness.world import Endpoint, World, pruned

#: Raw (non-envelope) success bodies LXD documents: file, log, export and metrics replies.
RAW_SUCCESS = re.compile(r"/(export|logs/<file>|console|files|metrics)$|/backups/.*/export$")
#: Endpoints that upgrade to a websocket: without the upgrade, gorilla's plain 400.
WEBSOCKETS = re.compile(r"^/1\.0/events$|/websocket$|/sftp$")
PY_WHITESPACE = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0"
#: Where LXD 5.0.2's handler panics on some input and net/http just closes the connection
#: (checked against the real host in tests/fakeserver/test_images.py and
#: test_network_zones.py: a PATCH without config); the fake imitates it.
PANICS = {"POST /1.0/images", "PATCH /1.0/images/<fingerprint>",
          "PATCH /1.0/network-zones/<zone>", "PATCH /1.0/network-zones/<zone>/records/<name>",
          "PATCH /1.0/network-acls/<name>"}


@dataclass
class Figures:
    """What the robustness suite tried and saw (printed at the end of the run)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)  # per strategy
    statuses: Counter[int] = field(default_factory=Counter)
    five_xx: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, message)
    endpoints: set[str] = field(default_factory=set)
    sequences: Counter[str] = field(default_factory=Counter)  # stateful runs per backend
    steps: Counter[str] = field(default_factory=Counter)
    parallel: Counter[str] = field(default_factory=Counter)  # most clients at once, per test

    def count(self, strategy: str, endpoint: Endpoint, status: int, message: str = "") -> None:
        with self.lock:
            self.requests[strategy] += 1
            self.statuses[status] += 1
            self.endpoints.add(endpoint.id)
            if status >= 500:
                self.five_xx[(endpoint.id, _shape(message))] += 1

    def clients(self, test: str, count: int) -> None:
        with self.lock:
            self.parallel[test] = max(self.parallel[test], count)

    def lines(self) -> list[str]:
        out = [f"requests: {sum(self.requests.values())} over {len(self.endpoints)} endpoints "
               f"({', '.join(f'{k} {v}' for k, v in sorted(self.requests.items()))})",
               "statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))]
        if self.sequences:
            out.append("stateful sequences: " + ", ".join(
                f"{k} {v} ({self.steps[k]} steps)" for k, v in sorted(self.sequences.items())))
        if self.parallel:
            out.append("clients in parallel: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.parallel.items())))
        out.append(f"5xx replies: {sum(self.five_xx.values())} (by message: count, endpoints)")
        by_message: dict[str, list[int]] = {}
        for (_, message), count in self.five_xx.items():
            entry = by_message.setdefault(message, [0, 0])
            entry[0] += count
            entry[1] += 1
        for message, (count, where) in sorted(by_message.items(), key=lambda i: -i[1][0]):
            out.append(f"  {count:6d} {where:4d}  {message}")
        return out

    def dump(self) -> None:
        """Write the figures as JSON where ``PYTEST_LXD_FUZZ_REPORT`` says, if set."""
        path = os.environ.get("PYTEST_LXD_FUZZ_REPORT")
        if not path:
            return
        data = {"requests": dict(self.requests), "statuses": dict(self.statuses),
                "endpoints": len(self.endpoints),
                "five_xx": [[e, m, c] for (e, m), c in sorted(self.five_xx.items())],
                "sequences": dict(self.sequences), "steps": dict(self.steps),
                "parallel": dict(self.parallel)}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)


FIGURES = Figures()


def _shape(message: str) -> str:
    """A 5xx message with the fuzzed parts masked, so equal causes count together."""
    message = re.sub(r'"[^"]*"', '"…"', message)
    message = re.sub(r"'[^']*'", "'…'", message)
    return message[:160]


def normalized(state: dict[str, Any]) -> dict[str, Any]:
    """The state without what is not a change (empty dicts made on demand: see
    :func:`tests.robustness.world.pruned`)."""
    return {"config": state["config"], "families": pruned(state["families"])}


def diff(before: Any, after: Any, path: str = "") -> str:
    """Where two states differ first (a readable failure message)."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            if key not in after:
                return f"{path}/{key} removed"
            if key not in before:
                return f"{path}/{key} added: {str(after[key])[:200]}"
            found = diff(before[key], after[key], f"{path}/{key}")
            if found:
                return found
        return ""
    if before != after:
        return f"{path}: {str(before)[:200]} -> {str(after)[:200]}"
    return ""


def http_layer_divergence(target: bytes, reply: RawReply) -> bool:
    """Python's http.server splits the request line on *any* whitespace (``str.split()`` of
    the latin-1 text: also 0x1C-0x1F, 0x85 and 0xA0, bytes of raw UTF-8) and answers its own
    HTML 400, where Go answers a plain-text 400 (control bytes) or serves the target (0x85,
    0xA0). A known divergence of the listener (fakeserver/server.py), counted apart."""
    return (reply.status == 400 and reply.content_type.startswith("text/html")
            and any(byte in target for byte in PY_WHITESPACE))


def raw_allowed(endpoint: Endpoint, reply: RawReply) -> bool:
    """Whether a non-JSON reply is one LXD gives too."""
    if reply.status == 200 and endpoint.method == "GET" and RAW_SUCCESS.search(endpoint.template):
        return True
    if reply.status == 400 and reply.raw == b"400 Bad Request":
        return True  # Go's own answer to a request it cannot parse (control chars, bad escape)
    if reply.status == 400 and WEBSOCKETS.search(endpoint.template):
        return reply.raw.strip() == b"Bad Request"
    return endpoint.method == "HEAD"


def check(world: World, endpoint: Endpoint, reply: RawReply, strategy: str, *,
          target: bytes = b"", closed_ok: bool = False, wait_ops: bool = True) -> None:
    """Assert the invariants for one fuzzed request (the world must have been restored)."""
    fake = world.fake
    bug = _no_traceback(world, endpoint)
    if http_layer_divergence(target, reply):
        FIGURES.count("http-layer", endpoint, reply.status)
        _same_state(world, endpoint, reply)
        return
    if reply.closed:
        FIGURES.count(strategy, endpoint, 0)
        assert closed_ok or endpoint.id in PANICS, \
            f"{endpoint.id}: connection closed without a reply"
        _same_state(world, endpoint, reply)
        return
    message = ""
    if reply.content_type == "application/json":
        body = check_envelope(reply)
        message = body["error"]
        if reply.status >= 500 and not bug:
            assert not message.startswith("Internal error in the fake"), (endpoint.id, reply)
    else:
        assert raw_allowed(endpoint, reply), (endpoint.id, reply, reply.headers)
    FIGURES.count(strategy, endpoint, reply.status, message)
    assert reply.status != 500 or message, reply
    if reply.status == 202 and wait_ops:
        op = fake.operations.get(json.loads(reply.raw)["metadata"]["id"])
        if op is not None and op.run is not None and op.cls == "task":
            assert op.done.wait(15), f"{endpoint.id}: operation {op.description} never ended"
            _no_traceback(world, endpoint)
            if op.status_code != 200:
                _same_state(world, endpoint, reply, f"failed operation ({op.err})")
        return
    if reply.status >= 400 or endpoint.method == "GET":
        _same_state(world, endpoint, reply)


#: Bugs in modules this suite may not edit, reported to their owners and reproduced one by one
#: in test_known_bugs.py (strict xfails): (a line of the traceback, what happens).
KNOWN_TRACEBACKS: list[tuple[str, str]] = []


def known_bug(traceback_text: str) -> str | None:
    for line, why in KNOWN_TRACEBACKS:
        if line in traceback_text:
            return why
    return None


def _no_traceback(world: World, endpoint: Endpoint) -> bool:
    """No handler error logged (cleared once seen, so one bug fails one example); True when
    the only ones are known bugs of other modules (counted, not failed)."""
    errors = list(world.fake.handler_errors)
    world.fake.app.handler_errors.clear()
    world.fake.operations.handler_errors.clear()
    unknown = [error for error in errors if not known_bug(error)]
    assert not unknown, f"{endpoint.id}: traceback in the fake:\n{unknown[0]}"
    if errors:
        FIGURES.count("known-bug", endpoint, 500, "known bug: " + str(known_bug(errors[0])))
    return bool(errors)


def _same_state(world: World, endpoint: Endpoint, reply: RawReply, why: str = "") -> None:
    if world.unchanged():
        return
    changed = diff(normalized(world.snap), normalized(world.fake.snapshot()))
    assert not changed, f"{endpoint.id} -> {reply!r} {why} changed the state: {changed}"
