"""``/1.0/instances/{name}/files``: the same requests and answers on the fake and on LXD 5.0.2.

Every test works in a busybox instance of its own (the same image on both backends, see
``tests/instancefixtures.py``), mostly under ``/srv``, which the image leaves empty.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pylxd
import pytest
from pylxd.exceptions import NotFound

from fakeserver import imagefile, vfs
from tests.compat import socket_path
from tests.imagefixtures import Events
from tests.instancefixtures import action, make, started
from tests.support import API, Reply

MODIFIED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC")
EPOCH = "1970-01-01 00:00:00 +0000 UTC"
EMPTY = {"type": "sync", "status": "Success", "status_code": 200, "operation": "",
         "error_code": 0, "error": "", "metadata": {}}


def files(name: str, prefix: str = "instances") -> str:
    return f"/1.0/{prefix}/{name}/files"


def push(api: API, name: str, path: str, data: bytes | Any = b"", **headers: str) -> Reply:
    sent = {key.replace("_", "-"): value for key, value in headers.items()}
    return api.request("POST", files(name), params={"path": path}, data=data, headers=sent)


def pull(api: API, name: str, path: str, method: str = "GET") -> Reply:
    return api.request(method, files(name), params={"path": path})


def lxd(reply: Reply) -> dict[str, str]:
    """The X-LXD-* reply headers, as LXD names them on the wire."""
    return {key: reply.headers[key] for key in ("X-Lxd-Uid", "X-Lxd-Gid", "X-Lxd-Mode",
                                                "X-Lxd-Type")}


def owner_mode(reply: Reply) -> tuple[str, str, str, str]:
    head = lxd(reply)
    return head["X-Lxd-Type"], head["X-Lxd-Mode"], head["X-Lxd-Uid"], head["X-Lxd-Gid"]


def sftp(message: str) -> str:
    return f'sftp: "{message}" (SSH_FX_FAILURE)'


def exec_output(api: API, name: str, command: list[str]) -> tuple[int, bytes, bytes]:
    """Run ``command`` in the instance (recording its output): status, stdout, stderr."""
    reply = api.post(f"/1.0/instances/{name}/exec", {"command": command, "record-output": True})
    assert reply.status == 202, reply
    op = api.wait(reply)
    output = op["metadata"]["output"]
    return op["metadata"]["return"], api.get(output["1"]).raw, api.get(output["2"]).raw


def assert_error(reply: Reply, code: int, message: str) -> None:
    assert reply.status == code, reply
    assert reply.body["error_code"] == code and reply.error == message, reply


@pytest.fixture
def inst(api: API) -> str:
    """A running busybox instance of this test's own."""
    return started(api)


# -- GET and HEAD ----------------------------------------------------------------------------


def test_get_an_image_file(api: API, inst: str) -> None:
    reply = pull(api, inst, "/etc/hostname")
    assert reply.status == 200 and reply.raw == b"busybox\n"
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["Content-Disposition"] == "inline;filename=hostname"
    assert reply.headers["Accept-Ranges"] == "bytes"
    assert reply.headers["Content-Length"] == "8"
    assert lxd(reply) == {"X-Lxd-Uid": "0", "X-Lxd-Gid": "0", "X-Lxd-Mode": "0644",
                          "X-Lxd-Type": "file"}
    # The image's files date from the epoch, which Go's ServeContent leaves out.
    assert reply.headers["X-Lxd-Modified"] == EPOCH
    assert "Last-Modified" not in reply.headers


def test_push_then_get(api: API, inst: str) -> None:
    reply = push(api, inst, "/srv/f1.txt", b"hello file", X_LXD_uid="1000", X_LXD_gid="1001",
                 X_LXD_mode="0640", X_LXD_type="file")
    assert reply.status == 200 and reply.body == EMPTY
    got = pull(api, inst, "/srv/f1.txt")
    assert got.status == 200 and got.raw == b"hello file"
    assert got.headers["Content-Disposition"] == "inline;filename=f1.txt"
    assert owner_mode(got) == ("file", "0640", "1000", "1001")
    assert MODIFIED.fullmatch(got.headers["X-Lxd-Modified"])
    assert got.headers["X-Lxd-Modified"] != EPOCH
    assert got.headers["Last-Modified"].endswith(" GMT")


