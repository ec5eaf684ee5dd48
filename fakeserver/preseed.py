"""Seeding the fake from an ``lxd init --preseed`` document.

Keys: ``config`` (server config), ``projects``, ``storage_pools``, ``networks`` (each may name
a ``project``), ``profiles`` (likewise). An object that exists is updated (config merged), as
``lxd init --preseed`` does; a missing one is created with the same validation as a POST.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .state import State

# A freshly installed LXD before ``lxd init``: the default project and an empty default profile.
FRESH: dict[str, Any] = {
    "projects": [{"name": "default", "description": "Default LXD project", "config": {}}],
    "profiles": [{"name": "default", "description": "Default LXD profile"}],
    "unmanaged_networks": [{"name": "lo", "type": "loopback"},
                           {"name": "eth0", "type": "physical"}],
}

# The host that ``scripts/lxd-host`` sets up.
BASELINE: dict[str, Any] = {
    "storage_pools": [{"name": "default", "driver": "dir", "config": {}}],
    "networks": [{"name": "lxdbr0", "type": "bridge",
                  "config": {"ipv4.address": "none", "ipv6.address": "none"}}],
    "profiles": [{"name": "default",
                  "devices": {"root": {"path": "/", "pool": "default", "type": "disk"}}}],
}

ORDER = ("config", "projects", "storage_pools", "unmanaged_networks", "networks", "profiles")


class PreseedError(ValueError):
    """A preseed document the fake cannot apply."""


def load(source: Any) -> dict[str, Any]:
    """A preseed from a dict, YAML text, or a path to a YAML file."""
    if isinstance(source, dict):
        data: Any = source
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                      and os.path.exists(source)):
        data = yaml.safe_load(Path(source).read_text())
    elif isinstance(source, str):
        data = yaml.safe_load(source)
    else:
        raise PreseedError(f"cannot read a preseed from {type(source).__name__}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PreseedError("a preseed must be a YAML mapping")
    unknown = set(data) - set(ORDER) - {"cluster", "storage_volumes"}
    if unknown:
        raise PreseedError(f"unknown preseed keys: {', '.join(sorted(unknown))}")
    return data


def apply(state: State, data: dict[str, Any]) -> None:
    """Create or update everything ``data`` names, in dependency order."""
    from .api import networks, profiles, projects, server, storage

    seeders = {
        "config": server.seed_config,
        "projects": projects.seed,
        "storage_pools": storage.seed,
        "unmanaged_networks": networks.seed_unmanaged,
        "networks": networks.seed,
        "profiles": profiles.seed,
    }
    with state.lock:
        for key in ORDER:
            value = data.get(key)
            if value is None:
                continue
            if key == "config":
                if not isinstance(value, dict):
                    raise PreseedError("preseed 'config' must be a mapping")
            elif not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise PreseedError(f"preseed '{key}' must be a list of mappings")
            try:
                seeders[key](state, value)
            except PreseedError:
                raise
            except Exception as exc:  # LXDError and friends: say which entry failed
                raise PreseedError(f"preseed '{key}': {exc}") from exc
