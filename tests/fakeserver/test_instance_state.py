"""Instance state: GET/PUT ``/state`` (start, stop, restart, freeze, unfreeze) on the fake and
on real LXD 5.0.2.

Known, intended divergence: the fake changes state at once, while a graceful stop takes a few
seconds on LXD (busybox init shutting down).
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.imagefixtures import Events
from tests.instancefixtures import action, make, shared_project, started
from tests.support import API, unique

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
    # LXD 5.0.2 now and then reports 0 bytes of memory in use just after the start (seen once
    # in a CI run); a moment later it reports the container's memory. The fake reports it at
    # once. Either way a running instance must show memory in use within 3 s.
    for _ in range(10):
        if got["memory"]["usage"] > 0 or api.is_fake:
            break
        time.sleep(0.3)
        got = state(api, name)
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


# -- PUT /1.0/instances: every instance of a project at once -----------------------------------

def bulk_project(api: API) -> API:
    """A project of its own (images and profiles from ``default``): a bulk change touches
    every instance of its project, so never the shared ``default`` one."""
    return shared_project(api, "bulk")


def bulk(api: API, what: str, path: str = "/1.0/instances", **body: object,
         ) -> tuple[list[str] | None, dict]:
    """``PUT`` a bulk state change and wait: (the instances it names, the finished op)."""
    reply = api.put(path, {"state": {"action": what, **body}})
    assert reply.status == 202, reply
    assert reply.metadata["description"] == ACTIONS[what]
    assert list(reply.metadata["resources"]) == ["instances"]
    named = reply.metadata["resources"]["instances"]
    return (sorted(named) if named is not None else None), api.wait(reply)


def statuses(api: API) -> dict[str, str]:
    return {i["name"]: i["status"] for i in api.get("/1.0/instances?recursion=1").metadata}


ACTIONS = {"start": "Starting instance", "stop": "Stopping instance",
           "restart": "Restarting instance", "freeze": "Freezing instance",
           "unfreeze": "Unfreezing instance"}


def test_bulk_state_changes_act_on_the_instances_not_yet_there(api: API) -> None:
    papi = bulk_project(api)
    named, op = bulk(papi, "start")  # an empty project: an operation that does nothing
    assert (named, op["status"], op["metadata"]) == (None, "Success", None)
    one, two = sorted([make(papi), make(papi)])
    urls = [f"/1.0/instances/{one}", f"/1.0/instances/{two}"]
    named, op = bulk(papi, "start")
    assert (named, op["status"], op["err"]) == (urls, "Success", "")
    assert op["metadata"] == {"container_progress": ""}  # the first start remaps the idmap
    assert statuses(papi) == {one: "Running", two: "Running"}
    named, op = bulk(papi, "start")  # all running: nothing to do
    assert (named, op["status"], op["metadata"]) == (None, "Success", None)
    settle(papi)
    named, op = bulk(papi, "freeze")
    assert (named, op["status"]) == (urls, "Success")
    assert statuses(papi) == {one: "Frozen", two: "Frozen"}
    named, op = bulk(papi, "start")  # frozen counts as running
    assert (named, op["status"]) == (None, "Success")
    named, op = bulk(papi, "unfreeze")  # ... so unfreeze skips the frozen ones (5.0.2)
    assert (named, op["status"]) == (None, "Success")
    assert statuses(papi) == {one: "Frozen", two: "Frozen"}
    named, op = bulk(papi, "stop", "/1.0/virtual-machines", force=True)  # no type filter
    assert (named, op["status"]) == (urls, "Success")
    assert statuses(papi) == {one: "Stopped", two: "Stopped"}
    for what in ("stop", "restart", "freeze"):
        named, op = bulk(papi, what, "/1.0/containers", force=True)
        assert (named, op["status"]) == (None, "Success"), what


def test_bulk_failures_are_listed_per_instance(api: API) -> None:
    """5.0.2 picks the stopped instances for ``unfreeze`` (it asks whether each runs), which
    then fail one by one: the operation fails with a line per instance."""
    papi = bulk_project(api)
    one, two = sorted([make(papi), make(papi)])
    named, op = bulk(papi, "unfreeze")
    assert named == [f"/1.0/instances/{one}", f"/1.0/instances/{two}"]
    assert op["status"] == "Failure"
    head, *lines = op["err"].split("\n")
    assert head == "The following instances failed to update state:"
    assert lines[-1] == ""  # every line ends with a newline
    assert sorted(lines[:-1]) == [f" - Instance: {one}: The container isn't running",
                                  f" - Instance: {two}: The container isn't running"]
    assert statuses(papi) == {one: "Stopped", two: "Stopped"}


def test_bulk_state_change_events(api: API) -> None:
    papi = bulk_project(api)
    name = make(papi)
    events = Events(api, papi.project or "")
    try:
        bulk(papi, "start")
        event = events.wait("instance-started", f"/1.0/instances/{name}")
        assert event["metadata"]["source"] == f"/1.0/instances/{name}?project={papi.project}"
    finally:
        events.close()
    bulk(papi, "stop", force=True)


@pytest.mark.parametrize(("body", "error"), [
    ({"state": {"action": "bogus"}}, "Unknown action: 'bogus'"),
    ({"state": {"action": "START"}}, "Unknown action: 'START'"),
    ({"state": {}}, "Unknown action: ''"),
    ({}, "Unknown action: ''"),
    ({"state": {"action": "stop", "force": "yes"}},
     "json: cannot unmarshal string into Go struct field InstanceStatePut.state.force of "
     "type bool"),
    ([], "json: cannot unmarshal array into Go value of type api.InstancesPut"),
])
def test_bulk_bad_requests(api: API, body: object, error: str) -> None:
    """Checked before anything is looked at: an empty project answers the same."""
    papi = bulk_project(api)
    reply = papi.put("/1.0/instances", body)
    assert (reply.status, reply.error) == (400, error)


def test_bulk_in_a_missing_project(api: API) -> None:
    """LXD 5.0.2 lists nothing, then fails to record its operation: a 500."""
    reply = api.put("/1.0/instances", {"state": {"action": "stop"}},
                    params={"project": unique("nope")})
    assert reply.status == 500
    assert reply.error.startswith('failed to add "Stopping instance" Operation ')
    assert reply.error.endswith(" to database: Fetch project ID: Project not found")


def test_operations_in_a_project_name_their_instances_without_it(api: API) -> None:
    """LXD 5.0.2 builds an operation's resources from bare names: no ``?project=`` (the
    lifecycle events' sources carry it)."""
    papi = bulk_project(api)
    seen = []

    def run(reply: object) -> None:
        assert reply.status == 202, reply  # type: ignore[attr-defined]
        seen.append(reply.metadata["resources"])  # type: ignore[attr-defined]
        assert papi.wait(reply)["status"] == "Success"  # type: ignore[arg-type]

    name = make(papi)
    run(papi.put(f"/1.0/instances/{name}/state", {"action": "start"}))
    run(papi.put(f"/1.0/instances/{name}/state", {"action": "stop", "force": True}))
    run(papi.post(f"/1.0/instances/{name}/snapshots", {"name": "s0"}))
    run(papi.put(f"/1.0/instances/{name}", {"restore": "s0"}))
    run(papi.delete(f"/1.0/instances/{name}/snapshots/s0"))
    run(papi.post(f"/1.0/instances/{name}", {"name": f"{name}-b"}))
    run(papi.delete(f"/1.0/instances/{name}-b"))
    assert seen and all("?project=" not in url
                        for resources in seen for urls in resources.values() for url in urls)


def test_bulk_with_a_null_state_gets_no_answer(api: API) -> None:
    """``{"state": null}``: LXD 5.0.2 reads the action through the nil pointer and panics; Go's
    server closes the connection without an answer. Nothing changes."""
    papi = bulk_project(api)
    name = make(papi)
    with pytest.raises(requests.ConnectionError):
        papi.put("/1.0/instances", {"state": None})
    assert statuses(papi) == {name: "Stopped"}
