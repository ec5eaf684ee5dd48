"""``GET /1.0/instances/{name}/sftp``: an SFTP session on an instance's filesystem.

LXD 5.0.2 checks the request (``Upgrade: sftp``, else a 400 ``Missing or invalid upgrade
header``), finds the instance (running or stopped), takes the connection over and answers
``101 Switching Protocols`` (``Upgrade: sftp``, ``Connection: Upgrade``); the connection then
carries raw SFTP version 3 (draft-ietf-secsh-filexfer-02) served by pkg/sftp inside the
instance. Only ``/1.0/instances`` has it (the ``containers``/``virtual-machines`` aliases are a
plain 404). The fake serves the same protocol over the instance's in-memory filesystem
(:mod:`fakeserver.vfs`) with pkg/sftp's answers: extensions ``hardlink``, ``posix-rename`` and
``statvfs`` (``@openssh.com``); Go's error texts (``open /srv: is a directory``) and status codes
(a missing path is ``NO_SUCH_FILE``, EPERM/EACCES ``PERMISSION_DENIED``, the rest ``FAILURE``);
handles numbered ``1``, ``2``...; reads of at most 32 KiB; attributes with size, owner,
permissions and times (the access time is the modification time); ``ls -l`` long names with the
owners named from the instance's ``/etc/passwd`` and ``/etc/group``; new files ``0644`` and
directories ``0755`` whatever the client asks; SETSTAT fields read in pkg/sftp's order (size,
permissions, times, owner) rather than the wire's. Like pkg/sftp it drops the connection on a
packet it cannot parse, an unknown packet type, or a length over 256 KiB.

One thread (the request's) serves a session; a reset or a stopped server ends it, and so does
the instance going away. Divergences (tests/fakeserver/test_instance_sftp.py): READDIR lists
names sorted; a hard link shares the file only until one name is written to (later writes do
not show through the other name); an open file keeps its content once removed and follows
renames made in its session, but not renames made elsewhere (exec, another session); statvfs
figures are made up; files are capped at :data:`MAX_FILE` bytes (``file too large``, LXD makes
a sparse file); a running instance shows its image's ``/proc``, ``/sys`` and ``/dev``, not
mounted filesystems; an open session does not hold back starting, stopping or snapshotting the
instance (LXD 5.0.2 waits for it to end); after a malformed session LXD may drop the next one,
the fake serves it.
"""

from __future__ import annotations

import collections
import dataclasses
import posixpath
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from .. import websocket
from ..app import Ctx
from ..imagefile import Entry
from ..responses import LXDError
from ..vfs import FS, GO_TEXT, FSError
from . import instances, route

MAX_PACKET = 256 * 1024  # pkg/sftp's maxMsgLength: a longer packet ends the session
MAX_READ = 32 * 1024  # pkg/sftp's maxTxPacket: a READ returns at most this much
MAX_FILE = 256 * 1024 * 1024  # the fake keeps files in memory: bigger is EFBIG
READDIR_CHUNK = 128  # names per READDIR, as Go's File.Readdir(128)
UMASK = 0o022
ID_RANGE = 10_000_001  # the container's id map (as for /files): other ids are EINVAL
EXTENSIONS = (("hardlink@openssh.com", "1"), ("posix-rename@openssh.com", "1"),
              ("statvfs@openssh.com", "2"))

INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT = 1, 2, 3, 4, 5, 6, 7, 8
SETSTAT, FSETSTAT, OPENDIR, READDIR, REMOVE, MKDIR, RMDIR = 9, 10, 11, 12, 13, 14, 15
REALPATH, STAT, RENAME, READLINK, SYMLINK = 16, 17, 18, 19, 20
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED, EXTENDED_REPLY = 101, 102, 103, 104, 105, 200, 201

FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_FAILURE = 0, 1, 2, 3, 4
FX_OP_UNSUPPORTED = 8

F_READ, F_WRITE, F_APPEND, F_CREAT, F_TRUNC, F_EXCL = 1, 2, 4, 8, 0x10, 0x20
A_SIZE, A_UIDGID, A_PERMISSIONS, A_ACMODTIME = 1, 2, 4, 8

