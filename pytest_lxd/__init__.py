"""pytest-lxd: an LXD client (pylxd-compatible), a fake LXD server and a pytest plugin.

``from pytest_lxd import Client`` is a drop-in for ``from pylxd import Client``.
"""

from . import exceptions
from .client import Client
from .events import Event, EventType
from .exceptions import (
    ClientConnectionFailed,
    Conflict,
    ETagMismatch,
    LXDAPIException,
    LXDAPIExtensionNotAvailable,
    NotFound,
    OperationFailed,
    OperationTimeout,
)
from .execute import ExecuteResult, ExecuteTimeout

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClientConnectionFailed",
    "Conflict",
    "ETagMismatch",
    "Event",
    "EventType",
    "ExecuteResult",
    "ExecuteTimeout",
    "LXDAPIException",
    "LXDAPIExtensionNotAvailable",
    "NotFound",
    "OperationFailed",
    "OperationTimeout",
    "__version__",
    "exceptions",
]
