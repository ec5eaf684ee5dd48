"""The pytest plugin: LXD fixtures that run on the fake, on a real LXD host, or on both.

Registered through the ``pytest11`` entry point (nothing to import). A test that takes
``lxd_client`` runs on the fake by default; ``--lxd-backend=real`` runs it on a real host and
``--lxd-backend=both`` on each (test ids ``[fake]`` and ``[real]``).

Options (command line, then ``$PYTEST_LXD_*``, then the ini file): ``--lxd-backend``,
``--lxd-endpoint``, ``--lxd-cert``, ``--lxd-key``, ``--lxd-verify``.

Fixtures: ``lxd_client``, ``lxd_backend``, ``lxd_fake``, ``lxd_image``, ``lxd_backend_name``;
for the fake (session scope, override them in a conftest): ``lxd_fake_dir``, ``lxd_fake_https``,
``lxd_fake_tls``, ``lxd_fake_seed``, ``lxd_fake_factory``, ``lxd_fake_server``.

Markers: ``lxd_fake_only``, ``lxd_real_only``, ``lxd_requires_extension(name, ...)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .settings import Settings

if TYPE_CHECKING:  # imported on first use: loading the plugin stays cheap for every pytest run
    from fakeserver import FakeLXD

    from .backends import FakeBackend, LXDBackend, RealBackend
    from .client import Client

BACKENDS = ("fake", "real", "both")
UNSELECTED = ("skip", "deselect")

# (option, ini name, environment variable, help)
_OPTIONS = (
    ("--lxd-backend", "lxd_backend", "PYTEST_LXD_BACKEND",
     "run LXD tests on the fake (default), a real LXD host, or both"),
    ("--lxd-endpoint", "lxd_endpoint", "PYTEST_LXD_ENDPOINT",
     "the real LXD host: a unix socket path or an https:// URL (default: $LXD_DIR/unix.socket, "
     "else the snap's or /var/lib/lxd's socket)"),
    ("--lxd-cert", "lxd_cert", "PYTEST_LXD_CERT",
     "client certificate (PEM) for an https real host (default: the lxc client's)"),
    ("--lxd-key", "lxd_key", "PYTEST_LXD_KEY", "private key of --lxd-cert"),
    ("--lxd-verify", "lxd_verify", "PYTEST_LXD_VERIFY",
     "server check for an https real host: true (system CAs, default), false, a CA bundle, "
     "or the server's own certificate (pinned)"),
)

_SESSION = pytest.StashKey["LXDSession"]()
_ENV = pytest.StashKey["LXDBackend"]()
_PARAM = "lxd_backend_name"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lxd", "LXD backends (pytest-lxd)")
    for option, ini, env, text in _OPTIONS:
        group.addoption(option, dest=ini, default=None,
                        choices=BACKENDS if ini == "lxd_backend" else None,
                        help=f"{text}; ${env}, ini {ini}")
        parser.addini(ini, f"default for {option}", default="")
    parser.addini("lxd_unselected", "what happens to a test whose backend was not chosen "
                  "(an lxd_fake_only test in a real run): skip (default) or deselect",
                  default="skip")
    parser.addini("lxd_report_requests", "how many of the last requests a failing test's "
                  "report shows (default 20)", default="20")


def _setting(config: pytest.Config, ini: str) -> str:
    env = dict((i, e) for _, i, e, _ in _OPTIONS)[ini]
    value = config.getoption(ini) or os.environ.get(env) or config.getini(ini)
    return str(value or "")


def selected_backend(config: pytest.Config) -> str:
    """The backend chosen by option, then $PYTEST_LXD_BACKEND, then the ini file (or fake)."""
    value = _setting(config, "lxd_backend") or "fake"
    if value not in BACKENDS:
        raise pytest.UsageError(f"--lxd-backend must be one of {', '.join(BACKENDS)}, "
                                f"not {value!r}")
    return value


def real_endpoint(config: pytest.Config) -> str:
    """The real host: option, $PYTEST_LXD_ENDPOINT, ini, $LXD_DIR, then the usual sockets."""
    value = _setting(config, "lxd_endpoint")
    if value:
        return value
    candidates = []
    if os.environ.get("LXD_DIR"):
        candidates.append(os.path.join(os.environ["LXD_DIR"], "unix.socket"))
    candidates += ["/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket"]
    for path in candidates:
        if os.path.exists(path):
            return path
    return candidates[-1]


def _verify(value: str) -> bool | str:
    lowered = value.strip().lower()
    if lowered in ("", "1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return value


def settings(config: pytest.Config) -> Settings:
    """Everything the backends need from the options."""
    cert, key = _setting(config, "lxd_cert"), _setting(config, "lxd_key")
    if bool(cert) != bool(key):
        raise pytest.UsageError("--lxd-cert and --lxd-key go together")
    workerinput = getattr(config, "workerinput", None) or {}
    try:
        log_size = int(config.getini("lxd_report_requests"))
    except ValueError:
        raise pytest.UsageError("lxd_report_requests must be an integer") from None
    return Settings(endpoint=real_endpoint(config), cert=(cert, key) if cert else None,
                    verify=_verify(_setting(config, "lxd_verify")),
                    worker=str(workerinput.get("workerid", "main")),
                    run_id=str(workerinput.get("testrunuid") or uuid.uuid4().hex),
                    log_size=max(0, log_size))


class LXDSession:
    """Per pytest session (per xdist worker): the settings and the real backend (lazy)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.backend = selected_backend(config)
        self.settings = settings(config)
        self._real: RealBackend | None = None

    @property
    def real(self) -> RealBackend:
        if self._real is None:
            from .backends import RealBackend

            self._real = RealBackend(self.settings)
        return self._real

    def close(self) -> None:
        if self._real is not None:
            self._real.close()