S_IFREG, S_IFDIR, S_IFLNK = 0o100000, 0o040000, 0o120000
DIR_SIZE = 4096
ERRNO_TEXT = {**GO_TEXT, "EBADF": "bad file descriptor", "EFBIG": "file too large",
              "EPERM": "operation not permitted"}
_NO_EVENTS = frozenset({"sftp-session"})  # a listener that only hears the hub close


class _Drop(Exception):
    """pkg/sftp cannot parse the packet (or does not know its type): the session ends."""


class _Failed(Exception):
    """An error status: Go's text and pkg/sftp's code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _errno_code(errno: str, link: bool = False) -> int:
    """pkg/sftp's status for an errno: ENOENT is NO_SUCH_FILE; EACCES/EPERM are
    PERMISSION_DENIED unless wrapped in a LinkError (rename, link, symlink); else FAILURE."""
    if errno == "ENOENT":
        return FX_NO_SUCH_FILE
    if errno in ("EACCES", "EPERM") and not link:
        return FX_PERMISSION_DENIED
    return FX_FAILURE


def _path_error(op: str, path: str, errno: str) -> _Failed:
    """Go's ``*os.PathError``: ``op path: text``."""
    return _Failed(_errno_code(errno), f"{op} {path}: {ERRNO_TEXT.get(errno, errno)}")


def _lookup(fs: FS, path: str, op: str, *, follow: bool) -> tuple[str, Entry]:
    """``path``'s entry and where it is (``follow``: through a final symlink), or the
    status error of ``op``."""
    try:
        found = fs.stat(path) if follow else fs.lstat(path)
    except FSError as exc:
        raise _path_error(op, path, exc.code) from None
    assert found.entry is not None
    return found.path, found.entry


def _link_error(op: str, old: str, new: str, errno: str) -> _Failed:
    """Go's ``*os.LinkError``: ``op old new: text``."""
    return _Failed(_errno_code(errno, link=True),
                   f"{op} {old} {new}: {ERRNO_TEXT.get(errno, errno)}")


def _bare(errno: str) -> _Failed:
    """A bare ``syscall.Errno``."""
    return _Failed(_errno_code(errno), ERRNO_TEXT.get(errno, errno))


