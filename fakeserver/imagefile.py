"""LXD image files: compression sniffing, ``metadata.yaml``, and the rootfs as a file tree.

An image is either *unified* (one tarball holding ``metadata.yaml``, ``templates/`` and
``rootfs/``) or *split* (a metadata tarball plus a rootfs that is a tarball or a squashfs, or
``rootfs.img`` for a VM). This module reads them the way LXD 5.0.2 does on upload
(``getImageMetadata``) and gives instances the rootfs as an in-memory tree.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import yaml

# LXD's DetectCompression: the kind of a file from its first bytes, with the extension LXD
# gives it on export.
EXTENSIONS = {
    "bzip2": ".tar.bz2", "gzip": ".tar.gz", "xz": ".tar.xz", "lzma": ".tar.lzma",
    "tar": ".tar", "squashfs": ".squashfs", "qcow2": ".qcow2", "zstd": ".tar.zst",
}

# LXD 5.0.2's architectures (osarch): canonical name -> its aliases.
_ARCH_ALIASES = {
    "i686": ("i386", "i586", "386", "x86", "generic_32"),
    "x86_64": ("amd64", "generic_64"),
    "armv6l": ("armel", "arm"),
    "armv7l": ("armhf", "armhfp", "armv7a_hardfp", "armv7", "armv7a_vfpv3_hardfp"),
    "armv8l": (),
    "aarch64": ("arm64", "arm64_generic"),
    "ppc": ("powerpc",),
    "ppc64": ("powerpc64", "ppc64_generic"),
    "ppc64le": ("ppc64el", "ppc64le_generic"),
    "s390x": ("s390x_generic",),
    "mips": ("mipsel", "mipsle"),
    "mips64": ("mips64el", "mips64le"),
    "riscv32": (),
    "riscv64": (),
}
ARCHITECTURES = {name: canon for canon, names in _ARCH_ALIASES.items()
                 for name in (canon, *names)}


def canonical_arch(name: str) -> str:
    """LXD's name for an architecture (``amd64`` -> ``x86_64``); unknown names unchanged."""
    return ARCHITECTURES.get(name, name)


class ImageError(Exception):
    """An image LXD would refuse; the message is LXD's."""


def compression(data: bytes) -> str:
    """The kind of ``data`` as LXD sniffs it (``gzip``, ``tar``, ``squashfs``, ...)."""
    if not data:
        raise ImageError("EOF")
    head = data[:263].ljust(263, b"\0")
    if head[:2] == b"BZ":
        return "bzip2"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[1:5] == b"7zXZ":
        return "xz" if head[0] == 0xFD else "lzma"
    if head[:3] == b"\x5d\x00\x00":
        return "lzma"
    if head[257:262] == b"ustar":
        return "tar"
    if head[:4] == b"hsqs":
        return "squashfs"
    if head[:3] == b"QFI":
        return "qcow2"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    raise ImageError("Unsupported compression")


def extension(data: bytes) -> str:
    """The file extension LXD's export gives ``data`` (``""`` when it cannot tell)."""
    try:
        return EXTENSIONS[compression(data)]
    except ImageError:
        return ""


def _decompress(data: bytes, kind: str) -> bytes:
    """The decompressed bytes; like LXD's pipe through ``gzip -d`` and friends, a corrupt
    stream gives whatever came out before the damage (often nothing)."""
    if kind == "tar":
        return data
    decompressor: Any
    if kind == "gzip":
        decompressor = zlib.decompressobj(wbits=31)
    elif kind == "bzip2":
        decompressor = bz2.BZ2Decompressor()
    elif kind in ("xz", "lzma"):
        decompressor = lzma.LZMADecompressor()
    else:
        raise ImageError(f"Unsupported compression: {kind}")
    out = io.BytesIO()
    step = 65536
    try:
        for start in range(0, len(data), step):
            out.write(decompressor.decompress(data[start:start + step]))
            if getattr(decompressor, "eof", False):
                break
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):
        pass
    return out.getvalue()


