"""An instance's root filesystem: path resolution and file operations, as Linux performs them.

The tree is the instance record's ``files``: ``{absolute path: imagefile.Entry}`` with ``/``
always present and every entry's parent directory present. Entries are immutable; every change
stores a new :class:`~fakeserver.imagefile.Entry`. Modification times live beside the tree in
``record["mtimes"]`` as ``{path: (entry, ns)}`` and count only while ``tree[path] is entry``, so
a restored snapshot or a copy keeps its times and a stale time is never shown (no time: the
epoch, like an image's files).

Paths resolve as the kernel resolves them inside a chroot: symlinks in the middle are followed
(relative targets from the link's directory, absolute ones from ``/``), ``..`` stops at ``/``,
a trailing slash demands a directory, and more than 40 links give ``ELOOP``. Failures raise
:class:`FSError` with an errno name; callers word it (``sftp: "open /x: is a directory"`` for
the files API, ``No such file or directory`` for busybox).
"""

from __future__ import annotations

import dataclasses
import posixpath
import time
from dataclasses import dataclass
from typing import Any

from .imagefile import Entry

MAX_LINKS = 40
FILE_MODE = 0o644
DIR_MODE = 0o755

# Go's syscall.Errno texts (what LXD's sftp errors carry) and C's strerror (what busybox prints).
GO_TEXT = {
    "ENOENT": "no such file or directory", "ENOTDIR": "not a directory",
    "EISDIR": "is a directory", "EEXIST": "file exists", "ENOTEMPTY": "directory not empty",
    "EBUSY": "device or resource busy", "ELOOP": "too many levels of symbolic links",
    "EACCES": "permission denied", "EINVAL": "invalid argument",
}
C_TEXT = {
    "ENOENT": "No such file or directory", "ENOTDIR": "Not a directory",
    "EISDIR": "Is a directory", "EEXIST": "File exists", "ENOTEMPTY": "Directory not empty",
    "EBUSY": "Resource busy", "ELOOP": "Symbolic link loop",
    "EACCES": "Permission denied", "EINVAL": "Invalid argument",
}


class FSError(Exception):
    """A failed filesystem call: ``code`` is the errno name (``ENOENT``...)."""

    def __init__(self, code: str, path: str = "") -> None:
        super().__init__(f"{path}: {GO_TEXT.get(code, code)}")
        self.code = code
        self.path = path

    @property
    def go_text(self) -> str:
        return GO_TEXT.get(self.code, self.code)

    @property
    def c_text(self) -> str:
        return C_TEXT.get(self.code, self.code)


@dataclass(frozen=True)
class Found:
    """A resolved path: ``path`` is canonical; ``entry`` is None when it does not exist."""

    path: str
    entry: Entry | None
    want_dir: bool = False  # the name ended with "/" (or "/." or "/..")


def _parent(path: str) -> str:
    return posixpath.dirname(path) if path != "/" else "/"


def _join(base: str, name: str) -> str:
    return base + name if base == "/" else f"{base}/{name}"


def _trailing(path: str) -> bool:
    stripped = path.rstrip("/")
    return (path.endswith("/") and stripped != "") or stripped.endswith(("/.", "/..")) \
        or stripped in (".", "..")


