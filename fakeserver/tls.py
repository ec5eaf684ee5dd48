"""TLS for the fake: a trustme CA, the server certificate, and client certificates as LXD does.

LXD accepts any client certificate in the TLS handshake (self-signed ones included) and decides
trust afterwards by its fingerprint. Python's ``ssl`` module cannot accept an unverifiable
client certificate, so the listener terminates TLS with pyOpenSSL and a verify callback that
accepts every certificate; trust is then the trust store's business (``/1.0/certificates``).
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

HANDSHAKE_TIMEOUT = 10.0

#: pyOpenSSL's ``SSL`` module, imported by the first listener that serves TLS (a fake whose
#: HTTPS port is never connected to does not pay for importing it).
SSL: Any = None


def _load_openssl() -> Any:
    global SSL
    if SSL is None:
        from OpenSSL import SSL as module

        SSL = module
    return SSL


def fingerprint_of_pem(pem: str | bytes) -> str:
    """The SHA-256 fingerprint (lowercase hex) LXD uses for a PEM certificate."""
    if isinstance(pem, str):
        pem = pem.encode()
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


class ServerTLS:
    """The server's CA (exposed so clients can verify), certificate and key, written to files."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.ca = trustme.CA(organization_name="pytest-lxd fake LXD")
        self.leaf = self.ca.issue_cert("127.0.0.1", "localhost", "::1",
                                       common_name="root@fake-lxd")
        self.ca_file = directory / "server.ca"
        self.cert_file = directory / "server.crt"
        self.key_file = directory / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.leaf.cert_chain_pems[0].write_to_path(str(self.cert_file))
        self.leaf.private_key_pem.write_to_path(str(self.key_file))
        self.certificate_pem = self.leaf.cert_chain_pems[0].bytes().decode()
        self.fingerprint = fingerprint_of_pem(self.certificate_pem)
        self._server_side: _ServerSide | None = None

    def server_side(self) -> _ServerSide:
        """What the HTTPS listener wraps connections with (its TLS context is made lazily)."""
        if self._server_side is None:
            self._server_side = _ServerSide(self)
        return self._server_side


def _accept_any(conn: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
    return True


class _ServerSide:
    """Wraps accepted sockets in pyOpenSSL connections that ask for (any) client certificate."""

    def __init__(self, material: ServerTLS) -> None:
        self.material = material
        self._context: Any = None
        self._lock = threading.Lock()

    @property
    def context(self) -> Any:
        """The pyOpenSSL context, made (and pyOpenSSL imported) at the first connection."""
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = self._make_context(self.material)
        return self._context

    @staticmethod
    def _make_context(material: ServerTLS) -> Any:
        _load_openssl()
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.use_certificate(x509.load_pem_x509_certificate(material.certificate_pem.encode()))
        ctx.use_privatekey(serialization.load_pem_private_key(
            material.leaf.private_key_pem.bytes(), None))
        ctx.check_privatekey()
        ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
        ctx.set_session_id(b"pytest-lxd-fake")
        return ctx

    def wrap(self, sock: socket.socket) -> TLSSocket:
        context = self.context  # imports pyOpenSSL on the first connection
        conn = SSL.Connection(context, sock)
        conn.set_accept_state()
        return TLSSocket(conn, sock)

    def handshake(self, tls_sock: TLSSocket) -> None:
        # A socket timeout makes the fd non-blocking for OpenSSL, so wait for it here.
        import select

        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        tls_sock.sock.setblocking(False)
        while True:
            try:
                tls_sock.conn.do_handshake()
                break
            except (SSL.WantReadError, SSL.WantWriteError) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OSError("TLS handshake timed out") from None
                reading = isinstance(exc, SSL.WantReadError)
                select.select([tls_sock.sock] if reading else [],
                              [] if reading else [tls_sock.sock], [], left)
        tls_sock.sock.setblocking(True)

    def peer_der(self, tls_sock: TLSSocket) -> bytes | None:
        """The DER of the client's certificate (None without one); read once per connection."""
        if tls_sock.peer_der is False:
            cert = tls_sock.conn.get_peer_certificate(as_cryptography=True)
            tls_sock.peer_der = (None if cert is None
                                 else cert.public_bytes(serialization.Encoding.DER))
        return tls_sock.peer_der if isinstance(tls_sock.peer_der, bytes) else None

    def peer_fingerprint(self, tls_sock: TLSSocket) -> str | None:
        der = self.peer_der(tls_sock)
        return None if der is None else fingerprint_of_der(der)


class _RawTLS(io.RawIOBase):
    def __init__(self, owner: TLSSocket, mode: str) -> None:
        self.owner = owner
        self.mode = mode

    def readable(self) -> bool:
        return "r" in self.mode

    def writable(self) -> bool:
        return "w" in self.mode

    def readinto(self, buffer: Any) -> int:
        return self.owner.recv_into(buffer)

    def write(self, data: Any) -> int:
        self.owner.sendall(bytes(data))
        return len(data)


class TLSSocket:
    """The socket-like face of a server-side TLS connection, for socketserver and websockets.

    Reads and writes may come from different threads (a websocket reader and writer), which an
    OpenSSL connection does not allow at once, so each call holds a lock.
    """

    def __init__(self, conn: Any, sock: socket.socket) -> None:
        self.conn = conn
        self.sock = sock
        self._lock = threading.Lock()
        self.peer_der: bytes | None | bool = False  # False: not read yet

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        size = nbytes or len(buffer)
        while True:
            try:
                with self._lock:
                    data = self.conn.recv(size)
            except SSL.WantReadError:
                _wait_readable(self.sock)
                continue
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return 0
            except SSL.Error as exc:
                raise OSError(str(exc)) from exc
            buffer[: len(data)] = data
            return len(data)

    def recv(self, size: int) -> bytes:
        buf = bytearray(size)
        got = self.recv_into(buf)
        return bytes(buf[:got])

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                with self._lock:
                    sent = self.conn.send(view[:16384].tobytes())
            except SSL.WantWriteError:
                continue
            except SSL.WantReadError:
                _wait_readable(self.sock)
                continue
            except SSL.Error as exc:
                raise ConnectionError(str(exc)) from exc
            view = view[sent:]

    send = sendall

    def makefile(self, mode: str = "r", buffering: int = -1) -> Any:
        raw = _RawTLS(self, mode)
        size = io.DEFAULT_BUFFER_SIZE if buffering in (-1, None) else buffering
        if "r" in mode:
            return io.BufferedReader(raw, max(size, 1))
        if size == 0:
            return raw
        return io.BufferedWriter(raw, size)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        try:
            with self._lock:
                self.conn.shutdown()
        except SSL.Error:
            pass
        try:
            self.sock.shutdown(how)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def fileno(self) -> int:
        return self.sock.fileno()

    def getpeername(self) -> Any:
        return self.sock.getpeername()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def pending(self) -> int:
        return self.conn.pending()


def _wait_readable(sock: socket.socket) -> None:
    import select

    select.select([sock], [], [], 1.0)
