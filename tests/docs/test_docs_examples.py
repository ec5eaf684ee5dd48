"""Every example of the docs runs here, so the docs cannot drift from the code.

The pages include their code from ``docs/examples/`` (``--8<-- "file.py:section"``); each file
is a complete program, run as a whole:

* ``*.py``: executed against the fake, as a user would run it on an LXD host: ``LXD_DIR`` is
  the fake's directory (so ``Client()`` finds its socket), the working directory is a fresh one
  holding a client certificate (``client.crt``, ``client.key``) and the examples' YAML files,
  and ``https://127.0.0.1:8443`` (where LXD listens by default) means the fake's HTTPS
  address. A line ``print(...)  # text`` must print exactly ``text``: the outputs shown in the
  docs are checked.
* ``*.sh``: run with ``bash -euo pipefail`` in the same environment.
* ``adding_an_endpoint.py`` registers routes in the fake; they are removed afterwards. Its
  contract test also runs on the real host (``--lxd-backend=real|both``).
* ``plugin/`` is a downstream project: its tests run in a subprocess with ``pytester``, on the
  fake, and on the real host when this run includes it (``--lxd-backend=real|both``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pytest_lxd
from fakeserver import FakeLXD
from fakeserver import api as api_module
from fakeserver import state as state_module
from pytest_lxd.backends import LXDBackend
from tests.support import API
from tests.tlsutil import self_signed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
LXD_HTTPS = "https://127.0.0.1:8443"
PRINT_CHECK = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+# (?P<expect>.+)$")


def scripts(suffix: str) -> list[Path]:
    return sorted(p for p in EXAMPLES.glob(f"*{suffix}") if p.is_file())


def checked_source(text: str) -> str:
    """``print(x)  # out`` becomes ``__check_print(x, _expect="out")`` (same line numbers)."""
    lines = []
    for line in text.splitlines():
        match = PRINT_CHECK.match(line)
        if match and not match["args"].rstrip().endswith(","):
            line = (f"{match['indent']}__check_print({match['args']}, "
                    f"_expect={match['expect']!r})")
        lines.append(line)
    return "\n".join(lines) + "\n"


def check_print(*args: Any, _expect: str) -> None:
    shown = " ".join(str(a) for a in args)
    print(shown)
    assert shown == _expect, f"the docs say {_expect!r}, the code printed {shown!r}"


