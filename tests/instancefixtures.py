"""Instances for tests, the same way on the fake and on the real LXD host.

The real host has the ``busybox`` image (``scripts/lxd-host``); :func:`with_busybox` gives the
fake the very same image (built by ``scripts/build-busybox-image``, so the same fingerprint)
under the same alias. :func:`make` creates an instance with a unique name and registers its
removal (a forced stop first), so nothing is left behind on the real host.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from typing import Any

from tests.support import API, unique

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=1)
def busybox_tarball() -> bytes:
    """The busybox image as ``scripts/lxd-host`` builds it for the real host."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "busybox.tar.gz")
        subprocess.run([os.path.join(ROOT, "scripts", "build-busybox-image"), out],
                       check=True, capture_output=True)
        with open(out, "rb") as handle:
            return handle.read()


def with_busybox(api: API) -> API:
    """Make sure the backend has the ``busybox`` alias (the fake gets the host's image)."""
    if api.is_fake:
        from fakeserver.api import images

        state = api.server.state  # type: ignore[attr-defined]
        with state.lock:
            if "busybox" not in images.aliases_of(state, "default"):
                images.add_image(state, "default", busybox_tarball(),
                                 filename="busybox.tar.gz", aliases=["busybox"])
    return api


def remove_later(api: API, name: str) -> None:
    """Force-stop and delete instance ``name`` at teardown (if it is still there)."""

    def remove() -> None:
        path = f"/1.0/instances/{name}"
        reply = api.put(f"{path}/state", {"action": "stop", "force": True})
        if reply.status == 202:
            api.wait(reply)
        reply = api.delete(path)
        if reply.status == 202:
            api.wait(reply)

    api.later(remove)


def shared_project(api: API, prefix: str) -> API:
    """A new project (deleted at teardown) that takes its images and profiles from
    ``default``: ``api`` in it."""
    project = unique(prefix)
    reply = api.post("/1.0/projects", {"name": project, "config": {
        "features.images": "false", "features.profiles": "false"}})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{project}")
    return api.in_project(project)


def make(api: API, name: str | None = None, source: dict[str, Any] | None = None,
         **body: Any) -> str:
    """Create an instance (busybox by default), wait for it and return its name."""
    with_busybox(api)
    name = name or unique("i")
    body = {"name": name, "source": source or {"type": "image", "alias": "busybox"}, **body}
    reply = api.post("/1.0/instances", body)
    assert reply.status == 202, reply
    remove_later(api, name)
    op = api.wait(reply)
    assert op["status"] == "Success", op
    return name


def action(api: API, name: str, what: str, **body: Any) -> dict[str, Any]:
    """``PUT /state`` and wait: the finished operation."""
    reply = api.put(f"/1.0/instances/{name}/state", {"action": what, **body})
    assert reply.status == 202, reply
    return api.wait(reply)


def started(api: API, **body: Any) -> str:
    name = make(api, **body)
    op = action(api, name, "start")
    assert op["status"] == "Success", op
    return name


def op_of(api: API, reply: Any) -> dict[str, Any]:
    assert reply.status == 202, reply
    return api.wait(reply)
