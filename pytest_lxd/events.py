"""The ``/1.0/events`` stream: typed events over the ``websockets`` sync client.

>>> with client.events(event_types=[EventType.Lifecycle], timeout=5) as stream:  # doctest: +SKIP
...     client.profiles.create("p1")
...     event = stream.wait_for(lambda e: e.action == "profile-created")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from . import exceptions

if TYPE_CHECKING:
    from .client import Client
    from .models.operation import Operation

__all__ = ["Event", "EventStream", "EventType", "LifecycleEvent", "LoggingEvent",
           "OperationEvent"]


class EventType(str, Enum):
    """Event types, as in pylxd (``EventType.Lifecycle.value == "lifecycle"``)."""

    All = "all"
    Operation = "operation"
    Logging = "logging"
    Lifecycle = "lifecycle"


@dataclass
class Event:
    """One event: ``type``, ``timestamp``, ``metadata``, ``location``, ``project``."""

    type: str
    timestamp: str
    metadata: dict[str, Any]
    location: str = ""
    project: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def from_json(data: dict[str, Any], client: Client | None = None) -> Event:
        """The typed event (:class:`LifecycleEvent`, ...) for one decoded message."""
        kind = str(data.get("type", ""))
        cls: type[Event] = _EVENT_CLASSES.get(kind, Event)
        event = cls(kind, str(data.get("timestamp", "")), dict(data.get("metadata") or {}),
                    str(data.get("location", "")), data.get("project"), data)
        if isinstance(event, OperationEvent) and client is not None:
            event._client = client
        return event


@dataclass
class LifecycleEvent(Event):
    """An object changed: ``action`` (``profile-created``...), ``source`` (its URL)."""

    @property
    def action(self) -> str:
        return str(self.metadata.get("action", ""))

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def name(self) -> str:
        """The object's name: the last segment of ``source`` (no ``?project=``)."""
        from .models.base import name_from_url

        return name_from_url(self.source)

    @property
    def context(self) -> dict[str, Any]:
        return dict(self.metadata.get("context") or {})

    @property
    def requestor(self) -> dict[str, Any]:
        return dict(self.metadata.get("requestor") or {})


@dataclass
class OperationEvent(Event):
    """An operation changed; ``metadata`` is the whole operation."""

    _client: Client | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return str(self.metadata.get("id", ""))

    @property
    def status(self) -> str:
        return str(self.metadata.get("status", ""))

    @property
    def status_code(self) -> int:
        return int(self.metadata.get("status_code") or 0)

    @property
    def operation(self) -> Operation:
        """The operation as an :class:`~pytest_lxd.models.operation.Operation`."""
        from .models.operation import Operation

        if self._client is None:
            raise RuntimeError("this event is not bound to a client")
        return Operation(self._client, self.metadata)


@dataclass
class LoggingEvent(Event):
    """A daemon log line: ``message``, ``level``, ``context``."""

    @property
    def message(self) -> str:
        return str(self.metadata.get("message", ""))

    @property
    def level(self) -> str:
        return str(self.metadata.get("level", ""))

    @property
    def context(self) -> dict[str, Any]:
        return dict(self.metadata.get("context") or {})


_EVENT_CLASSES: dict[str, type[Event]] = {
    "lifecycle": LifecycleEvent,
    "operation": OperationEvent,
    "logging": LoggingEvent,
}


class EventStream:
    """A subscription to ``/1.0/events``; iterate it to receive :class:`Event` objects.

    Connects on :meth:`connect`, on first iteration or on entering ``with``. Iteration ends
    when the server closes the stream or, if ``timeout`` is set, when no event arrives for
    ``timeout`` seconds. ``run()`` and ``messages`` mimic pylxd's ws4py client (the raw
    decoded messages, appended until the stream ends).
    """

    def __init__(self, client: Client, event_types: Iterable[EventType | str] | None = None,
                 *, project: str | None = None, all_projects: bool = False,
                 timeout: float | None = None) -> None:
        self.client = client
        types = [t.value if isinstance(t, EventType) else str(t) for t in event_types or ()]
        self.event_types = [] if "all" in types else types
        self.project = project if project is not None else client.project
        self.all_projects = all_projects
        self.timeout = timeout
        self.messages: list[dict[str, Any]] = []
        self._conn: Any = None

    @property
    def params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.event_types:
            params["type"] = ",".join(self.event_types)
        if self.all_projects:
            params["all-projects"] = "true"
        elif self.project is not None:
            params["project"] = self.project
        return params

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def connect(self) -> EventStream:
        if self._conn is None:
            self._conn = self.client.transport.websocket(
                f"/{self.client.version}/events", self.params, use_project=False)
        return self

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> EventStream:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv(self, timeout: float | None) -> dict[str, Any] | None:
        """The next decoded message; None on timeout; raises EOFError when the stream ends."""
        from websockets.exceptions import ConnectionClosed

        self.connect()
        try:
            message = self._conn.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed:
            self._conn = None
            raise EOFError("the event stream was closed") from None
        data = json.loads(message)
        return data if isinstance(data, dict) else {"type": "", "metadata": {"raw": data}}

    def receive(self, timeout: float | None = None) -> Event | None:
        """The next event, or None if none arrives within ``timeout`` seconds (or it closed)."""
        try:
            data = self._recv(timeout)
        except EOFError:
            return None
        return None if data is None else Event.from_json(data, self.client)

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                data = self._recv(self.timeout)
            except EOFError:
                return
            if data is None:
                return
            yield Event.from_json(data, self.client)

    def wait_for(self, predicate: Callable[[Any], bool] | None = None, timeout: float = 10.0,
                 ) -> Event:
        """The first event for which ``predicate(event)`` is true (any event if None).

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching event within {timeout} s")
            try:
                data = self._recv(remaining)
            except EOFError:
                raise exceptions.ClientConnectionFailed("the event stream was closed") from None
            if data is None:
                continue
            event = Event.from_json(data, self.client)
            try:
                matched = predicate is None or predicate(event)
            except AttributeError:
                matched = False  # e.g. .action asked of an operation event
            if matched:
                return event

    def run(self) -> None:
        """pylxd compatibility: append every message to :attr:`messages` until the end."""
        while True:
            try:
                data = self._recv(None)
            except EOFError:
                return
            if data is not None:
                self.messages.append(data)

    run_forever = run
