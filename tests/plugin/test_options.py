"""The plugin's options (command line, environment, ini), parametrization, markers and skips.

Each test runs an inner pytest session (``pytester``). Where an inner run needs a *real* host,
``host`` (a separate fake LXD) stands in for it, so nothing here touches the machine's LXD.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fakeserver import FakeLXD
from pytest_lxd import Client
from tests.plugin.util import plugin_projects, real_args
from tests.tlsutil import self_signed

BOTH = """
def test_where(lxd_backend, lxd_client):
    assert lxd_client.project == lxd_backend.project
    assert lxd_client.profiles.get("default").name == "default"
    print("WHERE", lxd_backend.name, lxd_backend.endpoint)
"""


def test_the_default_is_the_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BOTH + "\ndef test_plain():\n    pass\n")
    result = pytester.runpytest("-v", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["lxd backend: fake", "*test_where?fake? WHERE fake /*",
                                 "*test_plain PASSED*"])
    assert "[real]" not in result.stdout.str()


def test_loading_the_plugin_imports_neither_the_client_nor_the_fake(
        pytester: pytest.Pytester) -> None:
    """Every pytest run of a project with pytest-lxd installed loads the plugin: it must not
    pay for the client, the backends or the fake until a test uses a fixture."""
    pytester.makepyfile("""
import sys

def test_plain():
    assert "pytest_lxd.plugin" in sys.modules
    heavy = ("pytest_lxd.client", "pytest_lxd.models", "pytest_lxd.backends", "fakeserver")
    assert [name for name in heavy if name in sys.modules] == []

def test_then_the_fixture(lxd_client):
    import sys
    assert "fakeserver" in sys.modules and "pytest_lxd.client" in sys.modules
    from pytest_lxd import Client
    assert isinstance(lxd_client, Client)
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_both_parametrizes_over_fake_and_real(pytester: pytest.Pytester, host: FakeLXD,
                                              host_client: Client) -> None:
    pytester.makepyfile(BOTH)
    result = pytester.runpytest("-v", "-s", *real_args(host, "both"))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"lxd backend: both (real host: {host.socket_path})",
                                 "*test_where?fake? WHERE fake *",
                                 f"*test_where?real? WHERE real {host.socket_path}*"])
    assert plugin_projects(host_client) == []  # the real test's project is gone


def test_real_only(pytester: pytest.Pytester, host: FakeLXD) -> None:
    pytester.makepyfile(BOTH)
    result = pytester.runpytest("-v", "-s", *real_args(host))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*test_where?real? WHERE real {host.socket_path}*"])