def test_head_is_headers_only_with_a_json_content_type(api: API, inst: str) -> None:
    push(api, inst, "/srv/h.txt", b"head me")
    for path, kind in (("/srv/h.txt", "file"), ("/srv", "directory"), ("/bin/sh", "symlink")):
        reply = pull(api, inst, path, "HEAD")
        assert reply.status == 200 and reply.raw == b""
        assert reply.headers["Content-Type"] == "application/json"  # the 5.0.2 quirk
        assert reply.headers["X-Lxd-Type"] == kind
        assert "Content-Disposition" not in reply.headers
    missing = pull(api, inst, "/srv/nope", "HEAD")
    assert missing.status == 404 and missing.raw == b""


def test_directory_listing(api: API, inst: str) -> None:
    assert push(api, inst, "/srv/d1", X_LXD_type="directory", X_LXD_mode="0755").status == 200
    push(api, inst, "/srv/f1.txt", b"x")
    reply = pull(api, inst, "/srv")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    body = reply.body
    assert list(body) == list(EMPTY)
    assert (body["type"], body["status"], body["status_code"]) == ("sync", "Success", 200)
    # LXD lists in the filesystem's order; the fake sorts.
    assert sorted(body["metadata"]) == ["d1", "f1.txt"]
    assert owner_mode(reply) == ("directory", "0755", "0", "0")
    assert "Content-Disposition" not in reply.headers
    root = pull(api, inst, "/")
    assert sorted(root.metadata) == ["bin", "dev", "etc", "home", "mnt", "proc", "root", "run",
                                     "sbin", "srv", "sys", "tmp", "usr", "var"]
    assert owner_mode(pull(api, inst, "/root")) == ("directory", "0700", "0", "0")
    assert pull(api, inst, "/root").metadata == []
    for same in ("/srv/", "srv", "/srv/.", "//srv//", "/srv/d1/.."):
        assert sorted(pull(api, inst, same).metadata) == ["d1", "f1.txt"], same


def test_relative_paths_resolve_from_the_root(api: API, inst: str) -> None:
    assert push(api, inst, "srv/rel.txt", b"relative").status == 200
    assert pull(api, inst, "/srv/rel.txt").raw == b"relative"
    assert pull(api, inst, "srv/rel.txt").raw == b"relative"
    assert pull(api, inst, "//srv/./rel.txt").raw == b"relative"
    assert pull(api, inst, "/srv/../srv/rel.txt").raw == b"relative"
    assert sorted(pull(api, inst, "..").metadata) == sorted(pull(api, inst, "/").metadata)
    # Errors show the path with a "/" in front, otherwise as sent.
    assert_error(push(api, inst, "srv", b"x"), 500, sftp("open /srv: is a directory"))
    assert_error(push(api, inst, "//srv", b"x"), 500, sftp("open //srv: is a directory"))


# -- POST ------------------------------------------------------------------------------------


def test_defaults_of_new_files_and_directories(api: API, inst: str) -> None:
    push(api, inst, "/srv/plain", b"p")
    push(api, inst, "/srv/dir", X_LXD_type="directory")
    assert owner_mode(pull(api, inst, "/srv/plain")) == ("file", "0644", "0", "0")
    assert owner_mode(pull(api, inst, "/srv/dir")) == ("directory", "0750", "0", "0")
    push(api, inst, "/srv/empty")
    empty = pull(api, inst, "/srv/empty")
    assert empty.raw == b"" and empty.headers["Content-Length"] == "0"
    push(api, inst, "/srv/typed-empty", b"t", X_LXD_type="")
    assert owner_mode(pull(api, inst, "/srv/typed-empty"))[0] == "file"


