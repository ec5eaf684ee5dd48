"""Instance state: GET/PUT ``/state`` (start, stop, restart, freeze, unfreeze) on the fake and
on real LXD 5.0.2.

Known, intended divergence: the fake changes state at once, while a graceful stop takes a few
seconds on LXD (busybox init shutting down).
"""

from __future__ import annotations

import time

import pytest

from tests.imagefixtures import Events
from tests.instancefixtures import action, make, started
from tests.support import API

STOPPED = {"status": "Stopped", "status_code": 102, "disk": {},
           "memory": {"usage": 0, "usage_peak": 0, "swap_usage": 0, "swap_usage_peak": 0},
           "network": None, "pid": 0, "processes": 0, "cpu": {"usage": 0}}


def state(api: API, name: str) -> dict:
    reply = api.get(f"/1.0/instances/{name}/state")
    assert reply.status == 200, reply
    assert "ETag" not in reply.headers
    return reply.metadata  # type: ignore[no-any-return]


def power(api: API, name: str) -> str:
    return api.get(f"/1.0/instances/{name}").metadata["config"].get(
        "volatile.last_state.power", "")


def settle(api: API) -> None:
    """Give busybox init a moment to install its signal handlers (real host only)."""
    if not api.is_fake:
        time.sleep(1.0)


def test_stopped_state(api: API) -> None:
    name = make(api)
    assert state(api, name) == STOPPED
    assert api.get(f"/1.0/containers/{name}/state").metadata == STOPPED
    assert api.get("/1.0/instances/nope-missing/state").error == "Instance not found"


def test_start_and_running_state(api: API) -> None:
    name = make(api)
    reply = api.put(f"/1.0/instances/{name}/state", {"action": "start", "timeout": -1,
                                                     "force": False, "stateful": False})
    assert reply.status == 202
    assert reply.metadata["description"] == "Starting instance"
    assert reply.metadata["resources"] == {"instances": [f"/1.0/instances/{name}"]}
    op = api.wait(reply)
    assert (op["status"], op["metadata"]) == ("Success", {"container_progress": ""})
    got = state(api, name)
    assert list(got) == ["status", "status_code", "disk", "memory", "network", "pid",
                         "processes", "cpu"]
    assert (got["status"], got["status_code"], got["disk"]) == ("Running", 103, {})
    assert got["pid"] > 0 and got["processes"] >= 1 and got["cpu"]["usage"] > 0
    assert got["memory"]["usage"] > 0
    assert got["network"]["lo"]["type"] == "loopback"
    assert got["network"]["lo"]["mtu"] == 65536
    inst = api.get(f"/1.0/instances/{name}").metadata
    assert (inst["status"], inst["status_code"]) == ("Running", 103)
    assert inst["last_used_at"] != "1970-01-01T00:00:00Z"
    config = inst["config"]
    assert config["volatile.last_state.power"] == "RUNNING"
    assert "volatile.apply_template" not in config
    assert config["volatile.idmap.current"] == config["volatile.idmap.next"]
    assert config["volatile.last_state.idmap"] == config["volatile.idmap.next"]
    # A later start does no idmap work: no progress metadata.
    assert action(api, name, "stop", force=True)["status"] == "Success"
    assert power(api, name) == "STOPPED"
    assert action(api, name, "start")["metadata"] is None


@pytest.mark.parametrize(("first", "second", "message"), [
    (None, "stop", "The instance is already stopped"),
    (None, "restart", "The instance is already stopped"),
    (None, "freeze", "The container isn't running"),
    (None, "unfreeze", "The container isn't running"),
    ("start", "start", "The instance is already running"),
    ("start", "unfreeze", "The container is already running"),
    ("freeze", "freeze", "The container is already frozen"),
    ("freeze", "start", "The instance is already running"),
])
def test_no_op_actions_fail_in_the_operation(api: API, first: str | None, second: str,
                                             message: str) -> None:
    name = make(api)
    if first is not None:
        assert action(api, name, "start")["status"] == "Success"
    if first == "freeze":
        assert action(api, name, "freeze")["status"] == "Success"
    op = action(api, name, second, force=second == "stop")
    assert (op["status"], op["err"]) == ("Failure", message)


