"""Tiny LXD container images, built in memory: a bootable busybox one and a placeholder one.

:func:`busybox_image` does what ``scripts/build-busybox-image`` does, in Python, so that users
of the plugin (who do not have the project's scripts) get an image that really starts on a
real LXD host: a unified tarball with ``metadata.yaml`` and a ``rootfs/`` holding a static
busybox, one symlink per applet, a minimal ``/etc`` and a busybox ``init`` that just sits
there. :func:`placeholder_image` has the same metadata and a rootfs without busybox: enough for
the fake, which runs its own built-in applets for ``/bin/busybox`` and its links.

Both are deterministic (sorted names, fixed owners and mtimes, gzip without a name or a
timestamp): the same input gives the same bytes, hence the same LXD fingerprint.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import platform
import shutil
import subprocess
import tarfile
from typing import Literal

__all__ = ["BusyboxNotFound", "busybox_image", "find_busybox", "fingerprint",
           "metadata_yaml", "placeholder_image"]

#: ``creation_date`` written into ``metadata.yaml`` (fixed, so builds are reproducible).
CREATION_DATE = 1700000000

#: Where a static busybox is looked for when none is given (``$PYTEST_LXD_BUSYBOX``, then
#: ``$BUSYBOX``, then these, then ``busybox`` on ``$PATH``).
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")

_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/init.d", "dev", "proc", "sys",
         "tmp", "root", "srv", "run", "var", "var/log", "home", "mnt")

_ETC: dict[str, tuple[bytes, int]] = {
    "etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\n"
                   b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
    "etc/group": (b"root:x:0:\nnogroup:x:65534:\n", 0o644),
    "etc/shadow": (b"root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640),
    "etc/hostname": (b"busybox\n", 0o644),
    "etc/hosts": (b"127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0o644),
    "etc/profile": (b"PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\n", 0o644),
    # busybox init: no gettys, nothing respawned; PID 1 just sits there.
    "etc/inittab": (b"::sysinit:/etc/init.d/rcS\n::shutdown:/bin/sync\n", 0o644),
    "etc/init.d/rcS": (b"#!/bin/sh\n# LXD mounts /proc, /sys and /dev and sets the hostname.\n"
                       b"/bin/ip link set lo up 2>/dev/null\nexit 0\n", 0o755),
}


class BusyboxNotFound(RuntimeError):
    """No static busybox binary to build a bootable image from."""


def fingerprint(data: bytes) -> str:
    """LXD's fingerprint of a unified image: the sha256 of the tarball."""
    return hashlib.sha256(data).hexdigest()


def architecture() -> str:
    """The host's architecture as LXD names it (``x86_64``, ``aarch64``...)."""
    return platform.machine() or "x86_64"


def metadata_yaml(arch: str | None = None, creation_date: int = CREATION_DATE) -> bytes:
    """The image's ``metadata.yaml`` (the same for both images)."""
    arch = arch or architecture()
    return (f"architecture: {arch}\ncreation_date: {creation_date}\nproperties:\n"
            f"  architecture: {arch}\n  description: busybox test image\n  os: busybox\n"
            f'  release: "1"\ntemplates: {{}}\n').encode()


