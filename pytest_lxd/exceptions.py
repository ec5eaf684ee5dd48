"""The client's exceptions: pylxd's names and hierarchy, plus the cases pylxd cannot tell apart.

Everything the server refuses is an :class:`LXDAPIException` (``NotFound``/``Conflict`` as in
pylxd, plus :class:`ETagMismatch`, :class:`Forbidden`, :class:`OperationFailed` and
:class:`OperationTimeout`). Everything that keeps the request from reaching the server, or its
answer from coming back, is a :class:`ClientConnectionFailed`; no ``requests`` exception leaks.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from .models.operation import Operation

__all__ = [
    "ClientConnectionFailed",
    "Conflict",
    "ETagMismatch",
    "Forbidden",
    "LXDAPIException",
    "LXDAPIExtensionNotAvailable",
    "NotFound",
    "OperationFailed",
    "OperationTimeout",
    "RequestTimeout",
]


def _message_of(response: requests.Response) -> str:
    """LXD's error text: ``error`` (or a failed operation's ``err``), else the raw body."""
    try:
        data = response.json()
    except ValueError:
        return str(response.text or response.reason or response.status_code)
    if isinstance(data, dict):
        metadata = data.get("metadata")
        if response.status_code == 200 and isinstance(metadata, dict) and metadata.get("err"):
            return str(metadata["err"])
        if data.get("error"):
            return str(data["error"])
    return json.dumps(data)


class LXDAPIException(Exception):
    """The server answered with an error (or a failed operation).

    ``response`` is the ``requests.Response`` (as in pylxd; None when the error was found by
    the client), ``error_code`` LXD's code (the HTTP status, or the failed operation's
    ``status_code``), ``message`` its text (also ``str(exc)``), ``operation`` the
    :class:`~pytest_lxd.models.operation.Operation` when one was involved.
    """

    def __init__(self, response: requests.Response | None = None, message: str | None = None,
                 *, error_code: int | None = None, operation: Operation | None = None) -> None:
        self.response = response
        self.operation = operation
        if message is None:
            message = _message_of(response) if response is not None else "LXD API error"
        if error_code is None:
            error_code = response.status_code if response is not None else 0
        self.message = message
        self.error_code = error_code
        super().__init__(message)

    @property
    def status_code(self) -> int | None:
        """The HTTP status of the response, if there was one."""
        return None if self.response is None else int(self.response.status_code)

    def __str__(self) -> str:
        return self.message


class NotFound(LXDAPIException):
    """HTTP 404: the object (or the route) does not exist."""


class Conflict(LXDAPIException):
    """HTTP 409: the name is taken (LXD uses 409 on some endpoints only)."""


class Forbidden(LXDAPIException):
    """HTTP 403: the client is not trusted (or not allowed to do this)."""


class ETagMismatch(LXDAPIException):
    """The object changed on the server since it was loaded (HTTP 412 on ``If-Match``).

    Raised by ``save()`` instead of silently overwriting a concurrent change: ``sync()`` the
    object (or ``rollback()``), re-apply the change and save again.
    """


class OperationFailed(LXDAPIException):
    """A background operation ended in ``Failure`` (or was ``Cancelled``).

    ``err`` is the operation's ``err`` text; ``operation`` is the final operation.
    """

    @property
    def err(self) -> str:
        return self.message


class OperationTimeout(LXDAPIException, TimeoutError):
    """A wait for a background operation ran past its bound; ``operation`` is still running."""


class LXDAPIExtensionNotAvailable(Exception):
    """The server does not advertise an API extension the call needs."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"LXD API extension '{name}' is not available on this server")


class ClientConnectionFailed(Exception):
    """The client could not talk to LXD: no socket, refused, TLS failure, bad URL, closed."""


class RequestTimeout(ClientConnectionFailed, TimeoutError):
    """The server did not answer a request within the client's ``timeout``."""
