"""``/1.0/storage-pools`` (to be completed)."""

from __future__ import annotations

from typing import Any

from ..state import State


def seed(state: State, items: list[dict[str, Any]]) -> None:
    for item in items:
        state.family("storage_pools")[item["name"]] = {
            "name": item["name"], "driver": item.get("driver", "dir"),
            "description": item.get("description", ""), "config": dict(item.get("config") or {})}