# -- wire format --------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise _Drop("packet too short")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack(">Q", self._take(8))[0]
        return value

    def string(self) -> bytes:
        return self._take(self.u32())

    def text(self) -> str:
        return self.string().decode("utf-8", "surrogateescape")

    @property
    def rest(self) -> bytes:
        return self.data[self.pos:]

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _u32(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def _u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def _string(value: bytes | str) -> bytes:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return _u32(len(data)) + data


def _packet(kind: int, payload: bytes) -> bytes:
    return _u32(len(payload) + 1) + bytes([kind]) + payload


def _status(ident: int, code: int, message: str = "") -> bytes:
    return _packet(STATUS, _u32(ident) + _u32(code) + _string(message) + _string(""))


# -- attributes -----------------------------------------------------------------------------------


def _mode_bits(entry: Entry) -> int:
    if entry.type == "directory":
        return S_IFDIR | (entry.mode & 0o7777)
    if entry.type == "symlink":
        return S_IFLNK | 0o777
    return S_IFREG | (entry.mode & 0o7777)


def _size(entry: Entry) -> int:
    if entry.type == "directory":
        return DIR_SIZE
    if entry.type == "symlink":
        return len(entry.target.encode("utf-8", "surrogateescape"))
    return len(entry.content)


def _attrs(entry: Entry, ns: int) -> bytes:
    """What pkg/sftp sends for a stat: size, owner, permissions, times (atime = mtime)."""
    seconds = ns // 1_000_000_000
    return (_u32(A_SIZE | A_UIDGID | A_PERMISSIONS | A_ACMODTIME) + _u64(_size(entry))
            + _u32(entry.uid) + _u32(entry.gid) + _u32(_mode_bits(entry))
            + _u32(seconds) + _u32(seconds))


def _perm_string(entry: Entry) -> str:
    mode = entry.mode & 0o7777 if entry.type != "symlink" else 0o777
    kind = {"directory": "d", "symlink": "l"}.get(entry.type, "-")
    chars = []
    for shift, special, lower, upper in ((6, 0o4000, "s", "S"), (3, 0o2000, "s", "S"),
                                         (0, 0o1000, "t", "T")):
        bits = (mode >> shift) & 7
        chars.append("r" if bits & 4 else "-")
        chars.append("w" if bits & 2 else "-")
        if mode & special:
            chars.append(lower if bits & 1 else upper)
        else:
            chars.append("x" if bits & 1 else "-")
    return kind + "".join(chars)


def _id_names(fs: FS, path: str) -> dict[int, str]:
    """Ids to names from the instance's ``/etc/passwd`` or ``/etc/group`` (Go's
    ``user.LookupId`` runs inside the instance); an unreadable file names nobody."""
    try:
        text = fs.read(path).decode("utf-8", "replace")
    except FSError:
        return {}
    names: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names


def _long_name(fs: FS, path: str, name: str, entry: Entry, ns: int, now: float,
               owners: tuple[dict[int, str], dict[int, str]], sharing: dict[int, int]) -> str:
    """pkg/sftp's ``ls -l`` line for READDIR: mode, links, owner, group, size, date, name."""
    users, groups = owners
    user, group = users.get(entry.uid, str(entry.uid)), groups.get(entry.gid, str(entry.gid))
    links = max(1, sharing.get(id(entry), 1))  # hard links share one entry
    if entry.type == "directory":
        links = 2 + sum(1 for child in fs.listdir(path)
                        if fs.tree[posixpath.join(path, child)].type == "directory")
    seconds = ns // 1_000_000_000
    stamp = time.gmtime(seconds)
    date = f"{time.strftime('%b', stamp)} {stamp.tm_mday}"
    old = seconds < now - 182.5 * 86400
    year_or_time = str(stamp.tm_year) if old else time.strftime("%H:%M", stamp)
    return (f"{_perm_string(entry)} {links:4d} {user:<8} {group:<8} "
            f"{_size(entry):8d} {date} {year_or_time:>5} {name}")


# -- the session ---------------------------------------------------------------------------------


@dataclass
class _Handle:
    name: str  # the path as the client sent it (Go's File.Name())
    path: str  # the canonical path when opened
    directory: bool
    readable: bool
    writable: bool
    last: Entry | None = None  # the file as last seen through this handle
    orphan: bool = False  # its path lost the file (removed): the handle keeps it alone
    listing: list[str] | None = None  # a directory's names, read at the first READDIR


class SFTPSession:
    """One upgraded connection, served in the request's thread until it ends."""

    def __init__(self, ctx: Ctx, name: str, record: dict[str, Any]) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.project = ctx.project
        self.name = name
        self.record = record
        self.handles: dict[str, _Handle] = {}
        self.count = 0
        self.sock: Any = None
        self.rfile: Any = None
        self._ended = threading.Event()

    # -- lifetime -----------------------------------------------------------------------------
    def serve(self, sock: Any, rfile: Any) -> None:
        self.sock, self.rfile = sock, rfile
        listener = self.ctx.events.subscribe(_NO_EVENTS, None, notify=self.end)
        sessions = self.ctx.server.sftp_sessions
        sessions.add(self)
        try:
            self._loop()
        finally:
            sessions.discard(self)
            self.ctx.events.unsubscribe(listener)
            self.handles.clear()
            self.end()

    def end(self) -> None:
        """Drop the connection (from any thread): the session's read sees EOF and it ends."""
        if self._ended.is_set() or self.sock is None:
            return
        self._ended.set()
        raw = getattr(self.sock, "sock", self.sock)
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            try:
                chunk = self.rfile.read(size - len(data))
            except (OSError, ValueError):
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _loop(self) -> None:
        while not self._ended.is_set():
            head = self._read(4)
            if head is None:
                return
            length = struct.unpack(">I", head)[0]
            if length == 0 or length > MAX_PACKET:
                return
            body = self._read(length)
            if body is None:
                return
            try:
                reply = self._dispatch(body[0], _Reader(body[1:]))
            except _Drop:
                return
            try:
                self.sock.sendall(reply)
            except (OSError, ValueError):
                return

    # -- dispatch ---------------------------------------------------------------------------------
    def _fs(self) -> FS:
        current = self.state.families["instances"].get(self.project, {}).get(self.name)
        if current is not self.record:  # deleted, renamed or reset away
            self.end()
            raise _Drop("instance gone")
        return FS(self.record)

    def _dispatch(self, kind: int, body: _Reader) -> bytes:
        if kind == INIT:
            body.u32()
            while body.left:
                body.string()
                body.string()
            return _packet(VERSION, _u32(3) + b"".join(_string(k) + _string(v)
                                                       for k, v in EXTENSIONS))
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise _Drop(f"unknown packet type {kind}")
        ident = body.u32()
        with self.state.lock:
            fs = self._fs()
            try:
                return handler(self, fs, ident, body)
            except _Failed as exc:
                return _status(ident, exc.code, exc.message)

    def _handle(self, body: _Reader) -> _Handle:
        handle = self.handles.get(body.text())
        if handle is None:
            raise _bare("EBADF")
        return handle

    def _new_handle(self, handle: _Handle) -> str:
        self.count += 1
        key = str(self.count)
        self.handles[key] = handle
        return key

    # -- files ------------------------------------------------------------------------------------
    def _open(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()
        pflags = body.u32()
        body.u32()  # the attributes' flags; pkg/sftp ignores the attributes
        readable, writable = bool(pflags & F_READ), bool(pflags & F_WRITE)
        if not readable and not writable:
            raise _bare("EINVAL")
        try:
            if pflags & F_CREAT and pflags & F_EXCL:
                if fs.resolve(path, follow=False).entry is not None:
                    raise FSError("EEXIST", path)
            found = fs.resolve(path)
            entry = found.entry
            if entry is None:
                if not pflags & F_CREAT:
                    raise FSError("ENOENT", path)
                canonical = fs.write(path, b"", mode=0o644 & ~UMASK)
            elif entry.type == "directory":
                if writable or pflags & F_CREAT:
                    raise FSError("EISDIR", path)
                canonical = found.path
            else:
                canonical = found.path
                if pflags & F_TRUNC and entry.content:
                    fs.write(canonical, b"")
        except FSError as exc:
            raise _path_error("open", path, exc.code) from None
        directory = fs.tree[canonical].type == "directory"
        key = self._new_handle(_Handle(path, canonical, directory, readable, writable))
        return _packet(HANDLE, _u32(ident) + _string(key))

    def _close(self, fs: FS, ident: int, body: _Reader) -> bytes:
        key = body.text()
        if self.handles.pop(key, None) is None:
            raise _bare("EBADF")
        return _status(ident, FX_OK)

    def _content(self, fs: FS, handle: _Handle) -> Entry:
        """The open file: what its path holds, or (an unlinked file, like an open inode) what
        it held when it went away."""
        entry = None if handle.orphan else fs.tree.get(handle.path)
        if entry is not None and entry.type == "file":
            handle.last = entry
            return entry
        handle.orphan = True
        if handle.last is None:
            handle.last = Entry("file", 0o644)
        return handle.last

    def _store(self, fs: FS, handle: _Handle, content: bytes) -> None:
        entry = dataclasses.replace(self._content(fs, handle), content=content)
        handle.last = entry
        if not handle.orphan:
            fs.replace(handle.path, entry, time.time_ns())

    def _read_op(self, fs: FS, ident: int, body: _Reader) -> bytes:
        handle = self._handle(body)
        offset, size = body.u64(), body.u32()
        if handle.directory:
            raise _path_error("read", handle.name, "EISDIR")
        if not handle.readable:
            raise _path_error("read", handle.name, "EBADF")
        if offset >= 1 << 63:
            raise _Failed(FX_FAILURE, f"readat {handle.name}: negative offset")
        data = self._content(fs, handle).content[offset:offset + min(size, MAX_READ)]
        if not data and size:
            raise _Failed(FX_EOF, "EOF")
        return _packet(DATA, _u32(ident) + _string(data))

    def _write_op(self, fs: FS, ident: int, body: _Reader) -> bytes:
        handle = self._handle(body)
        offset, data = body.u64(), body.string()
        if handle.directory or not handle.writable:
            raise _path_error("write", handle.name, "EBADF")
        if offset >= 1 << 63:
            raise _Failed(FX_FAILURE, f"writeat {handle.name}: negative offset")
        if offset + len(data) > MAX_FILE:
            raise _path_error("write", handle.name, "EFBIG")
        old = self._content(fs, handle).content
        if data:
            if offset == len(old):
                content = old + data
            else:
                buf = bytearray(old)
                if offset > len(buf):
                    buf.extend(bytes(offset - len(buf)))
                buf[offset:offset + len(data)] = data
                content = bytes(buf)
            self._store(fs, handle, content)
        return _status(ident, FX_OK)

    # -- stat -------------------------------------------------------------------------------------
    def _stat_reply(self, fs: FS, ident: int, path: str, entry: Entry) -> bytes:
        return _packet(ATTRS, _u32(ident) + _attrs(entry, fs.mtime(path)))

    def _lstat(self, fs: FS, ident: int, body: _Reader) -> bytes:
        return self._stat_path(fs, ident, body.text(), follow=False)

    def _stat(self, fs: FS, ident: int, body: _Reader) -> bytes:
        return self._stat_path(fs, ident, body.text(), follow=True)

    def _stat_path(self, fs: FS, ident: int, path: str, *, follow: bool) -> bytes:
        where, entry = _lookup(fs, path, "stat" if follow else "lstat", follow=follow)
        return self._stat_reply(fs, ident, where, entry)

    def _fstat(self, fs: FS, ident: int, body: _Reader) -> bytes:
        handle = self._handle(body)
        entry = fs.tree.get(handle.path)
        if handle.directory:
            if entry is None or entry.type != "directory":
                entry = Entry("directory", 0o755)
            return self._stat_reply(fs, ident, handle.path, entry)
        entry = self._content(fs, handle)
        return self._stat_reply(fs, ident, handle.path, entry)

    def _apply_attrs(self, fs: FS, body: _Reader, name: str,
                     resolve: Any, handle: _Handle | None = None) -> None:
        """SETSTAT/FSETSTAT as pkg/sftp does them: truncate, chmod, chtimes, chown in turn,
        each result replacing the last (only the last step's error is reported)."""
        flags = body.u32()
        attrs = _Reader(body.rest)
        error: _Failed | None = None

        def step(op: str, change: Any) -> _Failed | None:
            try:
                path = resolve()
                change(path, fs.tree[path])
            except FSError as exc:
                return _path_error(op, name, exc.code)
            except _Failed as exc:
                return exc
            return None

        def short() -> _Failed:
            return _Failed(FX_FAILURE, "packet too short")

        if flags & A_SIZE:
            try:
                size = attrs.u64()
            except _Drop:
                error = short()
            else:
                def truncate(path: str, entry: Entry) -> None:
                    if entry.type == "directory":
                        raise FSError("EISDIR" if handle is None else "EINVAL", name)
                    if handle is not None and not handle.writable:
                        raise FSError("EINVAL", name)
                    if size >= 1 << 63:
                        raise FSError("EINVAL", name)
                    if size > MAX_FILE:
                        raise FSError("EFBIG", name)
                    content = entry.content[:size].ljust(size, b"\0")
                    fs.replace(path, dataclasses.replace(entry, content=content),
                               time.time_ns())
                error = step("truncate", truncate)
        if flags & A_PERMISSIONS:
            try:
                mode = attrs.u32()
            except _Drop:
                error = short()
            else:
                error = step("chmod", lambda path, entry: fs.replace(
                    path, dataclasses.replace(entry, mode=mode & 0o777)))
        if flags & A_ACMODTIME:
            try:
                attrs.u32()
                mtime = attrs.u32()
            except _Drop:
                error = short()
            else:
                error = step("chtimes", lambda path, entry: fs.replace(
                    path, entry, mtime * 1_000_000_000))
        if flags & A_UIDGID:
            try:
                uid, gid = attrs.u32(), attrs.u32()
            except _Drop:
                error = short()
            else:
                def chown(path: str, entry: Entry) -> None:
                    new_uid = entry.uid if uid == 0xFFFFFFFF else uid
                    new_gid = entry.gid if gid == 0xFFFFFFFF else gid
                    running = self.record.get("status") != "Stopped"
                    if running and (new_uid >= ID_RANGE or new_gid >= ID_RANGE):
                        raise FSError("EINVAL", name)  # outside the running instance's map
                    fs.replace(path, dataclasses.replace(entry, uid=new_uid, gid=new_gid))
                error = step("chown", chown)
        if error is not None:
            raise error

    def _setstat(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()

        def resolve() -> str:
            return fs.stat(path).path

        self._apply_attrs(fs, body, path, resolve)
        return _status(ident, FX_OK)

    def _fsetstat(self, fs: FS, ident: int, body: _Reader) -> bytes:
        handle = self._handle(body)

        def resolve() -> str:
            entry = fs.tree.get(handle.path)
            if entry is None:
                raise FSError("ENOENT", handle.name)
            return handle.path

        self._apply_attrs(fs, body, handle.name, resolve, handle)
        return _status(ident, FX_OK)

    # -- directories ------------------------------------------------------------------------------
    def _opendir(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()
        where, entry = _lookup(fs, path, "stat", follow=True)
        if entry.type != "directory":
            raise _path_error("", path, "ENOTDIR")
        key = self._new_handle(_Handle(path, where, True, True, False))
        return _packet(HANDLE, _u32(ident) + _string(key))

    def _readdir(self, fs: FS, ident: int, body: _Reader) -> bytes:
        handle = self._handle(body)
        if not handle.directory:
            raise _path_error("readdirent", handle.name, "ENOTDIR")
        if handle.listing is None:
            handle.listing = fs.listdir(handle.path)
        now = time.time()
        owners = (_id_names(fs, "/etc/passwd"), _id_names(fs, "/etc/group"))
        sharing = collections.Counter(id(entry) for entry in fs.tree.values())
        out: list[bytes] = []
        while handle.listing and len(out) < READDIR_CHUNK:
            child = handle.listing.pop(0)
            path = posixpath.join(handle.path, child)
            entry = fs.tree.get(path)
            if entry is None:
                continue  # removed since: Go's Readdir skips it
            ns = fs.mtime(path)
            long_name = _long_name(fs, path, child, entry, ns, now, owners, sharing)
            out.append(_string(child) + _string(long_name) + _attrs(entry, ns))
        if not out:
            raise _Failed(FX_EOF, "EOF")
        return _packet(NAME, _u32(ident) + _u32(len(out)) + b"".join(out))

    def _remove(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()
        try:
            if path.rstrip("/").rsplit("/", 1)[-1] == ".":
                fs.lstat(path)
                raise FSError("EINVAL", path)  # rmdir(2) of "dir/."
            fs.remove(path)
        except FSError as exc:
            raise _path_error("remove", path, exc.code) from None
        return _status(ident, FX_OK)

    def _mkdir(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()
        body.u32()  # attributes: ignored by pkg/sftp (always 0755 less the umask)
        try:
            fs.mkdir(path, mode=0o755 & ~UMASK)
        except FSError as exc:
            raise _path_error("mkdir", path, exc.code) from None
        return _status(ident, FX_OK)

    # -- names ------------------------------------------------------------------------------------
    def _name_reply(self, ident: int, name: str) -> bytes:
        return _packet(NAME, _u32(ident) + _u32(1) + _string(name) + _string(name) + _u32(0))

    def _realpath(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()
        return self._name_reply(ident, posixpath.normpath(posixpath.join("/", path))
                                .replace("//", "/"))

    def _readlink(self, fs: FS, ident: int, body: _Reader) -> bytes:
        path = body.text()
        _, entry = _lookup(fs, path, "readlink", follow=False)
        if entry.type != "symlink":
            raise _path_error("readlink", path, "EINVAL")
        return self._name_reply(ident, entry.target)

    def _symlink(self, fs: FS, ident: int, body: _Reader) -> bytes:
        target, link = body.text(), body.text()  # OpenSSH's order, as pkg/sftp reads it
        try:
            fs.symlink(target, link)
        except FSError as exc:
            raise _link_error("symlink", target, link, exc.code) from None
        return _status(ident, FX_OK)

    def _rename_paths(self, fs: FS, old: str, new: str) -> None:
        """Go's ``os.Rename``: a directory in the new place is EEXIST, then rename(2)."""
        try:
            try:
                there = fs.lstat(new).entry
            except FSError:
                there = None
            if there is not None and there.type == "directory":
                fs.lstat(old)
                raise FSError("EEXIST", new)
            source = fs.lstat(old).path
            replaced = fs.resolve(new, follow=False)
            target = fs.rename(old, new)
        except FSError as exc:
            raise _link_error("rename", old, new, exc.code) from None
        for handle in self.handles.values():  # open files move with their names
            if handle.path == target and replaced.entry is not None and source != target:
                handle.orphan = True  # its file was replaced: the handle keeps the old one
                handle.last = replaced.entry if replaced.entry.type == "file" else handle.last
            elif handle.path == source or handle.path.startswith(source + "/"):
                handle.path = target + handle.path[len(source):]

    def _rename(self, fs: FS, ident: int, body: _Reader) -> bytes:
        old, new = body.text(), body.text()
        self._rename_paths(fs, old, new)
        return _status(ident, FX_OK)

    # -- extensions -------------------------------------------------------------------------------
    def _extended(self, fs: FS, ident: int, body: _Reader) -> bytes:
        request = body.text()
        if request == "posix-rename@openssh.com":
            old, new = body.text(), body.text()
            self._rename_paths(fs, old, new)
            return _status(ident, FX_OK)
        if request == "hardlink@openssh.com":
            old, new = body.text(), body.text()
            self._link(fs, old, new)
            return _status(ident, FX_OK)
        if request == "statvfs@openssh.com":
            path = body.text()
            try:
                fs.stat(path)
            except FSError as exc:
                raise _bare(exc.code) from None
            figures = (4096, 4096, 8_388_608, 6_291_456, 6_291_456, 2_097_152, 2_000_000,
                       2_000_000, 0, 0, 255)
            return _packet(EXTENDED_REPLY, _u32(ident) + b"".join(_u64(v) for v in figures))
        return _status(ident, FX_OP_UNSUPPORTED, "operation unsupported")

    def _link(self, fs: FS, old: str, new: str) -> None:
        """``link(2)`` approximated by a copy of the entry (the fake has no inodes)."""
        try:
            source = fs.lstat(old)
            assert source.entry is not None
            if source.entry.type == "directory":
                raise FSError("EPERM", old)
            target = fs.resolve(new, follow=False)
            if target.entry is not None:
                raise FSError("EEXIST", new)
            parent = fs.tree.get(posixpath.dirname(target.path))
            if parent is None:
                raise FSError("ENOENT", new)
            if parent.type != "directory":
                raise FSError("ENOTDIR", new)
            fs.replace(target.path, source.entry, fs.mtime(source.path))
        except FSError as exc:
            raise _link_error("link", old, new, exc.code) from None


_HANDLERS: dict[int, Callable[[SFTPSession, FS, int, _Reader], bytes]] = {
    OPEN: SFTPSession._open, CLOSE: SFTPSession._close, READ: SFTPSession._read_op,
    WRITE: SFTPSession._write_op, LSTAT: SFTPSession._lstat, FSTAT: SFTPSession._fstat,
    SETSTAT: SFTPSession._setstat, FSETSTAT: SFTPSession._fsetstat,
    OPENDIR: SFTPSession._opendir, READDIR: SFTPSession._readdir,
    REMOVE: SFTPSession._remove, MKDIR: SFTPSession._mkdir, RMDIR: SFTPSession._remove,
    REALPATH: SFTPSession._realpath, STAT: SFTPSession._stat, RENAME: SFTPSession._rename,
    READLINK: SFTPSession._readlink, SYMLINK: SFTPSession._symlink,
    EXTENDED: SFTPSession._extended,
}


@route("/1.0/instances/<name>/sftp", "GET")
def instance_sftp(ctx: Ctx, name: str) -> Response:
    """LXD 5.0.2's order: the type asked for, the name, the upgrade header, the instance.
    (LXD serves it under ``/1.0/instances`` only: the aliases are a plain 404.)"""
    kind = instances.check_request(ctx, name, "instances")
    if ctx.request.headers.get("Upgrade") != "sftp":
        raise LXDError(400, "Missing or invalid upgrade header")
    with ctx.state.lock:
        record = instances.find(ctx, name, kind)
    session = SFTPSession(ctx, name, record)
    sock, rfile, sent = websocket.switch_protocols(ctx, "sftp")
    if sent:
        session.serve(sock, rfile)
    return websocket.hijacked()
