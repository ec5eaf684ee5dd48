"""Fixtures for the plugin's own tests: inner pytest runs (``pytester``) and a stand-in host.

``host`` is a :class:`~fakeserver.FakeLXD` that inner runs use as their *real* LXD host
(``--lxd-backend=real --lxd-endpoint=<its socket>``): the real-host machinery (a project per
test, cleanup, journal, sweep) is exercised without touching the machine's LXD. The tests that
need the machine's LXD take ``lxd_backend`` and are marked ``lxd_real_only``.
"""

from __future__ import annotations

from collections.abc import Iterator

# Loaded here, not in inner runs: pytester drops the modules an inner run imported, so each run
# would import (and assertion-rewrite) them again: hypothesis (its pytest plugin imports it at
# the end of every session), the fake's handler modules and its TLS module.
import hypothesis  # noqa: F401
import pytest

import fakeserver.api
import fakeserver.tls  # noqa: F401
from fakeserver import FakeLXD
from pytest_lxd import Client

fakeserver.api.load()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must not inherit the outer run's choice of backend or host."""
    for name in ("PYTEST_LXD_BACKEND", "PYTEST_LXD_ENDPOINT", "PYTEST_LXD_CERT",
                 "PYTEST_LXD_KEY", "PYTEST_LXD_VERIFY", "LXD_DIR", "PYTEST_XDIST_WORKER",
                 "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def _host_server() -> Iterator[FakeLXD]:
    with FakeLXD(https=True) as server:  # listening on the network, as trust tokens need
        yield server


@pytest.fixture
def host(_host_server: FakeLXD) -> FakeLXD:
    """A fake LXD that inner runs treat as a real host (reset for each test)."""
    _host_server.reset()
    return _host_server


@pytest.fixture
def host_client(host: FakeLXD) -> Iterator[Client]:
    with Client(host.socket_path) as client:
        yield client