def test_overwrite_keeps_mode_and_owner(api: API, inst: str) -> None:
    push(api, inst, "/srv/n1", b"first", X_LXD_mode="0600", X_LXD_uid="1000", X_LXD_gid="1001")
    push(api, inst, "/srv/n1", b"second", X_LXD_mode="0640", X_LXD_uid="7", X_LXD_gid="8")
    reply = pull(api, inst, "/srv/n1")
    assert reply.raw == b"second"
    assert owner_mode(reply) == ("file", "0600", "1000", "1001")


def test_append(api: API, inst: str) -> None:
    push(api, inst, "/srv/a.txt", b"hello file")
    reply = push(api, inst, "/srv/a.txt", b" appended", X_LXD_write="append", X_LXD_mode="0600")
    assert reply.status == 200
    got = pull(api, inst, "/srv/a.txt")
    assert got.raw == b"hello file appended" and got.headers["X-Lxd-Mode"] == "0644"
    push(api, inst, "/srv/a.txt", b"over", X_LXD_write="overwrite")
    assert pull(api, inst, "/srv/a.txt").raw == b"over"
    assert_error(push(api, inst, "/srv/new.txt", b"x", X_LXD_write="append"), 404, "Not Found")
    assert_error(push(api, inst, "/srv/a.txt", b"x", X_LXD_write="bogus"), 400,
                 "Bad file write mode: bogus")
    assert pull(api, inst, "/srv/a.txt").raw == b"over"


MODES = [("755", "0363"), ("04755", "0755"), ("999", "0747"), ("0", "0000"), ("+0755", "0755"),
         ("08", "0010"), ("0999", "0747"), ("-1", "0777"), ("-0755", "0023"),
         ("4294967295", "0777"), ("0x1ed", "0644"), ("0o755", "0644"), ("0_755", "0644"),
         ("abc", "0644"), ("077777777777777777777777", "0644")]


def test_mode_header_parsing(api: API, inst: str) -> None:
    """LXD 5.0.2: ``Atoi`` must accept the mode, then ``ParseInt(s, 0)`` (or, when that fails,
    the decimal value) masked to the permission bits."""
    got = {}
    for index, (sent, _) in enumerate(MODES):
        push(api, inst, f"/srv/m{index}", b"m", X_LXD_mode=sent)
        got[sent] = pull(api, inst, f"/srv/m{index}").headers["X-Lxd-Mode"]
    assert got == dict(MODES)


def test_uid_and_gid_headers_are_decimal(api: API, inst: str) -> None:
    push(api, inst, "/srv/u1", b"x", X_LXD_uid="0x10", X_LXD_gid="010")
    push(api, inst, "/srv/u2", b"x", X_LXD_uid="abc", X_LXD_gid="-5")
    push(api, inst, "/srv/u3", b"x", X_LXD_uid="+5", X_LXD_gid="5_0")
    push(api, inst, "/srv/u4", b"x", X_LXD_uid="4294967296", X_LXD_gid="-1")
    assert owner_mode(pull(api, inst, "/srv/u1"))[2:] == ("0", "10")
    assert owner_mode(pull(api, inst, "/srv/u2"))[2:] == ("0", "0")
    assert owner_mode(pull(api, inst, "/srv/u3"))[2:] == ("5", "0")
    assert owner_mode(pull(api, inst, "/srv/u4"))[2:] == ("0", "0")


