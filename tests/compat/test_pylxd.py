"""pylxd 2.4.2, unmodified, against the fake and the real host: the same calls, the same results.

pylxd talks to the unix socket (``pylxd.Client(endpoint=<socket path>)``) and over HTTPS with a
client certificate (``pylxd.Client(endpoint=url, cert=(crt, key), verify=<server cert>)``).
pylxd's ``verify=<path>`` pins the server certificate's fingerprint instead of checking a CA
chain, so it takes the server certificate (the fake's ``server.crt``), not the fake's CA file.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pylxd
import pytest
from pylxd.exceptions import LXDAPIException, NotFound

from tests.compat import ClientCert, client_cert, socket_path
from tests.support import API, unique

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pylxd: unknown attributes


@pytest.fixture
def client(api: API) -> pylxd.Client:
    return pylxd.Client(endpoint=socket_path(api))


@dataclass
class HTTPS:
    url: str
    server_cert: str


@pytest.fixture
def https(api: API, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HTTPS:
    """The backend's HTTPS address and its server certificate (written to a file for pylxd).

    requests lets ``$REQUESTS_CA_BUNDLE``/``$CURL_CA_BUNDLE`` override a session's ``verify``,
    which would replace pylxd's pinned server certificate with the system CA bundle.
    """
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    env = api.get("/1.0").metadata["environment"]
    if api.is_fake:
        url = api.server.https_url  # type: ignore[attr-defined]
    else:
        assert env["addresses"], "the real host has no core.https_address"
        url = "https://" + env["addresses"][0]
    host = urllib.parse.urlsplit(url).hostname or ""
    assert host.startswith("127.") or host in ("::1", "localhost"), url  # loopback only
    cert = tmp_path / "server.crt"
    cert.write_text(env["certificate"])
    return HTTPS(url, str(cert))


def trust(api: API, cert: ClientCert, name: str) -> None:
    """Add ``cert`` to the trust store over the unix socket (removed after the test)."""
    body = cert.pem.decode().split("-----")[2]  # the PEM body: base64 of the DER
    reply = api.post("/1.0/certificates", {"type": "client", "name": name,
                                           "certificate": "".join(body.split())})
    assert reply.status in (200, 201), reply
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")


def test_client_on_the_unix_socket(client: pylxd.Client, api: API) -> None:
    assert client.trusted
    assert not client.server_clustered
    assert client.host_info["environment"]["server_version"] == "5.0.2"
    assert client.host_info["api_extensions"] == api.get("/1.0").metadata["api_extensions"]
    assert client.has_api_extension("projects")
    assert client.api.profiles["default"].get().json()["metadata"]["name"] == "default"


def test_profiles(client: pylxd.Client, api: API) -> None:
    name, new_name = unique("p"), unique("p")
    api.delete_later(f"/1.0/profiles/{new_name}")
    api.delete_later(f"/1.0/profiles/{name}")
    profile = client.profiles.create(name, config={"user.k": "v"},
                                     devices={"nothing": {"type": "none"}}, description="d")
    assert (profile.name, profile.description) == (name, "d")
    assert profile.config == {"user.k": "v"}
    assert profile.devices == {"nothing": {"type": "none"}}
    assert profile.used_by == []
    assert client.profiles.exists(name)
    assert {"default", name} <= {p.name for p in client.profiles.all()}

    got = client.profiles.get(name)
    got.config["user.k2"] = "v2"
    got.description = "changed"
    got.save()
    again = client.profiles.get(name)
    assert again.config == {"user.k": "v", "user.k2": "v2"}
    assert again.description == "changed"

    with pytest.raises(LXDAPIException) as dup:
        client.profiles.create(name)
    assert dup.value.response.status_code == 500
    assert str(dup.value) == (f'Error inserting "{name}" into database: '
                              "The profile already exists")

    renamed = again.rename(new_name)
    assert renamed.name == new_name and renamed.config == again.config
    assert not client.profiles.exists(name)
    renamed.delete()
    assert not client.profiles.exists(new_name)
    with pytest.raises(NotFound):
        client.profiles.get(new_name)

    with pytest.raises(LXDAPIException) as protected:
        client.profiles.get("default").delete()
    assert protected.value.response.status_code == 403
    assert str(protected.value) == api.delete("/1.0/profiles/default").error


def test_projects(client: pylxd.Client, api: API) -> None:
    name = unique("pj")
    api.delete_later(f"/1.0/projects/{name}")
    project = client.projects.create(name, description="d",
                                     config={"features.profiles": "true"})
    assert (project.name, project.description) == (name, "d")
    assert project.config["features.profiles"] == "true"
    assert client.projects.exists(name)
    assert {"default", name} <= {p.name for p in client.projects.all()}

    project.description = "changed"
    project.config["user.k"] = "v"
    project.save()
    again = client.projects.get(name)
    assert again.description == "changed" and again.config["user.k"] == "v"

    # A client bound to the project sees the project's own profiles.
    inside = pylxd.Client(endpoint=socket_path(api), project=name)
    profile = unique("p")
    api.delete_later(f"/1.0/profiles/{profile}?project={name}")
    inside.profiles.create(profile)
    assert sorted(p.name for p in inside.profiles.all()) == sorted(["default", profile])
    assert profile not in {p.name for p in client.profiles.all()}
    assert inside.profiles.exists(profile) and not client.profiles.exists(profile)

    with pytest.raises(LXDAPIException):
        again.delete()  # not empty: the project still has a profile
    inside.profiles.get(profile).delete()
    again.delete()
    assert not client.projects.exists(name)


def test_operations_of_a_project_rename(client: pylxd.Client, api: API) -> None:
    """Project rename is an operation; pylxd's ``Project.rename`` does not wait for it, so the
    operation is driven through ``client.operations`` (pylxd's own rename races its GET)."""
    name, new_name = unique("pj"), unique("pj")
    api.delete_later(f"/1.0/projects/{new_name}")
    api.delete_later(f"/1.0/projects/{name}")
    client.projects.create(name)
    response = client.api.projects[name].post(json={"name": new_name})
    assert response.status_code == 202
    body = response.json()
    assert body["type"] == "async" and body["operation"].startswith("/1.0/operations/")
    op_id = body["operation"].split("?")[0].rsplit("/", 1)[-1]

    done = client.operations.wait_for_operation(body["operation"])
    assert (done.id, done.status, done.status_code) == (op_id, "Success", 200)
    assert done.resources is None  # LXD 5.0.2 names no resources for a project rename
    op = client.operations.get(op_id)  # finished operations are kept for a while
    assert (op.id, op.status, op.may_cancel) == (op_id, "Success", False)
    assert op.wait() is True
    assert client.projects.exists(new_name) and not client.projects.exists(name)
    with pytest.raises(NotFound):
        client.operations.get("00000000-0000-0000-0000-000000000000")


def test_networks(client: pylxd.Client, api: API) -> None:
    bridge = client.networks.get("lxdbr0")
    assert (bridge.type, bridge.managed) == ("bridge", True)
    assert bridge.config["ipv4.address"] == "none"
    assert "lxdbr0" in {n.name for n in client.networks.all()}
    assert client.networks.exists("lxdbr0") and not client.networks.exists(unique("n"))

    name, new_name = unique("n"), unique("n")
    api.delete_later(f"/1.0/networks/{new_name}")
    api.delete_later(f"/1.0/networks/{name}")
    net = client.networks.create(name, description="d", type="bridge",
                                 config={"ipv4.address": "none", "ipv6.address": "none"})
    assert (net.name, net.type, net.managed, net.description) == (name, "bridge", True, "d")
    assert net.config["ipv4.address"] == "none" and net.config["ipv6.address"] == "none"
    assert net.used_by is None  # LXD 5.0.2 sends "used_by": null for an unused network

    net.description = "changed"
    net.config["user.k"] = "v"
    net.save()
    again = client.networks.get(name)
    assert again.description == "changed" and again.config["user.k"] == "v"

    renamed = again.rename(new_name)
    assert renamed.name == new_name and renamed.config["user.k"] == "v"
    assert not client.networks.exists(name)
    renamed.delete()
    assert not client.networks.exists(new_name)


def test_storage_pools_and_volumes(client: pylxd.Client, api: API) -> None:
    default = client.storage_pools.get("default")
    assert default.driver == "dir"
    assert "default" in {p.name for p in client.storage_pools.all()}
    assert client.storage_pools.exists("default")

    pool_name = unique("sp")
    api.delete_later(f"/1.0/storage-pools/{pool_name}")
    pool = client.storage_pools.create({"name": pool_name, "driver": "dir",
                                        "description": "d"})
    assert (pool.name, pool.driver, pool.description) == (pool_name, "dir", "d")
    pool.description = "changed"
    pool.save()
    assert client.storage_pools.get(pool_name).description == "changed"
    pool.delete()
    assert not client.storage_pools.exists(pool_name)

    name, new_name = unique("v"), unique("v")
    api.delete_later(f"/1.0/storage-pools/default/volumes/custom/{new_name}")
    api.delete_later(f"/1.0/storage-pools/default/volumes/custom/{name}")
    volume = default.volumes.create({"name": name, "type": "custom", "config": {}})
    assert (volume.name, volume.type) == (name, "custom")
    assert ("custom", name) in {(v.type, v.name) for v in default.volumes.all()}

    volume = default.volumes.get("custom", name)
    volume.config["user.k"] = "v"
    volume.save(wait=True)
    assert default.volumes.get("custom", name).config["user.k"] == "v"

    volume.snapshots.create("snap0", wait=True)
    assert volume.snapshots.all() == ["snap0"]
    assert volume.snapshots.get("snap0").name == "snap0"
    volume.snapshots.get("snap0").delete(wait=True)
    assert volume.snapshots.all() == []

    volume.rename({"name": new_name, "pool": "default"}, wait=True)
    assert volume.name == new_name
    assert default.volumes.get("custom", new_name).config["user.k"] == "v"
    with pytest.raises(NotFound):
        default.volumes.get("custom", name)
    volume.delete(wait=True)
    with pytest.raises(NotFound):
        default.volumes.get("custom", new_name)


def test_certificates(client: pylxd.Client, api: API, tmp_path: Path) -> None:
    cert = client_cert(tmp_path)
    name = unique("c")
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    created = client.certificates.create("", cert.pem, name=name)
    assert created.fingerprint == cert.fingerprint
    assert (created.type, created.name, created.restricted) == ("client", name, False)
    assert created.projects == []
    assert cert.fingerprint in {c.fingerprint for c in client.certificates.all()}

    got = client.certificates.get(cert.fingerprint)
    got.name = "renamed-" + name
    got.save()
    assert client.certificates.get(cert.fingerprint).name == "renamed-" + name
    got.delete()
    with pytest.raises(NotFound):
        client.certificates.get(cert.fingerprint)


def test_https_with_a_trusted_client_certificate(api: API, https: HTTPS,
                                                  tmp_path: Path) -> None:
    cert = client_cert(tmp_path)
    trust(api, cert, unique("c"))
    remote = pylxd.Client(endpoint=https.url, cert=cert.pair, verify=https.server_cert)
    assert remote.trusted
    assert remote.host_info["auth"] == "trusted"
    assert remote.profiles.get("default").name == "default"
    assert cert.fingerprint in {c.fingerprint for c in remote.certificates.all()}

    stranger = client_cert(tmp_path, "stranger")
    untrusted = pylxd.Client(endpoint=https.url, cert=stranger.pair, verify=https.server_cert)
    assert not untrusted.trusted
    with pytest.raises(LXDAPIException) as denied:
        untrusted.profiles.all()
    assert denied.value.response.status_code == 403
    assert str(denied.value) == "not authorized"


def test_https_authenticate_with_the_trust_password(api: API, https: HTTPS,
                                                    tmp_path: Path) -> None:
    api.later(lambda: api.patch("/1.0", {"config": {"core.trust_password": ""}}))
    assert api.patch("/1.0", {"config": {"core.trust_password": "s3cret"}}).status == 200
    cert = client_cert(tmp_path)
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    remote = pylxd.Client(endpoint=https.url, cert=cert.pair, verify=https.server_cert)
    assert not remote.trusted
    with pytest.raises(LXDAPIException) as wrong:
        remote.authenticate("not-the-password")
    assert wrong.value.response.status_code == 403
    assert not remote.trusted
    remote.authenticate("s3cret")
    assert remote.trusted
    assert remote.profiles.get("default").name == "default"


def test_https_authenticate_with_a_token(client: pylxd.Client, api: API, https: HTTPS,
                                         tmp_path: Path) -> None:
    """LXD 5.0.2 has no ``explicit_trust_token``: pylxd sends the token as the password."""
    name = unique("c")
    token = client.certificates.create_token(name=name)
    decoded = json.loads(base64.b64decode(token))
    assert decoded["client_name"] == name and decoded["secret"]

    def cancel_token() -> None:  # an unused token stays pending as an operation
        for op in api.get("/1.0/operations", params={"recursion": 1}).metadata.get(
                "running", []):
            if (op.get("metadata") or {}).get("secret") == decoded["secret"]:
                api.delete(f"/1.0/operations/{op['id']}")

    api.later(cancel_token)
    cert = client_cert(tmp_path)
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    remote = pylxd.Client(endpoint=https.url, cert=cert.pair, verify=https.server_cert)
    assert not remote.trusted
    remote.authenticate(token)
    assert remote.trusted
    assert client.certificates.get(cert.fingerprint).name == name
