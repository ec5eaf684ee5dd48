"""A small SFTP v3 client over LXD's ``/sftp`` upgrade, for the tests (stdlib only).

``upgrade(path, name, project)`` opens the unix socket, sends the upgrade request and returns
the status line, the headers and the socket (with whatever followed the reply's head);
:class:`SFTP` then speaks draft-ietf-secsh-filexfer-02 packets on it.
"""

from __future__ import annotations

import socket
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT = 1, 2, 3, 4, 5, 6, 7, 8
SETSTAT, FSETSTAT, OPENDIR, READDIR, REMOVE, MKDIR, RMDIR = 9, 10, 11, 12, 13, 14, 15
REALPATH, STAT, RENAME, READLINK, SYMLINK = 16, 17, 18, 19, 20
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED, EXTENDED_REPLY = 101, 102, 103, 104, 105, 200, 201

FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_FAILURE = 0, 1, 2, 3, 4
FX_BAD_MESSAGE, FX_OP_UNSUPPORTED = 5, 8

F_READ, F_WRITE, F_APPEND, F_CREAT, F_TRUNC, F_EXCL = 1, 2, 4, 8, 0x10, 0x20
A_SIZE, A_UIDGID, A_PERMISSIONS, A_ACMODTIME = 1, 2, 4, 8