def test_directories(api: API, inst: str) -> None:
    reply = push(api, inst, "/srv/d2", X_LXD_type="directory", X_LXD_mode="0700",
                 X_LXD_uid="5")
    assert reply.status == 200 and reply.body == EMPTY
    assert owner_mode(pull(api, inst, "/srv/d2")) == ("directory", "0700", "5", "0")
    # A directory that exists (as anything) is fine and keeps what it had.
    push(api, inst, "/srv/d2", X_LXD_type="directory", X_LXD_mode="0755", X_LXD_uid="7")
    assert owner_mode(pull(api, inst, "/srv/d2")) == ("directory", "0700", "5", "0")
    push(api, inst, "/srv/file", b"f")
    assert push(api, inst, "/srv/file", X_LXD_type="directory").status == 200
    assert owner_mode(pull(api, inst, "/srv/file"))[0] == "file"
    assert push(api, inst, "/", X_LXD_type="directory").status == 200
    assert push(api, inst, "/srv/slash/", X_LXD_type="directory").status == 200
    assert owner_mode(pull(api, inst, "/srv/slash"))[0] == "directory"
    assert_error(push(api, inst, "/srv/x/y/z", X_LXD_type="directory"), 404, "Not Found")
    assert_error(push(api, inst, "/srv/file/q", X_LXD_type="directory"), 500,
                 sftp("mkdir /srv/file/q: not a directory"))


def test_symlinks(api: API, inst: str) -> None:
    push(api, inst, "/srv/target.txt", b"target")
    push(api, inst, "/srv/d1", X_LXD_type="directory")
    reply = push(api, inst, "/srv/l1", b"/srv/target.txt", X_LXD_type="symlink")
    assert reply.status == 200 and reply.body == EMPTY
    got = pull(api, inst, "/srv/l1")
    assert got.raw == b"/srv/target.txt"
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"] == "inline;filename=l1"
    assert "Last-Modified" in got.headers  # ServeContent of the target text: "now"
    # The mode and owner headers do not apply to a symlink.
    push(api, inst, "/srv/l2", b"/srv/d1", X_LXD_type="symlink", X_LXD_mode="0600",
         X_LXD_uid="3")
    assert owner_mode(pull(api, inst, "/srv/l2")) == ("symlink", "0777", "0", "0")
    assert pull(api, inst, "/bin/sh").raw == b"/bin/busybox"
    # Through a link: a directory (trailing slash or a longer path), or written through.
    assert pull(api, inst, "/srv/l2/").metadata == []
    push(api, inst, "/srv/l2/inside", b"in")
    assert pull(api, inst, "/srv/d1").metadata == ["inside"]
    assert pull(api, inst, "/srv/l2/inside").raw == b"in"
    push(api, inst, "srv/l1", b"through")
    assert pull(api, inst, "/srv/target.txt").raw == b"through"
    assert pull(api, inst, "/srv/l1").raw == b"/srv/target.txt"
    # A dangling link: GET gives the link, a write creates its target.
    push(api, inst, "/srv/dangle", b"/srv/made-by-link", X_LXD_type="symlink")
    assert pull(api, inst, "/srv/dangle").raw == b"/srv/made-by-link"
    push(api, inst, "/srv/dangle", b"created")
    assert pull(api, inst, "/srv/made-by-link").raw == b"created"
    # Relative targets resolve from the link's directory.
    push(api, inst, "/srv/d1/rel", b"../target.txt", X_LXD_type="symlink")
    push(api, inst, "/srv/d1/rel", b"via relative")
    assert pull(api, inst, "/srv/target.txt").raw == b"via relative"


def test_symlink_targets_are_shown_absolute_and_clean(api: API, inst: str) -> None:
    """GET shows a link's target joined to the link's directory and cleaned (``ls`` in the
    instance still shows the text as it was given)."""
    push(api, inst, "/srv/sd", X_LXD_type="directory")
    shown = {}
    for index, target in enumerate(("x", "../y", "./z", "/a/../b", "/a//b/", "../../../../q",
                                    "rel/dir/")):
        push(api, inst, f"/srv/sd/l{index}", target.encode(), X_LXD_type="symlink")
        shown[target] = pull(api, inst, f"srv/sd/l{index}").raw.decode()
    assert shown == {"x": "/srv/sd/x", "../y": "/srv/y", "./z": "/srv/sd/z", "/a/../b": "/b",
                     "/a//b/": "/a/b", "../../../../q": "/q", "rel/dir/": "/srv/sd/rel/dir"}
    _, out, _ = exec_output(api, inst, ["sh", "-c", "cd /srv/sd && ls -l l1"])
    assert re.fullmatch(rb"lrwxrwxrwx    1 root     root             4 \w{3} [ \d]\d \d\d:\d\d "
                        rb"l1 -> \.\./y\n", out), out
    assert_error(push(api, inst, "/srv/sd/empty", b"", X_LXD_type="symlink"), 404, "Not Found")


