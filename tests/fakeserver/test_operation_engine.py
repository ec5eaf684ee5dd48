"""The operation engine of the fake: timing, faults, cancel, wait, expiry, threads, events.

These drive what only the fake has (time control and faults), through ``fake.operations``
and the REST API of the fake; the behaviour they pin down mirrors LXD 5.0.2 as documented in
``test_operations.py``, which runs on both backends.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fakeserver import FakeLXD, OperationFailed
from fakeserver.events import Listener
from fakeserver.operations import Operation
from fakeserver.responses import LXDError
from tests.support import API, poll

pytestmark = pytest.mark.fake_only


@pytest.fixture
def rest(fake: FakeLXD) -> Iterator[API]:
    client = API.unix("fake", fake.socket_path)
    yield client
    assert not fake.handler_errors, fake.handler_errors[0]


@pytest.fixture
def listener(fake: FakeLXD) -> Iterator[Listener]:
    sub = fake.events.subscribe(frozenset({"operation"}), None)
    yield sub
    fake.events.unsubscribe(sub)


def events_of(listener: Listener, op: Operation, until_final: bool = True,
              timeout: float = 5.0) -> list[dict[str, Any]]:
    """The operation events of ``op`` (up to its final one)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = listener.get(timeout=0.05)
        if event is None:
            if not until_final and seen:
                break
            continue
        if event["metadata"]["id"] != op.id:
            continue
        seen.append(event)
        if until_final and event["metadata"]["status_code"] >= 200:
            break
    return seen


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [e["metadata"]["status"] for e in events]


