"""Projects: ``client.projects``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..operations import handle_async
from .base import AttributeDict, Manager, Model

if TYPE_CHECKING:
    from ..client import APINode

__all__ = ["Project", "ProjectManager"]


class Project(Model):
    """An LXD project. Writable: ``config``, ``description``."""

    name: str
    description: str
    config: dict[str, str]
    used_by: list[str]

    _writable: ClassVar[tuple[str, ...]] = ("config", "description")

    @property
    def api(self) -> APINode:
        # Project URLs name the project in the path; ``?project=`` would be meaningless.
        return self.client.api.projects[self.name]

    def rename(self, new_name: str, wait: bool = True) -> Project:
        """Rename the project (a background operation in LXD); returns this object, renamed.

        With ``wait=False`` the operation is started and the object keeps its old name.
        """
        self._rename({"name": new_name}, wait)
        return self

    def state(self) -> AttributeDict:
        """``GET /1.0/projects/<name>/state``: resource limits and usage."""
        return AttributeDict(self.api.state.get().json()["metadata"])


class ProjectManager(Manager):
    """``client.projects``."""

    def all(self, recursion: int = 0) -> list[Project]:
        return self._list(Project, self.client.api.projects, recursion)

    def get(self, name: str) -> Project:
        return self._fetch(Project, self.client.api.projects[name])

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, name: str, description: str | None = None,
               config: dict[str, str] | None = None) -> Project:
        """Create a project (LXD turns every ``features.*`` on unless ``config`` says)."""
        body: dict[str, Any] = {"name": name, "config": config or {}}
        if description is not None:
            body["description"] = description
        handle_async(self.client, self.client.api.projects.post(json=body), True)
        return self.get(name)
