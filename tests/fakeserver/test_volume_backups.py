"""Custom volume backups: create, list, get, rename, delete, export and import (``lxc storage
volume export`` / ``import``), on the fake and on real LXD 5.0.2."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from typing import Any

import yaml

from tests.instancefixtures import make, op_of
from tests.support import API, lifecycle_events, unique

ZERO = "0001-01-01T00:00:00Z"
POOL = "/1.0/storage-pools/default"
VOLUMES = f"{POOL}/volumes/custom"


def volume(api: API, snapshots: tuple[str, ...] = ()) -> str:
    name = unique("v")
    reply = api.post(VOLUMES, {"name": name, "description": "bk", "config": {"user.k": "v"}})
    assert reply.status == 200, reply
    api.delete_later(f"{VOLUMES}/{name}")
    for snap in snapshots:
        assert op_of(api, api.post(f"{VOLUMES}/{name}/snapshots",
                                   {"name": snap}))["status"] == "Success"
        api.delete_later(f"{VOLUMES}/{name}/snapshots/{snap}")
    return name


def backup(api: API, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return op_of(api, api.post(f"{VOLUMES}/{name}/backups", body or {}))


def import_tarball(api: API, data: bytes, path: str = VOLUMES, **headers: str) -> Any:
    sent = {"Content-Type": "application/octet-stream"}
    sent.update({f"X-LXD-{k}": v for k, v in headers.items()})
    return api.request("POST", path, data=data, headers=sent)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def index_of(data: bytes) -> Any:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        handle = tar.extractfile("backup/index.yaml")
        assert handle is not None
        return yaml.safe_load(handle.read())


def test_create_list_get_export(api: API) -> None:
    name = volume(api, ("vs1",))
    base = f"{VOLUMES}/{name}/backups"
    assert api.get(base).metadata == []
    reply = api.post(base, {})
    assert reply.status == 202
    assert reply.metadata["description"] == "Creating custom volume backup"
    assert reply.metadata["resources"] == {"backups": ["/1.0/backups/backup0"],
                                           "storage_volumes": [f"/1.0/storage_volumes/{name}"]}
    assert api.wait(reply)["status"] == "Success"
    assert backup(api, name, {"name": "x", "volume_only": True, "optimized_storage": True,
                              "expires_at": "2030-01-01T00:00:00Z",
                              "compression_algorithm": "none"})["status"] == "Success"
    assert api.get(base).metadata == [f"{base}/backup0", f"{base}/x"]
    got = api.get(f"{base}/backup0").metadata
    assert list(got) == ["name", "created_at", "expires_at", "volume_only",
                         "optimized_storage"]
    assert (got["name"], got["expires_at"], got["volume_only"], got["optimized_storage"]) == (
        "backup0", ZERO, False, False)
    listed = api.get(base, params={"recursion": 1}).metadata
    assert listed[1] == {**listed[1], "name": "x", "expires_at": "2030-01-01T00:00:00Z",
                         "volume_only": True, "optimized_storage": False}
    reply = api.get(f"{base}/backup0/export")
    assert reply.status == 200
    assert reply.headers["Content-Disposition"] == "inline;filename="
    assert reply.raw[:2] == b"\x1f\x8b"
    found = members(reply.raw)
    assert list(found) == ["backup/index.yaml", "backup/volume-snapshots/vs1", "backup/volume"]
    assert found["backup/volume"].isdir() and found["backup/volume"].mode == 0o711
    index = index_of(reply.raw)
    assert list(index) == ["name", "backend", "pool", "snapshots", "optimized",
                           "optimized_header", "type", "config"]
    assert (index["name"], index["pool"], index["snapshots"], index["type"]) == (
        name, "default", ["vs1"], "custom")
    assert list(index["config"]) == ["volume", "volume_snapshots"]
    assert index["config"]["volume"]["config"] == {"user.k": "v"}
    assert index["config"]["volume"]["description"] == "bk"
    assert [s["name"] for s in index["config"]["volume_snapshots"]] == ["vs1"]
    only = api.get(f"{base}/x/export").raw
    assert only[257:262] == b"ustar"
    assert list(members(only)) == ["backup/index.yaml", "backup/volume"]
    assert list(index_of(only)["config"]) == ["volume"]


def test_errors(api: API) -> None:
    name = volume(api)
    base = f"{VOLUMES}/{name}/backups"
    for path in (f"{VOLUMES}/nope/backups", f"{VOLUMES}/nope/backups/x",
                 f"{VOLUMES}/nope/backups/x/export"):
        reply = api.get(path)
        assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    reply = api.post(f"{VOLUMES}/nope/backups", {})
    assert (reply.status, reply.error) == (404, "Storage pool volume not found")
    reply = api.get(f"/1.0/storage-pools/{unique('p')}/volumes/custom/{name}/backups")
    assert (reply.status, reply.error) == (404, "Storage pool not found")
    reply = api.get(f"{POOL}/volumes/container/{name}/backups")
    assert (reply.status, reply.error) == (400, 'Invalid storage volume type "container"')
    reply = api.get(f"{POOL}/volumes/bogus/{name}/backups")
    assert (reply.status, reply.error) == (400, "Invalid storage volume type name")
    for reply in (api.get(f"{base}/nope"), api.get(f"{base}/nope/export"),
                  api.delete(f"{base}/nope"), api.post(f"{base}/nope", {"name": "z"})):
        assert (reply.status, reply.error) == (404, "Storage volume backup not found")
    assert backup(api, name, {"name": "b"})["status"] == "Success"
    op = backup(api, name, {"name": "b"})
    assert op["err"] == f'Create volume backup: Backup "{name}/b" already exists'
    reply = api.post(base, {"name": "a/b"})
    assert (reply.status, reply.error) == (400, "Backup names may not contain slashes")
    reply = api.post(base, {"name": "c", "compression_algorithm": "bogus"})
    assert (reply.status, reply.error) == (400, 'Invalid compression algorithm "bogus"')
    reply = api.post(base, {"name": 5})
    assert (reply.status, reply.error) == (
        400, "json: cannot unmarshal number into Go struct field "
             "StoragePoolVolumeBackupsPost.name of type string")
    reply = api.post(f"{base}/b", {"name": 3})
    assert (reply.status, reply.error) == (
        400, "json: cannot unmarshal number into Go struct field "
             "StoragePoolVolumeBackupPost.name of type string")
    reply = api.post(f"{base}/b", {"name": "x/y"})
    assert (reply.status, reply.error) == (400, "Backup names may not contain slashes")


def test_target(api: API) -> None:
    """LXD 5.0.2 and ``?target=``: anything but ``none`` is an unknown member (except for the
    list, which then skips the volume check), and ``none`` skips the pool and volume checks."""
    name = volume(api)
    assert backup(api, name, {"name": "x"})["status"] == "Success"
    missing = unique("v")
    for target in ("none", "nope"):
        got = api.get(f"{VOLUMES}/{missing}/backups", params={"target": target})
        assert (got.status, got.metadata) == (200, [])
        got = api.get(f"{VOLUMES}/{name}/backups", params={"target": target})
        assert got.metadata == [f"{VOLUMES}/{name}/backups/x"]
    for reply in (api.get(f"{VOLUMES}/{name}/backups/x", params={"target": "nope"}),
                  api.get(f"{VOLUMES}/{missing}/backups/x/export", params={"target": "nope"}),
                  api.post(f"{VOLUMES}/{name}/backups", {"name": 5},
                           params={"target": "nope"})):
        assert (reply.status, reply.error) == (404, "Cluster member not found")
    # target=none: the backup is found by volume name, whatever the pool.
    got = api.get(f"/1.0/storage-pools/{unique('p')}/volumes/custom/{name}/backups/x",
                  params={"target": "none"})
    assert (got.status, got.metadata["name"]) == (200, "x")
    reply = api.get(f"{VOLUMES}/{missing}/backups/x", params={"target": "none"})
    assert (reply.status, reply.error) == (404, "Storage volume backup not found")
    reply = api.post(f"{VOLUMES}/{missing}/backups", {}, params={"target": "none"})
    assert (reply.status, reply.error) == (404, "Storage volume not found")


def test_rename_and_delete(api: API) -> None:
    name = volume(api)
    base = f"{VOLUMES}/{name}/backups"
    assert backup(api, name, {"name": "a"})["status"] == "Success"
    assert backup(api, name, {"name": "b", "compression_algorithm": "none"})["status"] \
        == "Success"
    reply = api.post(f"{base}/a", {"name": "c"})
    assert reply.status == 202
    assert reply.metadata["description"] == "Renaming custom volume backup"
    assert reply.metadata["resources"] == {"volume": [f"/1.0/volume/{name}"]}
    assert api.wait(reply)["status"] == "Success"
    # Listed in creation order, a renamed backup in its place (instance backups: by name).
    assert api.get(base).metadata == [f"{base}/c", f"{base}/b"]
    files = f"/var/lib/lxd/backups/custom/default/default_{name}"
    op = op_of(api, api.post(f"{base}/c", {"name": ""}))
    assert op["err"] == f"rename {files}/c {files}: file exists"
    # Renaming onto another backup fails and leaves that one without its file.
    op = op_of(api, api.post(f"{base}/c", {"name": "b"}))
    assert op["err"] == ("UNIQUE constraint failed: storage_volumes_backups.storage_volume_id, "
                         "storage_volumes_backups.name")
    assert api.get(f"{base}/c/export").raw[:2] == b"\x1f\x8b"
    reply = api.get(f"{base}/b/export")
    assert (reply.status, reply.error) == (
        500, f"open {files}/b: no such file or directory")
    op = op_of(api, api.post(f"{base}/b", {"name": ""}))
    assert op["err"] == f"rename {files}/b {files}: no such file or directory"
    reply = api.delete(f"{base}/b")
    assert reply.metadata["description"] == "Deleting custom volume backup"
    assert reply.metadata["resources"] == {"volume": [f"/1.0/volume/{name}"]}
    assert api.wait(reply)["status"] == "Success"
    assert api.get(base).metadata == [f"{base}/c"]


def test_export_import_round_trip(api: API) -> None:
    name = volume(api, ("vs1",))
    assert backup(api, name, {"name": "b"})["status"] == "Success"
    data = api.get(f"{VOLUMES}/{name}/backups/b/export").raw
    copy = unique("v")
    api.delete_later(f"{VOLUMES}/{copy}")
    api.delete_later(f"{VOLUMES}/{copy}/snapshots/vs1")
    with lifecycle_events(api) as events:
        time.sleep(0.2)
        reply = import_tarball(api, data, name=copy)
        assert reply.status == 202, reply
        assert reply.metadata["description"] == "Restoring custom volume backup"
        assert reply.metadata["resources"] == {
            "storage_volumes": [f"/1.0/storage_volumes/{copy}"]}
        assert api.wait(reply)["status"] == "Success"
    mine = [e["metadata"] for e in events if copy in e["metadata"]["source"]]
    # Sic: LXD 5.0.2 names the volume by its internal name, and sends no requestor.
    assert mine == [{"action": "storage-volume-created",
                     "source": f"{VOLUMES}/default_{copy}", "context": {"type": "custom"}}]
    got = api.get(f"{VOLUMES}/{copy}").metadata
    assert (got["config"], got["description"]) == ({"user.k": "v"}, "bk")
    assert api.get(f"{VOLUMES}/{copy}/snapshots").metadata == [
        f"{VOLUMES}/{copy}/snapshots/vs1"]
    op = op_of(api, import_tarball(api, data, name=copy))
    assert op["err"] == (
        f'Create custom volume from backup: Error inserting volume "{copy}" for project '
        '"default" in pool "default" of type "custom" into database "UNIQUE constraint failed: '
        "storage_volumes.storage_pool_id, storage_volumes.node_id, storage_volumes.project_id, "
        'storage_volumes.name, storage_volumes.type"')
    op = op_of(api, import_tarball(api, data))  # the backup's own name: taken
    assert op["resources"] == {"storage_volumes": [f"/1.0/storage_volumes/{name}"]}
    assert "UNIQUE constraint failed" in op["err"]


def test_import_errors(api: API) -> None:
    def tgz(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for member, content in files.items():
                info = tarfile.TarInfo(member)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        return gzip.compress(buf.getvalue())

    name = unique("v")
    for data, status, message in ((b"garbage" * 10, 500, "Unsupported compression"),
                                  (b"", 500, "EOF")):
        reply = import_tarball(api, data, name=name)
        assert (reply.status, reply.error) == (status, message)
    project = unique("p")
    reply = api.request("POST", VOLUMES, data=b"x", params={"project": project},
                        headers={"Content-Type": "application/octet-stream"})
    assert (reply.status, reply.error) == (404, f'Failed to load project "{project}": Project '
                                                "not found")
    for vtype in ("custom", "bogus"):  # the list looks at the project before the type
        reply = api.get(f"{POOL}/volumes/{vtype}/{name}/backups", params={"project": project})
        assert (reply.status, reply.error) == (
            404, f'Failed to load project "{project}": Project not found')
    bare = b"name: x\nbackend: dir\npool: default\ntype: custom\nsnapshots:\n- s1\n"
    op = op_of(api, import_tarball(api, tgz({"backup/index.yaml": bare}), name=name))
    assert op["err"] == ("Create custom volume from backup: Valid volume config not found in "
                         "index")
    # Beyond this point a hand-made index is dangerous on the shared host: LXD 5.0.2 crashes
    # (nil pointer in CreateCustomVolumeFromBackup) when a volume_snapshots entry lacks
    # fields. An instance's export has complete entries: its volume-snapshots are missing.
    inst = make(api)
    assert op_of(api, api.post(f"/1.0/instances/{inst}/snapshots",
                               {"name": "s1"}))["status"] == "Success"
    assert op_of(api, api.post(f"/1.0/instances/{inst}/backups",
                               {"name": "b"}))["status"] == "Success"
    data = api.get(f"/1.0/instances/{inst}/backups/b/export").raw
    reply = import_tarball(api, data, f"/1.0/storage-pools/{unique('p')}/volumes/custom",
                           name=name)
    assert (reply.status, reply.error) == (500, "Storage pool not found: Storage pool not found")
    op = op_of(api, import_tarball(api, data, name=name))
    failed = ("Create custom volume from backup: Error starting unpack: Failed to run: tar "
              "-zxf - --xattrs-include=* --restrict --force-local --numeric-owner -C "
              f"/var/lib/lxd/storage-pools/default/custom/default_{name} "
              "--transform=s/^backup\\/volume-snapshots\\/s1/./ backup/volume-snapshots/s1: "
              "Process exited with non-zero value 2")
    stderr = (" (tar: backup/volume-snapshots/s1: Not found in archive\ntar: Exiting with "
              "failure status due to previous errors)")
    # LXD 5.0.2 now and then loses tar's stderr (a race in its runner); the fake keeps it.
    assert op["err"] == failed + stderr or (not api.is_fake and op["err"] == failed)
    op = op_of(api, import_tarball(api, data, name="a/b"))
    assert op["err"] == ('Create custom volume from backup: Error inserting volume "a/b" for '
                         'project "default" in pool "default" of type "custom" into database '
                         '"Volume name may not be a snapshot"')
    assert api.get(f"{VOLUMES}/{name}").status == 404


def test_lifecycle_events(api: API) -> None:
    name = volume(api)
    base = f"{VOLUMES}/{name}/backups"
    with lifecycle_events(api) as events:
        time.sleep(0.2)
        assert backup(api, name, {"name": "e1"})["status"] == "Success"
        assert op_of(api, api.post(f"{base}/e1", {"name": "e2"}))["status"] == "Success"
        assert api.get(f"{base}/e2/export").status == 200
        assert op_of(api, api.delete(f"{base}/e2"))["status"] == "Success"
    mine = [e["metadata"] for e in events if e["metadata"]["source"].startswith(base)]
    root = {"username": "root", "protocol": "unix", "address": "@"}
    assert [(e["action"], e["source"], e.get("context"), e.get("requestor")) for e in mine] == [
        ("storage-volume-backup-created", f"{base}/e1", {"type": "custom"}, root),
        ("storage-volume-backup-renamed", f"{base}/e2", {"old_name": f"{name}/e1"}, root),
        ("storage-volume-backup-retrieved", f"{base}/e2", None, root),
        ("storage-volume-backup-deleted", f"{base}/e2", None, root)]


def test_backups_follow_a_renamed_volume(api: API) -> None:
    name = volume(api)
    assert backup(api, name, {"name": "b"})["status"] == "Success"
    new = unique("v")
    api.delete_later(f"{VOLUMES}/{new}")
    reply = api.post(f"{VOLUMES}/{name}", {"name": new})
    assert reply.status in (200, 201, 202), reply
    if reply.status == 202:
        assert api.wait(reply)["status"] == "Success"
    assert api.get(f"{VOLUMES}/{new}/backups").metadata == [f"{VOLUMES}/{new}/backups/b"]
    assert api.get(f"{VOLUMES}/{new}/backups/b/export").status == 200
