"""Backup tarballs as LXD 5.0.2 writes and reads them (``lxc export`` / ``lxc import``).

An instance backup (dir pool, not optimized)::

    backup/index.yaml                       name, backend, pool, snapshots, type, config
    backup/snapshots/<snap>/backup.yaml     (one directory per snapshot, oldest first)
    backup/snapshots/<snap>/metadata.yaml
    backup/snapshots/<snap>/rootfs/...
    backup/container/backup.yaml            the instance, its snapshots, pool, profiles, volume
    backup/container/metadata.yaml          the image's metadata.yaml (when it had one)
    backup/container/rootfs/...

A custom volume backup has ``backup/index.yaml``, ``backup/volume/...`` and
``backup/volume-snapshots/<snap>/...``. Compression is one of LXD's algorithms; the fake writes
zstd as raw (uncompressed) zstd blocks, which every zstd reader accepts.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import imagefile
from .gourl import go_quote
from .imagefile import Entry, ImageError
from .responses import LXDError

ALGORITHMS = {"bzip2": "bzip2", "gzip": "gzip", "lzma": "lzma", "xz": "xz", "zstd": "zstd",
              "pigz": "pigz", "squashfs": "tar2sqfs"}
TAR_FLAGS = {"gzip": "-zxf", "bzip2": "-jxf", "xz": "-Jxf", "lzma": "--lzma -xf",
             "zstd": "--zstd -xf", "tar": "-xf"}


def backups_of(owner: dict[str, Any], create: bool = False) -> dict[str, Any]:
    """The backups of an instance or volume record (stored only when ``create``: reads change
    nothing)."""
    if create:
        made: dict[str, Any] = owner.setdefault("backups", {})
        return made
    found: dict[str, Any] = owner.get("backups") or {}
    return found


def _split(value: str) -> list[str]:
    """Go's shellquote.Split, with its error messages."""
    quote = ""
    for ch in value:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
    if quote == "'":
        raise LXDError(400, "Unterminated single-quoted string")
    if quote == '"':
        raise LXDError(400, "Unterminated double-quoted string")
    return value.replace("'", " ").replace('"', " ").split()


def check_compression(value: str) -> None:
    """A request's ``compression_algorithm`` as LXD 5.0.2 checks it (400s)."""
    if value in ("", "none"):
        return
    parts = _split(value)
    if not parts:
        raise LXDError(400, f"Invalid compression algorithm {go_quote(value)}")
    binary = ALGORITHMS.get(parts[0])
    if binary is None:
        raise LXDError(400, f"Invalid compression algorithm {go_quote(parts[0])}")
    if shutil.which(binary) is None:
        raise LXDError(400, f"exec: {go_quote(binary)}: executable file not found in $PATH")


def _zstd_raw(data: bytes) -> bytes:
    """A zstd frame of raw blocks (single segment, content size given)."""
    out = bytearray(b"\x28\xb5\x2f\xfd\xe0")
    out += len(data).to_bytes(8, "little")
    step = 128 * 1024
    chunks = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
    for index, chunk in enumerate(chunks):
        last = 1 if index == len(chunks) - 1 else 0
        out += ((len(chunk) << 3) | last).to_bytes(3, "little")
        out += chunk
    return bytes(out)


def compress(data: bytes, algorithm: str) -> bytes:
    """``data`` (a tar) compressed with ``algorithm`` (its first word; ``none``: as is)."""
    name = algorithm.split()[0] if algorithm.strip() else "gzip"
    if name == "none":
        return data
    if name == "bzip2":
        return bz2.compress(data, 6)
    if name == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=1)
    if name == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE, preset=1)
    if name == "zstd":
        return _zstd_raw(data)
    return gzip.compress(data, compresslevel=1, mtime=0)


def _decompress(data: bytes, kind: str) -> bytes:
    if kind != "zstd":
        return imagefile._decompress(data, kind)
    tool = shutil.which("zstd")
    if tool is None:
        raise LXDError(500, "Unsupported compression")
    done = subprocess.run([tool, "-d", "-q", "-c"], input=data, capture_output=True,
                          check=False)
    return done.stdout


# -- writing ------------------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.now = int(time.time())

    def add(self, name: str, kind: bytes, mode: int, *, content: bytes = b"", uid: int = 0,
            gid: int = 0, target: str = "", mtime: int | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
        info.mtime = self.now if mtime is None else mtime
        info.uname = info.gname = "root" if uid == 0 else ""
        info.linkname = target
        info.size = len(content) if kind == tarfile.REGTYPE else 0
        self.tar.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)

    def yaml(self, name: str, doc: Any, mode: int = 0o400) -> None:
        self.add(name, tarfile.REGTYPE, mode, content=dump(doc))

    def tree(self, prefix: str, tree: dict[str, Entry]) -> None:
        for path in sorted(tree):
            entry = tree[path]
            name = prefix if path == "/" else prefix + path
            if entry.type == "directory":
                self.add(name, tarfile.DIRTYPE, entry.mode, uid=entry.uid, gid=entry.gid,
                         mtime=0)
            elif entry.type == "symlink":
                self.add(name, tarfile.SYMTYPE, 0o777, uid=entry.uid, gid=entry.gid,
                         target=entry.target, mtime=0)
            else:
                self.add(name, tarfile.REGTYPE, entry.mode, uid=entry.uid, gid=entry.gid,
                         content=entry.content, mtime=0)

    def done(self, algorithm: str) -> bytes:
        self.tar.close()
        return compress(self.buf.getvalue(), algorithm)


def dump(doc: Any) -> bytes:
    text: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False,
                               allow_unicode=True, width=1 << 20)
    return text.encode()


