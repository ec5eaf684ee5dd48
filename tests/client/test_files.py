"""``instance.files``: get, put (mode, uid, gid, append, streamed files), mk_dir, symlinks,
listing, stat, delete, recursive_put and recursive_get, with LXD 5.0.2's answers for the odd
cases, on the fake and the real host (file calls work on stopped instances)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import FileStat, Instance

from .conftest import LXDEnv
from .instance_helpers import make


@pytest.fixture
def inst(lxd: LXDEnv) -> Instance:
    return make(lxd)


def test_put_get_stat(inst: Instance) -> None:
    files = inst.files
    files.put("/root/plain", b"hello")
    assert files.get("/root/plain") == b"hello"
    info = files.stat("/root/plain")
    assert isinstance(info, FileStat)
    assert (info.type, info.mode, info.uid, info.gid) == ("file", 0o644, 0, 0)
    assert info.modified and info.modified.endswith("+0000 UTC")
    files.put("/root/owned", "text is utf-8 \u2713", mode=0o640, uid=1000, gid=1001)
    assert files.get("/root/owned") == "text is utf-8 \u2713".encode()
    info = files.stat("/root/owned")
    assert (info.mode, info.uid, info.gid) == (0o640, 1000, 1001)
    files.put("/root/owned", b"again", mode=0o755)
    assert files.get("/root/owned") == b"again"
    assert files.stat("/root/owned").mode == 0o640  # LXD keeps an existing file's mode
    files.put("/root/exec", b"#!/bin/sh\n", mode="755")  # pylxd's strings, no leading 0
    assert files.stat("/root/exec").mode == 0o755
    files.put("/root/owned", b"+more", append=True)
    assert files.get("/root/owned") == b"again+more"
    assert files.exists("/root/owned") and not files.exists("/root/missing")


def test_put_streams_a_file_object(inst: Instance, tmp_path: Path) -> None:
    local = tmp_path / "big.bin"
    data = os.urandom(3 << 20)
    local.write_bytes(data)
    with local.open("rb") as handle:
        inst.files.put("/root/big.bin", handle)
    assert inst.files.get("/root/big.bin") == data


def test_directories_and_symlinks(inst: Instance) -> None:
    files = inst.files
    files.mk_dir("/root/d", mode=0o700, uid=5, gid=6)
    info = files.stat("/root/d")
    assert (info.type, info.mode, info.uid, info.gid) == ("directory", 0o700, 5, 6)
    files.mk_dir("/root/d")  # LXD accepts an existing directory (and keeps its mode)
    assert files.stat("/root/d").mode == 0o700
    files.put("/root/d/f", b"in d")
    files.symlink("/root/d/link", "/root/d/f")
    assert sorted(files.listdir("/root/d")) == ["f", "link"]
    assert files.get("/root/d/link") == b"/root/d/f"  # a symlink reads as its target
    assert (files.stat("/root/d/link").type, files.stat("/root/d/link").mode) == ("symlink",
                                                                                  0o777)
    with pytest.raises(IsADirectoryError):
        files.get("/root/d")
    with pytest.raises(NotADirectoryError):
        files.listdir("/root/d/f")
    with pytest.raises(exceptions.LXDAPIException, match="file exists"):
        files.symlink("/root/d/link", "/elsewhere")


def test_errors_are_lxds(inst: Instance) -> None:
    files = inst.files
    with pytest.raises(exceptions.NotFound, match="^Not Found$"):
        files.get("/root/missing")
    with pytest.raises(exceptions.NotFound):
        files.put("/root/no/such/dir", b"x")
    with pytest.raises(exceptions.NotFound):
        files.mk_dir("/root/no/such")
    files.mk_dir("/root/full")
    files.put("/root/full/f", b"x")
    with pytest.raises(exceptions.LXDAPIException, match="directory not empty") as info:
        files.delete("/root/full")
    assert info.value.error_code == 500
    with pytest.raises(exceptions.LXDAPIException, match="is a directory"):
        files.put("/root/full", b"x")
    with pytest.raises(TypeError, match="mode"):
        files.put("/root/x", b"x", mode=True)  # pylxd stat()ed the *local* path


def test_delete(inst: Instance) -> None:
    files = inst.files
    assert files.delete_available()
    files.put("/root/gone", b"x")
    files.delete("/root/gone")
    assert not files.exists("/root/gone")
    with pytest.raises(exceptions.NotFound):
        files.delete("/root/gone")
    files.mk_dir("/root/empty")
    files.delete("/root/empty")
    assert "empty" not in files.listdir("/root")


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "top.txt").write_bytes(b"top")
    (root / "sub" / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "sub" / "script.sh").chmod(0o755)
    (root / "sub" / "deeper" / "secret").write_bytes(b"s")
    (root / "sub" / "deeper" / "secret").chmod(0o600)
    (root / "sub" / "link").symlink_to("script.sh")
    (root / "dirlink").symlink_to("sub")
    (root / "empty").mkdir()


def test_recursive_put_and_get(inst: Instance, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    files = inst.files
    files.recursive_put(src, "/root/tree", mode=True)
    assert sorted(files.listdir("/root/tree")) == ["dirlink", "empty", "sub", "top.txt"]
    assert files.get("/root/tree/sub/deeper/secret") == b"s"
    assert files.stat("/root/tree/sub/deeper/secret").mode == 0o600
    assert files.stat("/root/tree/sub/script.sh").mode == 0o755
    # Symlinks stay symlinks (pylxd turned them into copies, or failed on directory links);
    # LXD makes a relative target absolute (from the link's directory).
    assert files.stat("/root/tree/sub/link").type == "symlink"
    assert files.get("/root/tree/sub/link") == b"/root/tree/sub/script.sh"
    assert files.get("/root/tree/dirlink") == b"/root/tree/sub"
    assert files.stat("/root/tree/empty").type == "directory"

    out = tmp_path / "out"
    files.recursive_get("/root/tree", out)
    assert (out / "top.txt").read_bytes() == b"top"
    assert (out / "sub" / "deeper" / "secret").read_bytes() == b"s"
    assert stat.S_IMODE((out / "sub" / "deeper" / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "sub" / "script.sh").stat().st_mode) == 0o755
    assert os.readlink(out / "sub" / "link") == "/root/tree/sub/script.sh"
    assert os.readlink(out / "dirlink") == "/root/tree/sub"
    assert (out / "empty").is_dir() and not any((out / "empty").iterdir())
    single = tmp_path / "single.txt"
    files.recursive_get("/root/tree/top.txt", single)
    assert single.read_bytes() == b"top"


def test_recursive_put_with_one_mode_and_owner(inst: Instance, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"f")
    inst.files.recursive_put(str(src), "/root/owned", mode=0o750, uid=7, gid=8)
    for path in ("/root/owned", "/root/owned/a", "/root/owned/a/f"):
        info = inst.files.stat(path)
        assert (info.mode, info.uid, info.gid) == (0o750, 7, 8), path
    with pytest.raises(NotADirectoryError):
        inst.files.recursive_put(src / "a" / "f", "/root/x")


def test_files_of_a_running_instance_are_seen_by_commands(lxd: LXDEnv) -> None:
    inst = make(lxd, start=True)
    inst.files.put("/root/script", b"#!/bin/sh\necho from-file\n", mode=0o755)
    assert inst.execute(["/root/script"]).stdout == "from-file\n"
    inst.execute(["sh", "-c", "echo made > /root/by-exec"])
    assert inst.files.get("/root/by-exec") == b"made\n"
