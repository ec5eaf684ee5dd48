"""The pytest plugin: options that choose the backend (the fake or a real LXD host)."""

from __future__ import annotations

import os

import pytest

BACKENDS = ("fake", "real", "both")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lxd", "LXD backends (pytest-lxd)")
    group.addoption("--lxd-backend", choices=BACKENDS, default=None,
                    help="run LXD tests on the fake (default), a real host, or both")
    group.addoption("--lxd-endpoint", default=None,
                    help="unix socket path or https URL of the real LXD host")
    parser.addini("lxd_backend", "default for --lxd-backend", default="fake")
    parser.addini("lxd_endpoint", "default for --lxd-endpoint", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lxd_fake_only: run this test on the fake backend only")
    config.addinivalue_line("markers", "lxd_real_only: run this test on a real LXD host only")


def selected_backend(config: pytest.Config) -> str:
    """The backend chosen by option, then $PYTEST_LXD_BACKEND, then the ini file."""
    value = (config.getoption("--lxd-backend") or os.environ.get("PYTEST_LXD_BACKEND")
             or config.getini("lxd_backend") or "fake")
    if value not in BACKENDS:
        raise pytest.UsageError(f"--lxd-backend must be one of {', '.join(BACKENDS)}")
    return str(value)


def real_endpoint(config: pytest.Config) -> str:
    """The real host: option, $PYTEST_LXD_ENDPOINT, ini, $LXD_DIR, then the usual sockets."""
    value = (config.getoption("--lxd-endpoint") or os.environ.get("PYTEST_LXD_ENDPOINT")
             or config.getini("lxd_endpoint"))
    if value:
        return str(value)
    candidates = []
    if os.environ.get("LXD_DIR"):
        candidates.append(os.path.join(os.environ["LXD_DIR"], "unix.socket"))
    candidates += ["/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket"]
    for path in candidates:
        if os.path.exists(path):
            return path
    return candidates[-1]
