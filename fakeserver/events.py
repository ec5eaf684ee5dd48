"""The event hub: lifecycle, operation and logging events fanned out to listeners."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from .responses import go_time

EVENT_TYPES = ("logging", "operation", "lifecycle")


@dataclass(eq=False)
class Listener:
    """One subscriber (an ``/1.0/events`` websocket, or a test) with its own queue."""

    types: frozenset[str]
    project: str | None  # None: all projects
    queue: queue.SimpleQueue[dict[str, Any] | None] = field(default_factory=queue.SimpleQueue)

    def wants(self, event: dict[str, Any]) -> bool:
        if event["type"] not in self.types:
            return False
        if self.project is None or event["type"] == "logging":
            return True
        return event.get("project", "default") == self.project

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None when the timeout passes or the hub closes."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class EventHub:
    """Fans every event out to the listeners that want it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.history: list[dict[str, Any]] = []
        self.keep_history = False

    def subscribe(self, types: frozenset[str] | None = None,
                  project: str | None = "default") -> Listener:
        listener = Listener(frozenset(types or EVENT_TYPES), project)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
        listener.queue.put(None)

    def close(self) -> None:
        """Wake every listener with the end-of-stream marker."""
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.queue.put(None)

    def emit(self, kind: str, metadata: Any, project: str = "default") -> dict[str, Any]:
        event: dict[str, Any] = {"type": kind, "timestamp": go_time(), "metadata": metadata,
                                 "location": "none"}
        if kind != "logging":
            event["project"] = project
        with self._lock:
            targets = [lst for lst in self._listeners if lst.wants(event)]
            if self.keep_history:
                self.history.append(event)
        for listener in targets:
            listener.queue.put(event)
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
