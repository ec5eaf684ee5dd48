"""Background operations, run the way LXD runs them.

A request that LXD answers with an operation creates an :class:`Operation` here and gets 202.
The operation goes Pending -> Running -> Success / Failure / Cancelled on a bounded pool of
worker threads, emits an ``operation`` event on every transition, and is forgotten
``retention`` seconds after it ends (5 s, as in LXD).

Tests steer operations per server: timing (immediate, a delay, or manual release), per kind of
operation (its LXD description, e.g. ``"Creating instance"``), and faults (make the next N
operations, or those of a kind or on a resource, fail with a given error).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .events import EventHub
from .responses import LXDError, go_time

STATUS = {
    100: "Operation created", 101: "Started", 102: "Stopped", 103: "Running",
    104: "Cancelling", 105: "Pending", 106: "Starting", 107: "Stopping", 108: "Aborting",
    109: "Freezing", 110: "Frozen", 111: "Thawed", 112: "Error", 113: "Ready",
    200: "Success", 400: "Failure", 401: "Cancelled",
}
RUNNING, PENDING, CANCELLING = 103, 105, 104
SUCCESS, FAILURE, CANCELLED = 200, 400, 401

Timing = float | str  # seconds of delay, or "manual"


class OperationFailed(Exception):
    """Raised by a run function to end its operation in Failure with this ``err``."""


@dataclass(eq=False)
class Operation:
    """One background operation, rendered exactly as LXD renders it."""

    description: str
    project: str = "default"
    cls: str = "task"
    resources: dict[str, list[str]] | None = None
    metadata: Any = None
    may_cancel: bool = False
    run: Callable[[Operation], Any] | None = None
    on_cancel: Callable[[Operation], None] | None = None
    locked: bool = True
    connect: Callable[..., Any] | None = None  # serves /websocket (websocket-class ops)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=go_time)
    updated_at: str = ""
    status_code: int = PENDING
    err: str = ""
    finished_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    engine: OperationEngine | None = None
    started_json: dict[str, Any] | None = None  # as it was when Start() returned: the 202 body

    def __post_init__(self) -> None:
        if not self.updated_at:
            self.updated_at = self.created_at

    @property
    def status(self) -> str:
        return STATUS[self.status_code]

    @property
    def final(self) -> bool:
        return self.status_code >= 200

    @property
    def url(self) -> str:
        return f"/1.0/operations/{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "class": self.cls, "description": self.description,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "status": self.status, "status_code": self.status_code,
            "resources": self.resources, "metadata": self.metadata,
            "may_cancel": self.may_cancel, "err": self.err, "location": "none",
        }

    def reply_json(self) -> dict[str, Any]:
        """The operation as the 202 reply embeds it: Running, even if it already ended."""
        return self.started_json if self.started_json is not None else self.to_json()

    def update_metadata(self, metadata: Any) -> None:
        """Replace the metadata (e.g. progress); bumps ``updated_at`` and emits an event.

        Only metadata updates move ``updated_at``: status changes leave it alone, as in LXD.
        """
        self.metadata = metadata
        self.updated_at = go_time()
        if self.engine is not None:
            self.engine.publish(self)


@dataclass
class Fault:
    """Operations matching ``kind`` / ``resource`` fail with ``error``, ``count`` times."""

    error: str
    count: int | None = 1
    kind: str | None = None
    resource: str | None = None

    def matches(self, op: Operation) -> bool:
        if self.kind is not None and self.kind != op.description:
            return False
        if self.resource is not None:
            urls = [u for urls in (op.resources or {}).values() for u in urls]
            if not any(u == self.resource or u.startswith(self.resource + "/") for u in urls):
                return False
        return True


class OperationEngine:
    """Creates, runs, lists, waits on and cancels operations on bounded worker threads.

    Delayed operations wait in a heap served by one timer thread and held ones in a list, so
    however many are pending, the engine uses at most ``workers`` + 1 threads.
    """

    def __init__(self, events: EventHub, state_lock: Any, workers: int = 8,
                 retention: float = 5.0) -> None:
        self.events = events
        self.state_lock = state_lock
        self.retention = retention
        self._default_retention = retention
        self.handler_errors: list[str] = []
        self._lock = threading.RLock()
        self._ops: dict[str, Operation] = {}
        self._held: list[Operation] = []
        self._faults: list[Fault] = []
        self._timing: dict[str | None, Timing] = {}
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._heap: list[tuple[float, int, Operation]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._scheduler: threading.Thread | None = None
        self._closed = False

    # -- test control ----------------------------------------------------------------------
    def set_timing(self, mode: Timing = "immediate", kind: str | None = None) -> None:
        """``"immediate"`` (default), a delay in seconds, or ``"manual"``; per ``kind``.

        ``kind`` is an operation description (``"Renaming project"``); a kind's rule wins
        over the global one. Operations already created keep the timing they started with.
        """
        if mode != "manual" and mode != "immediate":
            mode = float(mode)
            if mode < 0:
                raise ValueError("delay must be >= 0")
        with self._lock:
            if mode == "immediate" and kind is None:
                self._timing.pop(None, None)
            else:
                self._timing[kind] = mode

    def fail(self, error: str, count: int | None = 1, kind: str | None = None,
             resource: str | None = None) -> Fault:
        """Make the next ``count`` matching operations fail (``count=None``: all of them).

        A matching operation ends in Failure with ``err = error`` instead of running; token
        operations (which never run) are not affected.
        """
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 (or None for every operation)")
        fault = Fault(error, count, kind, resource)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def held(self) -> list[Operation]:
        """Operations waiting for :meth:`release` (manual timing), oldest first."""
        with self._lock:
            return list(self._held)

    def release(self, op: Operation | str | None = None, kind: str | None = None) -> int:
        """Let held operations run: one (by object or id), those of a kind, or all."""
        with self._lock:
            op_id = op.id if isinstance(op, Operation) else op
            chosen = [o for o in self._held if (op_id is None or o.id == op_id)
                      and (kind is None or o.description == kind)]
            for item in chosen:
                self._held.remove(item)
        for item in chosen:
            self._submit(item)
        return len(chosen)

    def reset(self) -> None:
        """Forget every operation, fault and timing rule (held operations never run)."""
        with self._lock:
            self._held.clear()
            self._heap.clear()
            self._faults.clear()
            self._timing.clear()
            self.retention = self._default_retention
            ops = list(self._ops.values())
            self._ops.clear()
            self.handler_errors.clear()
            for op in ops:
                if not op.final:
                    op.status_code = CANCELLED
                    op.finished_at = time.monotonic()
        for op in ops:
            op.done.set()

    def close(self) -> None:
        """Stop for good: nothing runs any more and the worker threads end."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        self.reset()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @property
    def threads(self) -> int:
        """Threads the engine runs now (workers plus the timer), for tests."""
        with self._lock:
            pool = self._pool
            count = len(pool._threads) if pool is not None else 0
            if self._scheduler is not None and self._scheduler.is_alive():
                count += 1
        return count

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, description: str, run: Callable[[Operation], Any] | None = None, *,
               project: str = "default", resources: dict[str, list[str]] | None = None,
               cls: str = "task", metadata: Any = None, may_cancel: bool = False,
               on_cancel: Callable[[Operation], None] | None = None,
               locked: bool = True, connect: Callable[..., Any] | None = None) -> Operation:
        """Register and start an operation; ``run(op)`` does its work in the background.

        ``run`` returns the operation's final metadata (or None to keep it) and raises
        :class:`OperationFailed` or :class:`LXDError` to fail. With ``locked`` it runs holding
        the state lock. Token operations (no ``run``) stay Running until used or cancelled.
        ``project=""`` makes a global operation (listed in every project, like LXD's project
        rename). Even with immediate timing the work happens on a worker thread, after the
        caller got the operation back.
        """
        op = Operation(description, project, cls, resources, metadata, may_cancel, run,
                       on_cancel, locked, connect)
        op.engine = self
        with self._lock:
            self._prune()
            self._ops[op.id] = op
        self.publish(op)
        op.status_code = RUNNING
        op.started_json = op.to_json()
        self.publish(op)
        if run is None:
            return op
        timing = self._timing_for(op)
        if timing == "manual":
            with self._lock:
                self._held.append(op)
        elif isinstance(timing, float) and timing > 0:
            self._schedule(op, timing)
        else:
            self._submit(op)
        return op

    def publish(self, op: Operation) -> None:
        """Emit the operation's current state as an ``operation`` event."""
        self.events.emit("operation", op.to_json(), op.project)

    def finish(self, op: Operation, status_code: int, err: str = "") -> bool:
        """End ``op`` (once): Success, Failure with ``err``, or Cancelled."""
        with self._lock:
            if op.final:
                return False
            op.status_code = status_code
            op.err = err
            op.finished_at = time.monotonic()
            event = op.to_json()
        self.events.emit("operation", event, op.project)
        op.done.set()
        return True

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            self._prune()
            return self._ops.get(op_id)

    def all(self, project: str | None = None) -> list[Operation]:
        """Known operations, oldest first (only ``project``'s when given)."""
        with self._lock:
            self._prune()
            return [op for op in self._ops.values() if project is None or op.project == project]

    def wait(self, op: Operation, timeout: float | None = None) -> Operation:
        """Block until ``op`` is final or ``timeout`` seconds pass (None or < 0: forever)."""
        if timeout is not None and timeout < 0:
            timeout = None
        op.done.wait(timeout)
        return op

    def cancel(self, op: Operation, *, hook_errors: bool = True) -> None:
        """Cancel as LXD does; raises LXD's 400s when the operation cannot be cancelled.

        Running -> Cancelling -> Cancelled, with an event for each; a held or delayed
        operation never runs. If ``on_cancel`` raises, the status goes back (with an event)
        and the error propagates unless ``hook_errors`` is False: LXD runs the hook in the
        background, so ``DELETE /1.0/operations/{id}`` has already answered 200 by then.
        """
        with self._lock:
            if op.final:
                raise LXDError(400, "Only running operations can be cancelled")
            if not op.may_cancel:
                raise LXDError(400, "This operation can't be cancelled")
            if op.status_code == CANCELLING:
                raise LXDError(400, "Only running operations can be cancelled")
            previous = op.status_code
            op.status_code = CANCELLING
            was_held = op in self._held
            if was_held:
                self._held.remove(op)
            waiting = [item for item in self._heap if item[2] is op]
            if waiting:
                self._heap = [item for item in self._heap if item[2] is not op]
                heapq.heapify(self._heap)
            event = op.to_json()
        self.events.emit("operation", event, op.project)
        if op.on_cancel is not None:
            try:
                op.on_cancel(op)
            except Exception:
                with self._lock:
                    if op.status_code == CANCELLING:
                        op.status_code = previous
                        if was_held:
                            self._held.append(op)
                        for item in waiting:
                            heapq.heappush(self._heap, item)
                            self._wake.notify()
                    event = op.to_json()
                self.events.emit("operation", event, op.project)
                if hook_errors:
                    raise
                return
        self.finish(op, CANCELLED)

    # -- internals -------------------------------------------------------------------------
    def _timing_for(self, op: Operation) -> Timing:
        with self._lock:
            if op.description in self._timing:
                return self._timing[op.description]
            return self._timing.get(None, "immediate")

    def _prune(self) -> None:
        now = time.monotonic()
        expired = [op_id for op_id, op in self._ops.items()
                   if op.finished_at is not None and now - op.finished_at >= self.retention]
        for op_id in expired:
            del self._ops[op_id]

    def _submit(self, op: Operation) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="lxd-fake-op")
            pool = self._pool
        pool.submit(self._execute, op)

    def _schedule(self, op: Operation, delay: float) -> None:
        with self._lock:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), op))
            if self._scheduler is None or not self._scheduler.is_alive():
                self._scheduler = threading.Thread(target=self._run_scheduler,
                                                   name="lxd-fake-op-timer", daemon=True)
                self._scheduler.start()
            self._wake.notify()

    def _run_scheduler(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._heap or
                                            self._heap[0][0] > time.monotonic()):
                    if not self._heap:
                        if not self._wake.wait(1.0) and not self._heap:
                            self._scheduler = None
                            return
                    else:
                        self._wake.wait(self._heap[0][0] - time.monotonic())
                if self._closed:
                    self._scheduler = None
                    return
                _, _, op = heapq.heappop(self._heap)
            self._submit(op)

    def _take_fault(self, op: Operation) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(op):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _execute(self, op: Operation) -> None:
        if op.status_code != RUNNING or op.run is None:
            return  # cancelled (or forgotten by a reset) before its turn came
        fault = self._take_fault(op)
        if fault is not None:
            self.finish(op, FAILURE, fault.error)
            return
        try:
            if op.locked:
                with self.state_lock:
                    if op.status_code != RUNNING:
                        return
                    result = op.run(op)
            else:
                result = op.run(op)
        except (OperationFailed, LXDError) as exc:
            self.finish(op, FAILURE, getattr(exc, "message", None) or str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must not kill the worker
            self.handler_errors.append(traceback.format_exc())
            self.finish(op, FAILURE, f"Internal error in the fake: {exc}")
        else:
            if result is not None and not op.final:
                op.update_metadata(result)
            self.finish(op, SUCCESS)
