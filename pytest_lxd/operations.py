"""Waiting on LXD background operations.

LXD answers long actions with HTTP 202 and an operation. :func:`handle_async` turns such a reply
into an :class:`~pytest_lxd.models.operation.Operation` (and waits on it when asked);
:func:`wait_operation` waits through ``GET /1.0/operations/<id>/wait?timeout=N`` in chunks, so a
wait is bounded by the caller's timeout (the client's ``timeout`` by default) and a long
operation never turns into a raw read timeout.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import requests

from . import exceptions
from .transport import read_timeout

if TYPE_CHECKING:
    from .client import Client
    from .models.operation import Operation

#: Longest single ``/wait`` request, in seconds (an unbounded wait is a loop of these).
WAIT_CHUNK = 30
#: Extra seconds the HTTP read may take beyond the server-side ``/wait`` timeout.
READ_MARGIN = 10.0

_UNSET: Any = object()


def operation_id(value: str) -> str:
    """The id from an id, an ``/1.0/operations/<id>`` path, or a full URL (query ignored)."""
    path = urllib.parse.urlsplit(value).path if "/" in value or "?" in value else value
    return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])


def is_final(data: dict[str, Any]) -> bool:
    return int(data.get("status_code") or 0) >= 200


def wait_operation(client: Client, op_id: str, timeout: float | None = _UNSET,
                   ) -> tuple[dict[str, Any], requests.Response]:
    """Wait until the operation is final or ``timeout`` seconds pass (None: no bound).

    Returns the operation's JSON and the last ``/wait`` response; raises
    :class:`~pytest_lxd.exceptions.OperationTimeout` if it is still running at the deadline
    (failures are left to the caller).
    """
    if timeout is _UNSET:
        timeout = read_timeout(client.timeout)
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    path = f"/{client.version}/operations/{urllib.parse.quote(op_id, safe='')}/wait"
    connect = client.timeout[0] if isinstance(client.timeout, tuple) else 30.0
    while True:
        if deadline is None:
            chunk = WAIT_CHUNK
        else:
            chunk = max(0, min(WAIT_CHUNK, math.ceil(deadline - time.monotonic())))
        response = client.transport.request("GET", path, params={"timeout": chunk},
                                            timeout=(connect, chunk + READ_MARGIN))
        data = response.json()["metadata"]
        if is_final(data):
            return data, response
        if deadline is not None and time.monotonic() >= deadline:
            from .models.operation import Operation

            raise exceptions.OperationTimeout(
                response, f"operation {op_id} ({data.get('description', '')}) still "
                f"{data.get('status', 'running')} after {timeout} s",
                error_code=int(data.get("status_code") or 0),
                operation=Operation(client, data))


def check_final(op: Operation, response: requests.Response | None = None) -> None:
    """Raise :class:`~pytest_lxd.exceptions.OperationFailed` unless ``op`` succeeded."""
    if op.status_code == 200:
        return
    err = op.err or f"operation {op.status or 'failed'}"
    raise exceptions.OperationFailed(response, err, error_code=op.status_code, operation=op)


def handle_async(client: Client, response: requests.Response, wait: bool,
                 timeout: float | None = _UNSET) -> Operation | None:
    """The operation of an async (202) reply, waited on if ``wait``; None for a sync reply."""
    from .models.operation import Operation

    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("type") != "async":
        return None
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or "id" not in metadata:
        metadata = {"id": operation_id(str(body.get("operation", "")))}
    op = Operation(client, metadata)
    if wait:
        op.wait(timeout=timeout)
    return op
