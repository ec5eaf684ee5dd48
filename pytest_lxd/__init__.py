"""pytest-lxd: an LXD client (pylxd-compatible), a fake LXD server and a pytest plugin.

``from pytest_lxd import Client`` is a drop-in for ``from pylxd import Client``.

The client and its models are imported on first use, so that loading the pytest plugin (which
every pytest run of a project with pytest-lxd installed does) costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import exceptions
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

if TYPE_CHECKING:
    from .client import Client
    from .events import Event, EventType
    from .execute import ExecuteResult, ExecuteTimeout

#: The names imported on first use, and the module of each.
_LAZY = {"Client": ".client", "Event": ".events", "EventType": ".events",
         "ExecuteResult": ".execute", "ExecuteTimeout": ".execute"}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
