"""``lxd_image``: an image alias in the test's project that an instance can start from; the
busybox image is built in Python (the plugin's users do not have ``scripts/``)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_lxd import Client
from pytest_lxd import busybox as bb
from pytest_lxd.backends import LXDBackend


def _wait(client: Client, response: Any) -> dict[str, Any]:
    op = client.operations.wait_for_operation(response.json()["operation"], timeout=120)
    return {"status": op.status, "err": op.err}


def test_an_instance_starts_from_it(lxd_backend: LXDBackend, lxd_client: Client,
                                    lxd_image: str) -> None:
    alias = lxd_client.api.images.aliases[lxd_image].get().json()["metadata"]
    image = lxd_client.api.images[alias["target"]].get().json()["metadata"]
    assert image["properties"]["os"] == "busybox"
    assert image["properties"]["description"] == "busybox test image"
    name = lxd_backend.unique("c")
    created = lxd_client.api.instances.post(json={
        "name": name, "source": {"type": "image", "alias": lxd_image}})
    assert _wait(lxd_client, created) == {"status": "Success", "err": ""}
    node = lxd_client.api.instances[name]
    started = node.state.put(json={"action": "start", "timeout": 30})
    assert _wait(lxd_client, started) == {"status": "Success", "err": ""}
    assert node.state.get().json()["metadata"]["status"] == "Running"
    # left running on purpose: the plugin's cleanup stops and deletes it


def test_the_image_is_per_project(lxd_backend: LXDBackend, lxd_client: Client,
                                  lxd_image: str) -> None:
    """Only the test's project has it (its project has ``features.images``)."""
    aliases = lxd_client.api.images.aliases.get().json()["metadata"]
    assert aliases == [f"/1.0/images/aliases/{lxd_image}"]
    other = lxd_backend.client(project=None)
    ours = lxd_client.api.images.aliases[lxd_image].get().json()["metadata"]["target"]
    default_images = other.api.images.get().json()["metadata"]
    if lxd_backend.is_fake:
        assert default_images == []  # the real host has its own busybox in default
    assert not [url for url in default_images if ours in url]


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_busybox_image_is_deterministic_and_bootable() -> None:
    data = bb.busybox_image()
    assert data == bb.busybox_image()
    assert bb.fingerprint(data) == bb.fingerprint(bb.busybox_image())
    members = _members(data)
    assert members["rootfs/bin/busybox"].isfile()
    assert members["rootfs/bin/busybox"].mode == 0o755
    assert members["rootfs/sbin/init"].linkname == "/bin/busybox"
    assert members["rootfs/bin/sh"].linkname == "/bin/busybox"
    assert members["rootfs/tmp"].mode == 0o1777
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        handle = tar.extractfile("metadata.yaml")
        assert handle is not None
        meta = yaml.safe_load(handle.read())
    assert meta["architecture"] == bb.architecture()
    assert meta["properties"]["os"] == "busybox"
    assert meta["creation_date"] == bb.CREATION_DATE


def test_placeholder_image_has_the_same_metadata() -> None:
    data = bb.placeholder_image()
    assert len(data) < 2048
    members = _members(data)
    assert "metadata.yaml" in members and "rootfs/bin/busybox" in members
    assert bb.placeholder_image() == data


def test_a_dynamic_or_missing_busybox_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(bb.BusyboxNotFound, match="dynamically linked"):
        bb.find_busybox("/bin/ls")
    for name in ("PYTEST_LXD_BUSYBOX", "BUSYBOX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(bb, "BUSYBOX_PATHS", (str(tmp_path / "nope"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(bb.BusyboxNotFound, match="apt-get install busybox-static"):
        bb.find_busybox()
