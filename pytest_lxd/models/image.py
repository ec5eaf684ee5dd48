"""Images and image aliases: ``client.images``, ``client.images.aliases``.

Uploads (:meth:`ImageManager.create`) send a unified tarball as the raw body, or a split image
(``metadata`` + ``rootfs``) as ``multipart/form-data``, streamed from bytes or binary files
with an optional progress callback. Nothing here reaches the network beyond the LXD server:
``create_from_simplestreams``/``create_from_url`` refuse with :class:`RemoteImagesUnsupported`.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import os
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, BinaryIO, ClassVar, NoReturn, overload

from ..operations import handle_async
from .base import Manager, Model, name_from_url

if TYPE_CHECKING:
    from ..client import APINode, Client

__all__ = ["Image", "ImageAlias", "ImageAliasManager", "ImageManager", "ProgressCallback",
           "RemoteImagesUnsupported"]

#: ``progress(sent_bytes, total_bytes)``, called as an upload goes out.
ProgressCallback = Callable[[int, int], None]
ImageData = bytes | bytearray | memoryview | IO[bytes]
CHUNK = 1 << 16


class RemoteImagesUnsupported(NotImplementedError):
    """Copying images from a remote server (simplestreams, URL) is not supported here."""


class Image(Model):
    """An image, keyed by ``fingerprint``.

    Writable: ``auto_update``, ``expires_at``, ``profiles``, ``properties``, ``public``
    (``save()`` is a synchronous PUT with ``If-Match``). ``aliases`` is a list of
    ``{"name", "description"}``; change it with :meth:`add_alias` / :meth:`delete_alias`.
    """

    fingerprint: str
    aliases: list[dict[str, str]]
    architecture: str
    auto_update: bool
    cached: bool
    created_at: str
    expires_at: str
    filename: str
    last_used_at: str
    profiles: list[str]
    properties: dict[str, str]
    public: bool
    size: int
    type: str
    update_source: dict[str, Any]
    uploaded_at: str

    _key: ClassVar[tuple[str, ...]] = ("fingerprint",)
    _writable: ClassVar[tuple[str, ...]] = ("auto_update", "expires_at", "profiles",
                                            "properties", "public")

    @property
    def api(self) -> APINode:
        return self.client.api.images[self.fingerprint]

    def add_alias(self, name: str, description: str = "") -> ImageAlias:
        """Point a new alias at this image; returns the alias (and updates :attr:`aliases`)."""
        alias = self.client.images.aliases.create(name, self.fingerprint, description)
        self._reload_aliases()
        return alias

    def delete_alias(self, name: str) -> None:
        """Remove an alias from the server, then reload :attr:`aliases`."""
        self.client.api.images.aliases[name].delete()
        self._reload_aliases()

    def _reload_aliases(self) -> None:
        """Refresh ``aliases`` only (local edits of writable fields are kept)."""
        if self._loaded:
            self._data["aliases"] = self.api.get().json()["metadata"].get("aliases") or []

    @overload
    def export(self, target: None = None) -> BinaryIO: ...

    @overload
    def export(self, target: str | os.PathLike[str] | IO[bytes]) -> None: ...

    def export(self, target: str | os.PathLike[str] | IO[bytes] | None = None,
               ) -> BinaryIO | None:
        """Download the image file (streamed).

        With no ``target``: a temporary binary file positioned at the start (as in pylxd).
        With a path or a writable binary file: written there. A split image comes back as
        LXD sends it, ``multipart/form-data``; :meth:`export_parts` separates the parts.
        """
        response = self.api.export.get(is_api=False, stream=True)
        try:
            if target is None:
                out: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 (returned open)
                shutil.copyfileobj(response.raw, out, CHUNK)
                out.seek(0)
                return out
            if isinstance(target, (str, os.PathLike)):
                with open(target, "wb") as handle:
                    shutil.copyfileobj(response.raw, handle, CHUNK)
            else:
                shutil.copyfileobj(response.raw, target, CHUNK)
            return None
        finally:
            response.close()

    def export_parts(self) -> dict[str, bytes]:
        """The image's files: ``{"image": data}`` (unified) or ``{"metadata": ...,
        "rootfs": ...}`` (split; ``"rootfs.img"`` for a VM image)."""
        response = self.api.export.get(is_api=False)
        return _parts_of(response.content, response.headers.get("Content-Type", ""))

    def copy(self, new_client: Client, public: bool | None = None,
             auto_update: bool | None = None, wait: bool = False,
             aliases: bool = True) -> Image:
        """Copy the image to another client (another server or project).

        The bytes go through this process (export, then upload), so no server has to reach
        the other. Keeps ``properties``, ``public`` and ``auto_update`` unless given, and the
        aliases when ``aliases`` is true. Returns the new image (always waits; ``wait`` is
        accepted for pylxd's sake).
        """
        parts = self.export_parts()
        if "image" in parts:
            data, metadata = parts["image"], None
        else:
            metadata = parts["metadata"]
            data = parts.get("rootfs") or parts["rootfs.img"]
        image = new_client.images.create(
            data, metadata=metadata, public=self.public if public is None else public,
            wait=wait, properties=dict(self.properties or {}), vm="rootfs.img" in parts,
            filename=self.filename or None)
        update = self.auto_update if auto_update is None else auto_update
        if image.auto_update != update:
            image.auto_update = update
            image.save()
        if aliases:
            for alias in self.aliases or []:
                image.add_alias(alias["name"], alias.get("description", ""))
        return image


def _parts_of(body: bytes, content_type: str) -> dict[str, bytes]:
    if not content_type.startswith("multipart/"):
        return {"image": body}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes) and name not in parts:
            parts[name] = payload
    return parts


class _UploadBody:
    """A readable request body of known length: byte strings and binary files, in order,
    reporting progress as requests/http.client reads it."""

    def __init__(self, pieces: Iterable[bytes | IO[bytes]],
                 progress: ProgressCallback | None) -> None:
        self._pieces: list[bytes | IO[bytes]] = []
        self._length = 0
        for piece in pieces:
            size = _remaining(piece)
            if size is None:  # a stream of unknown length: read it now
                assert not isinstance(piece, bytes)
                piece = piece.read()
                size = len(piece)
            self._pieces.append(piece)
            self._length += size
        self._progress = progress
        self._sent = 0
        self._index = 0
        self._offset = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length - self._sent
        out = bytearray()
        while len(out) < size and self._index < len(self._pieces):
            piece = self._pieces[self._index]
            want = size - len(out)
            if isinstance(piece, bytes):
                chunk = piece[self._offset:self._offset + want]
                self._offset += len(chunk)
                done = self._offset >= len(piece)
            else:
                chunk = piece.read(want) or b""
                done = not chunk
            out += chunk
            if done:
                self._index += 1
                self._offset = 0
        self._sent += len(out)
        if self._progress is not None and out:
            self._progress(self._sent, self._length)
        return bytes(out)


def _remaining(piece: bytes | IO[bytes]) -> int | None:
    if isinstance(piece, bytes):
        return len(piece)
    try:
        position = piece.tell()
        end = piece.seek(0, io.SEEK_END)
        piece.seek(position)
        return end - position
    except (OSError, ValueError, AttributeError):
        return None


def _as_piece(data: ImageData) -> bytes | IO[bytes]:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, bytes) or hasattr(data, "read"):
        return data
    raise TypeError(f"image data must be bytes or a binary file, not {type(data).__name__}")


class ImageManager(Manager):
    """``client.images``."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.aliases = ImageAliasManager(client)

    def all(self, recursion: int = 0) -> list[Image]:
        """Every image: sparse (just the fingerprint) or, with ``recursion=1``, loaded."""
        return self._list(Image, self.client.api.images, recursion, key="fingerprint")

    def get(self, fingerprint: str) -> Image:
        """The image with this fingerprint (a unique prefix works, as in LXD)."""
        return self._fetch(Image, self.client.api.images[fingerprint])

    def get_by_alias(self, alias: str) -> Image:
        """The image an alias points at."""
        return self.get(self.aliases.get(alias).target)

    def exists(self, fingerprint: str, alias: bool = False) -> bool:
        """Whether the image exists; ``alias=True``: whether ``fingerprint`` is an alias."""
        if alias:
            return self.aliases.exists(fingerprint)
        return self._exists(self.get, fingerprint)

    def create(self, image_data: ImageData, metadata: ImageData | None = None,
               public: bool = False, wait: bool = True, vm: bool = False, *,
               progress: ProgressCallback | None = None, filename: str | None = None,
               properties: dict[str, str] | None = None,
               aliases: Iterable[str] | None = None) -> Image:
        """Upload an image and return it (loaded).

        ``image_data``: a unified tarball, or with ``metadata`` (the metadata tarball) the
        rootfs of a split image (``vm=True``: a VM disk, sent as ``rootfs.img``); bytes or
        binary files, streamed. ``progress(sent, total)`` is called as the body goes out.
        ``filename``, ``properties`` (merged with ``metadata.yaml``'s) and ``public`` go in
        LXD's ``X-LXD-*`` headers; ``aliases`` are added afterwards. Always waits for the
        upload (``wait`` is accepted for pylxd's sake); a failed upload raises
        :class:`~pytest_lxd.exceptions.OperationFailed` (e.g. ``Image with same fingerprint
        already exists``).
        """
        headers: dict[str, str] = {}
        if public:
            headers["X-LXD-public"] = "1"
        if filename:
            headers["X-LXD-filename"] = filename
        if properties:
            headers["X-LXD-properties"] = urllib.parse.urlencode(properties)
        pieces: list[bytes | IO[bytes]]
        if metadata is None:
            headers["Content-Type"] = "application/octet-stream"
            pieces = [_as_piece(image_data)]
        else:
            boundary = uuid.uuid4().hex + uuid.uuid4().hex
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            rootfs = "rootfs.img" if vm else "rootfs"

            def head(name: str, first: bool) -> bytes:
                return ((b"" if first else b"\r\n") + f"--{boundary}\r\nContent-Disposition: "
                        f'form-data; name="{name}"; filename="{name}"\r\n'
                        "Content-Type: application/octet-stream\r\n\r\n".encode())

            pieces = [head("metadata", True), _as_piece(metadata), head(rootfs, False),
                      _as_piece(image_data), f"\r\n--{boundary}--\r\n".encode()]
        body = _UploadBody(pieces, progress)
        response = self.client.api.images.post(data=body, headers=headers)
        op = handle_async(self.client, response, True)
        result = (op.metadata or {}) if op is not None else response.json()["metadata"]
        image = self.get(str(result["fingerprint"]))
        for alias in aliases or ():
            image.add_alias(alias)
        return image

    def create_from_simplestreams(self, server: str, alias: str, public: bool = False,
                                  auto_update: bool = False) -> NoReturn:
        """Not supported: it would make LXD download from ``server``."""
        raise RemoteImagesUnsupported(
            f"create_from_simplestreams({server!r}, {alias!r}): pytest_lxd does not copy "
            "images from remote servers (no network access is assumed); build the image "
            "locally and upload it with images.create(data)")

    def create_from_url(self, url: str, public: bool = False,
                        auto_update: bool = False) -> NoReturn:
        """Not supported: it would make LXD download from ``url``."""
        raise RemoteImagesUnsupported(
            f"create_from_url({url!r}): pytest_lxd does not copy images from remote servers "
            "(no network access is assumed); download the file and use images.create(data)")


class ImageAlias(Model):
    """An image alias: ``name`` → ``target`` (a fingerprint). Writable: ``description``,
    ``target`` (``save()`` PUTs with ``If-Match``; LXD 5.0.2's alias PATCH hangs, so the
    client never PATCHes aliases on its own)."""

    name: str
    target: str
    description: str
    type: str

    _writable: ClassVar[tuple[str, ...]] = ("description", "target")

    @property
    def api(self) -> APINode:
        return self.client.api.images.aliases[self.name]

    @property
    def image(self) -> Image:
        """The image the alias points at."""
        return self.client.images.get(self.target)

    def rename(self, new_name: str, wait: bool = False) -> ImageAlias:
        """Rename the alias; returns this object, now under the new name."""
        self._rename({"name": new_name}, wait=True)
        return self


class ImageAliasManager(Manager):
    """``client.images.aliases``."""

    def all(self, recursion: int = 0) -> list[ImageAlias]:
        """Every alias: sparse (just the name) or, with ``recursion=1``, loaded."""
        node = self.client.api.images.aliases
        if recursion:
            return self._list(ImageAlias, node, recursion)
        prefix = "/images/aliases/"
        names = []
        for url in node.get().json()["metadata"] or []:
            path = urllib.parse.urlsplit(url).path
            names.append(urllib.parse.unquote(path.split(prefix, 1)[1]) if prefix in path
                         else name_from_url(url))
        return [ImageAlias(self.client, name=name) for name in names]

    def get(self, name: str) -> ImageAlias:
        return self._fetch(ImageAlias, self.client.api.images.aliases[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, target: str, description: str = "") -> ImageAlias:
        """Create alias ``name`` for the image ``target``; returns it, loaded."""
        body = {"name": name, "target": target, "description": description}
        self.client.api.images.aliases.post(json=body)
        return self.get(name)
