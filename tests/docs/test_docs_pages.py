"""The pages hold no untested code, their commands exist, and the fidelity table is made from
the code and the recorded test runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fakeserver.cli import build_parser
from tests.docs.fidelity import Catalogue, Endpoint, lxd_endpoints
from tests.support import API

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Developer notes written by others: their sketches are not user examples.
NOT_EXAMPLES = {"architecture.md", "benchmarks.md", "robustness.md"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')
# Blocks of commands a person types: checked below, not run.
COMMANDS = {"console"}


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if p.name not in NOT_EXAMPLES)


def fences(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_code_blocks_are_included_from_tested_examples(page: Path) -> None:
    for language, body in fences(page):
        if language in COMMANDS:
            continue
        lines = [line for line in body.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and INCLUDE.match(lines[0]), (
            f"{page.name}: a ```{language} block must include a file of docs/examples "
            f"(run by tests/docs), not hold code:\n{body}")
        target = INCLUDE.match(lines[0]).group(1).split(":")[0]  # type: ignore[union-attr]
        assert (DOCS / "examples" / target).is_file(), f"{page.name}: no docs/examples/{target}"


def commands() -> list[tuple[str, str]]:
    found = []
    for page in pages():
        for language, body in fences(page):
            if language in COMMANDS:
                for line in body.splitlines():
                    if line.startswith("$ "):
                        found.append((page.name, line[2:].split("  #")[0].strip()))
    return found


def pytest_options() -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", done.stdout))


def test_commands_in_the_pages_exist() -> None:
    """``lxd-fake`` lines parse with its parser; ``pytest`` lines use options that exist."""
    found = commands()
    assert any(cmd.startswith("lxd-fake ") for _, cmd in found)
    known = pytest_options()
    for page, cmd in found:
        argv = shlex.split(cmd)
        if argv[0] == "lxd-fake":
            build_parser().parse_args(argv[1:])
        elif argv[0] == "pytest":
            for arg in argv[1:]:
                option = arg.split("=", 1)[0]
                assert not option.startswith("--") or option in known, (page, cmd)


# -- the fidelity table ---------------------------------------------------------------------

def test_catalogue_names_requests_by_endpoint() -> None:
    catalogue = Catalogue()
    assert catalogue.key("GET", "/1.0/profiles/web?project=p") == "GET /1.0/profiles/{name}"
    assert catalogue.key("GET", "/1.0/images/aliases") == "GET /1.0/images/aliases"
    assert catalogue.key("POST", "/1.0/containers/c1/exec") == "POST /1.0/containers/{name}/exec"
    assert catalogue.key("GET", "/1.0/storage-pools/p/volumes/custom/v%2Fs") == \
        "GET /1.0/storage-pools/{pool}/volumes/{type}/{name}"
    assert catalogue.key("GET", "/2.0/nothing") is None
    assert catalogue.serves(Endpoint("GET", "/1.0/profiles/{name}", True))
    assert not catalogue.serves(Endpoint("GET", "/1.0/no-such-family", False))
    # a catch-all route of the fake does not serve an endpoint of another shape
    assert not catalogue.serves(
        Endpoint("GET", "/1.0/instances/{name}/no-such-endpoint", True))


def test_every_fake_route_is_in_the_table() -> None:
    """Each route+method of ``fakeserver.api.load()`` is a row (LXD's, or the fake's own)."""
    catalogue = Catalogue()
    rows = {e.key: e for e in catalogue.endpoints}
    for route in catalogue.routes:
        sample = re.sub(r"<[^>]+>", "x", route.path)
        for method in route.methods:
            key = catalogue.key(method, sample)
            assert key is not None and catalogue.serves(rows[key]), (method, route.path)
    assert len(lxd_endpoints()) > 200


def test_requests_of_this_test_are_recorded(request: pytest.FixtureRequest,
                                            fake: object) -> None:
    recorder = request.config.pluginmanager.get_plugin("lxd-fidelity")
    assert recorder is not None, "tests/docs/conftest.py registers the recorder"
    api = API.unix("fake", fake.socket_path)  # type: ignore[attr-defined]
    assert api.get("/1.0/profiles/default").status == 200
    assert "GET /1.0/profiles/{name}" in recorder.hits[request.node.nodeid]["fake"]


def test_generated_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows come from the catalogue, counts from the results, divergences from the tests."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_fidelity
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    serves = gen_fidelity.Catalogue.serves
    unserved = "DELETE /1.0/network-zones/{zone}"  # as if the fake had no route
    monkeypatch.setattr(gen_fidelity.Catalogue, "serves",
                        lambda self, e: e.key != unserved and serves(self, e))
    results = {"version": 1, "tests": {
        "tests/docs/test_docs_pages.py::test_generated_page": {
            "outcome": "passed", "at": 0.0, "fake": ["GET /1.0/profiles/{name}"],
            "real": ["GET /1.0/profiles/{name}",
                     "DELETE /1.0/network-zones/{zone}"]},
        "tests/docs/test_docs_pages.py::failed": {
            "outcome": "failed", "at": 0.0, "real": ["GET /1.0/profiles"]},
        "tests/gone/test_removed.py::test_x": {
            "outcome": "passed", "at": 0.0, "real": ["GET /1.0/profiles"]}}}
    page = gen_fidelity.render(results)
    assert "| GET | `/1.0/profiles/{name}` | yes | 1 | 1 |" in page
    assert "| GET | `/1.0/profiles` | yes | — | — |" in page  # failed and removed tests
    assert "| DELETE | `/1.0/network-zones/{zone}` | **no** | — | 1 |" in page
    assert "Known divergences" in page and "Tests that run on the fake only" in page

    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.divergence('the fake answers at once')\n"
        "def test_a(api):\n    pass\n\n"
        "@pytest.mark.fake_only\ndef test_b(api):\n    '''Time control.'''\n\n"
        "def test_c(api):\n    x = 1  # a divergence: LXD sorts differently\n")
    divergences, fake_only = gen_fidelity.scan_tests(tmp_path)
    assert [(n.where, n.text) for n in divergences] == [
        ("tests/test_x.py::test_a", "the fake answers at once"),
        ("tests/test_x.py:12", "a divergence: LXD sorts differently")]
    assert [(n.where, n.text) for n in fake_only["tests/test_x.py"]] == [
        ("test_b", "Time control.")]
