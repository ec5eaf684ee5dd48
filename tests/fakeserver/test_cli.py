"""``lxd-fake serve`` (and ``python -m fakeserver``): what it prints, serves, and refuses."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fakeserver import FakeLXD
from fakeserver.cli import main, parse_address
from tests.support import API

pytestmark = pytest.mark.fake_only
ROOT = Path(__file__).resolve().parents[2]


class Served:
    """A ``lxd-fake serve`` child process and the banner it printed."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=ROOT)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.banner = self._banner()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _banner(self) -> str:
        got: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=30)
            except queue.Empty:
                break
            if line is None:
                break
            got.append(line)
            if len(got) >= 2 and got[-2] == "lxc:":
                break
        text = "\n".join(got)
        assert "lxc:" in text, f"no banner: {text!r}, stderr: {self.stop(signal.SIGKILL)}"
        return text

    def field(self, label: str) -> str:
        match = re.search(rf"^  {label} +(\S+)$", self.banner, re.M)
        assert match, (label, self.banner)
        return match.group(1)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Signal the child, wait for it, and return its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def served() -> Iterator[list[Served]]:
    running: list[Served] = []
    yield running
    for child in running:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.communicate(timeout=30)


def test_serve_prints_how_to_connect_and_stops_on_sigterm(tmp_path: Path,
                                                         served: list[Served]) -> None:
    command = shutil.which("lxd-fake")
    assert command, "the lxd-fake console script is not installed (pip install -e .)"
    seed = tmp_path / "preseed.yaml"
    seed.write_text("profiles:\n- name: seeded\n  config:\n    user.k: v\n")
    directory = tmp_path / "lxd"
    child = Served([command, "serve", "--dir", str(directory), "--https", "127.0.0.1:0",
                    "--preseed", str(seed)])
    served.append(child)
    sock = child.field("unix socket")
    url = child.field("https")
    ca_file = child.field("CA file")
    assert sock == str(directory / "unix.socket")
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
    assert Path(ca_file).is_file()
    assert f"pylxd.Client(endpoint='{sock}')" in child.banner
    assert f"LXD_DIR={directory} lxc list" in child.banner

    api = API.unix("fake", sock)
    assert api.get("/1.0").metadata["environment"]["server_version"] == "5.0.2"
    assert api.get("/1.0/profiles/seeded").metadata["config"] == {"user.k": "v"}
    assert api.get("/1.0/profiles/default").metadata["devices"]["root"]["pool"] == "default"
    untrusted = requests.get(url + "/1.0", verify=ca_file, timeout=10)
    assert untrusted.json()["metadata"]["auth"] == "untrusted"

    assert child.stop(signal.SIGTERM) == ""
    assert child.proc.returncode == 0
    assert not os.path.exists(sock)
    assert directory.is_dir()  # a --dir is kept


def test_python_m_fakeserver_no_baseline_and_sigint(served: list[Served]) -> None:
    child = Served([sys.executable, "-m", "fakeserver", "serve", "--no-https",
                    "--no-baseline"])
    served.append(child)
    assert "https" not in child.banner.split("pylxd:")[0]
    sock = child.field("unix socket")
    api = API.unix("fake", sock)
    assert api.get("/1.0/profiles/default").metadata["devices"] == {}  # a fresh LXD
    assert child.stop(signal.SIGINT) == ""
    assert child.proc.returncode == 0
    assert not Path(sock).parent.exists()  # its own temporary directory is removed


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert "Traceback" not in err
    return code, err.strip()


@pytest.mark.parametrize("address", ["nope", "127.0.0.1", "127.0.0.1:99999", ":8443",
                                     "127.0.0.1:x"])
def test_bad_https_address(capsys: pytest.CaptureFixture[str], address: str) -> None:
    code, err = one_line_error(capsys, ["serve", "--https", address])
    assert code == 2
    assert err.startswith("lxd-fake serve: error: argument --https: invalid HOST:PORT")


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert one_line_error(capsys, []) == (
        2, "lxd-fake: error: the following arguments are required: COMMAND "
           "(see lxd-fake --help)")
    code, err = one_line_error(capsys, ["serve", "--bogus"])
    assert code == 2 and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("content, message", [
    (None, "cannot read preseed {path}: No such file or directory"),
    ("profiles: [\n", "invalid preseed {path}: Failed to parse the preseed: yaml: line 2: "),
    ("bogus: 1\n", "invalid preseed {path}: Failed to parse the preseed: yaml: unmarshal "
                   "errors: line 1: field bogus not found in type api.InitPreseed"),
    ("profiles:\n- name: p\n  config: {foo.bar: 1}\n",
     'invalid preseed {path}: Failed to create profile "p": Unknown configuration key: '
     "foo.bar"),
])
def test_bad_preseed(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                     content: str | None, message: str) -> None:
    path = tmp_path / "preseed.yaml"
    if content is not None:
        path.write_text(content)
    code, err = one_line_error(capsys, ["serve", "--dir", str(tmp_path / "d"),
                                        "--preseed", str(path)])
    assert code == 1
    assert err.startswith("lxd-fake: error: " + message.format(path=path))


def test_unreadable_preseed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = one_line_error(capsys, ["serve", "--preseed", str(tmp_path)])
    assert code == 1 and err == f"lxd-fake: error: cannot read preseed {tmp_path}: Is a directory"


def test_directory_that_cannot_be_created(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = one_line_error(capsys, ["serve", "--dir", str(blocker / "sub")])
    assert code == 1
    assert err == f"lxd-fake: error: cannot create directory {blocker / 'sub'}: Not a directory"
    long_dir = tmp_path / ("x" * 110)
    code, err = one_line_error(capsys, ["serve", "--dir", str(long_dir)])
    assert code == 1 and err.startswith("lxd-fake: error: socket path too long")


def test_port_in_use(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = one_line_error(capsys, ["serve", "--dir", str(tmp_path),
                                            "--https", f"127.0.0.1:{port}"])
    assert code == 1
    assert err == f"lxd-fake: error: cannot listen on 127.0.0.1:{port}: address already in use"
    assert not (tmp_path / "unix.socket").exists()


def test_a_running_server_in_the_directory_is_left_alone(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    with FakeLXD(tmp_path) as fake:
        code, err = one_line_error(capsys, ["serve", "--dir", str(tmp_path)])
        assert code == 1
        assert err == f"lxd-fake: error: a server is already listening on {fake.socket_path}"
        assert API.unix("fake", fake.socket_path).get("/1.0").status == 200


def test_readme_commands() -> None:
    """The README gives one command to run the fake and one to run the tests."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("pip install -e . && lxd-fake serve") == 1
    assert readme.count("pip install -e '.[test]' && python -m pytest") == 1
    assert re.findall(r"pip install[^\n]*", readme) == [
        "pip install -e . && lxd-fake serve", "pip install -e '.[test]' && python -m pytest",
        # "Use it in your project": a downstream project installs from a checkout (not on PyPI)
        "pip install /path/to/pytest-lxd"]
    usage = subprocess.run([sys.executable, "-m", "fakeserver", "serve", "--help"],
                           capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    for option in re.findall(r"^\| `(--[a-z-]+)", readme, re.M):
        assert option in usage, option


def test_https_addresses() -> None:
    assert parse_address("127.0.0.1:0") == "127.0.0.1:0"
    assert parse_address("localhost:08443") == "localhost:8443"
    assert parse_address("[::1]:8443") == "::1:8443"
