"""Storage: ``client.storage_pools``, ``pool.volumes``, ``volume.snapshots``, ``pool.resources``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from .. import exceptions
from ..operations import handle_async
from .backup import BackupSource, StorageVolumeBackupManager, import_backup
from .base import AttributeDict, Manager, Model, SnapshotModel, name_from_url
from .operation import Operation

if TYPE_CHECKING:
    from ..client import APINode, Client

__all__ = ["StoragePool", "StoragePoolManager", "StorageResources", "StorageResourcesManager",
           "StorageVolume", "StorageVolumeManager", "StorageVolumeSnapshot",
           "StorageVolumeSnapshotManager"]



class StoragePool(Model):
    """A storage pool. Writable: ``config``, ``description``.

    LXD 5.0.2 sends no ETag for pools, so ``save()`` first re-reads the pool and refuses
    (``ETagMismatch``) if its writable fields changed on the server since it was loaded.
    """

    name: str
    description: str
    driver: str
    config: dict[str, str]
    used_by: list[str]
    status: str
    locations: list[str]

    _writable: ClassVar[tuple[str, ...]] = ("config", "description")

    def __init__(self, client: Client, **data: Any) -> None:
        super().__init__(client, **data)
        self.volumes = StorageVolumeManager(client, self)
        self.resources = StorageResourcesManager(client, self)

    @property
    def api(self) -> APINode:
        return self.client.api.storage_pools[self.name]


class StoragePoolManager(Manager):
    """``client.storage_pools`` (needs the ``storage`` API extension)."""

    def all(self, recursion: int = 0) -> list[StoragePool]:
        self.client.assert_has_api_extension("storage")
        return self._list(StoragePool, self.client.api.storage_pools, recursion)

    def get(self, name: str) -> StoragePool:
        self.client.assert_has_api_extension("storage")
        return self._fetch(StoragePool, self.client.api.storage_pools[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, definition: dict[str, Any], wait: bool = True) -> StoragePool:
        """Create a pool from ``{"name", "driver", "config", "description"}``; returns it."""
        self.client.assert_has_api_extension("storage")
        response = self.client.api.storage_pools.post(json=definition)
        handle_async(self.client, response, True)
        return self.get(definition["name"])


class StorageResources(AttributeDict):
    """``GET /1.0/storage-pools/<pool>/resources``: ``space`` and ``inodes``."""


class StorageResourcesManager(Manager):
    """``pool.resources``."""

    def __init__(self, client: Client, storage_pool: StoragePool) -> None:
        super().__init__(client)
        self.storage_pool = storage_pool

    def get(self) -> StorageResources:
        self.client.assert_has_api_extension("resources")
        return StorageResources(self.storage_pool.api.resources.get().json()["metadata"])


def _volume_path(pool: StoragePool, type_: str, name: str) -> APINode:
    """``volumes/<type>/<name>``; a snapshot volume ``vol/snap`` is ``<vol>/snapshots/<snap>``."""
    node = pool.api.volumes[type_]
    if "/" in name:
        volume, snapshot = name.split("/", 1)
        return node[volume].snapshots[snapshot]
    return node[name]


class StorageVolume(Model):
    """A storage volume (``custom``, ``container``, ``virtual-machine`` or ``image``).

    Writable: ``config`` and ``description`` (pylxd had the latter read-only).
    """

    name: str
    type: str
    description: str
    config: dict[str, str]
    used_by: list[str]
    location: str
    content_type: str
    project: str
    created_at: str

    _key: ClassVar[tuple[str, ...]] = ("type", "name")
    _writable: ClassVar[tuple[str, ...]] = ("config", "description")

    def __init__(self, client: Client, storage_pool: StoragePool | None = None,
                 **data: Any) -> None:
        super().__init__(client, **data)
        self.storage_pool = storage_pool
        self.snapshots = StorageVolumeSnapshotManager(client, self)
        self.backups = StorageVolumeBackupManager(client, self)

    def _identity(self) -> tuple[Any, ...]:
        pool = self.storage_pool.name if self.storage_pool is not None else None
        return (*super()._identity(), pool)

    @property
    def api(self) -> APINode:
        assert self.storage_pool is not None, "a StorageVolume needs its storage pool"
        return _volume_path(self.storage_pool, self.type, self.name)

    def rename(self, new_name: str | dict[str, Any], wait: bool = False) -> StorageVolume:
        """Rename (``"new"``) or move (``{"name": ..., "pool": ...}``) the volume.

        Returns this object under its new name (and pool). pylxd returned the reply's
        metadata instead.
        """
        body = {"name": new_name} if isinstance(new_name, str) else dict(new_name)
        op = handle_async(self.client, self.api.post(json=body), wait)
        if op is None or op.done:
            pool = body.get("pool")
            if pool and self.storage_pool is not None and pool != self.storage_pool.name:
                self.storage_pool = StoragePool(self.client, name=pool)
            self._data["name"] = body["name"]
            self._etag = None
        return self

    def restore_from(self, snapshot_name: str, wait: bool = False) -> Operation | None:
        """Restore the volume from one of its snapshots (``PUT {"restore": name}``)."""
        response = self.api.put(json={"restore": snapshot_name})
        return self._after_write(response, wait)


class StorageVolumeManager(Manager):
    """``pool.volumes``."""

    def __init__(self, client: Client, storage_pool: StoragePool) -> None:
        super().__init__(client)
        self.storage_pool = storage_pool

    def all(self, recursion: int = 0) -> list[StorageVolume]:
        """Every volume of the pool, instance snapshots included (as ``name="c1/snap0"``)."""
        node = self.storage_pool.api.volumes
        if recursion:
            items = node.get(params={"recursion": 1}).json()["metadata"] or []
            return [StorageVolume._from_data(self.client, item, storage_pool=self.storage_pool)
                    for item in items]
        volumes = []
        for url in node.get().json()["metadata"] or []:
            type_, name = _parse_volume_url(url)
            volumes.append(StorageVolume(self.client, storage_pool=self.storage_pool,
                                         type=type_, name=name))
        return volumes

    def get(self, _type: str, name: str) -> StorageVolume:
        return self._fetch(StorageVolume, _volume_path(self.storage_pool, _type, name),
                           storage_pool=self.storage_pool)

    def exists(self, _type: str, name: str) -> bool:
        return self._exists(self.get, _type, name)

    @overload
    def create(self, definition: dict[str, Any], /, *, wait: bool = True) -> StorageVolume: ...

    @overload
    def create(self, _type: str, definition: dict[str, Any], /, *,
               wait: bool = True) -> StorageVolume: ...

    def create(self, *args: Any, wait: bool = True) -> StorageVolume:
        """Create a volume from ``{"name", "config", "description", "content_type"...}``.

        ``create(definition)`` makes a custom volume; ``create("custom", definition)`` is
        accepted too. Returns the volume, loaded.
        """
        if len(args) == 1 and isinstance(args[0], dict):
            type_, definition = "custom", args[0]
        elif len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], dict):
            type_, definition = args
        else:
            raise TypeError("create(definition) or create(type, definition) expected")
        if "name" not in definition:
            raise ValueError("the volume definition needs a 'name'")
        response = self.storage_pool.api.volumes[type_].post(json=definition)
        handle_async(self.client, response, True)
        return self.get(type_, definition["name"])

    def create_from_backup(self, data: BackupSource, name: str | None = None,
                           wait: bool = True) -> StorageVolume:
        """Import a custom volume backup (``lxc storage volume import``): ``data`` is the
        tarball's bytes, a binary file object or a path; ``name`` overrides the backup's.
        Returns the volume, loaded; always waits."""
        op = import_backup(self.client, self.storage_pool.api.volumes.custom, data,
                           {"X-LXD-name": name or ""})
        urls = (op.resources or {}).get("storage_volumes") or []
        if not urls:
            raise exceptions.LXDAPIException(None, "LXD did not say which volume it restored")
        return self.get("custom", name_from_url(urls[0]))


def _parse_volume_url(url: str) -> tuple[str, str]:
    """``/1.0/storage-pools/p/volumes/<type>/<name>[/snapshots/<snap>]`` → (type, name)."""
    path = url.split("?", 1)[0]
    tail = path.split("/volumes/", 1)[1]
    parts = [p for p in tail.split("/") if p]
    from urllib.parse import unquote

    if len(parts) >= 4 and parts[2] == "snapshots":
        return unquote(parts[0]), f"{unquote(parts[1])}/{unquote(parts[3])}"
    return unquote(parts[0]), unquote("/".join(parts[1:]))


class StorageVolumeSnapshot(SnapshotModel):
    """A snapshot of a storage volume; ``name`` is the snapshot's own name.

    Writable: ``description``, ``expires_at`` (None when it never expires). Its
    ``config`` is the volume's at snapshot time.
    """

    name: str
    description: str
    config: dict[str, str]
    content_type: str
    created_at: str | None
    expires_at: str | None

    _writable: ClassVar[tuple[str, ...]] = ("description", "expires_at")

    def __init__(self, client: Client, volume: StorageVolume | None = None,
                 **data: Any) -> None:
        super().__init__(client, **data)
        self.volume = volume

    def _identity(self) -> tuple[Any, ...]:
        volume = self.volume._identity() if self.volume is not None else None
        return (*super()._identity(), volume)

    @property
    def api(self) -> APINode:
        assert self.volume is not None, "a StorageVolumeSnapshot needs its volume"
        return self.volume.api.snapshots[self.name]

    def rename(self, new_name: str, wait: bool = True) -> StorageVolumeSnapshot:
        """Rename the snapshot; returns this object, now under the new name."""
        self._rename({"name": new_name}, wait)
        return self

    def restore(self, wait: bool = False) -> Operation | None:
        """Restore the volume from this snapshot."""
        assert self.volume is not None
        return self.volume.restore_from(self.name, wait)


class StorageVolumeSnapshotManager(Manager):
    """``volume.snapshots`` (needs ``storage_api_volume_snapshots``)."""

    def __init__(self, client: Client, volume: StorageVolume) -> None:
        super().__init__(client)
        self.volume = volume

    @overload
    def all(self, use_recursion: Literal[False] = False) -> list[str]: ...

    @overload
    def all(self, use_recursion: Literal[True]) -> list[StorageVolumeSnapshot]: ...

    def all(self, use_recursion: bool = False) -> list[str] | list[StorageVolumeSnapshot]:
        """Snapshot names, as in pylxd; loaded objects with ``use_recursion=True``."""
        self.client.assert_has_api_extension("storage_api_volume_snapshots")
        node = self.volume.api.snapshots
        if use_recursion:
            items = node.get(params={"recursion": 1}).json()["metadata"] or []
            return [StorageVolumeSnapshot._from_data(self.client, item, volume=self.volume)
                    for item in items]
        return [name_from_url(url) for url in node.get().json()["metadata"] or []]

    def get(self, name: str) -> StorageVolumeSnapshot:
        self.client.assert_has_api_extension("storage_api_volume_snapshots")
        return self._fetch(StorageVolumeSnapshot, self.volume.api.snapshots[name],
                           volume=self.volume)

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    @overload
    def create(self, name: str | None = None, expires_at: str | None = None,
               wait: Literal[True] = True) -> StorageVolumeSnapshot: ...

    @overload
    def create(self, name: str | None = None, expires_at: str | None = None, *,
               wait: bool) -> StorageVolumeSnapshot | Operation: ...

    def create(self, name: str | None = None, expires_at: str | None = None,
               wait: bool = True) -> StorageVolumeSnapshot | Operation:
        """Snapshot the volume (LXD names it ``snap<N>`` if ``name`` is None).

        Returns the snapshot; with ``wait=False`` and a background operation, the operation.
        """
        self.client.assert_has_api_extension("storage_api_volume_snapshots")
        before = set(self.all()) if name is None else set()
        body: dict[str, Any] = {"name": name or ""}
        if expires_at is not None:
            body["expires_at"] = expires_at
        op = handle_async(self.client, self.volume.api.snapshots.post(json=body), wait)
        if op is not None and not op.done:
            return op
        if name is None:
            created = sorted(set(self.all()) - before)
            if len(created) != 1:
                raise exceptions.LXDAPIException(
                    None, f"cannot tell which snapshot was created: {created}")
            name = created[0]
        return self.get(name)
