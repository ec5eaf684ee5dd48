"""Record which endpoints the suite's tests call, for the fidelity table (``fidelity.py``)."""

from __future__ import annotations

import pytest

from tests.docs.fidelity import register


def pytest_configure(config: pytest.Config) -> None:
    register(config)