@pytest.fixture
def workdir(tmp_path: Path, fake: FakeLXD, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's working directory, with ``LXD_DIR`` pointing at the (reset) session fake, a
    client certificate and the examples' data files (``preseed.yaml``)."""
    self_signed(tmp_path, "client")
    for data in EXAMPLES.glob("*.yaml"):
        shutil.copy(data, tmp_path / data.name)
    monkeypatch.setenv("LXD_DIR", str(fake.directory))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@contextlib.contextmanager
def fake_registries() -> Iterator[None]:
    """Routes and state families an example adds (the endpoint guide) are removed after."""
    routes = list(api_module.ROUTES)
    families = state_module.PROJECT_FAMILIES, state_module.GLOBAL_FAMILIES
    features = dict(state_module.FEATURES)
    try:
        yield
    finally:
        api_module.ROUTES[:] = routes
        state_module.PROJECT_FAMILIES, state_module.GLOBAL_FAMILIES = families
        state_module.FEATURES.clear()
        state_module.FEATURES.update(features)


def execute(path: Path, name: str = "__main__", https_url: str | None = None) -> dict[str, Any]:
    source = checked_source(path.read_text())
    if https_url:
        source = source.replace(LXD_HTTPS, https_url)
    namespace = {"__name__": name, "__file__": str(path), "__check_print": check_print}
    exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - our own docs examples
    return namespace


def checkout_pythonpath() -> str:
    """``PYTHONPATH`` for subprocesses: this checkout first, whatever copy is installed."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def run_python(path: Path, fake: FakeLXD) -> None:
    assert fake.https_url
    with fake_registries():
        execute(path, https_url=fake.https_url)
    assert not fake.handler_errors, fake.handler_errors[0]


@pytest.mark.parametrize("path", scripts(".py"), ids=lambda p: p.name)
def test_python_example(path: Path, workdir: Path, fake: FakeLXD) -> None:
    run_python(path, fake)


@pytest.mark.parametrize("path", scripts(".sh"), ids=lambda p: p.name)
def test_shell_example(path: Path, workdir: Path, fake: FakeLXD) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = checkout_pythonpath()
    done = subprocess.run(["bash", "-euo", "pipefail", str(path)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout}\n{done.stderr}"
    assert not fake.handler_errors, fake.handler_errors[0]


@pytest.mark.parametrize("stub, message, most", [
    ("echo 'lxd-fake: boom' >&2; exit 2", "lxd-fake serve failed", 5.0),
    ("exec sleep 60", "lxd-fake serve did not start in 10 s", 20.0),
], ids=["exits", "hangs"])
def test_serve_example_fails_fast(tmp_path: Path, stub: str, message: str,
                                  most: float) -> None:
    """A broken ``lxd-fake`` makes the ``lxd-fake serve`` example fail with its error shown:
    at once when it exits, after 10 s when it never makes its socket."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub_path = bin_dir / "lxd-fake"
    stub_path.write_text(f"#!/bin/sh\n{stub}\n")
    stub_path.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    started = time.monotonic()
    done = subprocess.run(["bash", "-euo", "pipefail", str(EXAMPLES / "fake_serve.sh")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 1, done
    assert message in done.stderr and took < most, (took, done.stderr)
    if "boom" in stub:
        assert "lxd-fake: boom" in done.stderr


@pytest.mark.real_only
def test_endpoint_guide_contract_test_passes_on_real_lxd(api: API) -> None:
    """The endpoint guide's contract test, on the real host: the fake it describes answers as
    LXD does (on the fake it runs inside the example, against a fake made after its routes)."""
    with fake_registries():
        namespace = execute(EXAMPLES / "adding_an_endpoint.py", name="docs_example")
    namespace["test_network_acl_lifecycle"](api)


@pytest.mark.real_only
@pytest.mark.parametrize("name", ["getting_started.py", "getting_started_https.py"])
def test_client_example_on_real_lxd(name: str, lxd_backend: LXDBackend, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The Getting started scripts, outputs checked, on LXD 5.0.2. Their ``Client()`` is the
    plugin's client in the test's own project, so what they create (and leave: the image) is
    deleted afterwards, and their names meet nothing else on the host."""
    self_signed(tmp_path, "client")
    monkeypatch.chdir(tmp_path)

    def client(endpoint: str | None = None, **kwargs: Any) -> pytest_lxd.Client:
        return lxd_backend.client(endpoint=endpoint or lxd_backend.endpoint, **kwargs)

    monkeypatch.setattr(pytest_lxd, "Client", client)
    execute(EXAMPLES / name)


def test_print_checks_catch_drift() -> None:
    """The output check itself: a wrong comment fails."""
    source = checked_source("x = 2\nprint(x + 1)  # 4\n")
    with pytest.raises(AssertionError, match="the docs say '4', the code printed '3'"):
        exec(compile(source, "drift.py", "exec"), {"__check_print": check_print})


def test_every_example_is_shown_in_the_docs() -> None:
    """An example no page includes would be tested but never read: a sign of a stale file."""
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    for path in EXAMPLES.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".sh", ".yaml", ".toml", ".ini") \
                and path.name != "ruff.toml":
            name = path.relative_to(EXAMPLES).as_posix()
            assert f'"{name}' in pages, f"docs/examples/{name} is included by no page"


# -- the downstream project: the plugin guide's files ---------------------------------------

PLUGIN_PROJECT = EXAMPLES / "plugin"


@pytest.mark.skipif(not PLUGIN_PROJECT.is_dir(), reason="no plugin example project")
def test_plugin_project(backend: str, pytester: pytest.Pytester,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's downstream project passes on the selected backend(s), in a subprocess."""
    monkeypatch.setenv("PYTHONPATH", checkout_pythonpath())
    for path in PLUGIN_PROJECT.iterdir():
        if path.is_file():
            shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_subprocess(f"--lxd-backend={backend}", "-p", "no:cacheprovider",
                                           "-q", timeout=300)
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert outcomes.get("passed", 0) > 0 and not outcomes.get("failed")
