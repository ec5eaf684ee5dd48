"""TLS trust: who may do what over HTTPS, the same on the fake and on real LXD 5.0.2.

The unix socket is always trusted; an HTTPS client is trusted when its certificate's
fingerprint is in ``/1.0/certificates`` (type ``client``), and a restricted certificate only
reaches the projects it lists. Certificates are added over the unix socket and removed at
teardown, so the real host's trust store ends as it began.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support import API, unique
from tests.tlsutil import ClientCert, TLSTarget, from_trustme, self_signed, tls_target

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

NOT_AUTHORIZED = (403, "not authorized")
ETAG_OF_NULL = hashlib.sha256(b"null\n").hexdigest()


@pytest.fixture
def tls(api: API) -> TLSTarget:
    return tls_target(api)


def trust(api: API, cert: ClientCert, **fields: object) -> str:
    """Add ``cert`` to the trust store over the unix socket; removed at teardown."""
    body = {"type": "client", "certificate": cert.b64, **fields}
    reply = api.post("/1.0/certificates", body)
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    assert reply.status == 201, reply
    return cert.fingerprint


def project(api: API) -> str:
    name = unique("tp")
    reply = api.post("/1.0/projects", {"name": name, "config": {"features.profiles": "true"}})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{name}")
    return name


def test_https_address_is_in_the_config(api: API, tls: TLSTarget) -> None:
    """Listening on HTTPS shows in ``core.https_address`` and ``environment.addresses``."""
    meta = api.get("/1.0").metadata
    assert meta["config"]["core.https_address"] == tls.address
    assert meta["environment"]["addresses"] == [tls.address]


def test_untrusted_clients_see_only_the_public_parts(api: API, tls: TLSTarget,
                                                     tmp_path: Path) -> None:
    for client in (tls.client(self_signed(tmp_path, "stranger")), tls.client(None)):
        root = client.get("/")
        assert (root.status, root.metadata) == (200, ["/1.0"])
        info = client.get("/1.0")
        assert info.status == 200
        assert "ETag" not in info.headers
        assert list(info.metadata) == ["api_extensions", "api_status", "api_version", "auth",
                                       "public", "auth_methods"]
        assert info.metadata["auth"] == "untrusted"
        assert info.metadata["auth_methods"] == ["tls"]
        for method, path in [("GET", "/1.0/certificates"), ("GET", "/1.0/profiles"),
                             ("GET", "/1.0/operations"), ("GET", "/1.0/storage-pools"),
                             ("GET", "/1.0/projects/default"), ("PATCH", "/1.0"),
                             ("DELETE", "/1.0/profiles/default")]:
            reply = client.request(method, path)
            assert (reply.status, reply.error) == NOT_AUTHORIZED, (method, path)
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
            assert reply.body["type"] == "error" and reply.raw.endswith(b"}\n\n")
        reply = client.post("/1.0/certificates", {"type": "client"})
        assert (reply.status, reply.error) == NOT_AUTHORIZED


def test_unix_socket_is_always_trusted(api: API) -> None:
    meta = api.get("/1.0").metadata
    assert meta["auth"] == "trusted"
    assert api.get("/1.0/certificates").status == 200


@pytest.mark.parametrize("maker", [self_signed, from_trustme], ids=["self-signed", "trustme"])
def test_trusted_client(api: API, tls: TLSTarget, tmp_path: Path, maker: object) -> None:
    """Self-signed (as ``lxc`` makes) and CA-issued client certificates alike."""
    cert: ClientCert = maker(tmp_path, "c")  # type: ignore[operator]
    client = tls.client(cert)
    assert client.get("/1.0/profiles").status == 403
    trust(api, cert)
    info = client.get("/1.0")
    assert info.metadata["auth"] == "trusted"
    assert list(info.metadata) == ["config", "api_extensions", "api_status", "api_version",
                                   "auth", "public", "auth_methods", "environment"]
    assert info.headers["ETag"] == api.get("/1.0").headers["ETag"]
    listed = client.get("/1.0/certificates")
    assert f"/1.0/certificates/{cert.fingerprint}" in listed.metadata
    assert client.get("/1.0/profiles/default").status == 200


def test_revocation_takes_effect_at_once(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    """The same HTTPS session (kept-alive connection) is refused right after the DELETE."""
    cert = self_signed(tmp_path, "revoked")
    trust(api, cert)
    client = tls.client(cert)
    assert client.get("/1.0/certificates").status == 200
    assert api.delete(f"/1.0/certificates/{cert.fingerprint}").status == 200
    reply = client.get("/1.0/certificates")
    assert (reply.status, reply.error) == NOT_AUTHORIZED
    assert client.get("/1.0").metadata["auth"] == "untrusted"


def test_a_client_can_remove_itself(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "self")
    trust(api, cert)
    client = tls.client(cert)
    assert client.delete(f"/1.0/certificates/{cert.fingerprint[:12]}").status == 200
    assert client.get("/1.0/certificates").status == 403


def test_metrics_certificate_is_not_trusted_for_the_api(api: API, tls: TLSTarget,
                                                        tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "metrics")
    trust(api, cert, type="metrics")
    client = tls.client(cert)
    assert client.get("/1.0").metadata["auth"] == "untrusted"
    assert (client.get("/1.0/certificates").status, client.get("/1.0/profiles").status) == \
        (403, 403)
    reply = client.post("/1.0/certificates", {"type": "client", "password": "x"})
    assert (reply.status, reply.error) == NOT_AUTHORIZED


def test_restricted_client_sees_only_its_projects(api: API, tls: TLSTarget,
                                                  tmp_path: Path) -> None:
    proj = project(api)
    cert = self_signed(tmp_path, "restricted")
    trust(api, cert, restricted=True, projects=[proj])
    client = tls.client(cert)
    info = client.get("/1.0", params={"project": proj})
    assert info.metadata["auth"] == "trusted"
    assert info.metadata["config"] is None  # no server config for a restricted client
    assert info.headers["ETag"] == f'"{ETAG_OF_NULL}"'
    assert info.metadata["environment"]["project"] == proj
    for path, params in [("/1.0/profiles", None), ("/1.0/profiles", {"project": "nope"}),
                         ("/1.0/projects/default", None), ("/1.0/warnings", None),
                         ("/1.0/storage-pools/default/volumes", None)]:
        reply = client.get(path, params=params)
        assert (reply.status, reply.error) == NOT_AUTHORIZED, (path, params)
    assert client.get("/1.0/profiles", params={"project": proj}).metadata == \
        [f"/1.0/profiles/default?project={proj}"]
    assert client.get(f"/1.0/projects/{proj}").metadata["name"] == proj
    volumes = client.get("/1.0/storage-pools/default/volumes", params={"project": proj})
    assert volumes.status == 200, volumes
    for path in ["/1.0/certificates", "/1.0/storage-pools", "/1.0/storage-pools/default",
                 "/1.0/operations"]:
        assert client.get(path).status == 200, path
    assert client.patch("/1.0", {}).status == 403
    assert client.patch(f"/1.0/projects/{proj}", {}).status == 403
    name = unique("rp")
    reply = client.post("/1.0/profiles", {"name": name})
    assert (reply.status, reply.error) == NOT_AUTHORIZED
    reply = client.post("/1.0/profiles", {"name": name}, params={"project": proj})
    api.delete_later(f"/1.0/profiles/{name}?project={proj}")
    assert reply.status == 201 and reply.headers["Location"] == \
        f"/1.0/profiles/{name}?project={proj}"


def test_restricted_client_and_the_trust_store(api: API, tls: TLSTarget,
                                               tmp_path: Path) -> None:
    """A restricted client may renew its own certificate but not remove it (nor any other),
    add certificates or issue tokens. (LXD 5.0.2 lets it PUT an unchanged body on another
    certificate: the field check compares with the target, not with the caller.)"""
    cert, other = self_signed(tmp_path, "r"), self_signed(tmp_path, "o", common_name="other")
    trust(api, cert, restricted=True, projects=["default"], name="r")
    trust(api, other)
    client = tls.client(cert)
    listed = client.get("/1.0/certificates", params={"recursion": "1"})
    assert {c["fingerprint"] for c in listed.metadata} >= {cert.fingerprint, other.fingerprint}
    mine = f"/1.0/certificates/{cert.fingerprint}"
    reply = client.put(mine, {"name": "renamed", "type": "client", "restricted": True,
                              "projects": ["default"]})
    assert (reply.status, reply.error) == (403, "Only the certificate can be changed")
    reply = client.put(mine, {"name": "r", "type": "client", "restricted": False,
                              "projects": ["default"]})
    assert (reply.status, reply.error) == (403, "Only the certificate can be changed")
    assert client.patch(mine, {}).status == 200
    reply = client.put(f"/1.0/certificates/{other.fingerprint}",
                       {"name": "other", "type": "client"})
    assert reply.status == 200
    reply = client.delete(f"/1.0/certificates/{other.fingerprint}")
    assert (reply.status, reply.error) == NOT_AUTHORIZED
    for body in [{"type": "client", "token": True, "name": "t"},
                 {"type": "client", "certificate": self_signed(tmp_path, "x").b64}]:
        reply = client.post("/1.0/certificates", body)
        assert (reply.status, reply.error) == NOT_AUTHORIZED
    reply = client.post("/1.0/certificates", {"type": "client", "password": "whatever"})
    assert (reply.status, reply.error) == (400, "Client is already trusted")
    reply = client.delete(mine)
    assert (reply.status, reply.error) == NOT_AUTHORIZED
    assert client.get(mine).status == 200


def test_restricted_client_renews_its_certificate(api: API, tls: TLSTarget,
                                                  tmp_path: Path) -> None:
    old, new = self_signed(tmp_path, "old"), self_signed(tmp_path, "new")
    trust(api, old, restricted=True, projects=["default"], name="renewing")
    api.delete_later(f"/1.0/certificates/{new.fingerprint}")
    reply = tls.client(old).put(f"/1.0/certificates/{old.fingerprint}",
                                {"name": "renewing", "type": "client", "restricted": True,
                                 "projects": ["default"], "certificate": new.pem})
    assert reply.status == 200, reply
    assert tls.client(old).get("/1.0/certificates").status == 403
    got = tls.client(new).get(f"/1.0/certificates/{new.fingerprint}").metadata
    assert (got["name"], got["restricted"], got["projects"], got["certificate"]) == \
        ("renewing", True, ["default"], new.pem)
    assert api.get(f"/1.0/certificates/{old.fingerprint}").status == 404


@pytest.mark.fake_only
def test_fake_keeps_https_address_across_reset(api: API, tls: TLSTarget) -> None:
    server = api.server  # type: ignore[attr-defined]
    api.patch("/1.0", {"config": {"core.https_address": ""}})
    assert "core.https_address" not in api.get("/1.0").metadata["config"]
    server.reset()
    assert api.get("/1.0").metadata["config"]["core.https_address"] == tls.address
