"""Bugs the fuzzers found in the instances module, each reproduced on its own: regression
tests that assert what LXD 5.0.2 does, on both backends."""

from __future__ import annotations

from tests import instancefixtures
from tests.support import API, Reply, unique


def _expect(api: API, reply: Reply, ok: bool, bug: str, traceback: bool = True) -> None:
    """Both backends must answer as LXD 5.0.2 does (these were fake bugs, now fixed)."""
    assert ok, (bug, reply)


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
