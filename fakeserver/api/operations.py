"""``/1.0/operations``: list, show, cancel and wait for background operations.

The operations themselves live in :class:`fakeserver.operations.OperationEngine`; this module
renders them as LXD 5.0.2 does (a list is a map keyed by lowercase status; a project sees its
own operations plus the global ones, such as a project rename) and maps the engine's answers
to LXD's errors.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote
from ..operations import Operation
from ..responses import LXDError
from . import route


def _find(ctx: Ctx, op_id: str) -> Operation:
    op = ctx.ops.get(op_id)
    if op is None:
        raise LXDError(404, "Operation not found")
    return op


def _visible(ctx: Ctx) -> list[Operation]:
    """The request's project's operations and the global ones.

    LXD 5.0.2 ignores ``?all-projects`` here and does not check that the project exists.
    """
    return [op for op in ctx.ops.all() if op.project in ("", ctx.project)]


@route("/1.0/operations", "GET")
def list_operations(ctx: Ctx) -> Response:
    try:
        recursive = int(ctx.request.args.get("recursion", "0")) != 0
    except ValueError:
        recursive = False
    by_status: dict[str, list[Any]] = {}
    for op in _visible(ctx):
        entry: Any = op.to_json() if recursive else op.url
        by_status.setdefault(op.status.lower(), []).append(entry)
    return responses.sync(by_status)


@route("/1.0/operations/<op_id>", "GET")
def get_operation(ctx: Ctx, op_id: str) -> Response:
    return responses.sync(_find(ctx, op_id).to_json())


@route("/1.0/operations/<op_id>", "DELETE")
def cancel_operation(ctx: Ctx, op_id: str) -> Response:
    op = _find(ctx, op_id)
    ctx.ops.cancel(op, hook_errors=False)  # LXD's own refusals are 400s
    ctx.lifecycle("operation-cancelled", op.url, project=op.project or "default")
    return responses.empty()


@route("/1.0/operations/<op_id>/wait", "GET", untrusted=True)
def wait_operation(ctx: Ctx, op_id: str) -> Response:
    secret = ctx.request.args.get("secret", "")
    if not ctx.trusted and not secret:
        raise responses.forbidden()
    raw = ctx.request.args.get("timeout", "")
    timeout = -1
    if raw != "":
        timeout = _atoi(raw)
    op = _find(ctx, op_id)
    if secret and _secret_of(op) != secret:
        raise responses.forbidden()
    ctx.ops.wait(op, None if timeout < 0 else float(timeout))
    return responses.sync(op.to_json())


@route("/1.0/operations/<op_id>/websocket", "GET", untrusted=True)
def operation_websocket(ctx: Ctx, op_id: str) -> Response:
    op = ctx.ops.get(op_id)
    if op is None:
        if not ctx.request.args.get("secret", ""):
            raise LXDError(400, "missing secret")
        raise LXDError(404, "Operation not found")
    if op.cls != "websocket":
        raise LXDError(500, "Only websocket operations can be connected")
    if op.status_code != 103:
        raise LXDError(500, "Only running operations can be connected")
    if op.connect is None:
        raise LXDError(500, "Only websocket operations can be connected")
    # The hook checks ?secret= (403), then websocket.refusal(), then accepts: LXD's order.
    result: Response = op.connect(ctx)
    return result


def _secret_of(op: Operation) -> Any:
    metadata = op.metadata
    return metadata.get("secret") if isinstance(metadata, dict) else None


def _atoi(text: str) -> int:
    """Go's ``strconv.Atoi``: an optional sign and decimal digits, else its error."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise LXDError(500, f'strconv.Atoi: parsing {go_quote(text)}: invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise LXDError(500, f'strconv.Atoi: parsing {go_quote(text)}: value out of range')
    return value