def upgrade_request(name: str, project: str | None = None, *, upgrade: str | None = "sftp",
                    prefix: str = "instances", host: str = "lxd") -> bytes:
    target = f"/1.0/{prefix}/{urllib.parse.quote(name, safe='')}/sftp"
    if project:
        target += "?project=" + urllib.parse.quote(project, safe="")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    if upgrade is not None:
        lines += ["Connection: Upgrade", f"Upgrade: {upgrade}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_head(sock: Any) -> tuple[str, dict[str, str], bytes]:
    """The reply's status line, headers (names as sent) and the bytes read past them."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the reply head: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key] = value.strip()
    return status, headers, rest


def connect(socket_path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(socket_path)
    return sock


def upgrade(socket_path: str, name: str, project: str | None = None,
            **kw: Any) -> tuple[str, dict[str, str], bytes, socket.socket]:
    sock = connect(socket_path)
    sock.sendall(upgrade_request(name, project, **kw))
    status, headers, rest = read_head(sock)
    return status, headers, rest, sock


# -- encoding ----------------------------------------------------------------------------------


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def string(value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return u32(len(data)) + data


def attrs(*, size: int | None = None, uid: int | None = None, gid: int | None = None,
          perms: int | None = None, atime: int | None = None, mtime: int | None = None) -> bytes:
    flags, body = 0, b""
    if size is not None:
        flags |= A_SIZE
        body += u64(size)
    if uid is not None or gid is not None:
        flags |= A_UIDGID
        body += u32(uid or 0) + u32(gid or 0)
    if perms is not None:
        flags |= A_PERMISSIONS
        body += u32(perms)
    if atime is not None or mtime is not None:
        flags |= A_ACMODTIME
        body += u32(atime or 0) + u32(mtime or 0)
    return u32(flags) + body


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u32(self) -> int:
        value: int = struct.unpack_from(">I", self.data, self.pos)[0]
        self.pos += 4
        return value

    def u64(self) -> int:
        value: int = struct.unpack_from(">Q", self.data, self.pos)[0]
        self.pos += 8
        return value

    def bytes(self) -> bytes:
        size = self.u32()
        value = self.data[self.pos:self.pos + size]
        if len(value) != size:
            raise ValueError("short string")
        self.pos += size
        return value

    def str(self) -> str:
        return self.bytes().decode("utf-8", "surrogateescape")

    def attrs(self) -> dict[str, int]:
        flags = self.u32()
        out = {"flags": flags}
        if flags & A_SIZE:
            out["size"] = self.u64()
        if flags & A_UIDGID:
            out["uid"], out["gid"] = self.u32(), self.u32()
        if flags & A_PERMISSIONS:
            out["perms"] = self.u32()
        if flags & A_ACMODTIME:
            out["atime"], out["mtime"] = self.u32(), self.u32()
        if flags & 0x80000000:
            for _ in range(self.u32()):
                self.bytes()
                self.bytes()
        return out

    @property
    def rest(self) -> bytes:
        return self.data[self.pos:]


@dataclass
class Reply:
    """One server packet, decoded by type."""

    type: int
    id: int | None
    raw: bytes
    code: int | None = None
    message: str | None = None
    lang: str | None = None
    handle: bytes | None = None
    data: bytes | None = None
    names: list[tuple[str, str, dict[str, int]]] = field(default_factory=list)
    attrs: dict[str, int] | None = None
    version: int | None = None
    extensions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status(self) -> tuple[int | None, str | None]:
        return self.code, self.message


def decode(packet: bytes) -> Reply:
    kind = packet[0]
    body = Reader(packet[1:])
    if kind == VERSION:
        reply = Reply(kind, None, packet, version=body.u32())
        while body.pos < len(body.data):
            reply.extensions.append((body.str(), body.str()))
        return reply
    reply = Reply(kind, body.u32(), packet)
    if kind == STATUS:
        reply.code = body.u32()
        reply.message = body.str()
        reply.lang = body.str()
    elif kind == HANDLE:
        reply.handle = body.bytes()
    elif kind == DATA:
        reply.data = body.bytes()
    elif kind == NAME:
        for _ in range(body.u32()):
            reply.names.append((body.str(), body.str(), body.attrs()))
    elif kind == ATTRS:
        reply.attrs = body.attrs()
    elif kind == EXTENDED_REPLY:
        reply.data = body.rest
    return reply


class SFTP:
    """Packets on an upgraded connection; every request waits for its reply."""

    def __init__(self, sock: Any, rest: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(rest)
        self.next_id = 1

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, kind: int, payload: bytes) -> None:
        self.send_raw(u32(len(payload) + 1) + bytes([kind]) + payload)

    def _fill(self, size: int) -> bool:
        while len(self.buf) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv(self) -> Reply | None:
        """The next packet, or None at EOF."""
        if not self._fill(4):
            return None
        size = struct.unpack_from(">I", self.buf)[0]
        if not self._fill(4 + size):
            return None
        packet = bytes(self.buf[4:4 + size])
        del self.buf[:4 + size]
        return decode(packet)

    def eof(self) -> bool:
        """True when the server closes (after anything it still sends is read)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, TimeoutError):
            return False

    def init(self, version: int = 3, *extensions: tuple[str, str]) -> Reply:
        payload = u32(version) + b"".join(string(k) + string(v) for k, v in extensions)
        self.send(INIT, payload)
        reply = self.recv()
        assert reply is not None
        return reply

    def call(self, kind: int, payload: bytes) -> Reply:
        ident = self.next_id
        self.next_id += 1
        self.send(kind, u32(ident) + payload)
        reply = self.recv()
        assert reply is not None, "connection closed"
        assert reply.id == ident, reply
        return reply

    # -- operations (each returns the reply) --------------------------------------------------
    def open(self, path: str | bytes, flags: int, attr: bytes = b"\0\0\0\0") -> Reply:
        return self.call(OPEN, string(path) + u32(flags) + attr)

    def close(self, handle: bytes) -> Reply:
        return self.call(CLOSE, string(handle))

    def read(self, handle: bytes, offset: int, size: int) -> Reply:
        return self.call(READ, string(handle) + u64(offset) + u32(size))

    def write(self, handle: bytes, offset: int, data: bytes) -> Reply:
        return self.call(WRITE, string(handle) + u64(offset) + string(data))

    def lstat(self, path: str | bytes) -> Reply:
        return self.call(LSTAT, string(path))

    def stat(self, path: str | bytes) -> Reply:
        return self.call(STAT, string(path))

    def fstat(self, handle: bytes) -> Reply:
        return self.call(FSTAT, string(handle))

    def setstat(self, path: str | bytes, attr: bytes) -> Reply:
        return self.call(SETSTAT, string(path) + attr)

    def fsetstat(self, handle: bytes, attr: bytes) -> Reply:
        return self.call(FSETSTAT, string(handle) + attr)

    def opendir(self, path: str | bytes) -> Reply:
        return self.call(OPENDIR, string(path))

    def readdir(self, handle: bytes) -> Reply:
        return self.call(READDIR, string(handle))

    def remove(self, path: str | bytes) -> Reply:
        return self.call(REMOVE, string(path))

    def mkdir(self, path: str | bytes, attr: bytes = b"\0\0\0\0") -> Reply:
        return self.call(MKDIR, string(path) + attr)

    def rmdir(self, path: str | bytes) -> Reply:
        return self.call(RMDIR, string(path))

    def realpath(self, path: str | bytes) -> Reply:
        return self.call(REALPATH, string(path))

    def rename(self, old: str | bytes, new: str | bytes) -> Reply:
        return self.call(RENAME, string(old) + string(new))

    def readlink(self, path: str | bytes) -> Reply:
        return self.call(READLINK, string(path))

    def symlink(self, target: str | bytes, link: str | bytes) -> Reply:
        """OpenSSH's order (which pkg/sftp follows): the target first, then the link."""
        return self.call(SYMLINK, string(target) + string(link))

    def extended(self, request: str, payload: bytes = b"") -> Reply:
        return self.call(EXTENDED, string(request) + payload)

    # -- conveniences ---------------------------------------------------------------------------
    def put(self, path: str, data: bytes, flags: int = F_WRITE | F_CREAT | F_TRUNC) -> None:
        opened = self.open(path, flags)
        assert opened.type == HANDLE and opened.handle is not None, opened
        if data:
            written = self.write(opened.handle, 0, data)
            assert written.status == (FX_OK, ""), written
        self.close(opened.handle)

    def get(self, path: str) -> bytes:
        opened = self.open(path, F_READ)
        assert opened.type == HANDLE and opened.handle is not None, opened
        out = b""
        while True:
            got = self.read(opened.handle, len(out), 32768)
            if got.type != DATA:
                assert got.code == FX_EOF, got
                break
            assert got.data is not None
            out += got.data
        self.close(opened.handle)
        return out

    def listdir(self, path: str) -> list[tuple[str, str, dict[str, int]]]:
        opened = self.opendir(path)
        assert opened.type == HANDLE and opened.handle is not None, opened
        names: list[tuple[str, str, dict[str, int]]] = []
        while True:
            got = self.readdir(opened.handle)
            if got.type != NAME:
                assert got.code == FX_EOF, got
                break
            names += got.names
        self.close(opened.handle)
        return names