def _members(data: bytes) -> tuple[tarfile.TarFile | None, list[tarfile.TarInfo]]:
    kind = compression(data)
    if kind in ("squashfs", "qcow2", "zstd"):
        # The fake cannot look inside these without external tools.
        raise ImageError(f"Unsupported image format: {kind}")
    raw = _decompress(data, kind)
    if not raw:
        return None, []
    if len(raw) < 512:
        raise ImageError("unexpected EOF")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.ReadError:
        if not raw[:512].strip(b"\0"):
            return None, []
        raise ImageError("archive/tar: invalid tar header") from None
    members: list[tarfile.TarInfo] = []
    try:
        for member in tar:
            members.append(member)
    except tarfile.TarError:
        if not members:
            raise ImageError("archive/tar: invalid tar header") from None
    return tar, members


def _clean(name: str) -> str:
    return name[2:] if name.startswith("./") else name


@dataclass
class Metadata:
    """What LXD reads from ``metadata.yaml`` (plus the type the tarball's layout implies)."""

    architecture: str
    creation_date: int
    expiry_date: int = 0
    properties: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Any] = field(default_factory=dict)
    type: str = "unknown"


_NULLS = ("", "~", "null", "Null", "NULL")
_BOOLS = ("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
          "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF")
_INT = re.compile(r"[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]*|[1-9][0-9_]*|0)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)"
                    r"|\.(nan|NaN|NAN)")

Loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def _tag(node: yaml.Node) -> str:
    """yaml.v2's resolved tag of a node (for its error messages)."""
    if isinstance(node, yaml.MappingNode):
        return "!!map"
    if isinstance(node, yaml.SequenceNode):
        return "!!seq"
    if node.style not in (None, ""):  # quoted
        return "!!str"
    value = node.value
    if value in _NULLS:
        return "!!null"
    if value in _BOOLS:
        return "!!bool"
    if _INT.fullmatch(value):
        return "!!int"
    if _FLOAT.fullmatch(value):
        return "!!float"
    return "!!str"


class _Decoder:
    """yaml.v2's Unmarshal into LXD's api.ImageMetadata, collecting its type errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, node: yaml.Node, into: str) -> None:
        tag = _tag(node)
        value = ""
        if tag not in ("!!seq", "!!map"):
            text = node.value
            value = f" `{text[:7]}...`" if len(text) > 10 else f" `{text}`"
        self.errors.append(f"line {node.start_mark.line + 1}: cannot unmarshal {tag}{value} "
                           f"into {into}")

    def string(self, node: yaml.Node) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return "" if _tag(node) == "!!null" else node.value
        self.error(node, "string")
        return None

    def int64(self, node: yaml.Node) -> int:
        if isinstance(node, yaml.ScalarNode):
            tag = _tag(node)
            text = node.value.replace("_", "")
            if tag == "!!null":
                return 0
            if tag == "!!int":
                sign = -1 if text.startswith("-") else 1
                body = text.lstrip("+-")
                if body.startswith(("0b", "0x", "0o")):
                    return sign * int(body, 0)
                if len(body) > 1 and body.startswith("0"):
                    return sign * int(body, 8)
                return sign * int(body)
            if tag == "!!float" and "inf" not in text.lower() and "nan" not in text.lower():
                return int(float(text))
        self.error(node, "int64")
        return 0

    def string_map(self, node: yaml.Node) -> dict[str, str]:
        if isinstance(node, yaml.ScalarNode) and _tag(node) == "!!null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "map[string]string")
            return {}
        out: dict[str, str] = {}
        for key, value in node.value:
            name = self.string(key)
            text = self.string(value)
            if name is not None and text is not None:
                out[name] = text
        return out


def parse_metadata_yaml(text: bytes) -> Metadata:
    """Decode ``metadata.yaml`` as LXD 5.0.2 does (yaml.v2: scalars kept as written)."""
    try:
        root = yaml.compose(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        line = 0
        if exc.problem_mark is not None and exc.problem_mark.line:
            line = exc.problem_mark.line + (1 if isinstance(exc, yaml.scanner.ScannerError)
                                            else 0)
        elif exc.context_mark is not None:
            line = exc.context_mark.line
        where = f"line {line}: " if line else ""
        raise ImageError(f"yaml: {where}{exc.problem or 'unknown problem parsing YAML content'}"
                         ) from None
    except yaml.YAMLError:
        raise ImageError("yaml: unknown problem parsing YAML content") from None
    if root is None:
        raise ImageError("EOF")
    decoder = _Decoder()
    meta = Metadata(architecture="", creation_date=0)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else ""
            if name == "architecture":
                meta.architecture = decoder.string(value) or ""
            elif name == "creation_date":
                meta.creation_date = decoder.int64(value)
            elif name == "expiry_date":
                meta.expiry_date = decoder.int64(value)
            elif name == "properties":
                meta.properties = decoder.string_map(value)
            elif name == "templates" and not isinstance(value, yaml.MappingNode):
                if not (isinstance(value, yaml.ScalarNode) and _tag(value) == "!!null"):
                    decoder.error(value, "map[string]*api.ImageMetadataTemplate")
    elif not (isinstance(root, yaml.ScalarNode) and _tag(root) == "!!null"):
        decoder.error(root, "api.ImageMetadata")
    if decoder.errors:
        raise ImageError("yaml: unmarshal errors:\n  " + "\n  ".join(decoder.errors))
    return meta


def read_metadata(data: bytes) -> Metadata:
    """Metadata of a unified tarball or a split image's metadata tarball, as LXD checks it.

    Raises :class:`ImageError` with LXD's message for what LXD refuses.
    """
    tar, members = _members(data)
    meta: Metadata | None = None
    image_type = "unknown"
    for member in members:
        name = _clean(member.name) + ("/" if member.isdir() else "")
        if name == "metadata.yaml" and meta is None and tar is not None:
            handle = tar.extractfile(member)
            meta = parse_metadata_yaml(handle.read() if handle is not None else b"")
        if name.startswith("rootfs/"):
            image_type = "container"
        if name == "rootfs.img":
            image_type = "virtual-machine"
    if meta is None:
        raise ImageError("Metadata tarball is missing metadata.yaml")
    if meta.architecture not in ARCHITECTURES:
        raise ImageError(f"Architecture isn't supported: {meta.architecture}")
    if meta.creation_date == 0:
        raise ImageError("Missing creation date")
    meta.type = image_type
    return meta


# -- the rootfs as a tree ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One path of a rootfs: ``type`` is ``file``, ``directory`` or ``symlink``."""

    type: str
    mode: int
    uid: int = 0
    gid: int = 0
    content: bytes = b""
    target: str = ""


