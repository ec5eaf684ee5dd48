"""Helpers for the plugin's tests."""

from __future__ import annotations

from fakeserver import FakeLXD
from pytest_lxd import Client


def real_args(host: FakeLXD, backend: str = "real") -> list[str]:
    """Inner-run options that make ``host`` the real LXD host."""
    return [f"--lxd-backend={backend}", f"--lxd-endpoint={host.socket_path}", "-p",
            "no:cacheprovider"]


def plugin_projects(client: Client) -> list[str]:
    """The projects pytest-lxd made that still exist."""
    return [p.name for p in client.projects.all() if p.name.startswith("pytest-lxd-")]
