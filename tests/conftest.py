"""Backends for the project's own tests: the fake, the real LXD host, or both.

A test that takes ``api`` runs on every selected backend (``--lxd-backend=fake|real|both``);
``@pytest.mark.fake_only`` keeps it on the fake (time control, faults, seeding) and
``@pytest.mark.real_only`` on the real host.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakeserver import FakeLXD
from pytest_lxd.plugin import real_endpoint, require_backend, selected_backend
from tests.support import API

pytest_plugins = ["pytester"]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The project's ``fake_only``/``real_only`` are the plugin's ``lxd_fake_only``/
    ``lxd_real_only``: the plugin parametrizes ``backend`` (via ``lxd_backend_name``)."""
    for ours, plugins in (("fake_only", pytest.mark.lxd_fake_only),
                          ("real_only", pytest.mark.lxd_real_only)):
        if metafunc.definition.get_closest_marker(ours) is not None:
            metafunc.definition.add_marker(plugins)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Parameter-level ``fake_only``/``real_only`` marks become the plugin's too (the plugin
    then drops the backend they rule out); in a real-only run, drop tests that use no backend
    (fake-only module tests)."""
    for item in items:
        for ours, plugins in (("fake_only", pytest.mark.lxd_fake_only),
                              ("real_only", pytest.mark.lxd_real_only)):
            if item.get_closest_marker(ours) is not None:
                item.add_marker(plugins)
    if selected_backend(config) != "real":
        return
    keep, drop = [], []
    for item in items:
        uses = "lxd_backend_name" in getattr(item, "fixturenames", ())
        (keep if uses else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def fake_server(lxd_fake_server: FakeLXD) -> FakeLXD:
    """The plugin's session fake (HTTPS on, baseline, no seed)."""
    return lxd_fake_server


@pytest.fixture
def fake(fake_server: FakeLXD) -> FakeLXD:
    """The session's fake, reset to its baseline for this test."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def backend(lxd_backend_name: str, request: pytest.FixtureRequest) -> str:
    """``fake`` or ``real`` (parametrized by the plugin); skips or fails when the real host
    cannot be reached, as the plugin does."""
    require_backend(request.config, lxd_backend_name)
    return lxd_backend_name


@pytest.fixture
def api(backend: str, request: pytest.FixtureRequest) -> Iterator[API]:
    """Raw REST access to the selected backend over its unix socket; cleans up after."""
    if backend == "fake":
        server = request.getfixturevalue("fake")
        client = API.unix("fake", server.socket_path)
        client.server = server  # type: ignore[attr-defined]
    else:
        client = API.unix("real", real_endpoint(request.config))
    yield client
    client.run_cleanups()
    if backend == "fake":
        assert not server.handler_errors, server.handler_errors[0]
