"""Backups: ``instance.backups`` (``lxc export``) and ``volume.backups`` (``lxc storage
volume export``), and the import helper behind ``client.instances.create_from_backup``
(``lxc import``) and ``pool.volumes.create_from_backup``.

pylxd 2.4.2 has no backups API; the names follow LXD's (``instance_only``,
``optimized_storage``, ``compression_algorithm``, ``expires_at``).
"""

from __future__ import annotations

import os
import shutil
from typing import IO, TYPE_CHECKING, Any, ClassVar, Union, overload

from .. import exceptions
from ..operations import handle_async
from .base import ZERO_TIME, Manager, Model, name_from_url

if TYPE_CHECKING:
    from ..client import APINode, Client
    from .instance import Instance
    from .operation import Operation
    from .storage import StorageVolume

__all__ = ["BackupSource", "InstanceBackup", "InstanceBackupManager", "StorageVolumeBackup",
           "StorageVolumeBackupManager"]

#: What an import reads: the tarball's bytes, a binary file object, or a path.
BackupSource = Union[bytes, IO[bytes], str, "os.PathLike[str]"]


class _Backup(Model):
    """What instance and volume backups share: read-only fields, ``expires_at`` None for
    Go's zero time, rename, delete and export."""

    name: str
    created_at: str
    expires_at: str | None
    optimized_storage: bool

    _writable: ClassVar[tuple[str, ...]] = ()

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("name"), str):
            data["name"] = data["name"].rsplit("/", 1)[-1]
        if data.get("expires_at") == ZERO_TIME:
            data["expires_at"] = None
        return data

    def rename(self, new_name: str, wait: bool = True) -> Operation | None:
        """Rename the backup (LXD runs it in the background: ``wait=False`` returns the
        operation, and the object takes the new name only once it is done)."""
        return self._rename({"name": new_name}, wait=wait)

    @overload
    def export(self, target: None = None) -> bytes: ...

    @overload
    def export(self, target: str | os.PathLike[str] | IO[bytes]) -> None: ...

    def export(self, target: str | os.PathLike[str] | IO[bytes] | None = None
               ) -> bytes | None:
        """The backup tarball (what ``lxc export`` saves): its bytes, or streamed into
        ``target`` (a path or a binary file object)."""
        if target is None:
            return self.api.export.get(is_api=False).content
        response = self.api.export.get(is_api=False, stream=True)
        try:
            if isinstance(target, (str, os.PathLike)):
                with open(target, "wb") as handle:
                    shutil.copyfileobj(response.raw, handle)
            else:
                for chunk in response.iter_content(1 << 16):
                    target.write(chunk)
        finally:
            response.close()
        return None


class InstanceBackup(_Backup):
    """A backup of an instance; ``name`` is the backup's own name. Nothing is writable
    (LXD has no PUT for backups): ``rename``, ``delete`` and ``export``."""

    instance_only: bool
    container_only: bool

    def __init__(self, client: Client, instance: Instance | None = None, **data: Any) -> None:
        super().__init__(client, **data)
        self.instance = instance

    def _identity(self) -> tuple[Any, ...]:
        parent = self.instance._identity() if self.instance is not None else None
        return (*super()._identity(), parent)

    @property
    def api(self) -> APINode:
        if self.instance is None:
            raise ValueError(f"backup {self.name!r} is not attached to an instance")
        return self.instance.api.backups[self.name]


def created_name(op: Operation | None, given: str | None) -> str:
    """The backup's name: the one asked for, else LXD's pick (its ``backups`` resource)."""
    if given:
        return given
    urls = ((op.resources or {}) if op is not None else {}).get("backups") or []
    if not urls:
        raise exceptions.LXDAPIException(None, "LXD did not say which backup it created")
    return name_from_url(urls[0])


def backup_body(name: str | None, expires_at: str | None, optimized_storage: bool,
                compression_algorithm: str | None, **only: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name or "", **only,
                            "optimized_storage": optimized_storage}
    if expires_at is not None:
        body["expires_at"] = expires_at
    if compression_algorithm is not None:
        body["compression_algorithm"] = compression_algorithm
    return body