def ns(stamp: str) -> int:
    """An RFC 3339 timestamp as Go writes it (trailing zeros trimmed) in nanoseconds."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


# -- immediate timing ----------------------------------------------------------------------

def test_immediate_is_still_asynchronous(fake: FakeLXD) -> None:
    started = threading.Event()
    caller = threading.get_ident()
    ran_on: list[int] = []

    def run(op: Operation) -> dict[str, str]:
        ran_on.append(threading.get_ident())
        started.wait(5)
        return {"done": "yes"}

    op = fake.operations.create("Renaming project", run, locked=False)
    assert op.status == "Running" and not op.final
    started.set()
    fake.operations.wait(op, 5)
    assert op.status_code == 200 and op.metadata == {"done": "yes"}
    assert ran_on and ran_on[0] != caller


def test_operation_json_shape(fake: FakeLXD) -> None:
    op = fake.operations.create("Executing operation", None, cls="token",
                                metadata={"secret": "s"}, may_cancel=True)
    data = op.to_json()
    assert list(data) == ["id", "class", "description", "created_at", "updated_at", "status",
                          "status_code", "resources", "metadata", "may_cancel", "err",
                          "location"]
    assert data["class"] == "token" and data["location"] == "none"
    assert data["created_at"] == data["updated_at"] and data["created_at"].endswith("Z")
    assert op.url == f"/1.0/operations/{op.id}"


def test_reply_embeds_running_even_when_already_done(fake: FakeLXD, rest: API) -> None:
    op = fake.operations.create("Renaming project", lambda op: None)
    fake.operations.wait(op, 5)
    assert op.status == "Success"
    assert op.reply_json()["status"] == "Running"
    assert op.reply_json()["status_code"] == 103


# -- events --------------------------------------------------------------------------------

def test_events_on_every_transition(fake: FakeLXD, listener: Listener) -> None:
    gate = threading.Event()

    def run(op: Operation) -> dict[str, Any]:
        op.update_metadata({"progress": "50%"})
        gate.wait(5)
        return {"progress": "100%"}

    op = fake.operations.create("Renaming project", run, locked=False)
    gate.set()
    seen = events_of(listener, op)
    assert statuses(seen) == ["Pending", "Running", "Running", "Running", "Success"]
    created = seen[0]["metadata"]["created_at"]
    updated = [e["metadata"]["updated_at"] for e in seen]
    # updated_at moves only with metadata updates, never with status changes
    assert updated[0] == updated[1] == created
    assert ns(updated[2]) > ns(created)
    assert ns(updated[3]) > ns(updated[2])
    assert updated[4] == updated[3]
    assert [e["metadata"]["metadata"] for e in seen] == [
        None, None, {"progress": "50%"}, {"progress": "100%"}, {"progress": "100%"}]
    assert all(e["project"] == "default" and e["type"] == "operation" for e in seen)


def test_failure_event_keeps_updated_at(fake: FakeLXD, listener: Listener) -> None:
    def run(op: Operation) -> None:
        raise OperationFailed("boom")

    op = fake.operations.create("Renaming project", run)
    seen = events_of(listener, op)
    assert statuses(seen) == ["Pending", "Running", "Failure"]
    final = seen[-1]["metadata"]
    assert final["err"] == "boom" and final["status_code"] == 400
    assert final["updated_at"] == final["created_at"]


def test_lxd_error_in_run_fails_with_its_message(fake: FakeLXD) -> None:
    def run(op: Operation) -> None:
        raise LXDError(404, "Storage pool not found")

    op = fake.operations.wait(fake.operations.create("Creating storage volume", run), 5)
    assert (op.status, op.err) == ("Failure", "Storage pool not found")


def test_bug_in_run_is_recorded_not_raised(fake: FakeLXD) -> None:
    def run(op: Operation) -> None:
        raise KeyError("oops")

    op = fake.operations.wait(fake.operations.create("Renaming project", run), 5)
    assert op.status == "Failure" and op.err.startswith("Internal error in the fake")
    assert fake.operations.handler_errors and "KeyError" in fake.operations.handler_errors[0]
    fake.operations.handler_errors.clear()


def test_global_operation_events_have_no_project(fake: FakeLXD) -> None:
    mine = fake.events.subscribe(frozenset({"operation"}), "other")
    try:
        op = fake.operations.create("Renaming project", None, project="")
        event = mine.get(timeout=2)
        assert event is not None and event["metadata"]["id"] == op.id
        assert "project" not in event
    finally:
        fake.events.unsubscribe(mine)


# -- delays and manual release -------------------------------------------------------------

def test_global_delay(fake: FakeLXD) -> None:
    fake.operations.set_timing(0.3)
    start = time.monotonic()
    op = fake.operations.create("Renaming project", lambda op: None)
    assert fake.operations.wait(op, 0.1).status == "Running"
    fake.operations.wait(op, 5)
    assert op.status == "Success"
    assert time.monotonic() - start >= 0.3


def test_delay_per_kind_wins_over_global(fake: FakeLXD) -> None:
    fake.operations.set_timing("manual")
    fake.operations.set_timing(0.05, kind="Creating storage volume")
    fake.operations.set_timing("immediate", kind="Renaming project")
    held = fake.operations.create("Deleting storage volume", lambda op: None)
    delayed = fake.operations.create("Creating storage volume", lambda op: None)
    quick = fake.operations.create("Renaming project", lambda op: None)
    assert fake.operations.wait(quick, 5).status == "Success"
    assert fake.operations.wait(delayed, 5).status == "Success"
    assert fake.operations.wait(held, 0.2).status == "Running"
    assert fake.operations.held() == [held]
    fake.operations.set_timing("immediate")
    assert fake.operations.held() == [held], "a new timing does not release held operations"
    assert fake.operations.release() == 1
    assert fake.operations.wait(held, 5).status == "Success"


def test_manual_release_one_by_kind_or_all(fake: FakeLXD) -> None:
    ops = fake.operations
    ops.set_timing("manual")
    a = ops.create("Renaming project", lambda op: None)
    b = ops.create("Creating storage volume", lambda op: None)
    c = ops.create("Creating storage volume", lambda op: None)
    d = ops.create("Deleting storage volume", lambda op: None)
    assert ops.held() == [a, b, c, d]
    assert ops.release(b.id) == 1
    assert ops.wait(b, 5).status == "Success"
    assert ops.release(kind="Creating storage volume") == 1
    assert ops.wait(c, 5).status == "Success"
    assert ops.release(a) == 1
    assert ops.release(a) == 0
    assert ops.release() == 1
    for op in (a, d):
        assert ops.wait(op, 5).status == "Success"
    assert ops.held() == []


def test_held_operation_wait_times_out_running(fake: FakeLXD, rest: API) -> None:
    fake.operations.set_timing("manual")
    op = fake.operations.create("Renaming project", lambda op: None)
    start = time.monotonic()
    reply = rest.get(f"{op.url}/wait", params={"timeout": 1})
    elapsed = time.monotonic() - start
    assert reply.status == 200 and reply.metadata["status"] == "Running"
    assert 0.9 <= elapsed < 3
    fake.operations.release(op)
    assert rest.get(f"{op.url}/wait", params={"timeout": 5}).metadata["status"] == "Success"


def test_wait_forever_returns_when_released(fake: FakeLXD, rest: API) -> None:
    fake.operations.set_timing("manual")
    op = fake.operations.create("Renaming project", lambda op: None)
    timer = threading.Timer(0.2, fake.operations.release, args=(op,))
    timer.start()
    reply = rest.get(f"{op.url}/wait", params={"timeout": -1}, timeout=10)
    assert reply.metadata["status"] == "Success"


# -- cancel --------------------------------------------------------------------------------

def test_cancel_held_operation_never_runs(fake: FakeLXD, listener: Listener, rest: API) -> None:
    fake.operations.set_timing("manual")
    ran = []
    op = fake.operations.create("Creating storage volume", lambda op: ran.append(1),
                                may_cancel=True)
    reply = rest.delete(op.url)
    assert reply.status == 200 and reply.metadata == {}
    assert op.status == "Cancelled" and fake.operations.held() == []
    assert fake.operations.release() == 0
    time.sleep(0.05)
    assert ran == []
    assert statuses(events_of(listener, op)) == ["Pending", "Running", "Cancelling",
                                                 "Cancelled"]


def test_cancel_delayed_operation_never_runs(fake: FakeLXD) -> None:
    fake.operations.set_timing(0.2)
    ran = []
    op = fake.operations.create("Creating storage volume", lambda op: ran.append(1),
                                may_cancel=True)
    fake.operations.cancel(op)
    time.sleep(0.4)
    assert op.status == "Cancelled" and ran == []


def test_cancel_refusals(fake: FakeLXD, rest: API) -> None:
    fake.operations.set_timing("manual")
    op = fake.operations.create("Renaming project", lambda op: None)
    reply = rest.delete(op.url)
    assert (reply.status, reply.error) == (400, "This operation can't be cancelled")
    fake.operations.release(op)
    fake.operations.wait(op, 5)
    reply = rest.delete(op.url)
    assert (reply.status, reply.error) == (400, "Only running operations can be cancelled")
    token = fake.operations.create("Executing operation", None, cls="token", may_cancel=True)
    assert rest.delete(token.url).status == 200
    reply = rest.delete(token.url)
    assert (reply.status, reply.error) == (400, "Only running operations can be cancelled")


def test_cancel_hook_failure_reverts(fake: FakeLXD, listener: Listener, rest: API) -> None:
    def refuse(op: Operation) -> None:
        raise LXDError(500, "cannot stop now")

    fake.operations.set_timing("manual")
    op = fake.operations.create("Creating storage volume", lambda op: None, may_cancel=True,
                                on_cancel=refuse)
    with pytest.raises(LXDError, match="cannot stop now"):
        fake.operations.cancel(op)
    assert op.status == "Running"
    # Over REST the DELETE has answered before LXD's cancel hook ran: 200 all the same.
    assert rest.delete(op.url).status == 200
    assert op.status == "Running"
    assert fake.operations.held() == [op], "still held: it runs once released"
    fake.operations.release()
    assert fake.operations.wait(op, 5).status == "Success"
    assert statuses(events_of(listener, op)) == ["Pending", "Running", "Cancelling", "Running",
                                                 "Cancelling", "Running", "Success"]


def test_cancel_hook_runs(fake: FakeLXD) -> None:
    calls: list[str] = []
    op = fake.operations.create("Executing operation", None, cls="token", may_cancel=True,
                                on_cancel=lambda op: calls.append(op.status))
    fake.operations.cancel(op)
    assert calls == ["Cancelling"] and op.status == "Cancelled"


def test_cancel_emits_lifecycle_event(fake: FakeLXD, rest: API) -> None:
    mine = fake.events.subscribe(frozenset({"lifecycle"}), "default")
    try:
        op = fake.operations.create("Executing operation", None, cls="token",
                                    may_cancel=True)
        assert rest.delete(op.url).status == 200
        event = mine.get(timeout=2)
        assert event is not None
        assert event["metadata"] == {
            "action": "operation-cancelled", "source": op.url,
            "requestor": {"username": "root", "protocol": "unix", "address": "@"}}
    finally:
        fake.events.unsubscribe(mine)


# -- faults --------------------------------------------------------------------------------

def test_fault_next_n(fake: FakeLXD) -> None:
    ops = fake.operations
    ops.fail("disk full", count=2)
    results = [ops.wait(ops.create("Renaming project", lambda op: None), 5) for _ in range(3)]
    assert [(op.status, op.err) for op in results] == [
        ("Failure", "disk full"), ("Failure", "disk full"), ("Success", "")]


def test_fault_by_kind_and_forever(fake: FakeLXD) -> None:
    ops = fake.operations
    ops.fail("nope", count=None, kind="Creating storage volume")
    for _ in range(3):
        op = ops.wait(ops.create("Creating storage volume", lambda op: None), 5)
        assert (op.status, op.err) == ("Failure", "nope")
    assert ops.wait(ops.create("Renaming project", lambda op: None), 5).status == "Success"
    ops.clear_faults()
    assert ops.wait(ops.create("Creating storage volume", lambda op: None), 5).status == \
        "Success"


def test_fault_by_resource(fake: FakeLXD) -> None:
    ops = fake.operations
    ops.fail("gone", resource="/1.0/instances/c1")
    other = ops.create("Starting instance", lambda op: None,
                       resources={"instances": ["/1.0/instances/c10"]})
    assert ops.wait(other, 5).status == "Success", "prefix match stops at a path boundary"
    snap = ops.create("Snapshotting instance", lambda op: None,
                      resources={"instances": ["/1.0/instances/c1/snapshots/s1"]})
    assert (ops.wait(snap, 5).status, snap.err) == ("Failure", "gone")
    again = ops.create("Starting instance", lambda op: None,
                       resources={"instances": ["/1.0/instances/c1"]})
    assert ops.wait(again, 5).status == "Success", "count=1: used up"


def test_fault_does_not_run_the_work(fake: FakeLXD) -> None:
    ran = []
    fake.operations.fail("no")
    op = fake.operations.wait(fake.operations.create("Renaming project",
                                                     lambda op: ran.append(1)), 5)
    assert op.status == "Failure" and ran == []


def test_fault_applies_to_held_operation_on_release(fake: FakeLXD) -> None:
    ops = fake.operations
    ops.set_timing("manual")
    op = ops.create("Renaming project", lambda op: None)
    ops.fail("late")
    ops.release()
    assert (ops.wait(op, 5).status, op.err) == ("Failure", "late")


def test_fault_count_must_be_positive(fake: FakeLXD) -> None:
    with pytest.raises(ValueError):
        fake.operations.fail("x", count=0)
    with pytest.raises(ValueError):
        fake.operations.set_timing(-1)


# -- expiry --------------------------------------------------------------------------------

def test_finished_operations_are_forgotten_after_retention(fake: FakeLXD, rest: API) -> None:
    fake.operations.retention = 0.3
    op = fake.operations.wait(fake.operations.create("Renaming project", lambda op: None), 5)
    assert rest.get(op.url).status == 200
    assert op.url in rest.get("/1.0/operations").metadata["success"]
    time.sleep(0.35)
    reply = rest.get(op.url)
    assert (reply.status, reply.error) == (404, "Operation not found")
    assert rest.get("/1.0/operations").metadata == {}


def test_running_operations_are_never_forgotten(fake: FakeLXD, rest: API) -> None:
    fake.operations.retention = 0.0
    op = fake.operations.create("Executing operation", None, cls="token", may_cancel=True)
    time.sleep(0.05)
    assert rest.get(op.url).status == 200
    fake.operations.cancel(op)
    assert rest.get(op.url).status == 404


def test_default_retention_is_five_seconds_and_reset_restores_it(fake: FakeLXD) -> None:
    assert fake.operations.retention == 5.0
    fake.operations.retention = 0.1
    fake.reset()
    assert fake.operations.retention == 5.0


def test_reset_forgets_and_ends_operations(fake: FakeLXD) -> None:
    fake.operations.set_timing("manual")
    ran = []
    op = fake.operations.create("Renaming project", lambda op: ran.append(1))
    fake.operations.fail("x", count=None)
    fake.reset()
    assert op.done.is_set() and op.status == "Cancelled"
    assert fake.operations.get(op.id) is None and fake.operations.held() == []
    fake.operations.release()
    quick = fake.operations.wait(fake.operations.create("Renaming project", lambda op: None), 5)
    assert quick.status == "Success", "faults and timing were reset too"
    assert ran == []


# -- threads -------------------------------------------------------------------------------

def test_many_delayed_operations_use_few_threads(fake: FakeLXD) -> None:
    ops = fake.operations
    ops.set_timing(0.3)
    before = threading.active_count()
    gate = threading.Event()

    def run(op: Operation) -> None:
        gate.wait(5)

    created = [ops.create("Creating storage volume", run, locked=False) for _ in range(200)]
    peak = threading.active_count()
    time.sleep(0.4)  # all are due now: the workers are busy, the rest queue
    peak = max(peak, threading.active_count())
    assert ops.threads <= 8 + 1
    gate.set()
    for op in created:
        assert ops.wait(op, 10).status == "Success"
    peak = max(peak, threading.active_count())
    assert peak - before <= 8 + 1, f"{peak - before} new threads for 200 operations"


def test_workers_run_in_parallel_up_to_the_bound(tmp_path: Any) -> None:
    with FakeLXD(tmp_path, workers=3) as server:
        running = []
        lock = threading.Lock()
        gate = threading.Event()

        def run(op: Operation) -> None:
            with lock:
                running.append(op)
            gate.wait(5)

        ops = [server.operations.create("Renaming project", run, locked=False)
               for _ in range(6)]
        assert poll(lambda: len(running) == 3, timeout=5)
        time.sleep(0.05)
        assert len(running) == 3
        gate.set()
        for op in ops:
            assert server.operations.wait(op, 5).status == "Success"
        assert server.operations.threads <= 4


def test_locked_run_holds_the_state_lock(fake: FakeLXD) -> None:
    seen: list[bool] = []

    def run(op: Operation) -> None:
        acquired = fake.state.lock.acquire(blocking=False)
        seen.append(acquired)
        if acquired:
            fake.state.lock.release()

    with fake.state.lock:
        op = fake.operations.create("Renaming project", run)
        time.sleep(0.05)
        assert op.status == "Running", "the worker waits for the request to let go"
    assert fake.operations.wait(op, 5).status == "Success"
    assert seen == [True]  # re-entrant in the worker that holds it


def test_close_stops_running_new_work(tmp_path: Any) -> None:
    server = FakeLXD(tmp_path).start()
    server.close()
    op = server.operations.create("Renaming project", lambda op: None)
    assert server.operations.wait(op, 0.1).status == "Running"
