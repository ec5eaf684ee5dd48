"""Attaching to an instance's console: ``POST /1.0/instances/{name}/console``.

As on LXD 5.0.2 with the busybox image (whose init runs no shell on the console): a websocket
operation ``Showing console`` with fds ``0`` (the console) and ``control``. Nothing answers
what is typed on fd 0; ``window-resize`` and other control messages are accepted. Closing
control detaches: fd 0 gets ``\\n\\r`` and is dropped without a close frame, and the operation
succeeds. Closing fd 0, or stopping the instance, leaves the operation running.

Known divergence: when a console ends without both websockets connected (say, control only,
then the instance stops), LXD 5.0.2 dereferences a nil websocket and the *daemon* dies; the
fake ends the operation quietly.

The console log (``GET``/``DELETE`` ``/console``) is served in :mod:`fakeserver.api.instances`.
"""

from __future__ import annotations

import secrets
import threading

from werkzeug.wrappers import Response

from .. import websocket
from ..app import Ctx
from ..events import Listener
from ..gourl import go_quote
from ..operations import SUCCESS, Operation
from ..responses import LXDError
from ..schema import INT_, STR, Struct, decode_value, unmarshal
from . import instances
from .instance_exec import websocket_fd

CONSOLE_POST = Struct("InstanceConsolePost", width=INT_, height=INT_, type=STR)
_NO_EVENTS = frozenset({"console-session"})  # a listener that only hears the hub close
DETACHED = b"\n\r"  # what LXD 5.0.2 writes on fd 0 as the console detaches


class ConsoleSession:
    """The websockets of one console operation."""

    def __init__(self, ctx: Ctx) -> None:
        self.ops = ctx.ops
        self.events = ctx.events
        self.fds = {key: secrets.token_hex(32) for key in ("0", "control")}
        self.lock = threading.Lock()
        self.conns: dict[str, websocket.WebSocket] = {}
        self.claimed: set[str] = set()
        self.op: Operation | None = None
        self.listener: Listener | None = None
        self.detached = False

    def start(self, op: Operation) -> None:
        self.op = op
        self.listener = self.events.subscribe(_NO_EVENTS, None, notify=self._abort_all)

    def _abort_all(self) -> None:
        """The server is stopping: drop every websocket now (not after a detach: the
        listener's own unsubscribe notifies too)."""
        with self.lock:
            if self.detached:
                return
            conns = list(self.conns.values())
        for ws in conns:
            ws.abort()

    def connect(self, ctx: Ctx) -> Response:
        """Serve ``/1.0/operations/{id}/websocket?secret=`` for fd 0 or control."""
        fd, refusal = websocket_fd(ctx, self.fds)
        if refusal is not None:
            return refusal
        ws = websocket.accept(ctx, ping_interval=None)  # LXD pings no console websocket
        with self.lock:
            taken = fd in self.claimed
            self.claimed.add(fd)
            if not taken:
                self.conns[fd] = ws
        if taken:  # as for exec: upgraded, then left open and unread
            ws.run(on_message=lambda _ws, _data: None)
            return websocket.hijacked()
        try:
            ws.run(on_message=lambda _ws, _data: None)  # typed input and control messages
        finally:
            if fd == "control":
                self._detach()
        return websocket.hijacked()

    def _detach(self) -> None:
        """Control closed: fd 0 gets LXD's last bytes and is dropped; the operation ends."""
        with self.lock:
            console = self.conns.get("0")
            self.detached = True
        if console is not None:
            console.send_binary(DETACHED)
            console.hangup()
        if self.listener is not None:
            self.events.unsubscribe(self.listener)
        if self.op is not None:
            self.ops.finish(self.op, SUCCESS)


@instances.routes("/<name>/console", "POST")
def attach_console(ctx: Ctx, name: str, prefix: str) -> Response:
    """LXD 5.0.2's order: the body, the instance (any type error or a missing project is a
    plain ``Instance not found``), the console type, then its state."""
    kind = instances.check_request(ctx, name, prefix)
    body = decode_value(unmarshal(ctx.raw_body()), CONSOLE_POST)  # json.Unmarshal's errors
    with ctx.state.lock:
        if not ctx.state.has_project(ctx.project):
            raise LXDError(404, "Instance not found")
        record = instances.find(ctx, name, kind)
        console = body["type"] or "console"
        if console not in ("console", "vga"):
            raise LXDError(400, f"Unknown console type {go_quote(console)}")
        if console == "vga" and record["type"] != "virtual-machine":
            raise LXDError(400, "VGA console is only supported by virtual machines")
        status = record.get("status")
        if status == "Stopped":
            raise LXDError(400, "Instance is not running")
        if status == "Frozen":
            raise LXDError(400, "Instance is frozen")
    session = ConsoleSession(ctx)
    op = ctx.ops.create("Showing console", None, project=ctx.project,
                        resources=instances.op_resources(name), cls="websocket",
                        metadata={"fds": dict(session.fds)}, connect=session.connect)
    session.start(op)
    return ctx.async_reply(op)