def _is_static_elf(path: str) -> bool:
    """True for an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
            if header[:4] != b"\x7fELF":
                return False
            is64 = header[4] == 2
            order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
            if is64:
                phoff = int.from_bytes(header[32:40], order)
                phentsize = int.from_bytes(header[54:56], order)
                phnum = int.from_bytes(header[56:58], order)
            else:
                phoff = int.from_bytes(header[28:32], order)
                phentsize = int.from_bytes(header[42:44], order)
                phnum = int.from_bytes(header[44:46], order)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return False
    for index in range(phnum):
        entry = table[index * phentsize:(index + 1) * phentsize]
        if int.from_bytes(entry[:4], order) == 3:  # PT_INTERP: needs a dynamic loader
            return False
    return True


def find_busybox(path: str | None = None) -> str:
    """The static busybox to use; raises :class:`BusyboxNotFound` saying what to install."""
    candidates = [path] if path else [
        os.environ.get("PYTEST_LXD_BUSYBOX"), os.environ.get("BUSYBOX"), *BUSYBOX_PATHS,
        shutil.which("busybox")]
    tried = []
    for candidate in candidates:
        if not candidate:
            continue
        tried.append(candidate)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            if _is_static_elf(candidate):
                return candidate
            if path:
                raise BusyboxNotFound(f"{candidate} is dynamically linked; a static busybox "
                                      "is needed (apt-get install busybox-static)")
    raise BusyboxNotFound(f"no static busybox found (tried {', '.join(tried) or 'nothing'}); "
                          "install one (apt-get install busybox-static) or set "
                          "PYTEST_LXD_BUSYBOX")


def _applets(busybox: str) -> list[str]:
    """Install paths of the applets (``bin/ls``, ``usr/bin/awk``...)."""
    for args, prefix in (("--list-full", ""), ("--list", "bin/")):
        try:
            out = subprocess.run([busybox, args], capture_output=True, text=True, timeout=30,
                                 check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        paths = [prefix + line.strip() for line in out.splitlines() if line.strip()]
        if paths:
            return paths
    return []


class _Tar:
    """A deterministic tarball writer (fixed owners and mtimes)."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.GNU_FORMAT)
        self.entries: dict[str, tuple[bytes, int, bytes | str | None]] = {}

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self.entries[name] = (tarfile.DIRTYPE, mode, None)

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.entries[name] = (tarfile.REGTYPE, mode, data)

    def add_symlink(self, name: str, target: str) -> None:
        self.entries[name] = (tarfile.SYMTYPE, 0o777, target)

    def finish(self) -> bytes:
        for name in sorted(self.entries):
            kind, mode, payload = self.entries[name]
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if kind == tarfile.SYMTYPE:
                info.linkname = str(payload)
                self.tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                self.tar.addfile(info, io.BytesIO(payload))
            else:
                self.tar.addfile(info)
        self.tar.close()
        return gzip.compress(self.buffer.getvalue(), compresslevel=9, mtime=0)


def _skeleton(tar: _Tar, creation_date: int) -> None:
    tar.add_file("metadata.yaml", metadata_yaml(creation_date=creation_date))
    tar.add_dir("rootfs")
    for name in _DIRS:
        mode = {"tmp": 0o1777, "root": 0o700}.get(name, 0o755)
        tar.add_dir(f"rootfs/{name}", mode)
    for name, (data, mode) in _ETC.items():
        tar.add_file(f"rootfs/{name}", data, mode)


def busybox_image(busybox: str | None = None, creation_date: int = CREATION_DATE) -> bytes:
    """A unified image (``.tar.gz`` bytes) that boots on real LXD: static busybox as init.

    ``busybox`` defaults to :func:`find_busybox`'s choice.
    """
    path = find_busybox(busybox)
    tar = _Tar()
    _skeleton(tar, creation_date)
    with open(path, "rb") as handle:
        tar.add_file("rootfs/bin/busybox", handle.read(), 0o755)
    for applet in _applets(path):
        if applet.endswith("/") or "/" not in applet or applet == "bin/busybox":
            continue  # an entry with no name, or a top-level one such as "linuxrc"
        parts = applet.split("/")
        for depth in range(1, len(parts)):
            tar.entries.setdefault("rootfs/" + "/".join(parts[:depth]),
                                   (tarfile.DIRTYPE, 0o755, None))
        tar.entries.setdefault(f"rootfs/{applet}", (tarfile.SYMTYPE, 0o777, "/bin/busybox"))
    for applet in ("sbin/init", "bin/sh"):
        tar.entries.setdefault(f"rootfs/{applet}", (tarfile.SYMTYPE, 0o777, "/bin/busybox"))
    return tar.finish()


def placeholder_image(creation_date: int = CREATION_DATE) -> bytes:
    """A unified image with the busybox image's metadata and no binary (for the fake)."""
    tar = _Tar()
    _skeleton(tar, creation_date)
    # Not a "#!" script: the fake runs a file named busybox as its built-in applets (a script
    # whose interpreter, /bin/sh, leads back to itself would never run).
    tar.add_file("rootfs/bin/busybox", b"placeholder: the fake runs its built-in applets\n",
                 0o755)
    for applet in ("sbin/init", "bin/sh"):
        tar.add_symlink(f"rootfs/{applet}", "/bin/busybox")
    return tar.finish()
