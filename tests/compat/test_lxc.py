"""The ``lxc`` CLI (Debian's lxd-client 5.0.2), unmodified, against the fake and the real host.

``LXD_DIR=<dir> lxc ...`` talks to ``<dir>/unix.socket``. Each test runs the same commands on
each backend and checks exit codes and output exactly, except for what differs by host: names
made unique per run, the pool's source path (under each server's own directory) and ``USED BY``
counts (other tests on a shared real host change them).
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
from tests.support import API, unique

LXC = shutil.which("lxc")
pytestmark = pytest.mark.skipif(LXC is None, reason="the lxc CLI is not installed")

Run = Callable[..., subprocess.CompletedProcess[str]]


def lxc_runner(lxd_dir: str, home: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LXD_")}
    env.update(LXD_DIR=lxd_dir, HOME=str(home), LANG="C.UTF-8")  # not /root/.config/lxc

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        assert LXC is not None
        return subprocess.run([LXC, *args], env=env, capture_output=True, text=True,
                              timeout=60)

    run("remote", "list")  # the first run greets on stderr ("To start your first container")
    return run


@pytest.fixture
def lxc(api: API, tmp_path: Path) -> Run:
    return lxc_runner(os.path.dirname(socket_path(api)), tmp_path)


def csv_rows(output: str) -> list[list[str]]:
    return [line.split(",") for line in output.splitlines()]


def table_header(output: str) -> list[str]:
    header = output.splitlines()[1]
    return [cell.strip() for cell in header.strip("|").split("|")]


def test_profile_list(lxc: Run) -> None:
    table = lxc("profile", "list")
    assert (table.returncode, table.stderr) == (0, "")
    assert table_header(table.stdout) == ["NAME", "DESCRIPTION", "USED BY"]
    rows = {row[0]: row for row in csv_rows(lxc("profile", "list", "-f", "csv").stdout)}
    assert rows["default"][:2] == ["default", "Default LXD profile"]
    assert all(len(row) == 3 and row[2].isdigit() for row in rows.values())


def test_network_list(lxc: Run) -> None:
    table = lxc("network", "list")
    assert (table.returncode, table.stderr) == (0, "")
    assert table_header(table.stdout) == ["NAME", "TYPE", "MANAGED", "IPV4", "IPV6",
                                          "DESCRIPTION", "USED BY", "STATE"]
    done = lxc("network", "list", "-f", "csv")
    assert (done.returncode, done.stderr) == (0, "")
    rows = {row[0]: row for row in csv_rows(done.stdout)}
    bridge = rows["lxdbr0"]
    assert bridge[:6] == ["lxdbr0", "bridge", "YES", "none", "none", ""]
    assert bridge[6].isdigit() and bridge[7] == "CREATED"
    assert all(len(row) == 8 for row in rows.values())


def test_storage_list(lxc: Run) -> None:
    table = lxc("storage", "list")
    assert (table.returncode, table.stderr) == (0, "")
    assert table_header(table.stdout) == ["NAME", "DRIVER", "SOURCE", "DESCRIPTION",
                                          "USED BY", "STATE"]
    done = lxc("storage", "list", "-f", "csv")
    assert (done.returncode, done.stderr) == (0, "")
    rows = {row[0]: row for row in csv_rows(done.stdout)}
    name, driver, source, description, used_by, state = rows["default"]
    assert (name, driver, description, state) == ("default", "dir", "", "CREATED")
    assert source.endswith("/storage-pools/default") and used_by.isdigit()


def test_profile_create_set_show_delete(lxc: Run, api: API) -> None:
    name = unique("p")
    api.delete_later(f"/1.0/profiles/{name}")
    assert lxc("profile", "create", name).stdout == f"Profile {name} created\n"
    done = lxc("profile", "set", name, "user.k", "v")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    shown = lxc("profile", "show", name)
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == (f'config:\n  user.k: v\ndescription: ""\ndevices: {{}}\n'
                            f"name: {name}\nused_by: []\n")
    assert lxc("profile", "get", name, "user.k").stdout == "v\n"
    assert name in {row[0] for row in csv_rows(lxc("profile", "list", "-f", "csv").stdout)}

    again = lxc("profile", "create", name)
    assert again.returncode == 1
    assert again.stderr == (f'Error: Error inserting "{name}" into database: '
                            "The profile already exists\n")
    deleted = lxc("profile", "delete", name)
    assert (deleted.returncode, deleted.stdout, deleted.stderr) == (
        0, f"Profile {name} deleted\n", "")
    missing = lxc("profile", "show", name)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "Error: " + api.get(f"/1.0/profiles/{name}").error + "\n"


def test_errors(lxc: Run, api: API) -> None:
    refused = lxc("profile", "delete", "default")
    assert refused.returncode == 1
    assert refused.stderr == "Error: " + api.delete("/1.0/profiles/default").error + "\n"
    bad = lxc("profile", "set", "default", "foo.bar", "1")
    assert bad.returncode == 1 and bad.stderr == "Error: Unknown configuration key: foo.bar\n"


@pytest.mark.fake_only
def test_lxc_against_lxd_fake_serve(tmp_path: Path) -> None:
    """The server as a person runs it: ``lxd-fake serve --dir D``, then ``LXD_DIR=D lxc``."""
    directory = tmp_path / "lxd"
    server = subprocess.Popen([sys.executable, "-m", "fakeserver", "serve", "--dir",
                               str(directory), "--no-https"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(3)]
        assert banner[1].split() == ["unix", "socket", str(directory / "unix.socket")]
        lxc = lxc_runner(str(directory), tmp_path)
        assert lxc("profile", "create", "web").returncode == 0
        listed = lxc("profile", "list", "-f", "csv")
        assert (listed.returncode, listed.stderr) == (0, "")
        assert [row[0] for row in csv_rows(listed.stdout)] == ["default", "web"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0 and err == ""


# -- instances -----------------------------------------------------------------------------------

# Both hosts have no NIC in the default profile, so lxc warns on init and launch.
NO_NETWORK = ("\nThe instance you are starting doesn't have any network attached to it.\n"
              "  To create a new network, use: lxc network create\n"
              "  To attach a network to an instance, use: lxc network attach\n\n")


def progress_free(output: str) -> list[str]:
    """Output lines without lxc's image progress lines (and the blanks that erase them)."""
    return [line for line in output.splitlines()
            if line.strip() and not line.startswith("Retrieving image: ")
            and line.strip() != "Remapping container filesystem"]


