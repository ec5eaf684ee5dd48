"""``/1.0/networks`` (to be completed)."""

from __future__ import annotations

from typing import Any

from ..state import State


def seed_unmanaged(state: State, items: list[dict[str, Any]]) -> None:
    for item in items:
        state.family("unmanaged_networks")[item["name"]] = {"name": item["name"],
                                                            "type": item["type"]}


def seed(state: State, items: list[dict[str, Any]]) -> None:
    for item in items:
        project = item.get("project") or "default"
        state.in_project("networks", project)[item["name"]] = {
            "name": item["name"], "type": item.get("type", "bridge"),
            "description": item.get("description", ""), "config": dict(item.get("config") or {})}
