"""Warnings: ``client.warnings`` (pylxd has none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import Manager, Model

if TYPE_CHECKING:
    from ..client import APINode
    from .operation import Operation

__all__ = ["Warning", "WarningManager"]


class Warning(Model):  # noqa: A001 - LXD's name for it
    """A server warning, keyed by ``uuid``. Writable: ``status`` (``new``/``acknowledged``)."""

    uuid: str
    status: str
    type: str
    severity: str
    count: int
    first_seen_at: str
    last_seen_at: str
    last_message: str
    location: str
    project: str
    entity_url: str

    _key: ClassVar[tuple[str, ...]] = ("uuid",)
    _writable: ClassVar[tuple[str, ...]] = ("status",)

    @property
    def api(self) -> APINode:
        return self.client.api.warnings[self.uuid]

    def acknowledge(self) -> Operation | None:
        """Set ``status`` to ``acknowledged`` and save."""
        self.status = "acknowledged"
        return self.save()


class WarningManager(Manager):
    """``client.warnings`` (needs the ``warnings`` API extension)."""

    def all(self, recursion: int = 0) -> list[Warning]:
        self.client.assert_has_api_extension("warnings")
        return self._list(Warning, self.client.api.warnings, recursion, key="uuid")

    def get(self, uuid: str) -> Warning:
        self.client.assert_has_api_extension("warnings")
        return self._fetch(Warning, self.client.api.warnings[uuid])

    def exists(self, uuid: str) -> bool:
        return self._exists(self.get, uuid)
