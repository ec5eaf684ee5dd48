"""``GET /1.0/instances/{name}/sftp``: the same SFTP sessions on the fake and on LXD 5.0.2.

Every test works in a busybox instance of its own (see ``tests/instancefixtures.py``), mostly
under ``/srv``, which the image leaves empty. The client is ``tests/sftpwire.py`` (stdlib).

What LXD 5.0.2 does, as probed on the real host (and what the fake repeats):

* the upgrade: ``Upgrade: sftp`` (exactly) is required, else a 400 ``Missing or invalid
  upgrade header`` in LXD's envelope (checked before the instance is looked for);
  ``Connection`` is not looked at. The reply is ``HTTP/1.1 101 Switching Protocols``,
  ``Upgrade: sftp``, ``Connection: Upgrade`` and nothing else. Only ``/1.0/instances`` has the
  endpoint (``/1.0/containers/x/sftp`` is a plain 404 ``not found``);
* a missing instance (or project) is a 404 ``Instance not found``; stopped and running
  instances are served alike (LXD mounts a stopped instance's rootfs), on one filesystem with
  ``/files`` and exec;
* pkg/sftp answers: ``SSH_FXP_VERSION`` 3 with ``hardlink@openssh.com`` 1,
  ``posix-rename@openssh.com`` 1 and ``statvfs@openssh.com`` 2, whatever version the client
  sends (and to packets before INIT too); handles are ``1``, ``2``...; statuses carry Go's
  error text (``open /srv: is a directory``, OPENDIR of a file `` /srv/f: not a directory``
  with an empty operation) and an empty language tag, OK statuses an empty message; a missing
  path is ``NO_SUCH_FILE``, the rest ``FAILURE``; an unknown extension ``OP_UNSUPPORTED``;
* attributes: size, uid/gid, permissions (with the file type bits) and times, the access
  time being the modification time; READDIR's long name is pkg/sftp's ``ls -l`` line with the
  owner and group named from the instance's ``/etc/passwd``/``/etc/group`` (numbers otherwise);
  REALPATH cleans the path against ``/`` without looking at the filesystem;
* MKDIR ignores the attributes sent (``0755``), OPEN creates ``0644`` files, APPEND is a
  no-op; RENAME replaces an existing file (Go's ``os.Rename``) but not a directory (``file
  exists``); SETSTAT reads its attribute fields in pkg/sftp's own order (see
  ``test_setstat``); a stopped instance takes any owner id, a running one refuses ids outside
  its map (``chown ...: invalid argument``);
* a packet pkg/sftp cannot parse, an unknown packet type or a length over 256 KiB ends the
  connection without a reply (and the instance's SFTP server process with it: a session opened
  right after may be dropped too);
* while a session is open, starting, stopping or snapshotting the instance waits for it to
  end (``test_open_session_holds_operations_back``).

Divergences left (the fake; also in fakeserver/api/instance_sftp.py): READDIR gives the names
sorted (LXD: the filesystem's order); a hard link is a copy once written to; statvfs figures are
made up; files are capped at 256 MiB (LXD writes a sparse file at any offset); an open file
renamed outside its session (exec, another session) is lost to its handle; a running instance
shows its image's ``/proc``, ``/sys`` and ``/dev``; an open session does not hold operations
back; the session after a malformed one is always served.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import pytest

from tests import sftpwire as w
from tests.compat import socket_path
from tests.instancefixtures import action, make, shared_project, started
from tests.support import API, poll, unique

LONG_NAME = re.compile(
    r"^([-dl][-rwxsStT]{9}) +(\d+) (\S+) +(\S+) +(\d+) (\w{3} +\d+ +[\d:]+) (.+)$")


def sftp_session(api: API, name: str, project: str | None = None) -> w.SFTP:
    """An upgraded, initialised session (closed at teardown)."""
    status, headers, rest, sock = w.upgrade(socket_path(api), name, project)
    assert status == "HTTP/1.1 101 Switching Protocols", (status, rest)
    api.later(sock.close)
    client = w.SFTP(sock, rest)
    version = client.init()
    assert version.type == w.VERSION and version.version == 3, version
    return client


def raw_reply(api: API, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``request`` and read the whole (non-upgraded) reply."""
    sock = w.connect(socket_path(api))
    try:
        sock.sendall(request)
        status, headers, rest = w.read_head(sock)
        length = int(headers.get("Content-Length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest
    finally:
        sock.close()


def envelope_error(body: bytes) -> tuple[int, str]:
    import json

    data = json.loads(body)
    assert data["type"] == "error", data
    return data["error_code"], data["error"]


def ok(reply: w.Reply) -> None:
    assert reply.type == w.STATUS and (reply.code, reply.message, reply.lang) == (
        w.FX_OK, "", ""), reply


def failed(reply: w.Reply, code: int, message: str) -> None:
    assert reply.type == w.STATUS, reply
    assert (reply.code, reply.message) == (code, message), reply


@pytest.fixture
def inst(api: API) -> str:
    """A stopped busybox instance of this test's own."""
    return make(api)


# -- the upgrade -----------------------------------------------------------------------------


def test_upgrade_reply(api: API, inst: str) -> None:
    sock = w.connect(socket_path(api))
    api.later(sock.close)
    sock.sendall(w.upgrade_request(inst))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: sftp\r\n"
                    b"Connection: Upgrade\r\n\r\n")
    client = w.SFTP(sock)
    version = client.init()
    assert version.version == 3
    assert version.extensions == [("hardlink@openssh.com", "1"),
                                  ("posix-rename@openssh.com", "1"),
                                  ("statvfs@openssh.com", "2")]


def test_upgrade_refusals(api: API, inst: str) -> None:
    missing = "Missing or invalid upgrade header"
    for upgrade in (None, "websocket", "SFTP"):
        status, _, body = raw_reply(api, w.upgrade_request(inst, upgrade=upgrade))
        assert status.startswith("HTTP/1.1 400"), (upgrade, status)
        assert envelope_error(body) == (400, missing)
    # the header is checked before the instance is looked for
    status, _, body = raw_reply(api, w.upgrade_request(unique("none"), upgrade=None))
    assert envelope_error(body) == (400, missing)
    status, _, body = raw_reply(api, w.upgrade_request(unique("none")))
    assert status.startswith("HTTP/1.1 404") and envelope_error(body) == (404,
                                                                          "Instance not found")
    status, _, body = raw_reply(api, w.upgrade_request(inst, unique("project")))
    assert envelope_error(body) == (404, "Instance not found")
    status, _, body = raw_reply(api, w.upgrade_request(inst + "/snap0"))
    assert envelope_error(body) == (400, "Invalid instance name")
    # without Connection: Upgrade the upgrade still happens
    request = w.upgrade_request(inst).replace(b"Connection: Upgrade\r\n", b"")
    status, _, _ = raw_reply(api, request)
    assert status == "HTTP/1.1 101 Switching Protocols"


def test_upgrade_only_under_instances(api: API, inst: str) -> None:
    """LXD 5.0.2 has no ``/sftp`` under ``/1.0/containers`` or ``/1.0/virtual-machines``."""
    for prefix in ("containers", "virtual-machines"):
        status, _, body = raw_reply(api, w.upgrade_request(inst, prefix=prefix))
        assert status.startswith("HTTP/1.1 404") and envelope_error(body) == (404, "not found")
    request = w.upgrade_request(inst).replace(b"/sftp", b"/sftp?instance-type=bogus")
    status, _, body = raw_reply(api, request)
    assert envelope_error(body) == (500, "Invalid instance type")


# -- a session -------------------------------------------------------------------------------


def test_files_read_and_write(api: API, inst: str) -> None:
    """OPEN/WRITE/READ/FSTAT/CLOSE: handles are numbers, reads stop at 32 KiB and at EOF."""
    c = sftp_session(api, inst)
    opened = c.open("/srv/a.txt", w.F_WRITE | w.F_CREAT | w.F_TRUNC)
    assert opened.type == w.HANDLE and opened.handle == b"1"
    handle = opened.handle
    ok(c.write(handle, 0, b"hello world"))
    ok(c.write(handle, 20, b"!"))  # a hole is zeros
    failed(c.read(handle, 0, 5), w.FX_FAILURE, "read /srv/a.txt: bad file descriptor")
    attrs = c.fstat(handle).attrs
    assert attrs is not None and attrs["size"] == 21 and attrs["perms"] == 0o100644
    ok(c.close(handle))
    failed(c.close(handle), w.FX_FAILURE, "bad file descriptor")
    failed(c.read(handle, 0, 5), w.FX_FAILURE, "bad file descriptor")
    failed(c.fstat(b"bogus"), w.FX_FAILURE, "bad file descriptor")

    reading = c.open("/srv/a.txt", w.F_READ)
    assert reading.handle == b"2"
    assert reading.handle is not None
    got = c.read(reading.handle, 0, 100)
    assert got.type == w.DATA and got.data == b"hello world" + bytes(9) + b"!"
    assert c.read(reading.handle, 6, 5).data == b"world"
    failed(c.read(reading.handle, 21, 10), w.FX_EOF, "EOF")
    failed(c.read(reading.handle, 1000, 10), w.FX_EOF, "EOF")
    failed(c.write(reading.handle, 0, b"x"), w.FX_FAILURE,
           "write /srv/a.txt: bad file descriptor")
    ok(c.close(reading.handle))

    big = bytes(range(256)) * 400
    c.put("/srv/big", big)
    opened = c.open("/srv/big", w.F_READ)
    assert opened.handle is not None
    assert c.read(opened.handle, 0, 100_000).data == big[:32768]
    assert c.get("/srv/big") == big


def test_open_files_are_files_not_names(api: API, inst: str) -> None:
    """An open handle keeps its file when the name is removed or renamed (in the session), and
    a new file over the name is not its file; a zero-length READ is empty DATA, not EOF; a
    directory is read at the first READDIR, not at OPENDIR."""
    c = sftp_session(api, inst)
    c.put("/srv/f", b"hello")
    handle = c.open("/srv/f", w.F_READ | w.F_WRITE).handle
    assert handle is not None
    assert c.read(handle, 0, 0).data == b"" and c.read(handle, 100, 0).data == b""
    ok(c.write(handle, 100, b""))
    assert c.fstat(handle).attrs["size"] == 5  # type: ignore[index]
    ok(c.remove("/srv/f"))
    assert c.read(handle, 0, 10).data == b"hello"
    ok(c.write(handle, 0, b"HE"))
    assert c.read(handle, 0, 10).data == b"HEllo"
    assert c.fstat(handle).attrs["size"] == 5  # type: ignore[index]
    failed(c.stat("/srv/f"), w.FX_NO_SUCH_FILE, "stat /srv/f: no such file or directory")
    c.put("/srv/g", b"world")
    moved = c.open("/srv/g", w.F_READ | w.F_WRITE).handle
    assert moved is not None
    ok(c.rename("/srv/g", "/srv/g2"))
    ok(c.write(moved, 0, b"W"))
    ok(c.fsetstat(moved, w.attrs(perms=0o600)))
    assert c.get("/srv/g2") == b"World"
    assert c.stat("/srv/g2").attrs["perms"] == 0o100600  # type: ignore[index]
    c.put("/srv/other", b"other")
    ok(c.rename("/srv/other", "/srv/g2"))  # a new file under the name
    assert c.read(moved, 0, 10).data == b"World"
    assert c.get("/srv/g2") == b"other"
    listing = c.opendir("/srv").handle
    assert listing is not None
    c.put("/srv/late", b"")
    assert sorted(name for name, _, _ in c.readdir(listing).names) == ["g2", "late"]


def test_open_flags(api: API, inst: str) -> None:
    c = sftp_session(api, inst)
    c.put("/srv/f", b"0123456789")
    # APPEND is a no-op: pkg/sftp writes at the offsets the client sends
    opened = c.open("/srv/f", w.F_WRITE | w.F_APPEND)
    assert opened.handle is not None
    ok(c.write(opened.handle, 0, b"AB"))
    ok(c.close(opened.handle))
    assert c.get("/srv/f") == b"AB23456789"
    opened = c.open("/srv/f", w.F_WRITE | w.F_TRUNC)
    assert opened.handle is not None
    ok(c.close(opened.handle))
    assert c.get("/srv/f") == b""
    failed(c.open("/srv/f", w.F_WRITE | w.F_CREAT | w.F_EXCL), w.FX_FAILURE,
           "open /srv/f: file exists")
    failed(c.open("/srv/f", 0), w.FX_FAILURE, "invalid argument")
    failed(c.open("/srv/none", w.F_READ), w.FX_NO_SUCH_FILE,
           "open /srv/none: no such file or directory")
    failed(c.open("/srv/none/x", w.F_WRITE | w.F_CREAT), w.FX_NO_SUCH_FILE,
           "open /srv/none/x: no such file or directory")
    failed(c.open("/srv", w.F_WRITE), w.FX_FAILURE, "open /srv: is a directory")
    failed(c.open("/srv/q/", w.F_WRITE | w.F_CREAT), w.FX_FAILURE, "open /srv/q/: is a directory")
    failed(c.open("/srv/f/x", w.F_READ), w.FX_FAILURE, "open /srv/f/x: not a directory")
    # a directory opens for reading; reading it fails
    opened = c.open("/srv", w.F_READ)
    assert opened.type == w.HANDLE and opened.handle is not None
    failed(c.read(opened.handle, 0, 10), w.FX_FAILURE, "read /srv: is a directory")
    # the attributes sent with OPEN are ignored: new files are 0644
    opened = c.open("/srv/p", w.F_WRITE | w.F_CREAT, w.attrs(perms=0o600))
    assert opened.type == w.HANDLE
    assert c.stat("/srv/p").attrs["perms"] == 0o100644  # type: ignore[index]
    # CREAT without WRITE still creates
    assert c.open("/srv/ro", w.F_READ | w.F_CREAT).type == w.HANDLE
    assert c.stat("/srv/ro").attrs["size"] == 0  # type: ignore[index]



def test_stat_attributes(api: API, inst: str) -> None:
    """STAT follows a final symlink, LSTAT does not; times are whole seconds, atime = mtime."""
    c = sftp_session(api, inst)
    before = int(time.time())
    c.put("/srv/f", b"12345")
    ok(c.symlink("f", "/srv/l"))
    ok(c.mkdir("/srv/d"))
    after = int(time.time())
    f = c.stat("/srv/f").attrs
    assert f is not None
    assert f["flags"] == w.A_SIZE | w.A_UIDGID | w.A_PERMISSIONS | w.A_ACMODTIME
    assert (f["size"], f["uid"], f["gid"], f["perms"]) == (5, 0, 0, 0o100644)
    assert before <= f["mtime"] <= after + 1 and f["atime"] == f["mtime"]
    link = c.lstat("/srv/l").attrs
    assert link is not None and (link["size"], link["perms"]) == (1, 0o120777)
    assert c.stat("/srv/l").attrs == f
    d = c.stat("/srv/d").attrs
    assert d is not None and d["perms"] == 0o040755 and d["uid"] == 0
    root = c.stat("/").attrs
    assert root is not None and root["perms"] & 0o170000 == 0o040000
    failed(c.stat("/nope"), w.FX_NO_SUCH_FILE, "stat /nope: no such file or directory")
    failed(c.lstat("/nope"), w.FX_NO_SUCH_FILE, "lstat /nope: no such file or directory")
    failed(c.stat("/srv/f/x"), w.FX_FAILURE, "stat /srv/f/x: not a directory")
    failed(c.lstat("/srv/f/x"), w.FX_FAILURE, "lstat /srv/f/x: not a directory")
    opened = c.open("/srv/f", w.F_READ)
    assert opened.handle is not None
    assert c.fstat(opened.handle).attrs == f


def test_readdir(api: API, inst: str) -> None:
    """READDIR gives name, ``ls -l`` long name and attributes; ``.`` and ``..`` are left out.
    Divergence: the fake lists names sorted (LXD: the filesystem's order), so sets compare."""
    c = sftp_session(api, inst)
    c.put("/srv/file", b"abc")
    ok(c.mkdir("/srv/dir"))
    ok(c.mkdir("/srv/dir/sub"))
    ok(c.symlink("/srv/file", "/srv/link"))
    entries = {name: (long, attrs) for name, long, attrs in c.listdir("/srv")}
    assert set(entries) == {"file", "dir", "link"}
    for name, (long, attrs) in entries.items():
        match = LONG_NAME.match(long)
        assert match, long
        assert match.group(7) == name and int(match.group(5)) == attrs["size"]
        assert (match.group(3), match.group(4)) == ("root", "root")  # the instance's names
        stamp = time.gmtime(attrs["mtime"])
        assert match.group(6) == (f"{time.strftime('%b', stamp)} {stamp.tm_mday} "
                                  f"{time.strftime('%H:%M', stamp)}"), long
    assert entries["file"][0].startswith("-rw-r--r--    1 root     root            3 ")
    assert entries["dir"][0].startswith("drwxr-xr-x    3 root     root         4096 ")
    assert entries["link"][0].startswith("lrwxrwxrwx    1 root     root            9 ")
    assert entries["link"][1]["perms"] == 0o120777
    assert {name for name, _, _ in c.listdir("/")} >= {"bin", "etc", "srv", "tmp"}
    # owners are named from the instance's /etc/passwd and /etc/group, else shown as numbers
    for uid, gid, shown in ((65534, 65534, "nobody   nogroup "), (7, 0, "7        root    "),
                            (1000, 1000, "1000     1000    ")):
        ok(c.setstat("/srv/file", w.attrs(uid=uid, gid=gid)))
        long = next(long for name, long, _ in c.listdir("/srv") if name == "file")
        assert long[16:33] == shown, long
    failed(c.opendir("/srv/file"), w.FX_FAILURE, " /srv/file: not a directory")
    failed(c.opendir("/srv/none"), w.FX_NO_SUCH_FILE, "stat /srv/none: no such file or directory")
    opened = c.opendir("/srv/dir")
    assert opened.handle is not None
    names = c.readdir(opened.handle)
    assert [name for name, _, _ in names.names] == ["sub"]
    failed(c.readdir(opened.handle), w.FX_EOF, "EOF")
    failed(c.write(opened.handle, 0, b"x"), w.FX_FAILURE, "write /srv/dir: bad file descriptor")
    ok(c.close(opened.handle))


def test_mkdir_rmdir_remove(api: API, inst: str) -> None:
    """MKDIR ignores the attributes (0755); RMDIR and REMOVE are both Go's ``os.Remove``."""
    c = sftp_session(api, inst)
    ok(c.mkdir("/srv/d", w.attrs(perms=0o700)))
    assert c.stat("/srv/d").attrs["perms"] == 0o040755  # type: ignore[index]
    failed(c.mkdir("/srv/d"), w.FX_FAILURE, "mkdir /srv/d: file exists")
    failed(c.mkdir("/srv/x/y"), w.FX_NO_SUCH_FILE, "mkdir /srv/x/y: no such file or directory")
    c.put("/srv/d/f", b"1")
    failed(c.mkdir("/srv/d/f/y"), w.FX_FAILURE, "mkdir /srv/d/f/y: not a directory")
    failed(c.rmdir("/srv/d"), w.FX_FAILURE, "remove /srv/d: directory not empty")
    failed(c.remove("/srv/d"), w.FX_FAILURE, "remove /srv/d: directory not empty")
    failed(c.remove("/srv/d/f/"), w.FX_FAILURE, "remove /srv/d/f/: not a directory")
    ok(c.rmdir("/srv/d/f"))  # a file goes too
    ok(c.remove("/srv/d"))  # and an empty directory
    failed(c.rmdir("/srv/d"), w.FX_NO_SUCH_FILE, "remove /srv/d: no such file or directory")
    failed(c.remove("/srv/d"), w.FX_NO_SUCH_FILE, "remove /srv/d: no such file or directory")
    failed(c.remove("/"), w.FX_FAILURE, "remove /: device or resource busy")


def test_rename(api: API, inst: str) -> None:
    """RENAME is Go's ``os.Rename``: it replaces a file, not a directory."""
    c = sftp_session(api, inst)
    c.put("/srv/a", b"a")
    c.put("/srv/b", b"b")
    ok(c.mkdir("/srv/d"))
    ok(c.rename("/srv/a", "/srv/b"))
    assert c.get("/srv/b") == b"a"
    failed(c.stat("/srv/a"), w.FX_NO_SUCH_FILE, "stat /srv/a: no such file or directory")
    failed(c.rename("/srv/b", "/srv/d"), w.FX_FAILURE, "rename /srv/b /srv/d: file exists")
    failed(c.rename("/srv/none", "/srv/d"), w.FX_NO_SUCH_FILE,
           "rename /srv/none /srv/d: no such file or directory")
    failed(c.rename("/srv/none", "/srv/z"), w.FX_NO_SUCH_FILE,
           "rename /srv/none /srv/z: no such file or directory")
    failed(c.rename("/srv/b", "/srv/none/x"), w.FX_NO_SUCH_FILE,
           "rename /srv/b /srv/none/x: no such file or directory")
    failed(c.rename("/srv/d", "/srv/d/sub"), w.FX_FAILURE,
           "rename /srv/d /srv/d/sub: invalid argument")
    ok(c.rename("/srv/b", "/srv/b"))
    c.put("/srv/d/inner", b"in")
    ok(c.rename("/srv/d", "/srv/e"))
    assert c.get("/srv/e/inner") == b"in"
    ok(c.extended("posix-rename@openssh.com", w.string("/srv/e/inner") + w.string("/srv/b")))
    assert c.get("/srv/b") == b"in"
    failed(c.extended("posix-rename@openssh.com", w.string("/srv/b") + w.string("/srv/e")),
           w.FX_FAILURE, "rename /srv/b /srv/e: file exists")


def test_symlink_readlink(api: API, inst: str) -> None:
    """SYMLINK takes the target first (OpenSSH's order); READLINK gives the text as stored."""
    c = sftp_session(api, inst)
    c.put("/srv/f", b"data")
    ok(c.symlink("/srv/f", "/srv/abs"))
    ok(c.symlink("f", "/srv/rel"))
    assert c.readlink("/srv/abs").names == [("/srv/f", "/srv/f", {"flags": 0})]
    assert c.readlink("/srv/rel").names == [("f", "f", {"flags": 0})]
    assert c.get("/srv/rel") == b"data"
    failed(c.symlink("/x", "/srv/abs"), w.FX_FAILURE, "symlink /x /srv/abs: file exists")
    failed(c.symlink("/x", "/srv/none/l"), w.FX_NO_SUCH_FILE,
           "symlink /x /srv/none/l: no such file or directory")
    failed(c.readlink("/srv/f"), w.FX_FAILURE, "readlink /srv/f: invalid argument")
    failed(c.readlink("/srv/none"), w.FX_NO_SUCH_FILE,
           "readlink /srv/none: no such file or directory")
    ok(c.remove("/srv/abs"))  # the link, not its target
    assert c.get("/srv/f") == b"data"


def test_realpath(api: API, inst: str) -> None:
    """REALPATH cleans against ``/`` and never looks at the filesystem."""
    c = sftp_session(api, inst)
    for sent, shown in ((".", "/"), ("", "/"), ("..", "/"), ("a/b", "/a/b"), ("/etc/../x", "/x"),
                        ("/nope/x", "/nope/x"), ("//x/", "/x"), ("x/./y/", "/x/y")):
        assert c.realpath(sent).names == [(shown, shown, {"flags": 0})], sent


def test_setstat(api: API, inst: str) -> None:
    """SETSTAT/FSETSTAT: truncate, chmod (permission bits only), times and owner.

    pkg/sftp reads the attribute fields as size, permissions, times, uid/gid, not in the
    wire order (size, uid/gid, permissions, times): the fields of a request with owner and
    permissions land in the wrong places, on LXD as on the fake.
    """
    c = sftp_session(api, inst)
    c.put("/srv/f", b"0123456789")
    ok(c.setstat("/srv/f", w.attrs(perms=0o600)))
    assert c.stat("/srv/f").attrs["perms"] == 0o100600  # type: ignore[index]
    ok(c.setstat("/srv/f", w.attrs(perms=0o4755)))  # Go's os.FileMode drops the setuid bit
    assert c.stat("/srv/f").attrs["perms"] == 0o100755  # type: ignore[index]
    ok(c.setstat("/srv/f", w.attrs(atime=1_000_000_000, mtime=1_200_000_000)))
    attrs = c.stat("/srv/f").attrs
    assert attrs is not None and (attrs["atime"], attrs["mtime"]) == (1_200_000_000,) * 2
    ok(c.setstat("/srv/f", w.attrs(uid=1000, gid=1001)))
    attrs = c.stat("/srv/f").attrs
    assert attrs is not None and (attrs["uid"], attrs["gid"]) == (1000, 1001)
    ok(c.setstat("/srv/f", w.attrs(uid=2_000_000_000, gid=0xFFFFFFFF)))  # -1: left as is
    attrs = c.stat("/srv/f").attrs
    assert attrs is not None and (attrs["uid"], attrs["gid"]) == (2_000_000_000, 1001)
    # uid 0 is read as the mode, gid 0o644 as the uid, the permissions as the gid
    ok(c.setstat("/srv/f", w.attrs(uid=0, gid=0o644, perms=5)))
    attrs = c.stat("/srv/f").attrs
    assert attrs is not None and (attrs["perms"], attrs["uid"], attrs["gid"]) == (
        0o100000, 0o644, 5)
    ok(c.setstat("/srv/f", w.attrs(size=4)))
    assert c.get("/srv/f") == b"0123"
    ok(c.setstat("/srv/f", w.attrs(size=6)))
    assert c.get("/srv/f") == b"0123\0\0"
    ok(c.setstat("/srv/f", w.u32(0)))
    failed(c.setstat("/srv/none", w.attrs(perms=0o644)), w.FX_NO_SUCH_FILE,
           "chmod /srv/none: no such file or directory")
    failed(c.setstat("/srv/none", w.attrs(size=1)), w.FX_NO_SUCH_FILE,
           "truncate /srv/none: no such file or directory")
    ok(c.mkdir("/srv/d"))
    failed(c.setstat("/srv/d", w.attrs(size=1)), w.FX_FAILURE, "truncate /srv/d: is a directory")
    failed(c.setstat("/srv/f", w.u32(w.A_PERMISSIONS)), w.FX_FAILURE, "packet too short")
    # through a symlink: the target changes
    ok(c.symlink("f", "/srv/l"))
    ok(c.setstat("/srv/l", w.attrs(perms=0o640)))
    assert c.stat("/srv/f").attrs["perms"] == 0o100640  # type: ignore[index]
    assert c.lstat("/srv/l").attrs["perms"] == 0o120777  # type: ignore[index]
    # FSETSTAT on handles
    opened = c.open("/srv/f", w.F_READ)
    assert opened.handle is not None
    failed(c.fsetstat(opened.handle, w.attrs(size=1)), w.FX_FAILURE,
           "truncate /srv/f: invalid argument")
    ok(c.fsetstat(opened.handle, w.attrs(perms=0o604)))
    assert c.fstat(opened.handle).attrs["perms"] == 0o100604  # type: ignore[index]
    writing = c.open("/srv/f", w.F_WRITE)
    assert writing.handle is not None
    ok(c.fsetstat(writing.handle, w.attrs(size=2)))
    assert c.get("/srv/f") == b"01"
    failed(c.fsetstat(b"99", w.attrs(size=2)), w.FX_FAILURE, "bad file descriptor")


def test_extensions(api: API, inst: str) -> None:
    """hardlink@openssh.com and statvfs@openssh.com; an unknown extension is unsupported.
    Divergence: the fake's hard link shares the file until one name is written to (then each
    name has its own copy), and its statvfs figures are made up."""
    c = sftp_session(api, inst)
    c.put("/srv/f", b"data")
    ok(c.mkdir("/srv/d"))
    ok(c.extended("hardlink@openssh.com", w.string("/srv/f") + w.string("/srv/h")))
    assert c.get("/srv/h") == b"data"
    links = {name: long.split()[1] for name, long, _ in c.listdir("/srv")}
    assert (links["f"], links["h"]) == ("2", "2")
    failed(c.extended("hardlink@openssh.com", w.string("/srv/f") + w.string("/srv/h")),
           w.FX_FAILURE, "link /srv/f /srv/h: file exists")
    failed(c.extended("hardlink@openssh.com", w.string("/srv/none") + w.string("/srv/h2")),
           w.FX_NO_SUCH_FILE, "link /srv/none /srv/h2: no such file or directory")
    failed(c.extended("hardlink@openssh.com", w.string("/srv/d") + w.string("/srv/h3")),
           w.FX_FAILURE, "link /srv/d /srv/h3: operation not permitted")
    reply = c.extended("statvfs@openssh.com", w.string("/"))
    assert reply.type == w.EXTENDED_REPLY and reply.data is not None and len(reply.data) == 88
    figures = [int.from_bytes(reply.data[i:i + 8], "big") for i in range(0, 88, 8)]
    bsize, frsize, blocks, bfree, bavail = figures[:5]
    assert bsize > 0 and frsize > 0 and blocks >= bfree >= bavail and figures[10] == 255
    failed(c.extended("statvfs@openssh.com", w.string("/none")), w.FX_NO_SUCH_FILE,
           "no such file or directory")
    failed(c.extended("bogus@example.com"), w.FX_OP_UNSUPPORTED, "operation unsupported")


def test_session_details(api: API, inst: str) -> None:
    """Packets before INIT are served; a second INIT gets VERSION 3 again; handles count on."""
    status, _, rest, sock = w.upgrade(socket_path(api), inst)
    assert status == "HTTP/1.1 101 Switching Protocols"
    api.later(sock.close)
    c = w.SFTP(sock, rest)
    assert c.stat("/").type == w.ATTRS
    assert c.init(6).version == 3
    assert c.init(3).version == 3
    assert c.open("/etc/passwd", w.F_READ).handle == b"1"
    assert c.opendir("/etc").handle == b"2"
    # bytes after a packet's fields are ignored
    c.send(w.STAT, w.u32(77) + w.string("/etc") + b"junk")
    reply = c.recv()
    assert reply is not None and reply.id == 77 and reply.type == w.ATTRS


@pytest.mark.parametrize("packet", [
    pytest.param(w.u32(5) + bytes([99]) + w.u32(1), id="unknown-type"),
    pytest.param(w.u32(5) + bytes([w.STATUS]) + w.u32(1), id="a-reply-type"),
    pytest.param(w.u32(0), id="empty"),
    pytest.param(w.u32(300 * 1024) + bytes([w.STAT]) + bytes(100), id="too-long"),
    pytest.param(w.u32(5) + bytes([w.STAT]) + w.u32(7), id="no-path"),
    pytest.param(w.u32(9) + bytes([w.STAT]) + w.u32(7) + w.u32(100), id="short-path"),
    pytest.param(w.u32(5) + bytes([w.EXTENDED]) + w.u32(1), id="extended-no-name"),
    pytest.param(w.u32(15) + bytes([w.OPEN]) + w.u32(9) + w.string("/x") + w.u32(1),
                 id="open-no-attrs"),
    pytest.param(w.u32(14) + bytes([w.MKDIR]) + w.u32(9) + w.string("/srv/m"),
                 id="mkdir-no-attrs"),
    pytest.param(w.u32(9) + bytes([w.INIT]) + w.u32(3) + w.u32(99), id="init-bad-extension"),
])
def test_malformed_packets_end_the_session(api: API, inst: str, packet: bytes) -> None:
    """pkg/sftp drops the connection, without a reply, on a packet it cannot take.

    On LXD 5.0.2 the instance's SFTP server process ends with it, and a session opened right
    after may be dropped before its VERSION (the next one is served); the fake serves the next
    session at once.
    """
    c = sftp_session(api, inst)
    c.send_raw(packet)
    assert c.recv() is None
    assert c.eof()

    def served() -> bool:
        status, _, rest, sock = w.upgrade(socket_path(api), inst)
        try:
            fresh = w.SFTP(sock, rest)
            fresh.send(w.INIT, w.u32(3))
            version = fresh.recv()
            return version is not None and fresh.stat("/").type == w.ATTRS
        except (OSError, AssertionError):
            if api.is_fake:
                raise  # the fake never drops it
            return False  # LXD's dropped session (see above): try again
        finally:
            sock.close()

    assert served() if api.is_fake else poll(served, interval=0.2)


# -- one filesystem ---------------------------------------------------------------------------


def files_url(name: str) -> str:
    return f"/1.0/instances/{name}/files"


def test_files_api_and_sftp_share_the_filesystem(api: API, inst: str) -> None:
    c = sftp_session(api, inst)
    c.put("/srv/from-sftp", b"written over sftp")
    ok(c.setstat("/srv/from-sftp", w.attrs(perms=0o640)))
    ok(c.mkdir("/srv/dir"))
    ok(c.symlink("/srv/from-sftp", "/srv/link"))
    got = api.get(files_url(inst), params={"path": "/srv/from-sftp"})
    assert got.status == 200 and got.raw == b"written over sftp"
    assert (got.headers["X-Lxd-Type"], got.headers["X-Lxd-Mode"], got.headers["X-Lxd-Uid"]) == (
        "file", "0640", "0")
    listing = api.get(files_url(inst), params={"path": "/srv"})
    assert sorted(listing.metadata) == ["dir", "from-sftp", "link"]
    assert api.get(files_url(inst), params={"path": "/srv/link"}).raw == b"/srv/from-sftp"
    reply = api.request("POST", files_url(inst), params={"path": "/srv/from-api"}, data=b"api",
                        headers={"X-LXD-mode": "0600", "X-LXD-uid": "7", "X-LXD-gid": "8"})
    assert reply.status == 200, reply
    attrs = c.stat("/srv/from-api").attrs
    assert attrs is not None and (attrs["perms"], attrs["uid"], attrs["gid"], attrs["size"]) == (
        0o100600, 7, 8, 3)
    assert c.get("/srv/from-api") == b"api"
    assert api.delete(files_url(inst), params={"path": "/srv/from-api"}).status == 200
    failed(c.stat("/srv/from-api"), w.FX_NO_SUCH_FILE,
           "stat /srv/from-api: no such file or directory")


def test_running_instance_exec_sees_the_files(api: API) -> None:
    """A running instance is served too; ``cat`` in it reads what SFTP wrote and SFTP reads what
    a command wrote."""
    name = started(api)
    c = sftp_session(api, name)
    c.put("/srv/run.txt", b"running\n")
    reply = api.post(f"/1.0/instances/{name}/exec",
                     {"command": ["sh", "-c", "cat /srv/run.txt; echo made > /srv/made"],
                      "record-output": True})
    assert reply.status == 202, reply
    op = api.wait(reply)
    assert op["metadata"]["return"] == 0, op
    assert api.get(op["metadata"]["output"]["1"]).raw == b"running\n"
    assert c.get("/srv/made") == b"made\n"
    ok(c.setstat("/srv/run.txt", w.attrs(uid=1000, gid=1000)))
    attrs = c.stat("/srv/run.txt").attrs
    assert attrs is not None and (attrs["uid"], attrs["gid"]) == (1000, 1000)
    # a running container refuses ids outside its id map (a stopped one takes any)
    failed(c.setstat("/srv/run.txt", w.attrs(uid=2_000_000_000, gid=0)), w.FX_FAILURE,
           "chown /srv/run.txt: invalid argument")
    c.sock.close()  # before the instance is stopped (see test_open_session_holds_...)


def test_stopped_and_running_instances_share_the_files(api: API, inst: str) -> None:
    """A session on the stopped instance, then one on the running instance, then one on the
    stopped instance again: one filesystem. (Each session is closed before the instance
    changes state: on LXD 5.0.2 an open session holds start, stop and snapshots back, see
    ``test_open_session_holds_operations_back``.)"""
    c = sftp_session(api, inst)
    c.put("/srv/f", b"1")
    c.sock.close()
    assert action(api, inst, "start")["status"] == "Success"
    c = sftp_session(api, inst)
    assert c.get("/srv/f") == b"1"
    c.put("/srv/g", b"2")
    c.sock.close()
    assert action(api, inst, "stop", force=True)["status"] == "Success"
    assert sftp_session(api, inst).get("/srv/g") == b"2"


@pytest.mark.real_only
def test_open_session_holds_operations_back(api: API, inst: str) -> None:
    """LXD 5.0.2: while an SFTP session is open, starting the instance (and stopping or
    snapshotting it) waits; it goes on once the session ends. Divergence: the fake does not
    hold operations back for open sessions."""
    c = sftp_session(api, inst)
    reply = api.put(f"/1.0/instances/{inst}/state", {"action": "start"})
    assert reply.status == 202, reply
    url = reply.body["operation"]
    assert api.get(url + "/wait", params={"timeout": 2}).metadata["status"] == "Running"
    c.sock.close()
    assert api.wait(url)["status"] == "Success"


def test_snapshots_and_copies_carry_sftp_files(api: API, inst: str) -> None:
    c = sftp_session(api, inst)
    c.put("/srv/kept", b"before the snapshot")
    c.sock.close()  # an open session holds the snapshot back on LXD 5.0.2
    reply = api.post(f"/1.0/instances/{inst}/snapshots", {"name": "s0"})
    assert api.wait(reply)["status"] == "Success"
    c = sftp_session(api, inst)
    c.put("/srv/kept", b"after")
    c.sock.close()
    copy = unique("copy")
    reply = api.post("/1.0/instances", {"name": copy, "profiles": ["default"], "source": {
        "type": "copy", "source": f"{inst}/s0"}})
    assert reply.status == 202, reply
    api.delete_later(f"/1.0/instances/{copy}")
    assert api.wait(reply)["status"] == "Success"
    assert sftp_session(api, copy).get("/srv/kept") == b"before the snapshot"
    assert sftp_session(api, inst).get("/srv/kept") == b"after"


def test_sftp_in_a_project(api: API) -> None:
    papi = shared_project(api, "sp")
    project = papi.project
    name = make(papi)
    status, _, body = raw_reply(api, w.upgrade_request(name))
    assert envelope_error(body) == (404, "Instance not found"), "not in the default project"
    c = sftp_session(api, name, project)
    c.put("/srv/p", b"in a project")
    assert papi.get(files_url(name), params={"path": "/srv/p"}).raw == b"in a project"


# -- the fake's own ends ----------------------------------------------------------------------


def _session_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.is_alive())