Tree = dict[str, Entry]


def _add(tree: Tree, path: str, entry: Entry) -> None:
    parent = posixpath.dirname(path)
    while parent not in tree:
        tree[parent] = Entry("directory", 0o755)
        parent = posixpath.dirname(parent)
    tree[path] = entry


def _tree_from_tar(data: bytes, prefix: str) -> Tree:
    tar, members = _members(data)
    tree: Tree = {"/": Entry("directory", 0o755)}
    if tar is None:
        return tree
    files: dict[str, Entry] = {}
    for member in members:
        name = _clean(member.name).rstrip("/")
        if prefix:
            if name == prefix.rstrip("/"):
                path = "/"
            elif name.startswith(prefix):
                path = "/" + name[len(prefix):]
            else:
                continue
        else:
            if name in ("", "."):
                path = "/"
            else:
                path = "/" + name
        path = posixpath.normpath(path)
        mode = member.mode & 0o7777
        if member.isdir():
            entry = Entry("directory", mode, member.uid, member.gid)
        elif member.issym():
            entry = Entry("symlink", 0o777, member.uid, member.gid, target=member.linkname)
        elif member.islnk():
            link = _clean(member.linkname).rstrip("/")
            source = files.get("/" + link[len(prefix):] if prefix else "/" + link)
            if source is None:
                continue
            entry = Entry("file", mode, member.uid, member.gid, content=source.content)
        elif member.isfile():
            handle = tar.extractfile(member)
            entry = Entry("file", mode, member.uid, member.gid,
                          content=handle.read() if handle is not None else b"")
        else:
            continue  # device nodes and fifos: an instance's files API cannot show them anyway
        if entry.type == "file":
            files[path] = entry
        _add(tree, path, entry)
    return tree