def lxd_session(config: pytest.Config) -> LXDSession:
    return config.stash[_SESSION]


def require_backend(config: pytest.Config, name: str) -> None:
    """Skip (``both``) or fail (``real``) when the real host cannot be used."""
    if name != "real":
        return
    session = lxd_session(config)
    problem = session.real.problem
    if problem:
        if session.backend == "both":
            pytest.skip(f"real LXD host unavailable: {problem}")
        pytest.fail(f"real LXD host unavailable (--lxd-backend=real): {problem}",
                    pytrace=False)


# -- hooks ---------------------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lxd_fake_only: run this test on the fake backend only")
    config.addinivalue_line("markers", "lxd_real_only: run this test on a real LXD host only")
    config.addinivalue_line("markers", "lxd_requires_extension(*names): skip on a backend "
                            "that lacks one of these LXD API extensions")
    config.addinivalue_line("markers", "lxd_unselected: (set by pytest-lxd) the test's only "
                            "backend was not chosen")
    if config.getini("lxd_unselected") not in UNSELECTED:
        raise pytest.UsageError("lxd_unselected must be skip or deselect")
    config.stash[_SESSION] = LXDSession(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        session.close()


def pytest_report_header(config: pytest.Config) -> str:
    session = lxd_session(config)
    if session.backend == "fake":
        return "lxd backend: fake"
    return f"lxd backend: {session.backend} (real host: {session.settings.endpoint})"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses the LXD fixtures over the chosen backends."""
    if _PARAM not in metafunc.fixturenames:
        return
    selected = lxd_session(metafunc.config).backend
    chosen = ["fake", "real"] if selected == "both" else [selected]
    marks = {mark.name for mark in metafunc.definition.iter_markers()}
    only, why = None, ""
    if "lxd_fake_only" in marks or "lxd_fake" in metafunc.fixturenames:
        only = "fake"
        why = ("uses lxd_fake" if "lxd_fake_only" not in marks else "lxd_fake_only") + \
            ": runs on the fake backend only"
    if "lxd_real_only" in marks:
        if only == "fake":
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: lxd_real_only conflicts "
                                    "with lxd_fake_only / the lxd_fake fixture")
        only, why = "real", "lxd_real_only: runs on a real LXD host only"
    params: list[Any] = [name for name in chosen if only in (None, name)]
    if not params:
        reason = f"{why} (--lxd-backend={selected})"
        params = [pytest.param(only, marks=[pytest.mark.skip(reason=reason),
                                            pytest.mark.lxd_unselected])]
    metafunc.parametrize(_PARAM, params, indirect=True, scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A backend a parameter-level ``lxd_fake_only``/``lxd_real_only`` rules out is not run
    (skipped, or deselected with ``lxd_unselected = deselect``)."""
    selected = lxd_session(config).backend
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get(_PARAM) if callspec is not None else None
        for backend, marker, only in (("real", "lxd_fake_only", "the fake backend"),
                                      ("fake", "lxd_real_only", "a real LXD host")):
            if (name == backend and item.get_closest_marker(marker) is not None
                    and item.get_closest_marker("lxd_unselected") is None):
                reason = f"{marker}: runs on {only} only (--lxd-backend={selected})"
                item.add_marker(pytest.mark.skip(reason=reason))
                item.add_marker(pytest.mark.lxd_unselected)
    if config.getini("lxd_unselected") != "deselect":
        return
    keep = [item for item in items if item.get_closest_marker("lxd_unselected") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item.get_closest_marker("lxd_unselected")])
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None],
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report shows its backend and the last requests."""
    report: pytest.TestReport = yield
    env = item.stash.get(_ENV, None)
    if report.failed and env is not None:
        limit = lxd_session(item.config).settings.log_size
        report.sections.append((f"lxd backend ({report.when})", env.describe(limit)))
    if report.when == "teardown" and env is not None:
        del item.stash[_ENV]  # the last report: items do not keep their backends alive
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    real = session._real if session is not None else None
    if real is None:
        return
    if real.swept:
        terminalreporter.write_line(f"pytest-lxd: swept {len(real.swept)} project(s) left by "
                                    f"interrupted runs: {', '.join(real.swept)}")
    for problem in real.sweep_problems:
        terminalreporter.write_line(f"pytest-lxd: sweep could not remove {problem}", red=True)


# -- fixtures: the fake --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def lxd_fake_dir() -> str | None:
    """Directory of the session fake's socket and TLS files (None: a fresh temporary one,
    removed at the end; each xdist worker has its own)."""
    return None


@pytest.fixture(scope="session")
def lxd_fake_https() -> bool | str:
    """Where the session fake listens for HTTPS: True (127.0.0.1, a free port), "HOST:PORT",
    or False (unix socket only)."""
    return True


@pytest.fixture(scope="session")
def lxd_fake_tls() -> Any:
    """TLS material of the session fake (a :class:`fakeserver.tls.ServerTLS`), or None to let
    the fake make its own (a trustme CA and server certificate, in its directory)."""
    return None


@pytest.fixture(scope="session")
def lxd_fake_seed() -> Any:
    """Seed data of the session fake: an ``lxd init --preseed`` document (YAML text, a path
    or a dict) laid over its baseline; every test starts from that state. None: no seed."""
    return None


class _Fake:
    """FakeLXD with TLS material given from outside (``lxd_fake_tls``)."""

    @staticmethod
    def make(tls: Any, **kwargs: Any) -> FakeLXD:
        from fakeserver import FakeLXD

        if tls is None:
            return FakeLXD(**kwargs)

        class _WithTLS(FakeLXD):
            @property
            def tls(self) -> Any:
                return tls

        return _WithTLS(**kwargs)


@pytest.fixture(scope="session")
def lxd_fake_factory() -> Iterator[Callable[..., FakeLXD]]:
    """Start more fakes: ``lxd_fake_factory(**FakeLXD kwargs, tls=None)``, started, closed at
    the end of the session."""
    made: list[FakeLXD] = []

    def make(tls: Any = None, **kwargs: Any) -> FakeLXD:
        server = _Fake.make(tls, **kwargs)
        made.append(server)
        return server.start()

    yield make
    for server in reversed(made):
        server.close()


@pytest.fixture(scope="session")
def lxd_fake_server(lxd_fake_factory: Callable[..., FakeLXD], lxd_fake_dir: str | None,
                    lxd_fake_https: bool | str, lxd_fake_tls: Any, lxd_fake_seed: Any,
                    ) -> FakeLXD:
    """The session's fake LXD (one per xdist worker), started on first use."""
    return lxd_fake_factory(tls=lxd_fake_tls, directory=lxd_fake_dir, https=lxd_fake_https,
                            preseed=lxd_fake_seed)