@pytest.mark.fake_only
def test_reset_ends_open_sessions(api: API, inst: str) -> None:
    """A reset ends every session at once (an idle one too), leaving no thread behind."""
    server: Any = api.server  # type: ignore[attr-defined]
    before = _session_threads()
    idle = sftp_session(api, inst)
    busy = sftp_session(api, inst)
    busy.put("/srv/f", b"x")
    assert len(server.sftp_sessions) == 2
    server.reset()
    assert idle.eof() and busy.eof()
    assert poll(lambda: not server.sftp_sessions and _session_threads() <= before)


@pytest.mark.fake_only
def test_closing_the_connection_frees_the_session(api: API, inst: str) -> None:
    server: Any = api.server  # type: ignore[attr-defined]
    c = sftp_session(api, inst)
    opened = c.open("/etc/passwd", w.F_READ)
    assert opened.type == w.HANDLE
    session = next(iter(server.sftp_sessions))
    assert len(session.handles) == 1
    c.sock.close()
    assert poll(lambda: not server.sftp_sessions)
    assert not session.handles
    # a truncated packet is the same as a closed connection
    c = sftp_session(api, inst)
    c.send_raw(w.u32(100) + bytes([w.STAT]))
    c.sock.shutdown(socket.SHUT_WR)
    assert c.recv() is None


@pytest.mark.fake_only
def test_deleting_the_instance_ends_its_sessions(api: API, inst: str) -> None:
    c = sftp_session(api, inst)
    assert api.wait(api.delete(f"/1.0/instances/{inst}"))["status"] == "Success"
    c.send(w.STAT, w.u32(1) + w.string("/"))
    assert c.recv() is None


@pytest.mark.fake_only
def test_stopping_the_server_ends_open_sessions(tmp_path: Any) -> None:
    from fakeserver import FakeLXD
    from tests.instancefixtures import with_busybox

    with FakeLXD(tmp_path) as fake:
        local = API.unix("fake", fake.socket_path)
        local.server = fake  # type: ignore[attr-defined]
        name = make(with_busybox(local))
        c = sftp_session(local, name)
        fake.stop()
        assert c.eof()
        assert poll(lambda: not fake.sftp_sessions)
        local.run_cleanups()
