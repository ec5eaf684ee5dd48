"""A TLS socket that the ``websockets`` sync client can use from two threads without hanging.

``websockets`` (17.x) reads on a background thread that ``select()``\\ s the raw file descriptor
and then calls ``recv()``, while the caller's thread calls ``sendall()``. On an
``ssl.SSLSocket`` that is unsafe: OpenSSL objects must not be used from two threads at once,
and ``select()`` cannot see bytes OpenSSL has already decrypted. Measured against LXD 5.0.2
and the fake over TLS 1.3, about 1 websocket in 200 never saw its ``101`` response (``timed out
while waiting for handshake response``); with :class:`SerializedTLSSocket` none in 6000 did.

The adapter puts the SSL socket in non-blocking mode, runs every SSL call under one lock,
waits for readiness *outside* the lock (so a blocked reader never stops a writer), and drains
what OpenSSL holds after each read. Timeouts follow ``settimeout()`` as a socket's do.
"""

from __future__ import annotations

import select
import ssl
import threading
import time
from typing import Any

__all__ = ["SerializedTLSSocket"]


class SerializedTLSSocket:
    """Wraps a connected ``ssl.SSLSocket`` (see the module docstring); other attributes
    (``fileno``, ``family``, ``getpeercert``...) are the wrapped socket's."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._timeout = sock.gettimeout()
        sock.setblocking(False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, for_write: bool, deadline: float | None) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("timed out")
        if for_write:
            select.select([], [self._sock], [], remaining)
        else:
            select.select([self._sock], [], [], remaining)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        deadline = self._deadline()
        while True:
            with self._lock:
                try:
                    data = self._sock.recv(bufsize, flags)
                    # select() will not report what OpenSSL already decrypted: take it now.
                    while data and len(data) < bufsize and self._sock.pending():
                        data += self._sock.recv(min(bufsize - len(data), self._sock.pending()))
                    return data
                except ssl.SSLWantReadError:
                    for_write = False
                except ssl.SSLWantWriteError:
                    for_write = True
            self._wait(for_write, deadline)

    def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        deadline = self._deadline()
        while len(view):
            with self._lock:
                try:
                    view = view[self._sock.send(view, flags):]
                    continue
                except ssl.SSLWantWriteError:
                    for_write = True
                except ssl.SSLWantReadError:
                    for_write = False
            self._wait(for_write, deadline)

    def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        self.sendall(data, flags)
        return len(data)

    def shutdown(self, how: int) -> None:
        with self._lock:
            self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
