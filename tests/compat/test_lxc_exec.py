"""``lxc exec`` and ``lxc file`` (Debian's lxd-client 5.0.2), unmodified, on both backends.

The same commands run against the fake and the real host (``LXD_DIR`` pointing at either
socket), in a busybox instance of each test's own; exit codes, stdout and stderr must match.
The last test drives a fake started the way a person starts it, ``lxd-fake serve``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compat import socket_path
from tests.instancefixtures import busybox_tarball, make, started
from tests.support import API

LXC = shutil.which("lxc")
pytestmark = pytest.mark.skipif(LXC is None, reason="the lxc CLI is not installed")

Run = Callable[..., subprocess.CompletedProcess[str]]


def runner(lxd_dir: str, home: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LXD_")}
    env.update(LXD_DIR=lxd_dir, HOME=str(home), LANG="C.UTF-8")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert LXC is not None
        return subprocess.run([LXC, *args], env=env, capture_output=True, text=True,
                              input=stdin if stdin is not None else "", timeout=60)

    run("remote", "list")  # the first run greets on stderr
    return run


@pytest.fixture
def lxc(api: API, tmp_path: Path) -> Run:
    return runner(os.path.dirname(socket_path(api)), tmp_path)


def result(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def quiet(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    """Like :func:`result`, without the progress lines ``lxc file push`` prints."""
    lines = [line for line in done.stdout.splitlines(keepends=True)
             if line.strip() and not line.startswith("Pushing ")]
    return done.returncode, "".join(lines), done.stderr


def test_exec(lxc: Run, api: API) -> None:
    name = started(api)
    assert result(lxc("exec", name, "--", "echo", "hi")) == (0, "hi\n", "")
    assert result(lxc("exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 3")) == (
        3, "out\n", "err\n")
    assert result(lxc("exec", name, "--", "false")) == (1, "", "")
    assert result(lxc("exec", name, "--", "cat", stdin="piped\nlines\n")) == (
        0, "piped\nlines\n", "")
    assert result(lxc("exec", name, "--env", "FOO=bar", "--", "sh", "-c", "echo $FOO $TERM")) \
        == (0, "bar xterm\n", "")
    assert result(lxc("exec", name, "--cwd", "/etc", "--", "pwd")) == (0, "/etc\n", "")
    assert result(lxc("exec", name, "--user", "1000", "--", "pwd")) == (0, "/\n", "")
    assert result(lxc("exec", name, "--", "hostname")) == (0, f"{name}\n", "")


def test_exec_failures(lxc: Run, api: API) -> None:
    name = started(api)
    missing = lxc("exec", name, "--", "nonexistent-command")
    assert result(missing) == (127, "", "Error: Command not found\n")
    not_executable = lxc("exec", name, "--", "/etc/hostname")
    assert result(not_executable) == (126, "", "Error: Command not executable\n")
    stopped = make(api)
    refused = lxc("exec", stopped, "--", "echo", "hi")
    assert result(refused) == (1, "", "Error: Instance is not running\n")


def test_file_push_pull_delete(lxc: Run, api: API, tmp_path: Path) -> None:
    name = started(api)
    local = tmp_path / "local.txt"
    local.write_text("pushed by lxc\n")
    done = lxc("file", "push", str(local), f"{name}/srv/pushed.txt", "--uid", "1000",
               "--gid", "1000", "--mode", "0600")
    assert quiet(done) == (0, "", "")
    got = api.get(f"/1.0/instances/{name}/files", params={"path": "/srv/pushed.txt"})
    assert got.raw == b"pushed by lxc\n"
    assert (got.headers["X-Lxd-Uid"], got.headers["X-Lxd-Gid"],
            got.headers["X-Lxd-Mode"]) == ("1000", "1000", "0600")
    pulled = tmp_path / "pulled.txt"
    assert result(lxc("file", "pull", f"{name}/srv/pushed.txt", str(pulled))) == (0, "", "")
    assert pulled.read_text() == "pushed by lxc\n"
    assert result(lxc("exec", name, "--", "cat", "/srv/pushed.txt")) == (0, "pushed by lxc\n",
                                                                         "")
    assert result(lxc("file", "delete", f"{name}/srv/pushed.txt")) == (0, "", "")
    gone = lxc("file", "pull", f"{name}/srv/pushed.txt", str(tmp_path / "again.txt"))
    assert result(gone) == (1, "", "Error: Not Found\n")


def test_file_push_recursive_and_pull_recursive(lxc: Run, api: API, tmp_path: Path) -> None:
    name = started(api)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    assert quiet(lxc("file", "push", "-r", str(tree), f"{name}/srv/")) == (0, "", "")
    done = lxc("exec", name, "--", "sh", "-c", "cat /srv/tree/a.txt /srv/tree/sub/b.txt; "
                                               "ls /srv/tree")
    assert result(done) == (0, "a\nb\na.txt\nsub\n", "")
    back = tmp_path / "back"
    back.mkdir()
    assert result(lxc("file", "pull", "-r", f"{name}/srv/tree", str(back))) == (0, "", "")
    assert (back / "tree" / "sub" / "b.txt").read_text() == "b\n"
    assert (back / "tree" / "a.txt").read_text() == "a\n"


@pytest.mark.fake_only
def test_lxc_exec_against_lxd_fake_serve(tmp_path: Path) -> None:
    """``lxd-fake serve`` as a person runs it: import busybox, launch, exec, push, pull."""
    directory = tmp_path / "lxd"
    server = subprocess.Popen([sys.executable, "-m", "fakeserver", "serve", "--dir",
                               str(directory), "--no-https"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        for _ in range(3):
            server.stdout.readline()
        lxc = runner(str(directory), tmp_path)
        image = tmp_path / "busybox.tar.gz"
        image.write_bytes(busybox_tarball())
        assert lxc("image", "import", str(image), "--alias", "busybox").returncode == 0
        assert lxc("launch", "busybox", "c1").returncode == 0
        assert result(lxc("exec", "c1", "--", "echo", "hi")) == (0, "hi\n", "")
        assert result(lxc("exec", "c1", "--", "sh", "-c", "exit 7")) == (7, "", "")
        local = tmp_path / "f.txt"
        local.write_text("file\n")
        assert lxc("file", "push", str(local), "c1/root/f.txt").returncode == 0
        assert result(lxc("exec", "c1", "--", "cat", "/root/f.txt")) == (0, "file\n", "")
        assert lxc("file", "pull", "c1/etc/hostname", str(tmp_path / "h")).returncode == 0
        assert (tmp_path / "h").read_text() == "busybox\n"
        assert lxc("delete", "--force", "c1").returncode == 0
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0 and err == ""


def test_start_and_stop_all(lxc: Run, api: API) -> None:
    """``lxc start --all`` / ``stop --all`` send one ``PUT /1.0/instances`` (the
    ``instance_bulk_state_change`` extension); in a project of the test's own."""
    from tests.fakeserver.test_instance_state import bulk_project

    papi = bulk_project(api)
    project = papi.project or ""
    names = sorted([make(papi), make(papi)])

    def listing() -> list[str]:
        done = lxc("list", "--project", project, "--format", "csv", "-c", "ns")
        assert done.returncode == 0, done.stderr
        return sorted(done.stdout.splitlines())

    assert listing() == [f"{name},STOPPED" for name in names]
    started_all = lxc("start", "--all", "--project", project)
    assert (started_all.returncode, started_all.stderr) == (0, "")
    # Only progress, if any (how much the CLI shows depends on how long the remap takes).
    assert {line.strip() for line in started_all.stdout.splitlines()} <= {
        "", "Remapping container filesystem"}
    assert listing() == [f"{name},RUNNING" for name in names]
    assert result(lxc("stop", "--all", "--force", "--project", project)) == (0, "", "")
    assert listing() == [f"{name},STOPPED" for name in names]
    if api.is_fake:
        served = [(r.method, r.path) for r in api.server.requests]  # type: ignore[attr-defined]
        assert served.count(("PUT", "/1.0/instances")) == 2