class InstanceBackupManager(Manager):
    """``instance.backups``."""

    def __init__(self, client: Client, instance: Instance) -> None:
        super().__init__(client)
        self.instance = instance

    def all(self, recursion: int = 0) -> list[InstanceBackup]:
        """The instance's backups (by name): sparse (``recursion=0``) or loaded."""
        return self._list(InstanceBackup, self.instance.api.backups, recursion,
                          instance=self.instance)

    def get(self, name: str) -> InstanceBackup:
        return self._fetch(InstanceBackup, self.instance.api.backups[name],
                           instance=self.instance)

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str | None = None, *, expires_at: str | None = None,
               instance_only: bool = False, optimized_storage: bool = False,
               compression_algorithm: str | None = None, wait: bool = True) -> InstanceBackup:
        """Back the instance up and return the backup, loaded.

        ``name`` None lets LXD pick (``backup<N>``); ``instance_only`` leaves the snapshots
        out; ``compression_algorithm`` (``gzip``, ``xz``, ``zstd``, ``none``...) defaults to
        the server's ``backups.compression_algorithm``. Always waits (LXD fails a duplicate
        name in the operation, which raises here); ``wait`` is accepted for symmetry.
        """
        body = backup_body(name, expires_at, optimized_storage, compression_algorithm,
                           instance_only=instance_only)
        op = handle_async(self.client, self.instance.api.backups.post(json=body), True)
        return self.get(created_name(op, name))


def read_source(data: BackupSource) -> bytes | IO[bytes]:
    """What an import sends: bytes and file objects as they are, a path opened."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as handle:
            return handle.read()
    return data


def import_backup(client: Client, node: APINode, data: BackupSource,
                  headers: dict[str, str]) -> Operation:
    """POST a backup tarball to ``node`` and wait for LXD to restore it."""
    sent = {"Content-Type": "application/octet-stream",
            **{k: v for k, v in headers.items() if v}}
    op = handle_async(client, node.post(data=read_source(data), headers=sent), True)
    if op is None:
        raise exceptions.LXDAPIException(None, "LXD did not start an import operation")
    return op


class StorageVolumeBackup(_Backup):
    """A backup of a custom storage volume; ``name`` is the backup's own name. Nothing is
    writable: ``rename``, ``delete`` and ``export``."""

    volume_only: bool

    def __init__(self, client: Client, volume: StorageVolume | None = None,
                 **data: Any) -> None:
        super().__init__(client, **data)
        self.volume = volume

    def _identity(self) -> tuple[Any, ...]:
        parent = self.volume._identity() if self.volume is not None else None
        return (*super()._identity(), parent)

    @property
    def api(self) -> APINode:
        if self.volume is None:
            raise ValueError(f"backup {self.name!r} is not attached to a volume")
        return self.volume.api.backups[self.name]


class StorageVolumeBackupManager(Manager):
    """``volume.backups`` (custom volumes only)."""

    def __init__(self, client: Client, volume: StorageVolume) -> None:
        super().__init__(client)
        self.volume = volume

    def all(self, recursion: int = 0) -> list[StorageVolumeBackup]:
        """The volume's backups (in creation order): sparse or loaded."""
        return self._list(StorageVolumeBackup, self.volume.api.backups, recursion,
                          volume=self.volume)

    def get(self, name: str) -> StorageVolumeBackup:
        return self._fetch(StorageVolumeBackup, self.volume.api.backups[name],
                           volume=self.volume)

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str | None = None, *, expires_at: str | None = None,
               volume_only: bool = False, optimized_storage: bool = False,
               compression_algorithm: str | None = None,
               wait: bool = True) -> StorageVolumeBackup:
        """Back the volume up (``volume_only`` leaves its snapshots out) and return the
        backup, loaded; always waits, as ``instance.backups.create``."""
        body = backup_body(name, expires_at, optimized_storage, compression_algorithm,
                           volume_only=volume_only)
        op = handle_async(self.client, self.volume.api.backups.post(json=body), True)
        return self.get(created_name(op, name))
