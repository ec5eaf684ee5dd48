"""Background operations: the :class:`Operation` handle and ``client.operations``."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from .. import exceptions
from ..operations import _UNSET, check_final, is_final, operation_id, wait_operation

if TYPE_CHECKING:
    from ..client import APINode, Client

__all__ = ["Operation", "OperationManager"]


class Operation:
    """One LXD operation: ``id``, ``status``, ``status_code``, ``metadata``, ``err``, ...

    Returned by every call made with ``wait=False`` that LXD runs in the background:
    :meth:`wait` for it, :meth:`cancel` it, :meth:`sync` it. Fields the server adds later are
    kept as attributes too (``class`` is also readable as :attr:`class_`).
    """

    id: str
    description: str
    created_at: str
    updated_at: str
    status: str
    status_code: int
    resources: dict[str, list[str]] | None
    metadata: dict[str, Any] | None
    may_cancel: bool
    err: str
    location: str

    def __init__(self, client: Client, data: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.client = client
        self._apply({**(data or {}), **kwargs})

    def _apply(self, data: dict[str, Any]) -> None:
        defaults: dict[str, Any] = {"description": "", "status": "", "status_code": 0,
                                    "resources": None, "metadata": None, "may_cancel": False,
                                    "err": "", "location": "", "created_at": "",
                                    "updated_at": ""}
        for key, value in {**defaults, **data}.items():
            if key not in defaults and key in dir(type(self)):
                continue  # never shadow a method with a server field
            self.__dict__[key] = value

    @property
    def class_(self) -> str:
        """The operation's ``class``: ``task``, ``websocket`` or ``token``."""
        return str(self.__dict__.get("class", ""))

    @property
    def api(self) -> APINode:
        return self.client.api.operations[self.id]

    @property
    def done(self) -> bool:
        """True once the operation is final (``Success``, ``Failure`` or ``Cancelled``)."""
        return is_final(self.__dict__)

    @property
    def succeeded(self) -> bool:
        return self.status_code == 200

    def sync(self) -> Operation:
        """Refresh from ``GET /1.0/operations/<id>``."""
        self._apply(self.api.get().json()["metadata"])
        return self

    def wait(self, timeout: float | None = _UNSET) -> Operation:
        """Wait until the operation ends; returns self, raises if it failed.

        ``timeout`` bounds the wait in seconds (default: the client's timeout; None: no
        bound); past it :class:`~pytest_lxd.exceptions.OperationTimeout` is raised. A failed
        or cancelled operation raises :class:`~pytest_lxd.exceptions.OperationFailed`
        carrying its ``err`` and this operation.
        """
        data, response = wait_operation(self.client, self.id, timeout)
        self._apply(data)
        check_final(self, response)
        return self

    def cancel(self) -> None:
        """Cancel the operation (``DELETE /1.0/operations/<id>``); LXD refuses for most tasks."""
        self.api.delete()
        try:
            self.sync()
        except exceptions.NotFound:
            pass

    def __repr__(self) -> str:
        return (f"Operation(id={self.id!r}, description={self.description!r}, "
                f"status={self.status!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Operation) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("operation", self.id))


class OperationManager:
    """``client.operations``: list, get and wait on operations."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def all(self) -> list[Operation]:
        """Every operation the server still holds (running, and finished in the last 5 s)."""
        response = self.client.api.operations.get(params={"recursion": 1})
        by_status = response.json()["metadata"] or {}
        result: list[Operation] = []
        for items in by_status.values():
            for item in items or []:
                if isinstance(item, dict):
                    result.append(Operation(self.client, item))
                else:
                    result.append(Operation(self.client, {"id": operation_id(str(item))}))
        return result

    def get(self, operation_id: str) -> Operation:
        """The operation with this id (an ``/1.0/operations/<id>?project=..`` URL works too)."""
        op_id = self.extract_operation_id(operation_id)
        response = self.client.api.operations[op_id].get()
        return Operation(self.client, response.json()["metadata"])

    def exists(self, operation_id: str) -> bool:
        try:
            self.get(operation_id)
        except exceptions.NotFound:
            return False
        return True

    def wait_for_operation(self, operation_id: str, timeout: float | None = _UNSET) -> Operation:
        """Wait for the operation to end (see :meth:`Operation.wait`) and return it."""
        op = Operation(self.client, {"id": self.extract_operation_id(operation_id)})
        return op.wait(timeout=timeout)

    @staticmethod
    def extract_operation_id(s: str) -> str:
        """The id from an id or an operation URL (its query string ignored)."""
        return operation_id(urllib.parse.unquote(s) if "%" in s else s)
