"""Fixtures for the client tests: a ``Client`` on the fake or the real host (``backend``).

``client`` is a :class:`pytest_lxd.Client` on the selected backend's unix socket; ``lxd``
bundles it with cleanup helpers (``later``, ``delete_later``), extra clients and, on the fake,
the :class:`~fakeserver.FakeLXD`. ``https`` trusts a fresh client certificate and describes
how to reach the same backend over HTTPS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeLXD
from pytest_lxd import Client
from pytest_lxd.exceptions import LXDAPIException
from pytest_lxd.plugin import real_endpoint
from tests.support import unique
from tests.tlsutil import ClientCert, self_signed


@dataclass
class LXDEnv:
    """One backend as the client tests see it."""

    backend: str
    socket_path: str
    client: Client
    fake: FakeLXD | None
    cleanups: list[Callable[[], Any]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    @property
    def is_fake(self) -> bool:
        return self.fake is not None

    def new_client(self, endpoint: str | None = None, **kwargs: Any) -> Client:
        """Another client (closed at teardown), by default on the same unix socket."""
        other = Client(endpoint or self.socket_path, **kwargs)
        self.clients.append(other)
        return other

    def later(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` at teardown (newest first), even when the test fails."""
        self.cleanups.append(fn)

    def delete_later(self, path: str, project: str | None = None) -> None:
        """DELETE ``path`` (e.g. ``/1.0/profiles/x``) at teardown, waiting for operations."""
        def remove() -> None:
            from pytest_lxd.operations import handle_async

            response = self.client.transport.request("DELETE", path, allowed=(200, 202),
                                                     project=project)
            handle_async(self.client, response, True)

        self.later(remove)

    def unique(self, prefix: str = "t") -> str:
        return unique(prefix)

    def teardown(self) -> None:
        while self.cleanups:
            fn = self.cleanups.pop()
            with contextlib.suppress(LXDAPIException):
                fn()
        for other in self.clients:
            other.close()
        self.client.close()


@pytest.fixture
def lxd(backend: str, request: pytest.FixtureRequest) -> Iterator[LXDEnv]:
    fake: FakeLXD | None = None
    if backend == "fake":
        fake = request.getfixturevalue("fake")
        socket_path = fake.socket_path
    else:
        socket_path = real_endpoint(request.config)
    env = LXDEnv(backend, socket_path, Client(socket_path, timeout=60), fake)
    yield env
    env.teardown()
    if fake is not None:
        assert not fake.handler_errors, fake.handler_errors[0]


@pytest.fixture
def client(lxd: LXDEnv) -> Client:
    """A pytest_lxd Client on the selected backend (unix socket)."""
    return lxd.client


@dataclass
class HTTPSEnv:
    """How to reach the backend over HTTPS with a trusted client certificate."""

    url: str
    cert: ClientCert
    server_cert_file: str  # the server's own certificate (to pin it)
    ca_file: str | None  # a CA bundle that verifies the server (the fake only)
    lxd: LXDEnv

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("cert", self.cert.pair)
        return self.lxd.new_client(self.url, **kwargs)


def https_url(lxd: LXDEnv) -> str:
    if lxd.fake is not None:
        assert lxd.fake.https_url, "the session fake listens on HTTPS"
        return lxd.fake.https_url
    address = lxd.client.host_info["config"].get("core.https_address", "")
    assert address, "the real host must listen on HTTPS (core.https_address)"
    host, _, port = address.rpartition(":")
    return f"https://{host if host not in ('', '[::]', '0.0.0.0') else '127.0.0.1'}:{port}"


def trust(lxd: LXDEnv, cert: ClientCert, name: str) -> None:
    """Trust ``cert`` through the unix socket, and untrust it at teardown."""
    lxd.client.certificates.create("", Path(cert.cert_file).read_bytes(), name=name)
    lxd.delete_later(f"/1.0/certificates/{cert.fingerprint}")


@pytest.fixture
def https(lxd: LXDEnv, tmp_path: Path) -> HTTPSEnv:
    """A freshly trusted client certificate and the backend's HTTPS address."""
    cert = self_signed(tmp_path, "trusted")
    trust(lxd, cert, lxd.unique("cert"))
    server_pem = lxd.client.host_info["environment"]["certificate"]
    server_file = tmp_path / "server.crt"
    server_file.write_text(server_pem)
    return HTTPSEnv(https_url(lxd), cert, str(server_file),
                    lxd.fake.ca_file if lxd.fake is not None else None, lxd)


def fake_gap(lxd: LXDEnv, request: pytest.FixtureRequest, reason: str) -> None:
    """Mark a test the fake cannot pass yet (a known gap in the fake, reported): on the fake
    it must fail (strict xfail), so the marker goes as soon as the fake catches up."""
    if lxd.is_fake:
        request.applymarker(pytest.mark.xfail(reason=f"fake gap: {reason}", strict=True))
