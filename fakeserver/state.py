"""The fake's in-memory state: one object guarded by one re-entrant lock.

Every resource family keeps its objects in plain dicts here; the resource's own module in
``fakeserver/api/`` owns their shape and rules. Per-project families are keyed by project name
first. ``used_by`` is never stored: it is computed from the state when an object is rendered,
so it cannot drift.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .responses import LXDError

# Resource family -> the project feature that decides whether a project has its own set.
FEATURES = {
    "profiles": "features.profiles",
    "images": "features.images",
    "aliases": "features.images",  # image aliases live with the images
    "networks": "features.networks",
    "network_acls": "features.networks",  # ACLs follow the networks
    "network_zones": "features.networks",  # DNS zones follow the networks
    "volumes": "features.storage.volumes",
}

PROJECT_FAMILIES = ("profiles", "networks", "volumes", "instances", "images", "aliases",
                    "network_zones", "network_acls")
GLOBAL_FAMILIES = ("projects", "storage_pools", "certificates", "warnings", "unmanaged_networks")


class State:
    """All objects the fake serves. Hold ``lock`` while reading or changing anything."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config: dict[str, str] = {}
        self.families: dict[str, dict[str, Any]] = {}
        self.clear()

    # -- whole-state control -------------------------------------------------------------
    def clear(self) -> None:
        """Empty every family (the fake's baseline is laid on top by the server)."""
        with self.lock:
            self.config = {}
            self.families = {name: {} for name in PROJECT_FAMILIES + GLOBAL_FAMILIES}

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of everything, for :meth:`restore`."""
        with self.lock:
            return copy.deepcopy({"config": self.config, "families": self.families})

    def restore(self, snap: dict[str, Any]) -> None:
        with self.lock:
            data = copy.deepcopy(snap)
            self.config = data["config"]
            self.families = data["families"]

    # -- families ------------------------------------------------------------------------
    def family(self, name: str) -> dict[str, Any]:
        """A global family: name -> object."""
        return self.families[name]

    def in_project(self, name: str, project: str) -> dict[str, Any]:
        """A per-project family as seen from ``project`` (honouring its ``features.*``)."""
        per_project = self.families[name]
        owner = self.owner(name, project)
        return per_project.setdefault(owner, {})

    def owner(self, family: str, project: str) -> str:
        """The project whose objects of ``family`` ``project`` uses."""
        feature = FEATURES.get(family)
        if feature is None or project == "default":
            return project
        proj = self.families["projects"].get(project)
        if proj is None:
            return project
        # LXD's shared.IsTrue: "true", "1", "yes" and "on", in any case.
        enabled = proj["config"].get(feature, "").lower() in ("true", "1", "yes", "on")
        return project if enabled else "default"

    # -- projects ------------------------------------------------------------------------
    def has_project(self, project: str) -> bool:
        return project in self.families["projects"]

    def require_project(self, project: str, message: str, code: int = 404) -> None:
        """Raise LXD's (endpoint-specific) error when ``project`` does not exist."""
        if project not in self.families["projects"]:
            raise LXDError(code, message)