@pytest.fixture(scope="session")
def _lxd_fake_backend(lxd_fake_server: FakeLXD, pytestconfig: pytest.Config) -> FakeBackend:
    from .backends import FakeBackend

    return FakeBackend(lxd_fake_server, lxd_session(pytestconfig).settings)


# -- fixtures: what tests use --------------------------------------------------------------------

@pytest.fixture
def lxd_backend_name(request: pytest.FixtureRequest) -> str:
    """``"fake"`` or ``"real"``: the backend this test runs on (it is parametrized)."""
    return str(getattr(request, "param", lxd_session(request.config).backend))


@pytest.fixture
def lxd_backend(lxd_backend_name: str, request: pytest.FixtureRequest) -> Iterator[LXDBackend]:
    """The test's backend, isolated: on the fake, the session's server reset to its clean (or
    seeded) state; on a real host, a fresh project deleted afterwards with what the test made."""
    require_backend(request.config, lxd_backend_name)
    backend: FakeBackend | RealBackend
    if lxd_backend_name == "fake":
        backend = request.getfixturevalue("_lxd_fake_backend")
    else:
        backend = lxd_session(request.config).real
    extensions = backend.info.get("api_extensions") or []
    for mark in request.node.iter_markers("lxd_requires_extension"):
        missing = [name for name in mark.args if name not in extensions]
        if missing:
            pytest.skip(f"the {lxd_backend_name} LXD lacks API extension(s) "
                        f"{', '.join(missing)}")
    env = backend.begin(request.node.nodeid)
    request.node.stash[_ENV] = env
    yield env
    problems = backend.end(env)
    if problems:
        pytest.fail(f"pytest-lxd could not clean up after {request.node.nodeid} on "
                    f"{lxd_backend_name}:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def lxd_client(lxd_backend: LXDBackend) -> Client:
    """A :class:`pytest_lxd.Client` on the test's backend, in the test's own project."""
    return lxd_backend.client()


@pytest.fixture
def lxd_fake(lxd_backend: LXDBackend) -> FakeLXD:
    """The fake LXD itself (time control, faults, seeding, request log); a test that takes it
    runs on the fake only."""
    assert lxd_backend.fake is not None, "lxd_fake runs on the fake backend only"
    return lxd_backend.fake


@pytest.fixture
def lxd_image(lxd_backend: LXDBackend, request: pytest.FixtureRequest) -> str:
    """The alias of an image in the test's project that instances can start from: on a real
    host a busybox image built here once per session; on the fake a tiny placeholder."""
    if lxd_backend.is_fake:
        return str(request.getfixturevalue("_lxd_fake_backend").image(lxd_backend))
    try:
        return lxd_session(request.config).real.image(lxd_backend)
    except RuntimeError as exc:  # no static busybox to build the image from
        pytest.fail(f"lxd_image: {exc}", pytrace=False)
