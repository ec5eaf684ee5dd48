"""The event hub: lifecycle, operation and logging events fanned out to listeners.

Events are dicts in LXD's key order (``type, timestamp, metadata, location, project``). An event
with no project (logging events, and events of global operations such as a project rename) has
no ``project`` key and reaches every listener, as LXD's ``omitempty`` and its event server do.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .responses import go_time

EVENT_TYPES = ("logging", "operation", "lifecycle")


@dataclass(eq=False)
class Listener:
    """One subscriber (an ``/1.0/events`` websocket, or a test) with its own queue.

    ``notify`` (optional) is called after each event is queued and when the hub closes, from
    the emitting thread, so a websocket loop can wake up; it must be quick and never raise.
    """

    types: frozenset[str]
    project: str | None  # None: all projects
    queue: queue.SimpleQueue[dict[str, Any] | None] = field(default_factory=queue.SimpleQueue)
    notify: Callable[[], None] | None = None
    closed: bool = False

    def wants(self, event: dict[str, Any]) -> bool:
        if event["type"] not in self.types:
            return False
        project = event.get("project", "")
        return self.project is None or not project or project == self.project

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None when the timeout passes or the hub closes."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def get_nowait(self) -> tuple[bool, dict[str, Any] | None]:
        """``(True, event)``, ``(True, None)`` at end of stream, ``(False, None)`` when empty."""
        try:
            return True, self.queue.get_nowait()
        except queue.Empty:
            return False, None

    def _put(self, event: dict[str, Any] | None) -> None:
        self.queue.put(event)
        if self.notify is not None:
            self.notify()


class EventHub:
    """Fans every event out to the listeners that want it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.history: list[dict[str, Any]] = []
        self.keep_history = False

    def subscribe(self, types: frozenset[str] | None = None,
                  project: str | None = "default",
                  notify: Callable[[], None] | None = None) -> Listener:
        """A new listener for ``types`` (all when None) in ``project`` (None: all projects)."""
        listener = Listener(frozenset(types or EVENT_TYPES), project, notify=notify)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if listener.closed:
                return
            listener.closed = True
        listener._put(None)

    @property
    def listeners(self) -> int:
        """How many listeners are subscribed now."""
        with self._lock:
            return len(self._listeners)

    def close(self) -> None:
        """Wake every listener with the end-of-stream marker (the hub stays usable)."""
        with self._lock:
            listeners, self._listeners = self._listeners, []
            for listener in listeners:
                listener.closed = True
        for listener in listeners:
            listener._put(None)

    def emit(self, kind: str, metadata: Any, project: str = "default") -> dict[str, Any]:
        """Send an event; ``project=""`` (always for logging) omits the key and reaches all."""
        event: dict[str, Any] = {"type": kind, "timestamp": go_time(), "metadata": metadata,
                                 "location": "none"}
        if kind != "logging" and project:
            event["project"] = project
        with self._lock:
            targets = [lst for lst in self._listeners if lst.wants(event)]
            if self.keep_history:
                self.history.append(event)
        for listener in targets:
            listener._put(event)
        return event

    def lifecycle(self, action: str, source: str, project: str = "default",
                  context: dict[str, Any] | None = None,
                  requestor: dict[str, str] | None = None) -> dict[str, Any]:
        """Emit a lifecycle event (``profile-created`` and the like)."""
        metadata: dict[str, Any] = {"action": action, "source": source}
        if context is not None:
            metadata["context"] = context
        if requestor is not None:
            metadata["requestor"] = requestor
        return self.emit("lifecycle", metadata, project)
