"""Instance snapshots: ``instance.snapshots``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from .. import exceptions
from ..operations import handle_async
from .base import Manager, SnapshotModel, name_from_url

if TYPE_CHECKING:
    from ..client import APINode, Client
    from .image import Image
    from .instance import Instance
    from .operation import Operation

__all__ = ["Snapshot", "SnapshotManager"]



class Snapshot(SnapshotModel):
    """A snapshot of an instance; ``name`` is the snapshot's own name (no ``inst/`` prefix).

    Writable: ``expires_at`` (None when it never expires; LXD runs the update in the
    background, so ``save(wait=True)`` waits for it). Every field LXD 5.0.2 sends is kept
    (pylxd declared three and warned about the rest).
    """

    name: str
    architecture: str
    config: dict[str, str]
    created_at: str
    devices: dict[str, dict[str, str]]
    ephemeral: bool
    expanded_config: dict[str, str]
    expanded_devices: dict[str, dict[str, str]]
    expires_at: str | None
    last_used_at: str
    profiles: list[str]
    size: int
    stateful: bool

    _writable: ClassVar[tuple[str, ...]] = ("expires_at",)

    def __init__(self, client: Client, instance: Instance | None = None, **data: Any) -> None:
        super().__init__(client, **data)
        self.instance = instance

    def _identity(self) -> tuple[Any, ...]:
        parent = self.instance._identity() if self.instance is not None else None
        return (*super()._identity(), parent)

    @property
    def _parent(self) -> Instance:
        if self.instance is None:
            raise ValueError(f"snapshot {self.name!r} is not attached to an instance")
        return self.instance

    @property
    def api(self) -> APINode:
        return self._parent.api.snapshots[self.name]

    def rename(self, new_name: str, wait: bool = False) -> Snapshot:
        """Rename the snapshot (always waits); returns this object under the new name."""
        self._rename({"name": new_name}, wait=True)
        return self

    def restore(self, wait: bool = False) -> Operation | None:
        """Restore the instance to this snapshot (``stateful`` as the snapshot was taken)."""
        return self._parent.restore_snapshot(self.name, wait=wait, stateful=bool(
            self._data.get("stateful", False)))

    @overload
    def publish(self, public: bool = False, wait: Literal[False] = False, *,
                aliases: list[str] | None = None, properties: dict[str, str] | None = None,
                compression_algorithm: str | None = None) -> Operation: ...

    @overload
    def publish(self, public: bool = False, *, wait: Literal[True],
                aliases: list[str] | None = None, properties: dict[str, str] | None = None,
                compression_algorithm: str | None = None) -> Image: ...

    @overload
    def publish(self, public: bool = False, wait: bool = False, *,
                aliases: list[str] | None = None, properties: dict[str, str] | None = None,
                compression_algorithm: str | None = None) -> Image | Operation: ...

    def publish(self, public: bool = False, wait: bool = False, *,
                aliases: list[str] | None = None, properties: dict[str, str] | None = None,
                compression_algorithm: str | None = None) -> Image | Operation:
        """Make an image of this snapshot: the :class:`Image` with ``wait=True``, else the
        running :class:`Operation` (its ``metadata["fingerprint"]`` names the image)."""
        from .instance import publish

        return publish(self.client, {"type": "snapshot",
                                     "name": f"{self._parent.name}/{self.name}"},
                       public, wait, aliases, properties, compression_algorithm)

    def copy(self, new_name: str, wait: bool = True, **config: Any) -> Instance:
        """A new instance made from this snapshot (``source: copy``, the snapshot's
        ``profiles`` unless given); returns it, loaded."""
        return self._parent.client.instances.create(
            {"profiles": list(self.profiles), **config, "name": new_name,
             "source": {"type": "copy", "source": f"{self._parent.name}/{self.name}"}},
            wait=wait)


class SnapshotManager(Manager):
    """``instance.snapshots``."""

    def __init__(self, client: Client, instance: Instance) -> None:
        super().__init__(client)
        self.instance = instance

    def all(self, recursion: int = 0) -> list[Snapshot]:
        """The instance's snapshots: sparse (``recursion=0``) or loaded."""
        node = self.instance.api.snapshots
        if recursion:
            items = node.get(params={"recursion": 1}).json()["metadata"] or []
            return [Snapshot._from_data(self.client, item, instance=self.instance)
                    for item in items]
        return [Snapshot(self.client, instance=self.instance, name=name_from_url(url))
                for url in node.get().json()["metadata"] or []]

    def get(self, name: str) -> Snapshot:
        return self._fetch(Snapshot, self.instance.api.snapshots[name], instance=self.instance)

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str | None = None, stateful: bool = False, wait: bool = False, *,
               expires_at: str | None = None) -> Snapshot:
        """Snapshot the instance and return the snapshot, loaded.

        ``name`` None lets LXD choose (``snap<N>``). Always waits (LXD accepts a duplicate
        name and fails the operation, which raises here); ``wait`` is accepted for pylxd.
        """
        before = {s.name for s in self.all()} if name is None else set()
        body: dict[str, Any] = {"name": name or "", "stateful": stateful}
        if expires_at is not None:
            body["expires_at"] = expires_at
        handle_async(self.client, self.instance.api.snapshots.post(json=body), True)
        if name is None:
            created = sorted({s.name for s in self.all()} - before)
            if len(created) != 1:
                raise exceptions.LXDAPIException(
                    None, f"cannot tell which snapshot was created: {created}")
            name = created[0]
        return self.get(name)
