"""Network ACLs: ``client.network_acls``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..operations import handle_async
from .base import Manager, Model

if TYPE_CHECKING:
    from ..client import APINode

__all__ = ["NetworkACL", "NetworkACLManager"]


class NetworkACL(Model):
    """A network ACL. Writable: ``description``, ``config``, ``ingress``, ``egress``.

    Rules are dicts with LXD's keys (``action``, ``state``, ``source``, ``destination``,
    ``protocol``, ``source_port``, ``destination_port``, ``icmp_type``, ``icmp_code``,
    ``description``); LXD leaves out the empty ones and trims the rest, so a saved object is
    reloaded in that form. :meth:`save` sends the whole object (LXD 5.0.2's PATCH of an ACL
    would empty the rule lists it is not sent).
    """

    name: str
    description: str
    config: dict[str, str]
    ingress: list[dict[str, str]]
    egress: list[dict[str, str]]
    used_by: list[str]

    _writable: ClassVar[tuple[str, ...]] = ("description", "config", "ingress", "egress")

    @property
    def api(self) -> APINode:
        return self.client.api.network_acls[self.name]

    def rename(self, new_name: str) -> NetworkACL:
        """Rename the ACL (LXD refuses while it is in use); returns this object, renamed."""
        self._rename({"name": new_name}, wait=True)
        return self

    def log(self) -> str:
        """The ACL's log entries as text. Only OVN networks keep them: elsewhere LXD answers
        500 ``Only OVN log entries may be retrieved at this time``, raised as
        :class:`~pytest_lxd.exceptions.LXDAPIException`."""
        response = self.api.log.get(is_api=False)
        return response.content.decode("utf-8", errors="replace")


class NetworkACLManager(Manager):
    """``client.network_acls`` (the client's project, or the default project's ACLs when the
    project lacks ``features.networks``)."""

    def all(self, recursion: int = 0) -> list[NetworkACL]:
        """Every ACL in LXD's order (creation): sparse objects that load on first use
        (``recursion=1``: loaded)."""
        self.client.assert_has_api_extension("network_acl")
        return self._list(NetworkACL, self.client.api.network_acls, recursion)

    def get(self, name: str) -> NetworkACL:
        self.client.assert_has_api_extension("network_acl")
        return self._fetch(NetworkACL, self.client.api.network_acls[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, description: str = "", config: dict[str, str] | None = None,
               ingress: list[dict[str, str]] | None = None,
               egress: list[dict[str, str]] | None = None) -> NetworkACL:
        """Create an ACL and return it as stored (loaded)."""
        self.client.assert_has_api_extension("network_acl")
        body: dict[str, Any] = {"name": name, "description": description,
                                "config": config or {}, "ingress": ingress or [],
                                "egress": egress or []}
        handle_async(self.client, self.client.api.network_acls.post(json=body), True)
        return self.get(name)