def test_symlink_errors(api: API, inst: str) -> None:
    push(api, inst, "/srv/f", b"f")
    push(api, inst, "/srv/l1", b"/srv/f", X_LXD_type="symlink")
    assert_error(push(api, inst, "/srv/l1", b"/srv/other", X_LXD_type="symlink"), 500,
                 sftp("symlink /srv/other /srv/l1: file exists"))
    assert_error(push(api, inst, "/srv/f", b"/x", X_LXD_type="symlink"), 500,
                 sftp("symlink /x /srv/f: file exists"))
    assert_error(push(api, inst, "/srv/nope/q", b"/x", X_LXD_type="symlink"), 404, "Not Found")
    assert_error(push(api, inst, "/srv/f/q", b"/x", X_LXD_type="symlink"), 500,
                 sftp("symlink /x /srv/f/q: not a directory"))
    assert_error(pull(api, inst, "/srv/l1/"), 500, sftp("lstat /srv/l1/: not a directory"))
    push(api, inst, "/srv/loop1", b"/srv/loop2", X_LXD_type="symlink")
    push(api, inst, "/srv/loop2", b"/srv/loop1", X_LXD_type="symlink")
    assert_error(pull(api, inst, "/srv/loop1/x"), 500,
                 sftp("lstat /srv/loop1/x: too many levels of symbolic links"))
    assert pull(api, inst, "/srv/loop1").raw == b"/srv/loop2"


def test_post_errors(api: API, inst: str) -> None:
    push(api, inst, "/srv/a.txt", b"a")
    assert_error(push(api, inst, "/srv", b"x"), 500, sftp("open /srv: is a directory"))
    assert_error(push(api, inst, "/", b"x"), 500, sftp("open /: is a directory"))
    assert_error(push(api, inst, "/srv/trail/", b"x"), 500,
                 sftp("open /srv/trail/: is a directory"))
    assert_error(push(api, inst, "/srv/nodir/x.txt", b"x"), 404, "Not Found")
    assert_error(push(api, inst, "srv/a.txt/q", b"x"), 500,
                 sftp("open /srv/a.txt/q: not a directory"))
    assert_error(push(api, inst, "/srv/bt", b"x", X_LXD_type="bogus"), 400,
                 "Bad file type: bogus")
    assert_error(push(api, inst, "/srv/bt", b"x", X_LXD_type="File"), 400,
                 "Bad file type: File")
    assert_error(push(api, inst, "/srv/bt", b"x", X_LXD_type="bogus", X_LXD_write="bogus"),
                 400, "Bad file write mode: bogus")
    assert_error(api.request("POST", files(inst), data=b"x", headers={"X-LXD-type": "bogus"}),
                 400, "Missing path argument")
    assert pull(api, inst, "/srv/bt").status == 404


def test_get_errors(api: API, inst: str) -> None:
    push(api, inst, "/srv/a.txt", b"a")
    for path in ("/nope", "/srv/nope/x", "nope"):
        assert_error(pull(api, inst, path), 404, "Not Found")
    assert_error(pull(api, inst, "/srv/a.txt/"), 500, sftp("lstat /srv/a.txt/: not a directory"))
    assert_error(pull(api, inst, "/srv/a.txt/x"), 500,
                 sftp("lstat /srv/a.txt/x: not a directory"))
    for method in ("GET", "POST", "DELETE"):
        reply = api.request(method, files(inst), data=b"x" if method == "POST" else None)
        assert_error(reply, 400, "Missing path argument")
        assert_error(api.request(method, files(inst), params={"path": ""}), 400,
                     "Missing path argument")