def _tree_from_squashfs(data: bytes) -> Tree:
    """A squashfs rootfs, unpacked with ``unsquashfs`` when it is installed (else just ``/``).

    Ownership survives only when the fake runs as root.
    """
    tree: Tree = {"/": Entry("directory", 0o755)}
    tool = shutil.which("unsquashfs")
    if tool is None:
        return tree
    with tempfile.TemporaryDirectory(prefix="lxd-fake-sqfs-") as tmp:
        image = os.path.join(tmp, "rootfs.squashfs")
        root = os.path.join(tmp, "root")
        with open(image, "wb") as handle:
            handle.write(data)
        done = subprocess.run([tool, "-no-progress", "-no-xattrs", "-d", root, image],
                              capture_output=True, check=False)
        if done.returncode != 0 or not os.path.isdir(root):
            return tree
        top = os.lstat(root)
        tree["/"] = Entry("directory", stat.S_IMODE(top.st_mode), top.st_uid, top.st_gid)
        for base, dirs, files in os.walk(root):
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(base, name)
                path = "/" + os.path.relpath(full, root)
                info = os.lstat(full)
                mode = stat.S_IMODE(info.st_mode)
                if stat.S_ISLNK(info.st_mode):
                    entry = Entry("symlink", 0o777, info.st_uid, info.st_gid,
                                  target=os.readlink(full))
                elif stat.S_ISDIR(info.st_mode):
                    entry = Entry("directory", mode, info.st_uid, info.st_gid)
                elif stat.S_ISREG(info.st_mode):
                    with open(full, "rb") as handle:
                        entry = Entry("file", mode, info.st_uid, info.st_gid,
                                      content=handle.read())
                else:
                    continue
                _add(tree, path, entry)
    return tree


_CACHE: dict[str, Tree] = {}


def rootfs_tree(meta: bytes, rootfs: bytes | None = None) -> Tree:
    """The root filesystem of an image: ``{"/etc/hostname": Entry(...), ...}`` (a new dict).

    ``meta`` is the unified tarball (rootfs under ``rootfs/``), or, with ``rootfs``, a split
    image's metadata tarball and its rootfs (a tarball, or a squashfs read with
    ``unsquashfs`` if installed). A VM disk gives just ``/``. Trees are cached by content.
    """
    digest = hashlib.sha256(meta)
    if rootfs is not None:
        digest.update(rootfs)
    key = digest.hexdigest()
    cached = _CACHE.get(key)
    if cached is not None:
        return dict(cached)
    if rootfs is None:
        tree = _tree_from_tar(meta, "rootfs/")
    else:
        try:
            kind = compression(rootfs)
        except ImageError:
            kind = "unknown"
        if kind == "squashfs":
            tree = _tree_from_squashfs(rootfs)
        elif kind in EXTENSIONS and kind not in ("qcow2", "zstd"):
            tree = _tree_from_tar(rootfs, "")
        else:
            tree = {"/": Entry("directory", 0o755)}
    if len(_CACHE) >= 16:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = tree
    return dict(tree)


def pack_unified(tree: Tree, metadata: dict[str, Any]) -> bytes:
    """A unified image tarball (gzip) of ``tree`` with ``metadata`` as ``metadata.yaml``.

    For publishing an instance: the result can be stored with ``add_image`` or returned by
    a publisher. ``metadata`` needs ``architecture`` and ``creation_date``.
    """
    buf = io.BytesIO()

    def info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0,
             size: int = 0) -> tarfile.TarInfo:
        item = tarfile.TarInfo(name)
        item.type, item.mode, item.uid, item.gid, item.size = kind, mode, uid, gid, size
        item.mtime = int(metadata.get("creation_date", 0) or 0)
        return item

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        text = yaml.safe_dump(metadata, sort_keys=False).encode()
        tar.addfile(info("metadata.yaml", tarfile.REGTYPE, 0o644, size=len(text)),
                    io.BytesIO(text))
        for path in sorted(tree):
            entry = tree[path]
            name = "rootfs" if path == "/" else "rootfs" + path
            if entry.type == "directory":
                tar.addfile(info(name, tarfile.DIRTYPE, entry.mode, entry.uid, entry.gid))
            elif entry.type == "symlink":
                item = info(name, tarfile.SYMTYPE, 0o777, entry.uid, entry.gid)
                item.linkname = entry.target
                tar.addfile(item)
            else:
                tar.addfile(info(name, tarfile.REGTYPE, entry.mode, entry.uid, entry.gid,
                                 len(entry.content)), io.BytesIO(entry.content))
    return gzip.compress(buf.getvalue(), mtime=0)
