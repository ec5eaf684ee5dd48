"""Helpers for the plugin's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fakeserver import FakeLXD
from pytest_lxd import Client
from pytest_lxd.backends import LXDBackend, _call, _names, _q, _split
from pytest_lxd.exceptions import LXDAPIException, NotFound


def real_args(host: FakeLXD, backend: str = "real") -> list[str]:
    """Inner-run options that make ``host`` the real LXD host."""
    return [f"--lxd-backend={backend}", f"--lxd-endpoint={host.socket_path}", "-p",
            "no:cacheprovider"]


def plugin_projects(client: Client) -> list[str]:
    """The projects pytest-lxd made that still exist."""
    return [p.name for p in client.projects.all() if p.name.startswith("pytest-lxd-")]


def machine_args(env: LXDBackend) -> list[str]:
    """Inner-run options that make the outer test's real host (its ``lxd_backend``) theirs."""
    args = ["-p", "no:cacheprovider", "--lxd-backend=real", f"--lxd-endpoint={env.endpoint}",
            f"--lxd-verify={env.verify}"]
    if env.cert:
        args += [f"--lxd-cert={env.cert[0]}", f"--lxd-key={env.cert[1]}"]
    return args


def inventory(client: Client) -> set[str]:
    """Every object a host shows, one string each: projects (with their descriptions), and
    in each project its profiles, images, aliases, instances and volumes (of every pool and
    type); storage pools; managed networks."""
    projects = _call(client, "GET", "/1.0/projects", params={"recursion": "1"}) or []
    pools = _names(client, "/1.0/storage-pools")
    seen = {f"pool {pool}" for pool in pools}
    networks = _call(client, "GET", "/1.0/networks", params={"recursion": "1"}) or []
    seen |= {f"network {n['name']}" for n in networks if n.get("managed")}
    for project in projects:
        name = project["name"]
        seen.add(f"project {name}: {project.get('description', '')}")
        for kind in ("profiles", "images", "images/aliases", "instances"):
            seen |= {f"{kind} {name}/{item}" for item in _names(client, f"/1.0/{kind}", name)}
        for pool in pools:
            urls: list[str] = []
            with contextlib.suppress(LXDAPIException):  # the project went meanwhile
                urls = _call(client, "GET", f"/1.0/storage-pools/{_q(pool)}/volumes",
                             params={"project": name}) or []
            seen |= {f"volume {pool}/{name}/{'/'.join(_split(url)[0].split('/')[5:])}"
                     for url in urls}
    return seen


#: The host's own objects, and the fields of theirs that nothing may change (``used_by`` and
#: ``last_used_at`` change whenever anyone uses them).
HOST_OBJECTS = {
    "/1.0/projects/default": ("config", "description"),
    "/1.0/profiles/default": ("config", "devices", "description"),
    "/1.0/networks/lxdbr0": ("config", "description", "type", "managed"),
    "/1.0/storage-pools/default": ("config", "description", "driver"),
    "/1.0/images/aliases/busybox": ("target", "description", "type"),
}


def host_objects(client: Client) -> dict[str, Any]:
    """What the host's own objects are (None: the host has no such object), the busybox
    image too (by its alias's target)."""
    seen: dict[str, Any] = {}
    for url, fields in HOST_OBJECTS.items():
        try:
            data = _call(client, "GET", url) or {}
        except NotFound:
            seen[url] = None
            continue
        seen[url] = {field: data.get(field) for field in fields}
    alias = seen["/1.0/images/aliases/busybox"]
    if alias:
        image = _call(client, "GET", f"/1.0/images/{alias['target']}") or {}
        seen["image"] = {field: image.get(field) for field in (
            "fingerprint", "aliases", "properties", "public", "auto_update", "size")}
    return seen


def plugin_configs(client: Client) -> dict[str, dict[str, str]]:
    """The config of every project named like the plugin's."""
    projects = _call(client, "GET", "/1.0/projects", params={"recursion": "1"}) or []
    return {p["name"]: p.get("config") or {} for p in projects
            if p["name"].startswith("pytest-lxd-")}


def swept(output: str) -> list[str]:
    """The projects a run's summary says its sweep removed."""
    for line in output.splitlines():
        if line.startswith("pytest-lxd: swept "):
            return line.split(": ", 2)[2].split(", ")
    return []


def pool_leftovers(client: Client, projects: Iterable[str]) -> list[str]:
    """What the host's ``dir`` pools on this machine still hold on disk for ``projects``
    (LXD names an instance's or volume's directory ``<project>_<name>``)."""
    prefixes = tuple(f"{project}_" for project in projects)
    found = []
    for pool in _call(client, "GET", "/1.0/storage-pools", params={"recursion": "1"}) or []:
        source = Path((pool.get("config") or {}).get("source") or "/nonexistent")
        if pool.get("driver") != "dir" or not source.is_dir():
            continue
        for kind in source.iterdir():
            if kind.is_dir():
                found += [str(entry) for entry in kind.iterdir()
                          if prefixes and entry.name.startswith(prefixes)]
    return found
