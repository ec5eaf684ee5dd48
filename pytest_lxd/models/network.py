"""Networks and their port forwards: ``client.networks``, ``network.forwards``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..operations import handle_async
from .base import AttributeDict, Manager, Model, name_from_url

if TYPE_CHECKING:
    from ..client import APINode, Client
    from .operation import Operation

__all__ = ["Network", "NetworkForward", "NetworkForwardManager", "NetworkManager",
           "NetworkState"]


class NetworkState(AttributeDict):
    """``GET /1.0/networks/<name>/state``: ``addresses``, ``counters``, ``hwaddr``, ``mtu``..."""


class Network(Model):
    """An LXD network (managed or not). Writable: ``config``, ``description``."""

    name: str
    description: str
    type: str
    config: dict[str, str]
    status: str
    locations: list[str] | None
    managed: bool
    used_by: list[str] | None

    _writable: ClassVar[tuple[str, ...]] = ("config", "description")

    def __init__(self, client: Client, **data: Any) -> None:
        super().__init__(client, **data)
        self.forwards = NetworkForwardManager(client, self)

    @property
    def api(self) -> APINode:
        return self.client.api.networks[self.name]

    def rename(self, new_name: str, wait: bool = True) -> Network:
        """Rename the network; returns this object, now under the new name."""
        self._rename({"name": new_name}, wait)
        return self

    def state(self) -> NetworkState:
        return NetworkState(self.api.state.get().json()["metadata"])

    def __str__(self) -> str:
        return repr(self)


class NetworkManager(Manager):
    """``client.networks``."""

    def all(self, recursion: int = 0) -> list[Network]:
        """Every network, managed and unmanaged (``lo``, ``eth0``...)."""
        return self._list(Network, self.client.api.networks, recursion)

    def get(self, name: str) -> Network:
        return self._fetch(Network, self.client.api.networks[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, description: str | None = None, type: str | None = None,
               config: dict[str, str] | None = None, wait: bool = True) -> Network:
        """Create a managed network and return it (always complete when this returns)."""
        self.client.assert_has_api_extension("network")
        body: dict[str, Any] = {"name": name, "config": config or {}}
        if description is not None:
            body["description"] = description
        if type is not None:
            body["type"] = type
        handle_async(self.client, self.client.api.networks.post(json=body), True)
        return self.get(name)


class NetworkForward(Model):
    """A port forward on a network, keyed by ``listen_address``.

    LXD 5.0.2 ignores ``If-Match`` on forwards, so :meth:`save` first compares the server's
    state with the one loaded and raises :class:`~pytest_lxd.exceptions.ETagMismatch` if it
    moved (one more GET) rather than overwrite someone else's change.
    """

    listen_address: str
    description: str
    config: dict[str, str]
    ports: list[dict[str, Any]]
    location: str

    _key: ClassVar[tuple[str, ...]] = ("listen_address",)
    _writable: ClassVar[tuple[str, ...]] = ("config", "description", "ports")

    def __init__(self, client: Client, network: Network | None = None, **data: Any) -> None:
        super().__init__(client, **data)
        self.network = network

    def _identity(self) -> tuple[Any, ...]:
        network = self.network.name if self.network is not None else None
        return (*super()._identity(), network)

    @property
    def api(self) -> APINode:
        assert self.network is not None, "a NetworkForward needs its network"
        return self.network.api.forwards[self.listen_address]

    def save(self, wait: bool = False) -> Operation | None:
        if not self.dirty:
            return None
        self._guard_concurrent_change()
        return super().save(wait)


class NetworkForwardManager(Manager):
    """``network.forwards`` (needs the ``network_forward`` API extension)."""

    def __init__(self, client: Client, network: Network) -> None:
        super().__init__(client)
        self.network = network

    def all(self, recursion: int = 0) -> list[NetworkForward]:
        self.client.assert_has_api_extension("network_forward")
        return self._list(NetworkForward, self.network.api.forwards, recursion,
                          key="listen_address", network=self.network)

    def get(self, listen_address: str) -> NetworkForward:
        self.client.assert_has_api_extension("network_forward")
        return self._fetch(NetworkForward, self.network.api.forwards[listen_address],
                           network=self.network)

    def exists(self, listen_address: str) -> bool:
        return self._exists(self.get, listen_address)

    def create(self, config: dict[str, Any], wait: bool = True) -> NetworkForward:
        """Create a forward from its definition (``listen_address``, ``ports``...) and return
        it as stored (LXD keeps the address in canonical form: ``2001:DB8:0::1`` is
        ``2001:db8::1``)."""
        self.client.assert_has_api_extension("network_forward")
        response = self.network.api.forwards.post(json=config)
        handle_async(self.client, response, True)
        location = response.headers.get("Location")
        return self.get(name_from_url(location) if location else config["listen_address"])