def test_unknown_instance_and_prefixes(api: API, inst: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        assert_error(api.request(method, files("nope-pl0000"), params={"path": "/x"}), 404,
                     "Instance not found")
        assert_error(api.request(method, files("nope-pl0000")), 404, "Instance not found")
    assert api.get(files(inst, "containers"), params={"path": "/etc/hostname"}).raw == \
        b"busybox\n"
    assert_error(api.get(files(inst, "virtual-machines"), params={"path": "/etc/hostname"}),
                 404, "Instance not found")
    assert_error(api.put(files(inst), params={"path": "/x"}), 501, "not implemented")


# -- DELETE ----------------------------------------------------------------------------------


def test_delete(api: API, inst: str) -> None:
    push(api, inst, "/srv/a.txt", b"a")
    push(api, inst, "/srv/l", b"/srv/a.txt", X_LXD_type="symlink")
    push(api, inst, "/srv/d", X_LXD_type="directory")
    push(api, inst, "/srv/full", X_LXD_type="directory")
    push(api, inst, "/srv/full/x", b"x")
    reply = api.delete(files(inst), params={"path": "/srv/l"})
    assert reply.status == 200 and reply.body == EMPTY
    assert pull(api, inst, "/srv/a.txt").raw == b"a", "deleting a link keeps its target"
    assert api.delete(files(inst), params={"path": "srv/a.txt"}).status == 200
    assert api.delete(files(inst), params={"path": "/srv/d"}).status == 200
    assert sorted(pull(api, inst, "/srv").metadata) == ["full"]
    assert_error(api.delete(files(inst), params={"path": "/srv/full"}), 500,
                 sftp("remove /srv/full: directory not empty"))
    assert_error(api.delete(files(inst), params={"path": "/"}), 500,
                 sftp("remove /: device or resource busy"))
    assert_error(api.delete(files(inst), params={"path": "/srv/full/x/y"}), 500,
                 sftp("remove /srv/full/x/y: not a directory"))
    for missing in ("/srv/nope", "/srv/nope/x", "/srv/d/"):
        assert_error(api.delete(files(inst), params={"path": missing}), 404, "Not Found")


# -- states, framing, events ------------------------------------------------------------------


def test_files_work_on_stopped_and_frozen_instances(api: API) -> None:
    name = make(api)  # never started
    assert push(api, name, "/srv/stopped.txt", b"s").status == 200
    assert pull(api, name, "/srv/stopped.txt").raw == b"s"
    assert api.delete(files(name), params={"path": "/srv/stopped.txt"}).status == 200
    assert action(api, name, "start")["status"] == "Success"
    assert action(api, name, "freeze")["status"] == "Success"
    assert push(api, name, "/srv/frozen.txt", b"f").status == 200
    assert pull(api, name, "/srv/frozen.txt").raw == b"f"
    assert action(api, name, "unfreeze")["status"] == "Success"


def test_chunked_upload(api: API, inst: str) -> None:
    """``lxc file push`` sends chunked bodies with no Content-Length."""

    def body() -> Iterator[bytes]:
        for index in range(50):
            yield f"chunk {index}\n".encode()

    reply = push(api, inst, "/srv/chunked", body())
    assert reply.status == 200
    assert pull(api, inst, "/srv/chunked").raw == b"".join(body())


def test_range_request(api: API, inst: str) -> None:
    push(api, inst, "/srv/r", b"0123456789")
    reply = api.get(files(inst), params={"path": "/srv/r"}, headers={"Range": "bytes=2-5"})
    assert reply.status == 206 and reply.raw == b"2345"
    assert reply.headers["Content-Range"] == "bytes 2-5/10"


def test_lifecycle_events(api: API, inst: str) -> None:
    events = Events(api)
    try:
        time.sleep(0.2)
        push(api, inst, "srv/ev.txt", b"x")
        pull(api, inst, "/srv/ev.txt", "HEAD")
        pull(api, inst, "/srv/nope")
        pull(api, inst, "/srv")
        api.delete(files(inst), params={"path": "/srv/ev.txt"})
        source = f"/1.0/instances/{inst}"
        last = events.wait("instance-file-deleted", source)
        mine = [e["metadata"] for e in events.got
                if e["metadata"].get("source") == source
                and e["metadata"]["action"].startswith("instance-file-")]
    finally:
        events.close()
    assert [(m["action"], m["context"]) for m in mine] == [
        ("instance-file-pushed", {"path": "/srv/ev.txt"}),
        ("instance-file-retrieved", {"path": "/srv"}),
        ("instance-file-deleted", {"path": "/srv/ev.txt"})]
    assert all("requestor" not in m for m in mine)
    assert last["project"] == "default"


# -- pylxd -----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pylxd_files(api: API, inst: str) -> None:
    client = pylxd.Client(endpoint=socket_path(api))
    instance = client.instances.get(inst)
    instance.files.mk_dir("/srv/pylxd", mode=0o700, uid=1000, gid=1000)
    instance.files.put("/srv/pylxd/f.txt", b"from pylxd", mode="0600", uid=1000, gid=1000)
    instance.files.put("/srv/pylxd/s.txt", "a str")
    assert instance.files.get("/srv/pylxd/f.txt") == b"from pylxd"
    assert instance.files.get("/srv/pylxd/s.txt") == b"a str"
    assert owner_mode(pull(api, inst, "/srv/pylxd")) == ("directory", "0700", "1000", "1000")
    assert owner_mode(pull(api, inst, "/srv/pylxd/f.txt")) == ("file", "0600", "1000", "1000")
    listing = instance.files.get("/srv/pylxd")
    assert b'"metadata":[' in listing  # pylxd hands a directory's JSON listing back as bytes
    instance.files.delete("/srv/pylxd/f.txt")
    with pytest.raises(NotFound):
        instance.files.get("/srv/pylxd/f.txt")
    assert instance.files.delete_available()


# -- the fake's filesystem model (fake only) ---------------------------------------------------


def _tree() -> dict[str, Any]:
    Entry = imagefile.Entry
    return {"files": {"/": Entry("directory", 0o755), "/a": Entry("directory", 0o755),
                      "/a/f": Entry("file", 0o644, content=b"f"),
                      "/a/up": Entry("symlink", 0o777, target="../b"),
                      "/b": Entry("directory", 0o755),
                      "/abs": Entry("symlink", 0o777, target="/a")}}


def test_vfs_resolution() -> None:
    fs = vfs.FS(_tree())
    assert fs.resolve("/a/up/x").path == "/b/x"
    assert fs.resolve("/abs/f").entry is not None
    assert fs.resolve("/abs", follow=False).entry.type == "symlink"  # type: ignore[union-attr]
    assert fs.resolve("/abs/").path == "/a"
    assert fs.resolve("f", cwd="/abs").path == "/a/f"
    assert fs.resolve("/../../a/./f").path == "/a/f"
    for path, code in (("/nope/x", "ENOENT"), ("/a/f/x", "ENOTDIR"), ("/a/f/", "ENOTDIR"),
                       ("", "ENOENT")):
        with pytest.raises(vfs.FSError) as caught:
            fs.resolve(path)
        assert caught.value.code == code, path
    assert fs.listdir("/a") == ["f", "up"]


@pytest.mark.fake_only
def test_modification_times_follow_changes(api: API, inst: str) -> None:
    """The fake keeps times beside the tree: a copy of the tree keeps them, a change moves
    them (the directory too)."""
    state = api.server.state  # type: ignore[attr-defined]
    with state.lock:
        record = state.families["instances"]["default"][inst]
        fs = vfs.FS(record)
        assert fs.mtime("/etc/hostname") == 0
        before = time.time_ns()
        fs.write("/srv/t", b"t")
        assert fs.mtime("/srv/t") >= before and fs.mtime("/srv") >= before
        copied = vfs.FS({"files": dict(record["files"]), "mtimes": dict(record["mtimes"])})
        assert copied.mtime("/srv/t") == fs.mtime("/srv/t")
        fs.remove("/srv/t")
        assert fs.mtime("/srv/t") == 0
    snapshot = api.server.snapshot()  # type: ignore[attr-defined]
    api.server.restore(snapshot)  # type: ignore[attr-defined]
    with state.lock:
        record = state.families["instances"]["default"][inst]
        assert vfs.FS(record).mtime("/srv") >= before, "deep copies keep the times"


@pytest.mark.fake_only
def test_concurrent_pushes_all_land(api: API, inst: str) -> None:
    errors: list[Any] = []

    def worker(index: int) -> None:
        reply = push(api, inst, f"/srv/c{index}", str(index).encode())
        if reply.status != 200:
            errors.append(reply)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(pull(api, inst, "/srv").metadata) == sorted(f"c{i}" for i in range(20))


# -- Go's quoting, and form bodies -------------------------------------------------------------


def test_sftp_errors_quote_the_message_as_go_does(api: API, inst: str) -> None:
    """``sftp: %q (SSH_FX_FAILURE)``: quotes, tabs and bytes that are not UTF-8 escaped; a
    symlink target that is not UTF-8 reads back as its bytes."""
    assert_error(pull(api, inst, '/etc/hostname/a"b\tcé'), 500,
                 'sftp: "lstat /etc/hostname/a\\"b\\tcé: not a directory" (SSH_FX_FAILURE)')
    assert push(api, inst, "/srv/f", b"x").status == 200
    assert_error(push(api, inst, "/srv/f", b'\xff/x"', X_LXD_type="symlink"), 500,
                 'sftp: "symlink \\xff/x\\" /srv/f: file exists" (SSH_FX_FAILURE)')
    assert push(api, inst, "/srv/l", b"\xfe\xc3\xa9", X_LXD_type="symlink").status == 200
    reply = pull(api, inst, "/srv/l")
    assert (reply.status, reply.raw, reply.headers["X-Lxd-Type"]) == (
        200, b"/srv/\xfe\xc3\xa9", "symlink")


def test_a_form_post_is_read_as_the_form(api: API, inst: str) -> None:
    """LXD reads ``path`` with Go's ``FormValue``: a form-encoded POST (what ``curl -d``
    sends) has its body parsed as the form, whose ``path`` comes first, and writes nothing."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert push(api, inst, "/srv/a", b"hello", **form).status == 200
    assert (pull(api, inst, "/srv/a").raw, pull(api, inst, "/srv/a").status) == (b"", 200)
    assert push(api, inst, "/srv/b", b"x=1&path=%2Fsrv%2Fc&path=/srv/d", **form).status == 200
    assert (pull(api, inst, "/srv/c").status, pull(api, inst, "/srv/b").status) == (200, 404)
    assert pull(api, inst, "/srv/d").status == 404
    assert_error(push(api, inst, "/srv/e", b"path=", **form), 400, "Missing path argument")
    assert pull(api, inst, "/srv/e").status == 404
    # Pairs Go cannot parse are dropped; the media type is what counts.
    typed = {"Content-Type": "Application/X-WWW-Form-Urlencoded; charset=utf-8"}
    assert push(api, inst, "/srv/g", b"%zz&a;b=1&x", **typed).status == 200
    assert pull(api, inst, "/srv/g").raw == b""
    assert_error(push(api, inst, "/srv/g", b"%zz&path", **typed), 400, "Missing path argument")
    assert_error(push(api, inst, "/srv/a", b"x", X_LXD_type="symlink", **form), 404,
                 "Not Found")
    assert push(api, inst, "/srv/h", b"path=/srv/i", **{"Content-Type": "text/plain"}
                ).status == 200
    assert pull(api, inst, "/srv/h").raw == b"path=/srv/i"
    reply = api.request("DELETE", files(inst), params={"path": "/srv/nope"},
                        data=b"path=/srv/a", headers=form)
    assert_error(reply, 404, "Not Found")
    assert pull(api, inst, "/srv/a").status == 200
