"""Bugs the fuzzers found in modules this suite does not own, each reproduced on its own.

Every test asserts what LXD 5.0.2 does (and passes on the real host); on the fake it xfails
while the bug is there and fails loudly once it is fixed, so that its entry in
``checks.KNOWN_TRACEBACKS`` gets removed and the fuzzers guard the fix.
"""

from __future__ import annotations

import pytest

from tests import instancefixtures
from tests.robustness.checks import KNOWN_TRACEBACKS
from tests.support import API, Reply, unique


def _expect(api: API, reply: Reply, ok: bool, bug: str, traceback: bool = True) -> None:
    """On the real host ``ok`` must hold; on the fake the bug must still show (an xfail) or
    the test fails to say it was fixed."""
    if not api.is_fake:
        assert ok, reply
        return
    server = api.server  # type: ignore[attr-defined]
    errors = list(server.handler_errors)
    server.app.handler_errors.clear()  # the api fixture asserts none are left
    if not ok:
        if traceback:
            assert errors and any(line in errors[0] for line, _ in KNOWN_TRACEBACKS), reply
        pytest.xfail(f"known bug, reported: {bug}")
    pytest.fail(f"fixed: remove it from checks.KNOWN_TRACEBACKS and this test ({bug})")


def test_instance_create_reads_only_the_first_json_value(api: API) -> None:
    """POST /1.0/instances with bytes after the JSON object: LXD's Decoder stops after the
    object (202); the fake's ``json.loads`` of the raw body raises (500)."""
    instancefixtures.with_busybox(api)
    name = unique("kb")
    instancefixtures.remove_later(api, name)
    body = b'{"name":"%s","source":{"type":"none"}} trailing' % name.encode()
    reply = api.request("POST", "/1.0/instances", data=body,
                        headers={"Content-Type": "application/json"})
    if reply.status == 202:
        api.wait(reply)
    _expect(api, reply, reply.status == 202,
            "fakeserver/api/instances.py create_instance: json.loads(ctx.raw_body())")


def test_instance_patch_reads_only_the_first_json_value(api: API) -> None:
    """PATCH /1.0/instances/<name> with bytes after the object, or invalid UTF-8 in a string:
    LXD answers 200; the fake's ``json.loads`` of the raw body raises (500)."""
    name = instancefixtures.make(api)
    results = []
    for body in (b'{"config":{}} trailing', b'{"description":"\xff"}'):
        reply = api.request("PATCH", f"/1.0/instances/{name}", data=body,
                            headers={"Content-Type": "application/json"})
        results.append(reply)
    _expect(api, results[0], all(r.status == 200 for r in results),
            "fakeserver/api/instances.py patch_instance: json.loads(ctx.raw_body())")