def test_bad_actions_are_sync_400s(api: API) -> None:
    name = make(api)
    for body, message in [({"action": "bogus"}, "Unknown action: 'bogus'"),
                          ({}, "Unknown action: ''")]:
        reply = api.put(f"/1.0/instances/{name}/state", body)
        assert (reply.status, reply.error) == (400, message)
    reply = api.put(f"/1.0/instances/{name}/state", {"action": 1})
    assert reply.status == 400
    assert reply.error == ("json: cannot unmarshal number into Go struct field "
                           "InstanceStatePut.action of type string")


def test_freeze_unfreeze(api: API) -> None:
    name = started(api)
    op = action(api, name, "freeze")
    assert (op["description"], op["status"]) == ("Freezing instance", "Success")
    got = state(api, name)
    assert (got["status"], got["status_code"]) == ("Frozen", 110)
    assert got["network"] is not None and got["pid"] > 0
    assert api.get(f"/1.0/instances/{name}").metadata["status"] == "Frozen"
    op = action(api, name, "unfreeze")
    assert (op["description"], op["status"]) == ("Unfreezing instance", "Success")
    assert state(api, name)["status"] == "Running"
    assert action(api, name, "freeze")["status"] == "Success"
    op = action(api, name, "stop", force=True)
    assert op["status"] == "Success"
    assert state(api, name) == STOPPED


def test_restart_and_graceful_stop(api: API) -> None:
    name = started(api)
    settle(api)
    op = action(api, name, "restart", force=True)
    assert (op["description"], op["status"]) == ("Restarting instance", "Success")
    assert state(api, name)["status"] == "Running"
    settle(api)
    op = action(api, name, "stop", timeout=30)
    assert (op["description"], op["status"], op["err"]) == ("Stopping instance", "Success", "")
    assert state(api, name) == STOPPED
    assert power(api, name) == "STOPPED"


def test_stateful_stop_is_refused(api: API) -> None:
    name = started(api)
    op = action(api, name, "stop", stateful=True)
    assert (op["status"], op["err"]) == (
        "Failure", "Unable to perform container live migration. CRIU isn't installed")
    assert state(api, name)["status"] == "Running"


def test_ephemeral_instances_vanish_when_stopped(api: API) -> None:
    name = started(api, ephemeral=True)
    assert action(api, name, "stop", force=True)["status"] == "Success"
    deadline = time.monotonic() + 10
    while api.get(f"/1.0/instances/{name}").status != 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get(f"/1.0/instances/{name}").error == "Instance not found"


def test_state_lifecycle_events(api: API) -> None:
    name = make(api)
    source = f"/1.0/instances/{name}"
    events = Events(api)
    try:
        steps = [("start", {}, "instance-started"), ("freeze", {}, "instance-paused"),
                 ("unfreeze", {}, "instance-resumed"),
                 ("restart", {"force": True}, "instance-restarted"),
                 ("stop", {"force": True}, "instance-stopped")]
        for what, extra, event in steps:
            assert action(api, name, what, **extra)["status"] == "Success", what
            meta = events.wait(event, source)["metadata"]
            assert meta["source"] == source
            assert meta["requestor"]["protocol"] == "unix"
            assert "context" not in meta
        assert action(api, name, "start")["status"] == "Success"
        settle(api)
        assert action(api, name, "stop")["status"] == "Success"
        events.wait("instance-shutdown", source)
    finally:
        events.close()


def test_state_operations_on_a_missing_instance(api: API) -> None:
    reply = api.put("/1.0/instances/nope-missing/state", {"action": "start"})
    assert (reply.status, reply.error) == (404, "Instance not found")
