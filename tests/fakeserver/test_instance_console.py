"""Attaching to a container's console (``POST /1.0/instances/{name}/console``), on the fake
and on LXD 5.0.2.

Never leave a console operation on the real host with one of its websockets unconnected:
when such a console ends (the instance stops), LXD 5.0.2 dereferences the missing websocket
and the daemon dies. Every test here connects both and detaches by closing control.
"""

from __future__ import annotations

import json

import pytest

from tests.fakeserver.test_instance_exec import BINARY, EOF, TEXT, Raw
from tests.instancefixtures import action, make, started
from tests.support import API, unique


def test_refusals(api: API) -> None:
    """The body, then the instance, then the console type, then its state."""
    stopped = make(api)
    missing = unique("nope")
    cases = [
        (stopped, {}, None, (400, "Instance is not running")),
        (stopped, {"type": "vga"}, None,
         (400, "VGA console is only supported by virtual machines")),
        (stopped, "x", None,
         (400, "json: cannot unmarshal string into Go value of type api.InstanceConsolePost")),
        (missing, "x", None,
         (400, "json: cannot unmarshal string into Go value of type api.InstanceConsolePost")),
        (stopped, {"width": "80"}, None,
         (400, "json: cannot unmarshal string into Go struct field InstanceConsolePost.width "
               "of type int")),
        (missing, {"type": "bogus"}, None, (404, "Instance not found")),
        (stopped, {"type": "bogus"}, None, (400, 'Unknown console type "bogus"')),
        (stopped, {}, {"project": unique("nope")}, (404, "Instance not found")),
    ]
    for name, body, params, expected in cases:
        reply = api.post(f"/1.0/instances/{name}/console", body, params=params)
        assert (reply.status, reply.error) == expected, (name, body)
    reply = api.post(f"/1.0/virtual-machines/{stopped}/console", {})
    assert (reply.status, reply.error) == (404, "Instance not found")
    assert action(api, stopped, "start")["status"] == "Success"
    assert action(api, stopped, "freeze")["status"] == "Success"
    reply = api.post(f"/1.0/instances/{stopped}/console", {})
    assert (reply.status, reply.error) == (400, "Instance is frozen")
    assert action(api, stopped, "unfreeze")["status"] == "Success"
    reply = api.post(f"/1.0/instances/{stopped}/console", {"type": "vga"})
    assert (reply.status, reply.error) == (400,
                                           "VGA console is only supported by virtual machines")


def test_attach_type_and_detach(api: API) -> None:
    name = started(api)
    reply = api.post(f"/1.0/instances/{name}/console", {"width": 80, "height": 25})
    assert reply.status == 202, reply
    op = reply.metadata
    assert (op["class"], op["description"], op["status"], op["may_cancel"], op["err"]) == (
        "websocket", "Showing console", "Running", False, "")
    assert op["resources"] == {"containers": [f"/1.0/containers/{name}"],
                               "instances": [f"/1.0/instances/{name}"]}
    fds = op["metadata"]["fds"]
    assert list(op["metadata"]) == ["fds"] and sorted(fds) == ["0", "control"]
    assert api.get(f"/1.0/operations/{op['id']}").metadata["metadata"] == op["metadata"]
    url = f"/1.0/operations/{op['id']}/websocket?secret="
    console = Raw(api, url + fds["0"])
    control = Raw(api, url + fds["control"])
    try:
        assert console.status == control.status == 101
        console.send(BINARY, b"echo hi\n")  # no shell on busybox's console: nothing answers
        control.send(TEXT, json.dumps({"command": "window-resize",
                                       "args": {"width": "100", "height": "30"}}).encode())
        assert console.frame(0.5) == "TIMEOUT"  # nor any keepalive ping (exec sends one)
        cancel = api.delete(f"/1.0/operations/{op['id']}")
        assert (cancel.status, cancel.error) == (400, "This operation can't be cancelled")
        assert api.get(f"/1.0/operations/{op['id']}").metadata["status"] == "Running"
    finally:
        control.close()  # detach
    frames = console.frames()
    assert frames[-2:] == [(BINARY, b"\n\r"), EOF]  # dropped without a close frame
    # Before that LXD may pass on what the container wrote to its console meanwhile.
    assert all(item[0] == BINARY for item in frames[:-2])
    console.close()
    final = api.wait(op["operation"] if "operation" in op else f"/1.0/operations/{op['id']}")
    assert (final["status"], final["err"]) == ("Success", "")


@pytest.mark.fake_only
def test_a_console_never_attached_ends_with_the_server(fake: object) -> None:
    """Divergence, fake only: LXD 5.0.2 keeps an unattached console operation running, and
    its daemon dies when such a console ends; the fake's stop just ends it."""
    from fakeserver import FakeLXD

    assert isinstance(fake, FakeLXD)
    api = API.unix("fake", fake.socket_path)
    api.server = fake  # type: ignore[attr-defined]
    name = started(api)
    op = api.post(f"/1.0/instances/{name}/console", {}).metadata
    control = Raw(api, f"/1.0/operations/{op['id']}/websocket?secret="
                       f"{op['metadata']['fds']['control']}")
    assert control.status == 101
    control.close()
    final = api.wait(f"/1.0/operations/{op['id']}")
    assert (final["status"], final["err"]) == ("Success", "")
    api.run_cleanups()
