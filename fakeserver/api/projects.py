"""``/1.0/projects`` (to be completed)."""

from __future__ import annotations

from typing import Any

from ..state import State

FEATURE_DEFAULTS = {"features.images": "true", "features.networks": "true",
                    "features.profiles": "true", "features.storage.volumes": "true"}


def seed(state: State, items: list[dict[str, Any]]) -> None:
    projects = state.family("projects")
    for item in items:
        name = str(item["name"])
        config = {**FEATURE_DEFAULTS, **{str(k): str(v) for k, v in
                                        (item.get("config") or {}).items()}}
        if name in projects:
            projects[name]["config"].update(config)
        else:
            projects[name] = {"name": name, "description": str(item.get("description") or ""),
                              "config": config}