def test_instance_lifecycle(lxc: Run, api: API) -> None:
    """init, start, list, info, config set/get, snapshot, stop --force, delete."""
    from tests.instancefixtures import remove_later, with_busybox

    with_busybox(api)
    name = unique("c")
    remove_later(api, name)
    done = lxc("init", "busybox", name)
    assert (done.returncode, done.stderr) == (0, NO_NETWORK)
    assert progress_free(done.stdout) == [f"Creating {name}"]
    assert api.get(f"/1.0/instances/{name}").metadata["status"] == "Stopped"

    done = lxc("list", name, "-f", "csv", "-c", "ns46tS")
    assert (done.returncode, done.stderr) == (0, "")
    assert csv_rows(done.stdout) == [[name, "STOPPED", "", "", "CONTAINER", "0"]]
    table = lxc("list", name)
    assert (table.returncode, table.stderr) == (0, "")
    assert table_header(table.stdout) == ["NAME", "STATE", "IPV4", "IPV6", "TYPE", "SNAPSHOTS"]

    done = lxc("start", name)
    # A first start may show "Remapping container filesystem" progress (real host and fake).
    assert (done.returncode, progress_free(done.stdout), done.stderr) == (0, [], "")
    done = lxc("list", name, "-f", "csv", "-c", "ns")
    assert csv_rows(done.stdout) == [[name, "RUNNING"]]

    done = lxc("config", "set", name, "user.k", "v")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert lxc("config", "get", name, "user.k").stdout == "v\n"
    bad = lxc("config", "set", name, "foo.bar", "1")
    assert bad.returncode == 1
    assert bad.stderr == "Error: Invalid config: Unknown configuration key: foo.bar\n"

    done = lxc("snapshot", name)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = lxc("snapshot", name, "snap0")
    assert done.returncode == 1
    assert done.stderr == ('Error: Failed creating instance snapshot record "snap0": Add '
                           'snapshot info to the database: This "instances_snapshots" entry '
                           "already exists\n")
    done = lxc("list", name, "-f", "csv", "-c", "nS")
    assert csv_rows(done.stdout) == [[name, "1"]]

    info = lxc("info", name)
    assert (info.returncode, info.stderr) == (0, "")
    lines = info.stdout.splitlines()
    assert lines[0] == f"Name: {name}"
    assert "Status: RUNNING" in lines and "Type: container" in lines
    assert "Architecture: x86_64" in lines
    assert any(line.startswith("PID: ") for line in lines)
    assert "Snapshots:" in lines
    assert any(line.startswith("| snap0 ") for line in lines)

    done = lxc("delete", name)
    assert done.returncode == 1
    assert done.stderr == ("Error: The instance is currently running, stop it first or pass "
                           "--force\n")
    done = lxc("stop", name, "--force")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = lxc("list", name, "-f", "csv", "-c", "ns")
    assert csv_rows(done.stdout) == [[name, "STOPPED"]]
    done = lxc("stop", name, "--force")
    # Known divergence: against the fake, lxc adds its "Try `lxc info --show-log`" hint line.
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "Error: The instance is already stopped"
    done = lxc("delete", name)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert api.get(f"/1.0/instances/{name}").status == 404
    done = lxc("info", name)
    assert (done.returncode, done.stderr) == (1, "Error: Instance not found\n")


