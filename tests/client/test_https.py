"""HTTPS: client certificates, the three ways to check the server, and getting trusted.

A fresh self-signed client certificate is trusted through the unix socket (and removed at
teardown, also on the real host); then the client talks HTTPS to the same backend.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from pytest_lxd import Client, ClientConnectionFailed, exceptions
from tests.tlsutil import self_signed

from .conftest import HTTPSEnv, LXDEnv, https_url

insecure = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_pinned_server_certificate(https: HTTPSEnv) -> None:
    client = https.client(verify=https.server_cert_file)
    assert client.transport.tls is not None and client.transport.tls.mode == "pin"
    assert client.trusted
    assert client.host_info["environment"]["certificate"] == Path(
        https.server_cert_file).read_text()
    assert client.profiles.exists("default")
    assert client.websocket_url.startswith("wss://127.0.0.1:")


def test_wrong_pin_is_a_tls_failure(https: HTTPSEnv, tmp_path: Path) -> None:
    other = self_signed(tmp_path, "not-the-server")
    with pytest.raises(ClientConnectionFailed, match="TLS failure.*[Ff]ingerprint"):
        https.client(verify=other.cert_file)


def test_system_cas_do_not_trust_the_server(https: HTTPSEnv) -> None:
    with pytest.raises(ClientConnectionFailed, match="TLS failure.*CERTIFICATE_VERIFY_FAILED"):
        https.client(verify=True)


@pytest.mark.fake_only  # the real host's certificate is self-signed: no CA issued it
def test_ca_bundle(https: HTTPSEnv) -> None:
    assert https.ca_file is not None
    client = https.client(verify=https.ca_file)
    assert client.transport.tls is not None and client.transport.tls.mode == "ca"
    assert client.trusted and client.profiles.exists("default")


@insecure
def test_verify_false_survives_ca_bundle_variables(https: HTTPSEnv, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """pylxd/requests quietly verify again when REQUESTS_CA_BUNDLE is set; we do not."""
    unrelated = tmp_path / "unrelated-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(unrelated))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(unrelated))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(unrelated))
    client = https.client(verify=False)
    assert client.trusted
    assert client.profiles.get("default").name == "default"


def test_untrusted_client(https: HTTPSEnv, tmp_path: Path) -> None:
    stranger = self_signed(tmp_path, "stranger")
    client = https.client(cert=stranger.pair, verify=https.server_cert_file)
    assert client.trusted is False
    assert client.host_info["auth"] == "untrusted"
    assert "environment" not in client.host_info
    with pytest.raises(exceptions.Forbidden, match="not authorized") as info:
        client.profiles.all()
    assert info.value.error_code == 403


def test_authenticate_with_a_token(https: HTTPSEnv, lxd: LXDEnv, tmp_path: Path) -> None:
    newcomer = self_signed(tmp_path, "newcomer")
    token = lxd.client.certificates.create_token(name=lxd.unique("tok"))
    lxd.delete_later(f"/1.0/certificates/{newcomer.fingerprint}")
    client = https.client(cert=newcomer.pair, verify=https.server_cert_file)
    assert not client.trusted
    client.authenticate(token[:30] + "\n" + token[30:])  # pasted with a line break
    assert client.trusted
    assert client.host_info["auth"] == "trusted"
    assert lxd.client.certificates.exists(newcomer.fingerprint)
    client.authenticate(token)  # already trusted: nothing to do


def test_authenticate_with_a_bad_secret(https: HTTPSEnv, tmp_path: Path) -> None:
    newcomer = self_signed(tmp_path, "newcomer")
    client = https.client(cert=newcomer.pair, verify=https.server_cert_file)
    with pytest.raises(exceptions.Forbidden, match="not authorized"):
        client.authenticate("not-the-password")
    assert not client.trusted


def test_authenticate_with_the_trust_password(https: HTTPSEnv, lxd: LXDEnv,
                                              tmp_path: Path) -> None:
    if "core.trust_password" in lxd.client.host_info["config"]:
        pytest.skip("the host already has a trust password we could not restore")
    lxd.client.api.patch(json={"config": {"core.trust_password": "sekrit-pl"}})
    lxd.later(lambda: lxd.client.api.patch(json={"config": {"core.trust_password": ""}}))
    newcomer = self_signed(tmp_path, "newcomer")
    lxd.delete_later(f"/1.0/certificates/{newcomer.fingerprint}")
    client = https.client(cert=newcomer.pair, verify=https.server_cert_file)
    client.authenticate("sekrit-pl")
    assert client.trusted
    assert lxd.client.certificates.get(newcomer.fingerprint).type == "client"


def test_authenticate_needs_a_certificate(lxd: LXDEnv, https: HTTPSEnv,
                                          monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no lxc client certificate to fall back on
    client = lxd.new_client(https_url(lxd), verify=https.server_cert_file)
    assert client.cert is None and not client.trusted
    with pytest.raises(ClientConnectionFailed, match="needs an HTTPS client with a certificate"):
        client.authenticate("whatever")
    lxd.client.authenticate("whatever")  # the unix socket is always trusted: a no-op


def test_default_client_certificate(https: HTTPSEnv, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    """With no ``cert``, the ``lxc`` client certificate is used (looked up at call time)."""
    config = tmp_path / ".config" / "lxc"
    config.mkdir(parents=True)
    Path(config / "client.crt").write_bytes(Path(https.cert.cert_file).read_bytes())
    Path(config / "client.key").write_bytes(Path(https.cert.key_file).read_bytes())
    monkeypatch.setenv("HOME", str(tmp_path))
    client = Client(https.url, verify=https.server_cert_file)
    try:
        assert client.cert == (str(config / "client.crt"), str(config / "client.key"))
        assert client.trusted
    finally:
        client.close()


@insecure
def test_caller_supplied_session(https: HTTPSEnv) -> None:
    """pylxd's ``session=``: the caller's session settings (verify, cert) are used as given."""
    import requests

    session = requests.Session()
    session.verify = False
    session.cert = https.cert.pair
    client = https.lxd.new_client(https.url, session=session)
    assert client.trusted
    client.close()
    assert session.get(https.url + "/1.0", verify=False).status_code == 200  # still open