def test_ini_then_environment_then_option(pytester: pytest.Pytester, host: FakeLXD,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(BOTH)
    pytester.makeini(f"[pytest]\nlxd_backend = both\nlxd_endpoint = {host.socket_path}\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)

    monkeypatch.setenv("PYTEST_LXD_BACKEND", "real")  # the environment beats the ini file
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_where?real? PASSED*"])

    monkeypatch.setenv("PYTEST_LXD_ENDPOINT", "/nonexistent/unix.socket")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # the environment's endpoint beats the ini file's

    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "--lxd-backend=fake")
    result.assert_outcomes(passed=1)  # the option beats the environment
    result.stdout.fnmatch_lines(["*test_where?fake? PASSED*"])


def test_endpoint_defaults_to_lxd_dir(pytester: pytest.Pytester, host: FakeLXD,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXD_DIR", str(host.directory))
    pytester.makepyfile(BOTH)
    result = pytester.runpytest("-s", "-p", "no:cacheprovider", "--lxd-backend=real")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*WHERE real {host.socket_path}*"])


@pytest.mark.parametrize(("args", "env", "ini", "message"), [
    (["--lxd-backend=nope"], {}, "", "*invalid choice: 'nope'*"),
    ([], {"PYTEST_LXD_BACKEND": "nope"}, "", "*--lxd-backend must be one of fake, real, both*"),
    ([], {}, "lxd_backend = nope", "*--lxd-backend must be one of fake, real, both*"),
    (["--lxd-cert=/x.crt"], {}, "", "*--lxd-cert and --lxd-key go together*"),
    ([], {}, "lxd_unselected = maybe", "*lxd_unselected must be skip or deselect*"),
], ids=["option", "environment", "ini", "cert-without-key", "unselected"])
def test_bad_settings_are_usage_errors(pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch, args: list[str],
                                       env: dict[str, str], ini: str, message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(BOTH)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_real_mode_never_starts_without_being_asked(pytester: pytest.Pytester, host: FakeLXD,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with a reachable host where the plugin would look for one, a default run uses
    only the fake and sends the host nothing."""
    monkeypatch.setenv("LXD_DIR", str(host.directory))
    pytester.makepyfile(BOTH + """
import pytest

@pytest.mark.lxd_real_only
def test_real_only(lxd_client):
    pass
""")
    result = pytester.runpytest("-v", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*lxd_real_only: runs on a real LXD host only "
                                 "(--lxd-backend=fake)*"])
    assert host.requests == []


def test_unreachable_real_host_skips_with_both(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BOTH)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider", "--lxd-backend=both",
                                "--lxd-endpoint=/nonexistent/unix.socket")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * real LXD host unavailable: cannot reach LXD at "
                                 "/nonexistent/unix.socket: no LXD unix socket at "
                                 "/nonexistent/unix.socket"])


def test_unreachable_real_host_is_an_error_with_real(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BOTH)
    result = pytester.runpytest("-p", "no:cacheprovider", "--lxd-backend=real",
                                "--lxd-endpoint=/nonexistent/unix.socket")
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*real LXD host unavailable (--lxd-backend=real): cannot "
                                 "reach LXD at /nonexistent/unix.socket*"])


MARKED = """
import pytest

@pytest.mark.lxd_fake_only
def test_fake_only(lxd_backend):
    assert lxd_backend.name == "fake"

@pytest.mark.lxd_real_only
def test_real_only(lxd_backend):
    assert lxd_backend.name == "real"

def test_takes_the_fake(lxd_fake, lxd_backend):
    assert lxd_backend.fake is lxd_fake

@pytest.mark.lxd_fake_only
class TestOnTheFake:
    def test_in_class(self, lxd_client):
        pass
"""


def test_markers_with_both(pytester: pytest.Pytester, host: FakeLXD) -> None:
    pytester.makepyfile(MARKED)
    result = pytester.runpytest("-v", *real_args(host, "both"))
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(["*test_fake_only?fake? PASSED*",
                                        "*test_real_only?real? PASSED*",
                                        "*test_takes_the_fake?fake? PASSED*",
                                        "*test_in_class?fake? PASSED*"])


def test_unselected_tests_skip_with_the_reason(pytester: pytest.Pytester,
                                               host: FakeLXD) -> None:
    pytester.makepyfile(MARKED)
    result = pytester.runpytest("-v", "-rs", *real_args(host))
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines_random([
        "SKIPPED * lxd_fake_only: runs on the fake backend only (--lxd-backend=real)",
        "SKIPPED * uses lxd_fake: runs on the fake backend only (--lxd-backend=real)"])


def test_unselected_tests_can_be_deselected(pytester: pytest.Pytester, host: FakeLXD) -> None:
    pytester.makepyfile(MARKED)
    pytester.makeini("[pytest]\nlxd_unselected = deselect\n")
    result = pytester.runpytest("-v", *real_args(host))
    result.assert_outcomes(passed=1, deselected=3)


def test_parameter_level_markers(pytester: pytest.Pytester, host: FakeLXD) -> None:
    """A parameter marked ``lxd_fake_only`` (e.g. destructive on a real host) runs on the fake
    only; the other parameters on both."""
    pytester.makepyfile("""
import pytest

@pytest.mark.parametrize("name", [
    "safe", pytest.param("harmful", marks=pytest.mark.lxd_fake_only),
    pytest.param("real", marks=pytest.mark.lxd_real_only)])
def test_names(name, lxd_backend):
    pass
""")
    result = pytester.runpytest("-v", "-rs", *real_args(host, "both"))
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines_random([
        "*test_names?fake-safe? PASSED*", "*test_names?real-safe? PASSED*",
        "*test_names?fake-harmful? PASSED*", "*test_names?real-real? PASSED*",
        "SKIPPED * lxd_fake_only: runs on the fake backend only (--lxd-backend=both)",
        "SKIPPED * lxd_real_only: runs on a real LXD host only (--lxd-backend=both)"])
    # a project each for real-safe and real-real; none for the skipped real-harmful
    assert [r.path for r in host.requests if r.method == "POST"] == ["/1.0/projects"] * 2


def test_contradicting_markers_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
import pytest

@pytest.mark.lxd_real_only
def test_both_ways(lxd_fake):
    pass
""")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    result.stdout.fnmatch_lines(["*lxd_real_only conflicts with lxd_fake_only / the lxd_fake "
                                 "fixture*"])


def test_requires_extension(pytester: pytest.Pytester, host: FakeLXD) -> None:
    pytester.makepyfile("""
import pytest

@pytest.mark.lxd_requires_extension("projects", "storage")
def test_has_them(lxd_client):
    pass

@pytest.mark.lxd_requires_extension("projects", "no_such_extension")
def test_lacks_one(lxd_backend):
    raise AssertionError("must not run")
""")
    result = pytester.runpytest("-rs", *real_args(host, "both"))
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines_random([
        "SKIPPED * the fake LXD lacks API extension(s) no_such_extension",
        "SKIPPED * the real LXD lacks API extension(s) no_such_extension"])
    # one project, for the real test that ran; none for the skipped one
    assert [r.path for r in host.requests if r.method == "POST"] == ["/1.0/projects"]


def test_https_endpoint_with_cert_key_and_pinned_verify(pytester: pytest.Pytester,
                                                        tmp_path: Path) -> None:
    """``--lxd-endpoint=https://...`` with ``--lxd-cert``/``--lxd-key`` and ``--lxd-verify``
    (the server's own certificate, pinned); ``--lxd-verify=true`` (system CAs) cannot verify
    the host's certificate, which is an error, not a silent pass."""
    cert = self_signed(tmp_path, "client")
    with FakeLXD(https=True) as server, Client(server.socket_path) as admin:
        admin.certificates.create("", Path(cert.cert_file).read_bytes(), name="pytest")
        pytester.makepyfile(BOTH)
        args = ["-s", "-p", "no:cacheprovider", "--lxd-backend=real",
                f"--lxd-endpoint={server.https_url}", f"--lxd-cert={cert.cert_file}",
                f"--lxd-key={cert.key_file}"]
        result = pytester.runpytest(*args, f"--lxd-verify={server.tls.cert_file}")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*WHERE real {server.https_url}*"])
        assert [r.protocol for r in server.requests
                if r.method == "POST" and r.path == "/1.0/projects"] == ["tls"]

        result = pytester.runpytest(*args, "--lxd-verify=true")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*real LXD host unavailable*TLS failure*"])

        stranger = self_signed(tmp_path, "stranger")
        result = pytester.runpytest("-p", "no:cacheprovider", "--lxd-backend=real",
                                    f"--lxd-endpoint={server.https_url}",
                                    f"--lxd-cert={stranger.cert_file}",
                                    f"--lxd-key={stranger.key_file}", "--lxd-verify=false")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([f"*real LXD host unavailable (--lxd-backend=real): LXD at "
                                     f"{server.https_url} does not trust this client*"])
        assert not [p.name for p in admin.projects.all() if p.name != "default"]
