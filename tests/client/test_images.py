"""``client.images`` and ``client.images.aliases``: uploads (unified and split, from bytes or
files, with progress), get/get_by_alias/exists, properties saved with ETags, aliases, export,
copy to another project, delete; remote sources refused. Tiny images made in memory, unique
per test (``tests/imagefixtures.py``), on both backends."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.models import Image, ImageAlias
from pytest_lxd.models.image import RemoteImagesUnsupported
from tests.imagefixtures import split, tagged, unified

from .conftest import LXDEnv
from .instance_helpers import with_busybox


def upload(lxd: LXDEnv, data: bytes, client: Client | None = None, *,
           source: object = None, **kwargs: object) -> Image:
    """Upload ``data`` (or ``source``, a file holding it), deleted at teardown."""
    fingerprint = hashlib.sha256(data).hexdigest()
    project = client.project if client is not None else None
    lxd.delete_later(f"/1.0/images/{fingerprint}", project=project)
    image = (client or lxd.client).images.create(
        data if source is None else source, **kwargs)  # type: ignore[arg-type]
    assert image.fingerprint == fingerprint
    return image


def test_busybox_lookups(lxd: LXDEnv) -> None:
    with_busybox(lxd)
    images = lxd.client.images
    image = images.get_by_alias("busybox")
    assert len(image.fingerprint) == 64 and image.properties["os"] == "busybox"
    assert image.type == "container" and image.size > 0
    assert {"name": "busybox", "description": ""} in image.aliases
    assert images.get(image.fingerprint[:12]) == image  # LXD takes a unique prefix
    assert images.exists(image.fingerprint) and images.exists("busybox", alias=True)
    assert not images.exists("0" * 64) and not images.exists(lxd.unique("a"), alias=True)
    assert image in images.all() and image in images.all(recursion=1)
    with pytest.raises(exceptions.NotFound):
        images.get("0" * 64)
    with pytest.raises(exceptions.NotFound):
        images.get_by_alias(lxd.unique("nope"))


def test_unified_upload_with_progress_and_headers(lxd: LXDEnv) -> None:
    data = unified(tagged()).data
    calls: list[tuple[int, int]] = []
    alias = lxd.unique("img")
    lxd.delete_later(f"/1.0/images/aliases/{alias}")
    image = upload(lxd, data, public=True, filename="tiny.tar.gz",
                   properties={"release": "9", "extra": "a b&c"}, aliases=[alias],
                   progress=lambda sent, total: calls.append((sent, total)))
    assert calls and calls[-1] == (len(data), len(data))
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert image.public is True and image.filename == "tiny.tar.gz"
    assert image.properties["release"] == "9" and image.properties["extra"] == "a b&c"
    assert image.properties["os"] == "tiny"  # from metadata.yaml
    assert image.size == len(data) and image.aliases == [{"name": alias, "description": ""}]
    assert lxd.client.images.get_by_alias(alias) == image


def test_upload_from_a_file_and_duplicates(lxd: LXDEnv, tmp_path: Path) -> None:
    data = unified(tagged()).data
    path = tmp_path / "image.tar.gz"
    path.write_bytes(data)
    with path.open("rb") as handle:
        image = upload(lxd, data, source=handle)
    assert image.size == len(data) and image.public is False
    with pytest.raises(exceptions.OperationFailed,
                       match="Image with same fingerprint already exists"):
        lxd.client.images.create(io.BytesIO(data))


def test_split_upload_and_export(lxd: LXDEnv, tmp_path: Path) -> None:
    tiny = split(tagged())
    assert tiny.rootfs is not None
    fingerprint = tiny.fingerprint
    lxd.delete_later(f"/1.0/images/{fingerprint}")
    sent: list[int] = []
    image = lxd.client.images.create(tiny.rootfs, metadata=tiny.meta,
                                     progress=lambda done, total: sent.append(total))
    assert image.fingerprint == fingerprint  # sha256(metadata + rootfs)
    assert sent and set(sent) == {sent[-1]} and sent[-1] > len(tiny.meta) + len(tiny.rootfs)
    parts = image.export_parts()
    assert parts == {"metadata": tiny.meta, "rootfs": tiny.rootfs}


def test_export(lxd: LXDEnv, tmp_path: Path) -> None:
    data = unified(tagged()).data
    image = upload(lxd, data)
    exported = image.export()
    assert exported.read() == data
    exported.close()
    target = tmp_path / "out.tar.gz"
    assert image.export(target) is None
    assert target.read_bytes() == data
    buffer = io.BytesIO()
    image.export(buffer)
    assert buffer.getvalue() == data
    assert image.export_parts() == {"image": data}


def test_save_properties_with_etag(lxd: LXDEnv) -> None:
    image = upload(lxd, unified(tagged()).data)
    assert image.etag and not image.dirty
    image.properties["note"] = "saved"
    image.public = True
    assert image.dirty
    assert image.save() is None  # a synchronous PUT
    got = lxd.client.images.get(image.fingerprint)
    assert got.properties["note"] == "saved" and got.public is True and not image.dirty
    got.properties["note"] = "theirs"
    got.save()
    image.properties["note"] = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        image.save()
    assert lxd.client.images.get(image.fingerprint).properties["note"] == "theirs"
    image.rollback()
    assert image.properties["note"] == "saved"


def test_aliases(lxd: LXDEnv) -> None:
    image = upload(lxd, unified(tagged()).data)
    name, renamed = lxd.unique("al"), lxd.unique("al")
    lxd.delete_later(f"/1.0/images/aliases/{name}")
    lxd.delete_later(f"/1.0/images/aliases/{renamed}")
    alias = image.add_alias(name, "first alias")
    assert isinstance(alias, ImageAlias) and alias.target == image.fingerprint
    assert alias.description == "first alias" and alias.type == "container"
    assert image.aliases == [{"name": name, "description": "first alias"}]
    assert lxd.client.images.get(image.fingerprint).aliases == image.aliases
    aliases = lxd.client.images.aliases
    assert aliases.exists(name) and aliases.get(name) == alias
    assert name in [a.name for a in aliases.all()]
    assert name in [a.name for a in aliases.all(recursion=1)]
    with pytest.raises(exceptions.Conflict, match="already exists"):
        aliases.create(name, image.fingerprint)
    with pytest.raises(exceptions.NotFound, match="Image not found"):
        aliases.create(lxd.unique("al"), "0" * 64)
    alias.description = "edited"
    alias.save()
    assert aliases.get(name).description == "edited"
    assert alias.rename(renamed) is alias and alias.name == renamed
    assert not aliases.exists(name) and alias.image == image
    image.properties["pending"] = "edit"
    image.delete_alias(renamed)
    assert image.properties["pending"] == "edit"  # aliases reloaded, edits kept
    assert image.aliases == [] and not aliases.exists(renamed)


def test_delete(lxd: LXDEnv) -> None:
    image = upload(lxd, unified(tagged()).data)
    image.add_alias(lxd.unique("al"))
    op = image.delete()
    assert op is not None and op.description == "Deleting image"
    op.wait()
    assert not lxd.client.images.exists(image.fingerprint)
    image = upload(lxd, unified(tagged()).data)
    image.delete(wait=True)
    assert not lxd.client.images.exists(image.fingerprint)


def test_copy_to_another_project(lxd: LXDEnv) -> None:
    project = lxd.unique("prj")
    lxd.client.projects.create(project)  # features.images on: its own image store
    lxd.delete_later(f"/1.0/projects/{project}")
    scoped = lxd.new_client(project=project)
    image = upload(lxd, unified(tagged()).data, properties={"k": "v"})
    alias = lxd.unique("al")
    lxd.delete_later(f"/1.0/images/aliases/{alias}")
    image.add_alias(alias)
    lxd.delete_later(f"/1.0/images/aliases/{alias}", project=project)
    lxd.delete_later(f"/1.0/images/{image.fingerprint}", project=project)
    copied = image.copy(scoped, public=True)
    assert copied.fingerprint == image.fingerprint and copied.client is scoped
    assert copied.public is True and copied.properties["k"] == "v"
    assert scoped.images.get_by_alias(alias) == copied
    assert [i.fingerprint for i in scoped.images.all()] == [image.fingerprint]


def test_remote_sources_are_refused(lxd: LXDEnv) -> None:
    with pytest.raises(RemoteImagesUnsupported, match="remote servers"):
        lxd.client.images.create_from_simplestreams("https://images.example", "alpine")
    with pytest.raises(NotImplementedError):
        lxd.client.images.create_from_url("https://example.invalid/image.tar.gz")
