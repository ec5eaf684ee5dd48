"""Busybox instances for the client tests, made through the client, removed at teardown.

The real host has the ``busybox`` image (``scripts/lxd-host``); :func:`with_busybox` gives the
fake the very same image under the same alias. :func:`make` registers the removal (a forced
stop first) *before* creating, so nothing is left on the real host even when a test fails
halfway; :func:`remove_later` does the same for names a test creates itself (copies, renames).
"""

from __future__ import annotations

from typing import Any

from pytest_lxd import Client, exceptions
from pytest_lxd.models import Image, Instance

from .conftest import LXDEnv

ALIAS = "busybox"


def with_busybox(lxd: LXDEnv) -> None:
    """Make sure the backend has the ``busybox`` alias (the fake gets the host's image)."""
    if lxd.fake is None:
        return
    from fakeserver.api import images
    from tests.instancefixtures import busybox_tarball

    state = lxd.fake.state
    with state.lock:
        if ALIAS not in images.aliases_of(state, "default"):
            images.add_image(state, "default", busybox_tarball(), filename="busybox.tar.gz",
                             aliases=[ALIAS])


def remove_later(lxd: LXDEnv, name: str, client: Client | None = None) -> None:
    """Force-stop and delete instance ``name`` at teardown, if it is still there."""
    client = client or lxd.client

    def remove() -> None:
        try:
            inst = client.instances.get(name)
        except exceptions.NotFound:
            return
        if inst.status != "Stopped":
            try:
                inst.stop(force=True, wait=True)
            except exceptions.NotFound:
                return  # ephemeral: gone with the stop
        inst.delete(wait=True)

    lxd.later(remove)


def make(lxd: LXDEnv, *, client: Client | None = None, start: bool = False,
         **config: Any) -> Instance:
    """A busybox instance with a unique name (started if asked), removed at teardown."""
    with_busybox(lxd)
    client = client or lxd.client
    name = config.pop("name", None) or lxd.unique("i")
    remove_later(lxd, name, client)
    body = {"name": name, "source": {"type": "image", "alias": ALIAS}, **config}
    inst = client.instances.create(body, wait=True)
    if start:
        inst.start(wait=True)
    return inst


def delete_image_later(lxd: LXDEnv, image: Image | str) -> None:
    fingerprint = image if isinstance(image, str) else image.fingerprint
    lxd.delete_later(f"/1.0/images/{fingerprint}")
