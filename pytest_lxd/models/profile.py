"""Profiles: ``client.profiles``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..operations import handle_async
from .base import Manager, Model

if TYPE_CHECKING:
    from ..client import APINode

__all__ = ["Profile", "ProfileManager"]


class Profile(Model):
    """An LXD profile. Writable: ``config``, ``description``, ``devices``."""

    name: str
    description: str
    config: dict[str, str]
    devices: dict[str, dict[str, str]]
    used_by: list[str]

    _writable: ClassVar[tuple[str, ...]] = ("config", "description", "devices")

    @property
    def api(self) -> APINode:
        return self.client.api.profiles[self.name]

    def rename(self, new_name: str, wait: bool = False) -> Profile:
        """Rename the profile; returns this object, now under the new name."""
        self._rename({"name": new_name}, wait=True)
        return self


class ProfileManager(Manager):
    """``client.profiles``."""

    def all(self, recursion: int = 0) -> list[Profile]:
        """Every profile: sparse objects that load on first use (``recursion=1``: loaded)."""
        return self._list(Profile, self.client.api.profiles, recursion)

    def get(self, name: str) -> Profile:
        return self._fetch(Profile, self.client.api.profiles[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, config: dict[str, str] | None = None,
               devices: dict[str, dict[str, str]] | None = None,
               description: str | None = None, wait: bool = False) -> Profile:
        """Create a profile and return it, loaded (``wait`` is accepted for pylxd's sake:
        the profile always exists when this returns)."""
        body: dict[str, Any] = {"name": name, "config": config or {}, "devices": devices or {}}
        if description is not None:
            body["description"] = description
        handle_async(self.client, self.client.api.profiles.post(json=body), True)
        return self.get(name)
