"""Endpoint resolution, TLS policy and transport failures: no LXD needed for these.

Every way of failing to reach LXD must be a ``ClientConnectionFailed`` that says why; pylxd
leaked ``requests`` exceptions (MissingSchema, InvalidSchema, ConnectionError, ReadTimeout).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path

import pytest
import requests

from pytest_lxd import Client, ClientConnectionFailed, exceptions, transport
from pytest_lxd.client import is_token
from pytest_lxd.models.base import name_from_url
from pytest_lxd.models.storage import _parse_volume_url
from pytest_lxd.operations import operation_id
from tests.tlsutil import self_signed


def test_no_endpoint_uses_lxd_dir_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LXD_DIR", str(tmp_path))
    endpoint = transport.resolve_endpoint(None)
    assert endpoint.kind == "unix"
    assert endpoint.socket_path == str(tmp_path / "unix.socket")
    assert endpoint.url == "http+unix://" + str(tmp_path / "unix.socket").replace("/", "%2F")


def test_no_endpoint_then_snap_then_deb_socket(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.delenv("LXD_DIR", raising=False)
    snap, deb = tmp_path / "snap.socket", tmp_path / "deb.socket"
    monkeypatch.setattr(transport, "DEFAULT_SOCKET_PATHS", (str(snap), str(deb)))
    assert transport.resolve_endpoint(None).socket_path == str(deb)  # neither exists: last
    snap.touch()
    assert transport.resolve_endpoint(None).socket_path == str(snap)


def test_missing_default_socket_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("LXD_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ClientConnectionFailed, match="no LXD unix socket at .*nowhere"):
        Client()


@pytest.mark.parametrize("spelling", ["{p}", "unix:{p}", "unix://{p}", "http+unix://{q}"])
def test_socket_spellings(spelling: str, tmp_path: Path) -> None:
    path = str(tmp_path / "lxd.socket")
    text = spelling.format(p=path, q=path.replace("/", "%2F"))
    endpoint = transport.resolve_endpoint(text)
    assert (endpoint.kind, endpoint.socket_path) == ("unix", path)


def test_missing_socket_path_is_connection_failed(tmp_path: Path) -> None:
    with pytest.raises(ClientConnectionFailed, match="no LXD unix socket"):
        Client(str(tmp_path / "missing.socket"))


@pytest.mark.parametrize("url", ["ftp://host", "https://", "https://host:99999",
                                 "https://host:8443/1.0", "lxd.example:8443", "unix"])
def test_bad_urls_are_connection_failed(url: str) -> None:
    with pytest.raises(ClientConnectionFailed, match="bad LXD endpoint"):
        Client(url)


def test_https_url_is_normalised() -> None:
    endpoint = transport.resolve_endpoint("https://127.0.0.1:8443/")
    assert (endpoint.kind, endpoint.url, endpoint.host, endpoint.port) == (
        "https", "https://127.0.0.1:8443", "127.0.0.1", 8443)
    assert endpoint.websocket_url == "wss://127.0.0.1:8443"
    assert transport.resolve_endpoint("https://[::1]").port == 8443


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_is_connection_failed() -> None:
    port = _free_port()
    with pytest.raises(ClientConnectionFailed, match="Connection refused") as info:
        Client(f"https://127.0.0.1:{port}", verify=False)
    assert not isinstance(info.value.__cause__, requests.RequestException)


def test_socket_that_is_not_a_server(tmp_path: Path) -> None:
    path = tmp_path / "dead.socket"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # bound, never listening: connect() is refused
    try:
        with pytest.raises(ClientConnectionFailed, match="cannot connect to LXD"):
            Client(str(path))
    finally:
        sock.close()


def test_silent_server_is_a_request_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.socket")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        with pytest.raises(exceptions.RequestTimeout) as info:
            Client(path, timeout=0.3)
        assert isinstance(info.value, ClientConnectionFailed)
        assert isinstance(info.value, TimeoutError)
    finally:
        thread.join(1)
        for sock in accepted:
            sock.close()
        server.close()


def test_tls_policy_modes(tmp_path: Path) -> None:
    leaf = self_signed(tmp_path, "leaf")
    assert transport.TLSPolicy(True).mode == "system"
    assert transport.TLSPolicy(False).requests_verify is False
    pinned = transport.TLSPolicy(leaf.cert_file)
    assert (pinned.mode, pinned.fingerprint) == ("pin", leaf.fingerprint)
    assert pinned.requests_verify is False  # the adapter checks the fingerprint instead
    import trustme

    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    assert transport.TLSPolicy(str(ca_file)).mode == "ca"
    bundle = tmp_path / "bundle.pem"  # two certificates: a bundle, never a pin
    bundle.write_text(Path(leaf.cert_file).read_text() * 2)
    assert transport.TLSPolicy(bundle).mode == "ca"
    with pytest.raises(ClientConnectionFailed, match="cannot read the verify file"):
        transport.TLSPolicy(str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(ClientConnectionFailed, match="no PEM certificate"):
        transport.TLSPolicy(str(tmp_path / "junk.pem"))


def test_token_detection() -> None:
    token = base64.b64encode(json.dumps({"client_name": "c", "fingerprint": "f",
                                         "addresses": [], "secret": "s"}).encode()).decode()
    assert is_token(token)
    assert is_token(token[:20] + "\n " + token[20:] + "\n")  # pasted with line breaks
    assert not is_token("a-trust-password")
    assert not is_token(base64.b64encode(b'{"name":"x"}').decode())
    assert not is_token("")


def test_names_never_carry_the_project() -> None:
    assert name_from_url("/1.0/profiles/p1?project=other") == "p1"
    assert name_from_url("/1.0/networks/a%20b") == "a b"
    assert operation_id("/1.0/operations/abc?project=x") == "abc"
    assert operation_id("abc") == "abc"
    assert _parse_volume_url("/1.0/storage-pools/d/volumes/custom/v1?project=p") == (
        "custom", "v1")
    assert _parse_volume_url("/1.0/storage-pools/d/volumes/container/c1/snapshots/s0") == (
        "container", "c1/s0")


def test_error_mapping() -> None:
    def reply(status: int, body: dict[str, object]) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        return response

    cases = {404: exceptions.NotFound, 409: exceptions.Conflict, 412: exceptions.ETagMismatch,
             403: exceptions.Forbidden, 500: exceptions.LXDAPIException}
    for status, cls in cases.items():
        with pytest.raises(cls) as info:
            transport.check_response(reply(status, {"type": "error", "error_code": status,
                                                    "error": f"boom {status}"}))
        assert type(info.value) is cls
        assert (str(info.value), info.value.error_code) == (f"boom {status}", status)
    with pytest.raises(exceptions.LXDAPIException, match="not a sync response"):
        transport.check_response(reply(200, {"type": "async", "metadata": {}}))
    transport.check_response(reply(202, {"type": "async"}), (202,))


def test_server_gone_after_connect_is_connection_failed(tmp_path: Path) -> None:
    """pylxd leaked requests' ConnectionError once the client existed."""
    from fakeserver import FakeLXD

    server = FakeLXD(tmp_path / "lxd").start()
    try:
        client = Client(server.socket_path)
        assert client.profiles.exists("default")
    finally:
        server.close()
    with pytest.raises(ClientConnectionFailed, match="cannot connect to LXD") as info:
        client.profiles.get("default")
    assert not isinstance(info.value, requests.RequestException)
    with pytest.raises(ClientConnectionFailed):
        client.events().connect()
    client.close()