def test_launch_and_start_errors(lxc: Run, api: API) -> None:
    from tests.instancefixtures import remove_later, with_busybox

    with_busybox(api)
    name = unique("c")
    remove_later(api, name)
    done = lxc("launch", "busybox", name, "--ephemeral")
    assert (done.returncode, done.stderr) == (0, NO_NETWORK)
    assert progress_free(done.stdout) == [f"Creating {name}", f"Starting {name}"]
    done = lxc("start", name)
    first, _, rest = done.stderr.partition("\n")
    assert (done.returncode, first) == (1, "Error: The instance is already running")
    # lxc 5.0.2 sometimes adds its log hint (seen on the real host and on the fake).
    assert rest in ("", f"Try `lxc info --show-log {name}` for more info\n")
    done = lxc("init", "nope-missing", unique("c"))
    assert done.returncode == 1
    assert done.stderr == "Error: Image not found\n"
    done = lxc("stop", name, "--force")
    assert (done.returncode, done.stderr) == (0, "")
    assert api.get(f"/1.0/instances/{name}").status == 404  # ephemeral


@pytest.mark.fake_only
def test_instances_against_lxd_fake_serve(tmp_path: Path) -> None:
    """``lxc image import``, ``launch``, ``list`` against ``lxd-fake serve``."""
    from tests.instancefixtures import busybox_tarball

    directory = tmp_path / "lxd"
    image = tmp_path / "busybox.tar.gz"
    image.write_bytes(busybox_tarball())
    server = subprocess.Popen([sys.executable, "-m", "fakeserver", "serve", "--dir",
                               str(directory), "--no-https"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        [server.stdout.readline() for _ in range(3)]
        lxc = lxc_runner(str(directory), tmp_path)
        done = lxc("image", "import", str(image), "--alias", "busybox")
        assert done.returncode == 0, done.stderr
        done = lxc("launch", "busybox", "c1")
        assert (done.returncode, done.stderr) == (0, NO_NETWORK)
        assert progress_free(done.stdout) == ["Creating c1", "Starting c1"]
        done = lxc("list", "-f", "csv", "-c", "nst")
        assert csv_rows(done.stdout) == [["c1", "RUNNING", "CONTAINER"]]
        assert lxc("snapshot", "c1").returncode == 0
        assert lxc("stop", "--force", "c1").returncode == 0
        assert lxc("delete", "c1").returncode == 0
        assert lxc("list", "-f", "csv").stdout == ""
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0 and err == ""
