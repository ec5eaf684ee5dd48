"""DNS zones and their records: ``client.network_zones``, ``zone.records``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..operations import handle_async
from .base import Manager, Model

if TYPE_CHECKING:
    from ..client import APINode, Client

__all__ = ["NetworkZone", "NetworkZoneManager", "NetworkZoneRecord", "NetworkZoneRecordManager"]


class NetworkZone(Model):
    """A DNS zone (``features.networks`` projects have their own). Writable: ``config``,
    ``description``. LXD 5.0.2 has no zone rename; zone names are unique over all projects."""

    name: str
    description: str
    config: dict[str, str]
    used_by: list[str]

    _writable: ClassVar[tuple[str, ...]] = ("config", "description")

    def __init__(self, client: Client, **data: Any) -> None:
        super().__init__(client, **data)
        self.records = NetworkZoneRecordManager(client, self)

    @property
    def api(self) -> APINode:
        return self.client.api.network_zones[self.name]


class NetworkZoneManager(Manager):
    """``client.network_zones`` (needs the ``network_dns`` API extension)."""

    def all(self, recursion: int = 0) -> list[NetworkZone]:
        self.client.assert_has_api_extension("network_dns")
        return self._list(NetworkZone, self.client.api.network_zones, recursion)

    def get(self, name: str) -> NetworkZone:
        self.client.assert_has_api_extension("network_dns")
        return self._fetch(NetworkZone, self.client.api.network_zones[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, description: str | None = None,
               config: dict[str, str] | None = None) -> NetworkZone:
        """Create a zone and return it as stored."""
        self.client.assert_has_api_extension("network_dns")
        body: dict[str, Any] = {"name": name, "config": config or {}}
        if description is not None:
            body["description"] = description
        handle_async(self.client, self.client.api.network_zones.post(json=body), True)
        return self.get(name)


class NetworkZoneRecord(Model):
    """A record of a zone: ``entries`` is a list of ``{"type", "value", "ttl"}`` (LXD leaves
    out a zero ``ttl``, and sends None for a record created without entries). Writable:
    ``config``, ``description``, ``entries``.

    LXD 5.0.2's PATCH on a record merges the *zone's* config, so use :meth:`save` (a PUT)
    rather than :meth:`patch`. Record names are unique over all zones of the server.
    """

    name: str
    description: str
    entries: list[dict[str, Any]] | None
    config: dict[str, str]

    _writable: ClassVar[tuple[str, ...]] = ("config", "description", "entries")

    def __init__(self, client: Client, zone: NetworkZone | None = None, **data: Any) -> None:
        super().__init__(client, **data)
        self.zone = zone

    def _identity(self) -> tuple[Any, ...]:
        zone = self.zone.name if self.zone is not None else None
        return (*super()._identity(), zone)

    @property
    def api(self) -> APINode:
        assert self.zone is not None, "a NetworkZoneRecord needs its zone"
        return self.zone.api.records[self.name]


class NetworkZoneRecordManager(Manager):
    """``zone.records`` (needs the ``network_dns_records`` API extension)."""

    def __init__(self, client: Client, zone: NetworkZone) -> None:
        super().__init__(client)
        self.zone = zone

    def all(self, recursion: int = 0) -> list[NetworkZoneRecord]:
        self.client.assert_has_api_extension("network_dns_records")
        return self._list(NetworkZoneRecord, self.zone.api.records, recursion, zone=self.zone)

    def get(self, name: str) -> NetworkZoneRecord:
        self.client.assert_has_api_extension("network_dns_records")
        return self._fetch(NetworkZoneRecord, self.zone.api.records[name], zone=self.zone)

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, description: str | None = None,
               entries: list[dict[str, Any]] | None = None,
               config: dict[str, str] | None = None) -> NetworkZoneRecord:
        """Create a record and return it as stored."""
        self.client.assert_has_api_extension("network_dns_records")
        body: dict[str, Any] = {"name": name, "config": config or {}}
        if description is not None:
            body["description"] = description
        if entries is not None:
            body["entries"] = entries
        handle_async(self.client, self.zone.api.records.post(json=body), True)
        return self.get(name)
