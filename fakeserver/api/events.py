"""``/1.0/events``: the event stream as a websocket of JSON text frames.

Parameters are checked before the upgrade, in LXD's order (project, then types), so their
errors are ordinary JSON error replies; a request without upgrade headers then gets gorilla's
plain-text 400. The stream ends when the client leaves, sends any data frame (LXD drops it
without a close frame; pings and pongs are fine) or the server stops (``events.close()``).
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.wrappers import Response

from .. import websocket
from ..app import Ctx
from ..events import EVENT_TYPES, Listener
from ..gourl import go_quote
from ..responses import LXDError, dumps
from . import route

TRUE = ("true", "1", "yes", "on")


PRIVILEGED = ("logging",)


def parse_types(value: str, admin: bool = True) -> frozenset[str]:
    """``?type=``: a comma list of event types; empty means all (a non-admin's: all it may
    see). A restricted client asking for ``logging`` gets LXD 5.0.2's 500 ``Forbidden``."""
    if value == "":
        return frozenset(t for t in EVENT_TYPES if admin or t not in PRIVILEGED)
    types = value.split(",")
    for entry in types:
        if entry not in EVENT_TYPES:
            raise LXDError(500, f'{go_quote(entry)} isn\'t a supported event type')
        if not admin and entry in PRIVILEGED:
            raise LXDError(500, "Forbidden")
    return frozenset(types)


def parse_project(ctx: Ctx) -> str | None:
    """The project to listen to, or None for ``?all-projects=true``."""
    project = ctx.request.args.get("project", "")
    if ctx.request.args.get("all-projects", "").lower() in TRUE:
        if project:
            raise LXDError(500, "Cannot specify a project when requesting all projects")
        return None
    project = project or "default"
    if project != "default":
        with ctx.state.lock:
            if not ctx.state.has_project(project):
                raise LXDError(500, "Project not found")
    return project


def _forward(listener: Listener) -> Callable[[websocket.WebSocket], None]:
    def on_wake(ws: websocket.WebSocket) -> None:
        while True:
            got, event = listener.get_nowait()
            if not got:
                return
            if event is None:  # the hub closed: the server is stopping
                ws.close(websocket.CLOSE_GOING_AWAY)
                return
            ws.send_text(dumps(event) + "\n")

    return on_wake


def _drop(ws: websocket.WebSocket, data: websocket.Message) -> None:
    """LXD reads nothing from an events client: any data frame ends the connection."""
    ws.abort()


@route("/1.0/events", "GET")
def events(ctx: Ctx) -> Response:
    project = parse_project(ctx)
    # A restricted certificate is no admin; LXD 5.0.2 still shows it every project's events.
    admin = getattr(ctx, "restricted", None) is None
    types = parse_types(ctx.request.args.get("type", ""), admin)
    refusal = websocket.refusal(ctx.request)
    if refusal is not None:
        return refusal
    holder: list[websocket.WebSocket] = []

    def notify() -> None:
        if holder:
            holder[0].wake()

    # Subscribe before the 101 goes out: a client that acts as soon as it is connected (lxc
    # opens the stream, then POSTs) must not miss the events of what it does.
    listener = ctx.events.subscribe(types, project, notify=notify)
    try:
        ws = websocket.accept(ctx, ping_interval=websocket.PING_INTERVAL)
        holder.append(ws)
        ws.wake()  # events queued before the websocket existed
        ws.run(on_message=_drop, on_wake=_forward(listener))
    finally:
        ctx.events.unsubscribe(listener)
    return websocket.hijacked()