@dataclass
class Part:
    """One instance (or snapshot) directory of a backup: its backup.yaml, image metadata,
    templates and root filesystem."""

    name: str
    doc: dict[str, Any]
    files: dict[str, Entry]
    metadata: dict[str, Any] | None = None
    templates: dict[str, bytes] = field(default_factory=dict)


def instance_tarball(index: dict[str, Any], container: Part, snapshots: list[Part],
                     algorithm: str) -> bytes:
    """An instance backup in LXD 5.0.2's layout."""
    out = _Writer()
    out.yaml("backup/index.yaml", index, 0o644)
    for part in [*((f"backup/snapshots/{s.name}", s) for s in snapshots),
                 ("backup/container", container)]:
        base, item = part
        out.add(base, tarfile.DIRTYPE, 0o100)
        out.yaml(f"{base}/backup.yaml", item.doc)
        if item.metadata is not None:
            out.add(f"{base}/metadata.yaml", tarfile.REGTYPE, 0o644,
                    content=dump(item.metadata), mtime=0)
        if item.templates:
            out.add(f"{base}/templates", tarfile.DIRTYPE, 0o755, mtime=0)
            for tname, content in sorted(item.templates.items()):
                out.add(f"{base}/templates/{tname}", tarfile.REGTYPE, 0o644, content=content,
                        mtime=0)
        out.tree(f"{base}/rootfs", item.files)
    return out.done(algorithm)


def volume_tarball(index: dict[str, Any], files: dict[str, Entry],
                   snapshots: list[tuple[str, dict[str, Entry]]], algorithm: str) -> bytes:
    """A custom volume backup: ``backup/index.yaml``, ``backup/volume``,
    ``backup/volume-snapshots/<snap>``."""
    out = _Writer()
    out.yaml("backup/index.yaml", index, 0o644)
    for name, tree in snapshots:
        out.tree(f"backup/volume-snapshots/{name}", tree)
    out.tree("backup/volume", files)
    return out.done(algorithm)


# -- reading ------------------------------------------------------------------------------------


@dataclass
class BackupFile:
    """A backup tarball as read back: ``index`` is index.yaml, ``trees`` the directories under
    ``backup/`` (``container``, ``snapshots/<snap>``, ``volume``...) as file trees."""

    kind: str
    index: dict[str, Any]
    trees: dict[str, dict[str, Entry]]
    docs: dict[str, Any]
    raw: dict[str, bytes]


def _tree_dirs(name: str) -> tuple[str, str] | None:
    """``(directory, path inside its rootfs)`` for a member below a tree, else None."""
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "backup":
        return None
    if parts[1] == "container" and len(parts) >= 3 and parts[2] == "rootfs":
        return "container", "/" + "/".join(parts[3:])
    if parts[1] == "snapshots" and len(parts) >= 4 and parts[3] == "rootfs":
        return f"snapshots/{parts[2]}", "/" + "/".join(parts[4:])
    if parts[1] == "volume":
        return "volume", "/" + "/".join(parts[2:])
    if parts[1] == "volume-snapshots" and len(parts) >= 3:
        return f"volume-snapshots/{parts[2]}", "/" + "/".join(parts[3:])
    return None


def read(data: bytes) -> BackupFile:
    """Parse a backup tarball; errors are LXD 5.0.2's (raised as :class:`LXDError`)."""
    try:
        kind = imagefile.compression(data)
    except ImageError as exc:
        raise LXDError(500, str(exc)) from None
    if kind not in TAR_FLAGS:
        raise LXDError(500, "Unsupported compression")
    raw = _decompress(data, kind)
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
        members = list(tar)
    except (tarfile.TarError, EOFError):
        raise LXDError(400, "Error reading backup file info: archive/tar: invalid tar "
                            "header") from None
    trees: dict[str, dict[str, Entry]] = {}
    files: dict[str, bytes] = {}
    for member in members:
        name = member.name[2:] if member.name.startswith("./") else member.name
        name = name.rstrip("/")
        where = _tree_dirs(name)
        content = b""
        if member.isfile():
            handle = tar.extractfile(member)
            content = handle.read() if handle is not None else b""
            if where is None:
                files[name] = content
        if where is None:
            continue
        tree = trees.setdefault(where[0], {})
        path = where[1].rstrip("/") or "/"
        if member.isdir():
            tree[path] = Entry("directory", member.mode & 0o7777, member.uid, member.gid)
        elif member.issym():
            tree[path] = Entry("symlink", 0o777, member.uid, member.gid,
                               target=member.linkname)
        elif member.isfile():
            tree[path] = Entry("file", member.mode & 0o7777, member.uid, member.gid,
                               content=content)
    if "backup/index.yaml" not in files:
        raise LXDError(400, "Backup is missing index.yaml")
    index = load(files["backup/index.yaml"])
    if not isinstance(index, dict):
        raise LXDError(400, "yaml: unmarshal errors")
    for tree in trees.values():
        tree.setdefault("/", Entry("directory", 0o755))
    docs = {}
    for name, content in files.items():
        if name.endswith("/backup.yaml"):
            try:
                docs[name] = yaml.load(content, Loader=_Loader)  # noqa: S506
            except yaml.YAMLError:
                docs[name] = None
    return BackupFile(kind, index, trees, docs, files)


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """Timestamps stay strings (LXD's times are RFC 3339 text in the API)."""


_Loader.yaml_implicit_resolvers = {
    key: [r for r in value if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load(text: bytes) -> Any:
    """YAML as LXD's decoder reads index.yaml: empty is Go's ``EOF``."""
    if not text.strip():
        raise LXDError(400, "EOF")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid document"
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise LXDError(400, f"yaml: {line}{problem}") from None
