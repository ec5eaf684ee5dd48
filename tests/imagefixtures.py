"""Tiny LXD images for tests: unified tarballs and split (metadata + rootfs) pairs.

Every image is built in memory and is deterministic: the same arguments give the same bytes,
hence the same LXD fingerprint. Pass unique ``properties`` (e.g. ``{"test.id": unique()}``)
so that two runs, or two tests, never upload the same image.

``upload()`` sends an image the way ``lxc image import`` and pylxd do (a raw body for a
unified tarball, ``multipart/form-data`` with parts ``metadata`` + ``rootfs`` for a split
one) and registers its deletion with ``api.delete_later``.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import urllib3
import yaml
from websockets.sync.client import unix_connect

from tests.support import API
from tests.tlsutil import self_signed

ARCH = "x86_64"
CREATION_DATE = 1700000000

# path -> content (bytes: a file, None: a directory, "->target": a symlink)
DEFAULT_FILES: dict[str, bytes | str | None] = {
    "bin": None,
    "etc": None,
    "etc/hostname": b"tiny\n",
    "etc/os-release": b'NAME="tiny"\nID=tiny\n',
    "bin/sh": "->busybox",
    "tmp": None,
}


def metadata_yaml(properties: dict[str, str] | None = None, *, architecture: str = ARCH,
                  creation_date: int | None = CREATION_DATE, expiry_date: int | None = None,
                  extra: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = {"architecture": architecture}
    if creation_date is not None:
        doc["creation_date"] = creation_date
    if expiry_date is not None:
        doc["expiry_date"] = expiry_date
    doc["properties"] = {"description": "tiny test image", "os": "tiny", "release": "1",
                         **(properties or {})}
    doc["templates"] = {}
    doc.update(extra or {})
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tarball(entries: dict[str, bytes | str | None], *, compress: str = "gzip") -> bytes:
    """A tarball of ``entries`` (sorted; fixed mtimes and owners), gzip'd or plain ``tar``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(entries):
            value = entries[name]
            if value is None:
                tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
            elif isinstance(value, str):
                info = _info(name, tarfile.SYMTYPE, 0o777)
                info.linkname = value[2:]
                tar.addfile(info)
            else:
                mode = 0o755 if name.startswith(("bin/", "rootfs/bin/")) else 0o644
                tar.addfile(_info(name, tarfile.REGTYPE, mode, len(value)), io.BytesIO(value))
    raw = buf.getvalue()
    if compress == "tar":
        return raw
    return gzip.compress(raw, mtime=0)


def squashfs(entries: dict[str, bytes | str | None]) -> bytes:
    """A squashfs of ``entries`` (needs ``mksquashfs`` from squashfs-tools)."""
    tool = shutil.which("mksquashfs")
    if tool is None:
        raise RuntimeError("mksquashfs not found (apt-get install squashfs-tools)")
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        for name in sorted(entries):
            value = entries[name]
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if value is None:
                os.makedirs(path, exist_ok=True)
            elif isinstance(value, str):
                os.symlink(value[2:], path)
            else:
                with open(path, "wb") as handle:
                    handle.write(value)
        out = os.path.join(tmp, "rootfs.squashfs")
        subprocess.run([tool, root, out, "-noappend", "-all-root", "-no-progress",
                        "-mkfs-time", "0", "-all-time", "0", "-comp", "gzip"],
                       check=True, capture_output=True)
        with open(out, "rb") as handle:
            return handle.read()


@dataclass
class TinyImage:
    """An image as bytes: ``data`` (unified) or ``meta`` + ``rootfs`` (split)."""

    meta: bytes
    rootfs: bytes | None = None
    vm: bool = False
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def split(self) -> bool:
        return self.rootfs is not None

    @property
    def data(self) -> bytes:
        return self.meta

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.meta)
        if self.rootfs is not None:
            digest.update(self.rootfs)
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return len(self.meta) + len(self.rootfs or b"")


def unified(properties: dict[str, str] | None = None, *,
            files: dict[str, bytes | str | None] | None = None, compress: str = "gzip",
            **meta: Any) -> TinyImage:
    """A unified tarball: ``metadata.yaml``, ``templates/`` and ``rootfs/``."""
    entries: dict[str, bytes | str | None] = {
        "metadata.yaml": metadata_yaml(properties, **meta), "templates": None, "rootfs": None}
    for name, value in (DEFAULT_FILES if files is None else files).items():
        entries[f"rootfs/{name}"] = value
    return TinyImage(tarball(entries, compress=compress), properties=dict(properties or {}))


