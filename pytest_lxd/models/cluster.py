"""Clustering: ``client.cluster``, ``client.cluster.members``, ``client.cluster.certificate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .. import exceptions
from ..operations import handle_async
from .base import Manager, Model

if TYPE_CHECKING:
    from ..client import APINode, Client

__all__ = ["Cluster", "ClusterCertificateManager", "ClusterManager", "ClusterMember",
           "ClusterMemberManager"]


class Cluster(Model):
    """``GET /1.0/cluster``. Writable (as LXD's ``ClusterPut``): ``server_name``, ``enabled``,
    ``member_config``; saving them enables or changes clustering."""

    server_name: str
    enabled: bool
    member_config: list[dict[str, Any]]

    _key: ClassVar[tuple[str, ...]] = ("server_name",)
    _writable: ClassVar[tuple[str, ...]] = ("server_name", "enabled", "member_config")

    def __init__(self, client: Client, **data: Any) -> None:
        super().__init__(client, **data)
        self.members = ClusterMemberManager(client)
        self.certificate = ClusterCertificateManager(client)

    @property
    def api(self) -> APINode:
        return self.client.api.cluster


class ClusterMember(Model):
    """A cluster member, keyed by ``server_name``.

    Writable (``ClusterMemberPut``): ``config``, ``description``, ``failure_domain``,
    ``groups``, ``roles``.
    """

    server_name: str
    url: str
    database: bool
    status: str
    message: str
    architecture: str
    description: str
    failure_domain: str
    config: dict[str, str]
    groups: list[str]
    roles: list[str]

    _key: ClassVar[tuple[str, ...]] = ("server_name",)
    _writable: ClassVar[tuple[str, ...]] = ("config", "description", "failure_domain",
                                            "groups", "roles")

    @property
    def api(self) -> APINode:
        return self.client.api.cluster.members[self.server_name]


class ClusterMemberManager(Manager):
    """``client.cluster.members`` (LXD answers 500 "Server is not clustered" when alone)."""

    def all(self, recursion: int = 0) -> list[ClusterMember]:
        self.client.assert_has_api_extension("clustering")
        return self._list(ClusterMember, self.client.api.cluster.members, recursion,
                          key="server_name")

    def get(self, server_name: str) -> ClusterMember:
        self.client.assert_has_api_extension("clustering")
        return self._fetch(ClusterMember, self.client.api.cluster.members[server_name])

    def exists(self, server_name: str) -> bool:
        return self._exists(self.get, server_name)


class ClusterCertificateManager(Manager):
    """``client.cluster.certificate``."""

    def put(self, cert: str, key: str) -> None:
        """Replace the cluster certificate (PEM strings)."""
        self.client.assert_has_api_extension("clustering_update_cert")
        self.client.api.cluster.certificate.put(
            json={"cluster_certificate": cert, "cluster_certificate_key": key})


class ClusterManager(Manager):
    """``client.cluster``."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.members = ClusterMemberManager(client)
        self.certificate = ClusterCertificateManager(client)

    def get(self, *args: Any) -> Cluster:
        """The cluster settings (``enabled`` is false on a standalone server)."""
        self.client.assert_has_api_extension("clustering")
        return self._fetch(Cluster, self.client.api.cluster)

    def enable(self, server_name: str) -> None:
        """Turn this standalone server into a one-member cluster (waits for it)."""
        self.client.assert_has_api_extension("clustering_join")
        response = self.client.api.cluster.put(json={"server_name": server_name,
                                                     "enabled": True})
        op = handle_async(self.client, response, True)
        if op is not None and not op.succeeded:
            raise exceptions.OperationFailed(response, op.err, operation=op)
