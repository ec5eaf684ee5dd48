"""A failing test's report shows its backend and the last requests."""

from __future__ import annotations

import pytest

from fakeserver import FakeLXD
from tests.plugin.util import real_args

TESTS = """
import pytest

def test_passes(lxd_client):
    lxd_client.profiles.create("fine")

def test_fails(lxd_client):
    lxd_client.profiles.create("web", config={"limits.cpu": "2"})
    lxd_client.profiles.get("web").delete()
    assert lxd_client.profiles.exists("web")

@pytest.fixture
def broken(lxd_client):
    lxd_client.profiles.get("nope")

def test_setup_fails(broken):
    pass

def test_no_lxd():
    assert False
"""


def test_the_report_on_the_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*_ test_fails?fake? _*",
        "*- lxd backend (call) -*",
        "backend: fake (endpoint */unix.socket, project pytest-lxd-main-*)",
        # no GET /1.0: the plugin's clients reuse the session's first answer (same state)
        "last 5 of 5 requests served by the fake:",
        "  POST /1.0/profiles?project=pytest-lxd-main-* -> 201 (unix)",
        "  GET /1.0/profiles/web?project=pytest-lxd-main-* -> 200 (unix)",
        "  GET /1.0/profiles/web?project=pytest-lxd-main-* -> 200 (unix)",
        "  DELETE /1.0/profiles/web?project=pytest-lxd-main-* -> 200 (unix)",
        "  GET /1.0/profiles/web?project=pytest-lxd-main-* -> 404 (unix)",
    ])
    result.stdout.fnmatch_lines(["*ERROR at setup of test_setup_fails?fake?*",
                                 "*- lxd backend (setup) -*",
                                 "  GET /1.0/profiles/nope?project=* -> 404 (unix)"])
    text = result.stdout.str()
    assert text.count("- lxd backend (") == 2  # not for the passing test, nor test_no_lxd


def test_the_report_on_a_real_host(pytester: pytest.Pytester, host: FakeLXD) -> None:
    pytester.makepyfile(TESTS)
    pytester.makeini("[pytest]\nlxd_report_requests = 2\n")
    result = pytester.runpytest(*real_args(host))
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*- lxd backend (call) -*",
        f"backend: real (endpoint {host.socket_path}, project pytest-lxd-main-*)",
        "last 2 of 6 requests sent by the test's clients:",
        "  DELETE /1.0/profiles/web?project=pytest-lxd-main-* -> 200",
        "  GET /1.0/profiles/web?project=pytest-lxd-main-* -> 404",
    ])
