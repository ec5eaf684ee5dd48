"""Bugs the fuzzers found in the instances modules, each reproduced on its own: tests that
assert what LXD 5.0.2 does, on both backends. A bug still open in the fake is an xfail there
(and listed in ``checks.KNOWN_TRACEBACKS`` so the fuzzers count it apart); once fixed, the
test fails until it is moved to plain regression."""

from __future__ import annotations

import pytest

from tests import instancefixtures
from tests.robustness.checks import KNOWN_TRACEBACKS
from tests.support import API, Reply, unique


def _expect(api: API, reply: Reply, ok: bool, bug: str, open_bug: bool = False) -> None:
    """Both backends must answer as LXD 5.0.2 does; ``open_bug``: still open in the fake."""
    if not (open_bug and api.is_fake):
        assert ok, (bug, reply)
        return
    server = api.server  # type: ignore[attr-defined]
    errors = list(server.handler_errors)
    server.app.handler_errors.clear()  # the api fixture asserts none are left
    if ok:
        pytest.fail(f"fixed: drop it from checks.KNOWN_TRACEBACKS, make it a regression ({bug})")
    assert any(line in error for error in errors for line, _ in KNOWN_TRACEBACKS), reply
    pytest.xfail(f"known bug, reported: {bug}")


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


def test_symlink_targets_are_bytes(api: API) -> None:
    """A symlink pushed with a target that is not UTF-8: LXD reads it back as those bytes, and
    quotes them Go's way in sftp errors (``%q``: ``\\xff``). The fake used to fail to encode
    it (500); fixed."""
    name = instancefixtures.make(api)
    files = f"/1.0/instances/{name}/files"
    link = {"X-LXD-type": "symlink"}
    pushed = api.request("POST", files, params={"path": "/tmp/l"}, data=b"\xff\xfe",
                         headers=link)
    assert pushed.status == 200, pushed
    refused = api.request("POST", files, params={"path": "/etc/hostname"}, data=b"\xff\xfe",
                          headers=link)
    assert refused.status == 500
    read = api.get(files, params={"path": "/tmp/l"})
    ok = (read.status, read.headers.get("X-LXD-type"), read.raw) == (200, "symlink",
                                                                     b"/tmp/\xff\xfe")
    ok = ok and refused.error == ('sftp: "symlink \\xff\\xfe /etc/hostname: file exists" '
                                  "(SSH_FX_FAILURE)")
    _expect(api, read, ok, "fakeserver/api/instance_files.py: symlink targets as bytes "
                           "(get_file encodes them; _sftp_error quotes them with %q)")
