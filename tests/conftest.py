"""Backends for the project's own tests: the fake, the real LXD host, or both.

A test that takes ``api`` runs on every selected backend (``--lxd-backend=fake|real|both``);
``@pytest.mark.fake_only`` keeps it on the fake (time control, faults, seeding) and
``@pytest.mark.real_only`` on the real host.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fakeserver import FakeLXD
from pytest_lxd.plugin import real_endpoint, selected_backend
from tests.support import API

_REAL_STATUS: dict[str, str | None] = {}


def _real_problem(config: pytest.Config) -> str | None:
    """Why the real host cannot be used (None when it can); probed once."""
    if "problem" not in _REAL_STATUS:
        endpoint = real_endpoint(config)
        problem = None
        if not os.path.exists(endpoint):
            problem = f"no LXD socket at {endpoint}"
        else:
            try:
                reply = API.unix("real", endpoint).get("/1.0", timeout=10)
                if reply.status != 200:
                    problem = f"GET /1.0 answered {reply.status}"
            except Exception as exc:  # noqa: BLE001
                problem = f"cannot reach {endpoint}: {exc}"
        _REAL_STATUS["problem"] = problem
    return _REAL_STATUS["problem"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    marks = {m.name for m in metafunc.definition.iter_markers()}
    selected = selected_backend(metafunc.config)
    chosen = ["fake", "real"] if selected == "both" else [selected]
    if "fake_only" in marks:
        chosen = [b for b in chosen if b == "fake"]
    if "real_only" in marks:
        chosen = [b for b in chosen if b == "real"]
    metafunc.parametrize("backend", chosen, ids=chosen, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop tests that have no backend left (fake-only tests in a real-only run)."""
    keep, drop = [], []
    for item in items:
        needs_backend = "backend" in getattr(item, "fixturenames", ())
        has_param = hasattr(item, "callspec") and "backend" in item.callspec.params
        param = item.callspec.params.get("backend") if has_param else None
        if needs_backend and not has_param:
            drop.append(item)
        elif param == "real" and item.get_closest_marker("fake_only"):
            drop.append(item)  # a parameter-level fake_only mark (e.g. destructive on LXD)
        elif param == "fake" and item.get_closest_marker("real_only"):
            drop.append(item)
        elif not needs_backend and selected_backend(config) == "real":
            drop.append(item)  # a fake-only module test: nothing to run on the real host
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeLXD]:
    with FakeLXD(https=True) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeLXD) -> FakeLXD:
    """The session's fake, reset to its baseline for this test."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name = request.param
    if name == "real":
        problem = _real_problem(request.config)
        if problem:
            if selected_backend(request.config) == "both":
                pytest.skip(f"real LXD host unavailable: {problem}")
            pytest.fail(f"real LXD host unavailable: {problem}")
    return str(name)


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