def split(properties: dict[str, str] | None = None, *,
          files: dict[str, bytes | str | None] | None = None, rootfs_format: str = "tar.gz",
          vm: bool = False, **meta: Any) -> TinyImage:
    """A split image: a metadata tarball plus a rootfs (``tar.gz`` or ``squashfs``)."""
    meta_tar = tarball({"metadata.yaml": metadata_yaml(properties, **meta), "templates": None})
    content = dict(DEFAULT_FILES if files is None else files)
    if vm:
        rootfs = b"QFI\xfb" + b"\0" * 508  # a qcow2 header is all LXD sniffs at upload
    elif rootfs_format == "squashfs":
        rootfs = squashfs(content)
    else:
        rootfs = tarball(content, compress="gzip" if rootfs_format == "tar.gz" else "tar")
    return TinyImage(meta_tar, rootfs, vm=vm, properties=dict(properties or {}))


def tagged(**kw: Any) -> dict[str, str]:
    """Properties that make an image unique to this call (``test.id``) plus ``kw``."""
    return {"test.id": uuid.uuid4().hex, **{k.replace("_", "."): str(v) for k, v in kw.items()}}


def multipart(parts: list[tuple[str, str, bytes]],
              boundary: str | None = None) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body as Go's ``multipart.Writer`` writes it.

    ``parts`` are ``(field name, file name, bytes)``. Returns the body and its Content-Type.
    """
    boundary = boundary or uuid.uuid4().hex + uuid.uuid4().hex[:28]
    out = io.BytesIO()
    for index, (name, filename, data) in enumerate(parts):
        out.write(b"\r\n" if index else b"")
        out.write(f"--{boundary}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="{name}"; '
                  f'filename="{filename}"\r\n'.encode())
        out.write(b"Content-Type: application/octet-stream\r\n\r\n")
        out.write(data)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload_request(image: TinyImage, headers: dict[str, str] | None = None,
                   filename: str = "tiny.tar.gz") -> tuple[bytes, dict[str, str]]:
    """The body and headers ``lxc image import`` sends for ``image``."""
    hdrs = dict(headers or {})
    if image.rootfs is None:
        hdrs.setdefault("Content-Type", "application/octet-stream")
        hdrs.setdefault("X-LXD-filename", filename)
        return image.meta, hdrs
    rootfs_part = "rootfs.img" if image.vm else "rootfs"
    body, ctype = multipart([("metadata", "meta-" + filename, image.meta),
                             (rootfs_part, filename, image.rootfs)])
    hdrs["Content-Type"] = ctype
    return body, hdrs


def post_image(api: API, image: TinyImage, headers: dict[str, str] | None = None,
               filename: str = "tiny.tar.gz") -> dict[str, Any]:
    """POST ``image`` (registering its deletion) and return the finished operation."""
    api.delete_later(f"/1.0/images/{image.fingerprint}")
    body, hdrs = upload_request(image, headers, filename)
    reply = api.request("POST", "/1.0/images", data=body, headers=hdrs)
    assert reply.status == 202, reply
    return api.wait(reply)


def upload(api: API, image: TinyImage | None = None, headers: dict[str, str] | None = None,
           filename: str = "tiny.tar.gz") -> str:
    """Upload ``image`` (default: a fresh unified one) and return its fingerprint."""
    image = image or unified(tagged())
    op = post_image(api, image, headers, filename)
    assert op["status"] == "Success", op
    return image.fingerprint


# -- other ways in: untrusted TLS clients and the event stream ----------------------------------

REAL_HTTPS = "https://127.0.0.1:8443"


def socket_path(api: API) -> str:
    """The unix socket behind ``api``."""
    return urllib.parse.unquote(api.base[len("http+unix://"):])


def untrusted(api: API, directory: str) -> API:
    """An API over HTTPS with a fresh (untrusted) client certificate, same backend as ``api``."""
    cert = self_signed(directory, "untrusted")
    if api.is_fake:
        server = api.server  # type: ignore[attr-defined]
        return API.https("fake", server.https_url, cert.pair, server.ca_file)
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return API.https("real", REAL_HTTPS, cert.pair, False)


# websockets >= 17 wants a context manager unless asked for a plain connection.
_LEGACY = {"legacy": True} if "legacy" in inspect.signature(unix_connect).parameters else {}


class Events:
    """Lifecycle events of one project, read from ``/1.0/events`` in the background."""

    def __init__(self, api: API, project: str = "default") -> None:
        query = urllib.parse.urlencode({"type": "lifecycle", "project": project})
        self.ws = unix_connect(socket_path(api), f"ws://localhost/1.0/events?{query}",
                               **_LEGACY)
        self.got: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.ws.recv()
            except Exception:  # noqa: BLE001 - the stream ends when the test closes it
                return
            self.got.append(json.loads(message))

    def close(self) -> None:
        self.ws.close()

    def wait(self, action: str, source: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first event with this action whose source contains ``source``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.got):
                meta = event["metadata"]
                if meta.get("action") == action and source in meta.get("source", ""):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no {action} event for {source}: "
                             f"{[e['metadata'].get('action') for e in self.got]}")

    def actions(self, source: str) -> list[str]:
        return [e["metadata"]["action"] for e in self.got
                if source in e["metadata"].get("source", "")]
