"""OpenSSH's ``sftp`` client, unmodified, on an instance's SFTP endpoint, on both backends.

``sftp -D <command>`` talks to a "local sftp server" over the command's stdin/stdout; the command
is ``tests/compat/sftp_bridge.py``, which does LXD's HTTP upgrade on the backend's unix socket
and relays the bytes. The same batch runs on the fake and on the real host and must print the
same (times in ``ls -l`` lines masked), leave the same files and fail the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat import socket_path
from tests.instancefixtures import make, shared_project
from tests.support import API

SFTP = shutil.which("sftp")
BRIDGE = Path(__file__).with_name("sftp_bridge.py")
pytestmark = pytest.mark.skipif(SFTP is None, reason="the OpenSSH sftp client is not installed")
DATE = re.compile(r" \w{3} +\d+ +(\d\d:\d\d|\d{4}) ")


def run_batch(api: API, name: str, batch: str, tmp_path: Path,
              project: str | None = None) -> subprocess.CompletedProcess[str]:
    assert SFTP is not None
    (tmp_path / "batch").write_text(batch)
    server = f"{sys.executable} {BRIDGE} {socket_path(api)} {name}"
    if project:
        server += f" {project}"
    return subprocess.run([SFTP, "-b", str(tmp_path / "batch"), "-D", server],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def masked(text: str) -> str:
    return DATE.sub(" <date> ", text)


def test_sftp_batch(api: API, tmp_path: Path) -> None:
    name = make(api)
    (tmp_path / "local.txt").write_bytes(b"local data\n")
    batch = """pwd
put local.txt /srv/up.txt
get /srv/up.txt down.txt
mkdir /srv/dir
rename /srv/up.txt /srv/dir/moved.txt
chmod 600 /srv/dir/moved.txt
symlink /srv/dir/moved.txt /srv/link
ls -l /srv/dir
ls -ln /srv/dir/moved.txt
ls /srv
-rmdir /srv/dir
rm /srv/link
rm /srv/dir/moved.txt
rmdir /srv/dir
ls -la /srv
-get /nope nope.txt
-mkdir /srv
-rm /nope
-rename /nope /srv/x
"""
    done = run_batch(api, name, batch, tmp_path)
    assert done.returncode == 0, done
    assert masked(done.stdout) == """sftp> pwd
Remote working directory: /
sftp> put local.txt /srv/up.txt
sftp> get /srv/up.txt down.txt
sftp> mkdir /srv/dir
sftp> rename /srv/up.txt /srv/dir/moved.txt
sftp> chmod 600 /srv/dir/moved.txt
sftp> symlink /srv/dir/moved.txt /srv/link
sftp> ls -l /srv/dir
-rw-------    1 root     root           11 <date> moved.txt
sftp> ls -ln /srv/dir/moved.txt
-rw-------    ? 0        0              11 <date> /srv/dir/moved.txt
sftp> ls /srv
/srv/dir   /srv/link{TRAILING}
sftp> -rmdir /srv/dir
sftp> rm /srv/link
sftp> rm /srv/dir/moved.txt
sftp> rmdir /srv/dir
sftp> ls -la /srv
sftp> -get /nope nope.txt
sftp> -mkdir /srv
sftp> -rm /nope
sftp> -rename /nope /srv/x
""".replace("{TRAILING}", "  ")
    assert done.stderr == """remote rmdir "/srv/dir": Failure
File "/nope" not found.
remote mkdir "/srv": Failure
remote delete /nope: No such file or directory
remote rename "/nope" to "/srv/x": No such file or directory
"""
    assert (tmp_path / "down.txt").read_bytes() == b"local data\n"
    assert api.get(f"/1.0/instances/{name}/files", params={"path": "/srv"}).metadata == []


def test_sftp_batch_stops_at_a_failure(api: API, tmp_path: Path) -> None:
    """Without ``-``, the first failing command ends the batch with status 1."""
    name = make(api)
    done = run_batch(api, name, "mkdir /srv/a\nmkdir /srv/a\nmkdir /srv/b\n", tmp_path)
    assert (done.returncode, done.stderr) == (1, 'remote mkdir "/srv/a": Failure\n')
    listing = api.get(f"/1.0/instances/{name}/files", params={"path": "/srv"}).metadata
    assert listing == ["a"]


def test_sftp_in_a_project_and_refused(api: API, tmp_path: Path) -> None:
    papi = shared_project(api, "sc")
    project = papi.project
    name = make(papi)
    (tmp_path / "empty").write_bytes(b"")
    done = run_batch(api, name, "put empty /srv/empty\nls /srv\n", tmp_path, project)
    assert (done.returncode, done.stdout) == (
        0, "sftp> put empty /srv/empty\nsftp> ls /srv\n/srv/empty   \n"), done
    refused = run_batch(api, name, "ls /\n", tmp_path)  # not in the default project
    assert refused.returncode != 0
    assert "upgrade refused: HTTP/1.1 404" in refused.stderr
    assert "Instance not found" in refused.stderr


LXC = shutil.which("lxc")


@pytest.mark.skipif(LXC is None, reason="the lxc CLI is not installed")
def test_lxc_file_mount_listener(api: API, tmp_path: Path) -> None:
    """``lxc file mount <instance> --listen 127.0.0.1:0 --no-auth`` serves SSH SFTP on loopback,
    each SSH session being an upgrade to ``/sftp``; OpenSSH's ``sftp`` then works through it."""
    assert LXC is not None and SFTP is not None
    name = make(api)
    env = {key: value for key, value in os.environ.items() if not key.startswith("LXD_")}
    env.update(LXD_DIR=os.path.dirname(socket_path(api)), HOME=str(tmp_path), LANG="C.UTF-8")
    subprocess.run([LXC, "remote", "list"], env=env, capture_output=True, timeout=60)
    listener = subprocess.Popen([LXC, "file", "mount", name, "--listen", "127.0.0.1:0",
                                 "--no-auth"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        assert listener.stdout is not None
        line = listener.stdout.readline()
        match = re.match(r"SSH SFTP listening on 127\.0\.0\.1:(\d+)$", line.strip())
        assert match, line
        (tmp_path / "batch").write_text("put batch /srv/via-mount\nls -l /srv\n")
        done = subprocess.run(
            [SFTP, "-b", str(tmp_path / "batch"), "-P", match.group(1),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "nobody@127.0.0.1"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
        assert done.returncode == 0, done
        assert masked(done.stdout).endswith(
            "-rw-r--r--    1 root     root           36 <date> via-mount\n"), done.stdout
    finally:
        listener.terminate()
        listener.wait(10)
    got = api.get(f"/1.0/instances/{name}/files", params={"path": "/srv/via-mount"})
    assert got.raw == b"put batch /srv/via-mount\nls -l /srv\n"
