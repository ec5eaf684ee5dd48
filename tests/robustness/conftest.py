"""Fixtures of the robustness suite: one populated fake (the fuzzers' world) for the session,
and the figures printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from fakeserver import FakeLXD
from tests.robustness import world as world_mod
from tests.robustness.checks import FIGURES
from tests.robustness.rawhttp import RawClient


def fuzz_settings(factor: float = 1.0, **kw: object) -> settings:
    """Hypothesis settings at the suite's size (``PYTEST_LXD_FUZZ_EXAMPLES`` x ``factor``)."""
    return settings(max_examples=max(1, int(world_mod.EXAMPLES * factor)), deadline=None,
                    database=None, suppress_health_check=list(HealthCheck), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def world() -> Iterator[world_mod.World]:
    """A fake (unix socket + HTTPS) holding one object of every kind, for the fuzzers."""
    with FakeLXD(https=True) as fake:
        yield world_mod.build(fake)


@pytest.fixture
def raw(world: world_mod.World) -> Iterator[RawClient]:
    """A byte-exact client on the world's unix socket (restored to the world first)."""
    world.restore()
    client = RawClient(unix=world.fake.socket_path, timeout=30)
    yield client
    client.close()
    assert not world.fake.handler_errors, world.fake.handler_errors[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.requests and not FIGURES.sequences and not FIGURES.parallel:
        return
    terminalreporter.section("robustness figures")
    for line in FIGURES.lines():
        terminalreporter.write_line(line)
    FIGURES.dump()
