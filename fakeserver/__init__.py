"""A fake LXD server: the LXD REST API in memory, on a unix socket and over TLS."""

from .operations import Operation, OperationFailed
from .responses import LXDError
from .server import FakeLXD

__all__ = ["FakeLXD", "LXDError", "Operation", "OperationFailed"]