class FS:
    """One instance's filesystem (its ``files`` and ``mtimes``); the caller holds the lock."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.tree: dict[str, Entry] = record["files"]
        if "/" not in self.tree:
            self.tree["/"] = Entry("directory", DIR_MODE)
        mtimes = record.get("mtimes")
        if mtimes is None:
            mtimes = record["mtimes"] = {}
        self.mtimes: dict[str, tuple[Entry, int]] = mtimes

    # -- resolution ------------------------------------------------------------------------
    def resolve(self, path: str, cwd: str = "/", follow: bool = True) -> Found:
        """Resolve ``path`` (relative to ``cwd``); the last component may be missing.

        Missing or non-directory components before the last raise ``ENOENT``/``ENOTDIR``.
        ``follow`` follows a symlink in the last place (a trailing slash always does).
        """
        if path == "":
            raise FSError("ENOENT", path)
        want_dir = _trailing(path)
        cur = "/" if path.startswith("/") else self._canonical_dir(cwd)
        stack = [part for part in reversed(path.split("/")) if part not in ("", ".")]
        links = 0
        while stack:
            name = stack.pop()
            if name == "..":
                cur = _parent(cur)
                continue
            nxt = _join(cur, name)
            entry = self.tree.get(nxt)
            last = not stack
            if entry is None:
                if last:
                    return Found(nxt, None, want_dir)
                raise FSError("ENOENT", path)
            if entry.type == "symlink" and (not last or follow or want_dir):
                links += 1
                if links > MAX_LINKS:
                    raise FSError("ELOOP", path)
                target = entry.target
                if target.startswith("/"):
                    cur = "/"
                if not target:
                    raise FSError("ENOENT", path)
                stack.extend(part for part in reversed(target.split("/"))
                             if part not in ("", "."))
                if not stack:  # a link to "/" (or ".")
                    return Found(cur, self.tree[cur], want_dir)
                continue
            if not last and entry.type != "directory":
                raise FSError("ENOTDIR", path)
            cur = nxt
        entry = self.tree.get(cur)
        if want_dir and entry is not None and entry.type != "directory":
            raise FSError("ENOTDIR", path)
        return Found(cur, entry, want_dir)

    def _canonical_dir(self, cwd: str) -> str:
        try:
            found = self.resolve(cwd if cwd.startswith("/") else "/" + cwd)
        except FSError:
            return "/"
        if found.entry is None or found.entry.type != "directory":
            return "/"
        return found.path

    def lstat(self, path: str, cwd: str = "/") -> Found:
        """The entry at ``path`` without following a final symlink; ``ENOENT`` if missing."""
        found = self.resolve(path, cwd, follow=False)
        if found.entry is None:
            raise FSError("ENOENT", path)
        return found

    def stat(self, path: str, cwd: str = "/") -> Found:
        found = self.resolve(path, cwd, follow=True)
        if found.entry is None:
            raise FSError("ENOENT", path)
        return found

    def exists(self, path: str, cwd: str = "/") -> bool:
        try:
            return self.resolve(path, cwd).entry is not None
        except FSError:
            return False

    def listdir(self, directory: str) -> list[str]:
        """Names in the canonical directory ``directory``, sorted."""
        prefix = directory if directory == "/" else directory + "/"
        size = len(prefix)
        return sorted(key[size:] for key in self.tree
                      if key.startswith(prefix) and key != prefix and "/" not in key[size:])

    # -- times -----------------------------------------------------------------------------
    def mtime(self, path: str) -> int:
        """Modification time of the canonical ``path`` in ns since the epoch (0: unknown)."""
        known = self.mtimes.get(path)
        if known is not None and self.tree.get(path) is known[0]:
            return known[1]
        return 0

    def _store(self, path: str, entry: Entry, now: int | None = None) -> None:
        self.tree[path] = entry
        self.mtimes[path] = (entry, time.time_ns() if now is None else now)

    def _touch_parent(self, path: str, now: int) -> None:
        parent = _parent(path)
        entry = self.tree.get(parent)
        if entry is not None:
            self._store(parent, dataclasses.replace(entry), now)

    # -- changes ---------------------------------------------------------------------------
    def _parent_of_new(self, found: Found, path: str) -> None:
        parent = self.tree.get(_parent(found.path))
        if parent is None:
            raise FSError("ENOENT", path)
        if parent.type != "directory":
            raise FSError("ENOTDIR", path)

    def write(self, path: str, data: bytes, *, append: bool = False, create: bool = True,
              mode: int = FILE_MODE, uid: int = 0, gid: int = 0, cwd: str = "/") -> str:
        """``open(O_WRONLY|O_CREAT|O_TRUNC or O_APPEND)`` and write: returns the file's path.

        A final symlink is followed (a dangling one creates its target); an existing file
        keeps its mode and owner, a new one gets ``mode``/``uid``/``gid``.
        """
        found = self.resolve(path, cwd, follow=True)
        now = time.time_ns()
        entry = found.entry
        if entry is None:
            if found.want_dir:
                raise FSError("EISDIR", path)
            if not create:
                raise FSError("ENOENT", path)
            self._parent_of_new(found, path)
            self._store(found.path, Entry("file", mode & 0o7777, uid, gid, bytes(data)), now)
            self._touch_parent(found.path, now)
            return found.path
        if entry.type == "directory":
            raise FSError("EISDIR", path)
        content = entry.content + bytes(data) if append else bytes(data)
        self._store(found.path, dataclasses.replace(entry, content=content), now)
        return found.path

    def read(self, path: str, cwd: str = "/") -> bytes:
        """A file's content (following symlinks); ``EISDIR`` for a directory."""
        entry = self.stat(path, cwd).entry
        assert entry is not None
        if entry.type == "directory":
            raise FSError("EISDIR", path)
        return entry.content

    def mkdir(self, path: str, *, mode: int = DIR_MODE, uid: int = 0, gid: int = 0,
              cwd: str = "/") -> str:
        """``mkdir(2)``: ``EEXIST`` when anything (even a dangling link) is there."""
        found = self.resolve(path, cwd, follow=False)
        if found.entry is not None:
            raise FSError("EEXIST", path)
        self._parent_of_new(found, path)
        now = time.time_ns()
        self._store(found.path, Entry("directory", mode & 0o7777, uid, gid), now)
        self._touch_parent(found.path, now)
        return found.path

    def makedirs(self, path: str, *, mode: int = DIR_MODE, cwd: str = "/") -> str:
        """``mkdir -p``: every missing directory; fine when it exists as a directory.

        A component that is not a directory fails with ``ENOTDIR`` and, as busybox words it,
        the path up to that component with a ``/`` (``EEXIST`` with the whole path when it is
        the last one).
        """
        parts = [part for part in path.split("/") if part]
        shown = "/" if path.startswith("/") else ""
        for index, part in enumerate(parts):
            shown += part
            found = self.resolve(shown, cwd)
            if found.entry is None:
                self.mkdir(shown, mode=mode, cwd=cwd)
            elif found.entry.type != "directory":
                if index == len(parts) - 1:
                    raise FSError("EEXIST", path)
                raise FSError("ENOTDIR", shown + "/")
            shown += "/"
        return self.resolve(path, cwd).path

    def symlink(self, target: str, path: str, *, cwd: str = "/") -> str:
        if not target:
            raise FSError("ENOENT", path)
        found = self.resolve(path, cwd, follow=False)
        if found.entry is not None or found.want_dir:
            raise FSError("EEXIST", path)
        self._parent_of_new(found, path)
        now = time.time_ns()
        self._store(found.path, Entry("symlink", 0o777, 0, 0, target=target), now)
        self._touch_parent(found.path, now)
        return found.path

    def _removable(self, path: str, cwd: str) -> tuple[str, Entry]:
        """The canonical path and entry ``path`` names (a final symlink not followed), unless
        it is missing (``ENOENT``) or ``/`` (``EBUSY``)."""
        found = self.lstat(path, cwd)
        if found.path == "/":
            raise FSError("EBUSY", path)
        assert found.entry is not None
        return found.path, found.entry

    def _forget(self, path: str) -> None:
        del self.tree[path]
        self.mtimes.pop(path, None)

    def remove(self, path: str, cwd: str = "/") -> str:
        """sftp's Remove: unlink a file or symlink, or rmdir an empty directory."""
        canonical, entry = self._removable(path, cwd)
        if entry.type == "directory" and self.listdir(canonical):
            raise FSError("ENOTEMPTY", path)
        self._forget(canonical)
        self._touch_parent(canonical, time.time_ns())
        return canonical

    def unlink(self, path: str, cwd: str = "/") -> str:
        """``unlink(2)``: ``EISDIR`` for a directory."""
        found = self.lstat(path, cwd)
        if found.entry is not None and found.entry.type == "directory":
            raise FSError("EISDIR", path)
        return self.remove(found.path)

    def remove_tree(self, path: str, cwd: str = "/") -> str:
        """``rm -r``: the entry and everything under it (a symlink is not followed)."""
        canonical, _ = self._removable(path, cwd)
        prefix = canonical + "/"
        for key in [k for k in self.tree if k.startswith(prefix)]:
            self._forget(key)
        self._forget(canonical)
        self._touch_parent(canonical, time.time_ns())
        return canonical

    def replace(self, path: str, entry: Entry, ns: int | None = None) -> None:
        """Store a changed ``entry`` at the canonical ``path``: its time stays (``chmod``,
        ``chown``) unless ``ns`` gives a new one."""
        keep = self.mtime(path) if ns is None else ns
        self.tree[path] = entry
        self.mtimes[path] = (entry, keep)

    def rename(self, old: str, new: str, cwd: str = "/") -> str:
        """``rename(2)``: move ``old`` (a final symlink not followed) and what is under it to
        ``new``, replacing a file, link or empty directory there; returns ``new``'s canonical
        path. The moved entries keep their times; both parent directories change."""
        src = self.resolve(old, cwd, follow=False)
        if src.entry is None:
            raise FSError("ENOENT", old)
        dst = self.resolve(new, cwd, follow=False)
        if "/" in (src.path, dst.path):
            raise FSError("EBUSY", old)
        self._parent_of_new(dst, new)
        if dst.path == src.path:
            return dst.path
        if src.entry.type == "directory":
            if dst.path.startswith(src.path + "/"):
                raise FSError("EINVAL", old)
            if dst.entry is not None and dst.entry.type != "directory":
                raise FSError("ENOTDIR", new)
            if dst.entry is not None and self.listdir(dst.path):
                raise FSError("ENOTEMPTY", new)
        elif dst.entry is not None and dst.entry.type == "directory":
            raise FSError("EISDIR", new)
        elif src.want_dir or dst.want_dir:
            raise FSError("ENOTDIR", new)
        if dst.entry is not None:
            self._forget(dst.path)
        prefix = src.path + "/"
        moved = [(key, entry, self.mtime(key)) for key, entry in self.tree.items()
                 if key == src.path or key.startswith(prefix)]
        for key, _, _ in moved:
            self._forget(key)
        for key, entry, ns in moved:
            self.replace(dst.path + key[len(src.path):], entry, ns)
        now = time.time_ns()
        self._touch_parent(src.path, now)
        self._touch_parent(dst.path, now)
        return dst.path

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of the canonical ``path``."""
        entry = self.tree[path]
        self._store(path, dataclasses.replace(entry, mode=mode & 0o7777))

    def touch(self, path: str, cwd: str = "/") -> str:
        """``touch``: create an empty file, or bump the time of what is there."""
        found = self.resolve(path, cwd, follow=True)
        if found.entry is None:
            return self.write(path, b"", cwd=cwd)
        self._store(found.path, dataclasses.replace(found.entry))
        return found.path
