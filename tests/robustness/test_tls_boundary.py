"""The TLS boundary: who may call which route, on every route of the fake.

* an untrusted client (a stranger's certificate, a certificate from an unrelated CA, or none)
  gets 403 ``not authorized`` on every route but the few LXD leaves public, and those answer
  it without changing anything;
* a trusted certificate outside its validity period is untrusted, as in LXD;
* a restricted certificate reaches only its projects.

With the real host, every route is also sent to it and to a mirroring fake with the same
certificates, and the answers must match.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fakeserver import FakeLXD
from tests import instancefixtures
from tests.robustness import differential as D
from tests.robustness.checks import FIGURES, check_envelope
from tests.robustness.rawhttp import RawClient, RawReply
from tests.robustness.world import Endpoint, endpoints
from tests.support import API, unique
from tests.tlsutil import ClientCert, TLSTarget, from_trustme, self_signed, tls_target

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

ENDPOINTS = endpoints()
JSON_HEADERS = {"Content-Type": "application/json"}
NOT_AUTHORIZED = (403, "not authorized")


def tls_client(address: tuple[str, int], cert: ClientCert | None) -> RawClient:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(*cert.pair)
    return RawClient(address=address, ssl_context=context)


def address_of(target: TLSTarget) -> tuple[str, int]:
    host, _, port = target.address.rpartition(":")
    return host.strip("[]"), int(port)


def request_for(endpoint: Endpoint, project: str | None = None) -> bytes:
    """A target naming objects the real host's baseline has (or missing ones)."""
    values = {arg: (D.REAL_NAMES.get(family) or [D.MISSING + "x"])[0]
              for arg, family in endpoint.args}
    target = endpoint.fill(values)
    query = [f"project={project}"] if project else []
    if endpoint.template.endswith("/wait"):
        query.insert(0, "timeout=0")
    return (target + ("?" + "&".join(query) if query else "")).encode()


def _error(reply: RawReply) -> tuple[int, str]:
    body = check_envelope(reply) if reply.content_type == "application/json" else None
    return reply.status, (body or {}).get("error", "")


@pytest.fixture
def tls(api: API) -> TLSTarget:
    return tls_target(api)


@pytest.mark.parametrize("who", ["stranger", "unrelated-ca", "no-certificate"])
def test_untrusted_clients_reach_only_the_public_routes(api: API, tls: TLSTarget,
                                                        tmp_path: Path, who: str) -> None:
    """Every route of the fake: 403 ``not authorized`` unless LXD makes it public; the public
    ones (``/``, ``/1.0``, public images and aliases, certificate add, operation wait and
    websocket with a secret, metrics) never change anything for an untrusted client."""
    cert = {"stranger": lambda: self_signed(tmp_path, "s"),
            "unrelated-ca": lambda: from_trustme(tmp_path, "ca"),
            "no-certificate": lambda: None}[who]()
    client = tls_client(address_of(tls), cert)
    public = set()
    for endpoint in ENDPOINTS:
        reply = client.send(endpoint.method, request_for(endpoint), JSON_HEADERS, b"{}")
        status, error = _error(reply)
        FIGURES.count(f"tls-untrusted-{api.kind}", endpoint, status, error)
        if not endpoint.untrusted:
            assert (status, error) == NOT_AUTHORIZED, (endpoint.id, reply)
        else:
            assert status < 500 or endpoint.id == "GET /1.0/operations/<op_id>/websocket", \
                (endpoint.id, reply)
            if (status, error) != NOT_AUTHORIZED:
                public.add(endpoint.id)
    assert public >= {"GET /", "GET /1.0", "GET /1.0/images"}, public
    assert public <= {e.id for e in ENDPOINTS if e.untrusted}
    assert client.send("GET", "/1.0").body["metadata"]["auth"] == "untrusted"


def _certificate(directory: Path, name: str, start: datetime.datetime,
                 end: datetime.datetime) -> ClientCert:
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end).sign(key, hashes.SHA384()))
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return ClientCert(str(cert_file), str(key_file),
                      cert.public_bytes(serialization.Encoding.DER))


def test_a_trusted_certificate_is_trusted_only_while_valid(api: API, tls: TLSTarget,
                                                           tmp_path: Path) -> None:
    """LXD checks the validity period on every request: a trusted certificate that has
    expired is an untrusted client (and one not valid yet cannot be added)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    end = now + datetime.timedelta(seconds=5)
    cert = _certificate(tmp_path, "short", now - datetime.timedelta(minutes=1), end)
    reply = api.post("/1.0/certificates", {"type": "client", "certificate": cert.b64})
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    assert reply.status == 201, reply
    client = tls_client(address_of(tls), cert)
    assert client.send("GET", "/1.0/profiles").status == 200
    time.sleep(max(0.0, (end - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
               + 0.5)
    assert _error(client.send("GET", "/1.0/profiles")) == NOT_AUTHORIZED
    assert client.send("GET", "/1.0").body["metadata"]["auth"] == "untrusted"
    later = _certificate(tmp_path, "later", now + datetime.timedelta(hours=1),
                         now + datetime.timedelta(days=2))
    reply = api.post("/1.0/certificates", {"type": "client", "certificate": later.b64})
    api.delete_later(f"/1.0/certificates/{later.fingerprint}")
    assert (reply.status, reply.error) == (400, "The provided certificate isn't valid yet")


def test_metrics_need_a_client_or_metrics_certificate(api: API, tls: TLSTarget,
                                                      tmp_path: Path) -> None:
    metrics = self_signed(tmp_path, "m")
    reply = api.post("/1.0/certificates", {"type": "metrics", "certificate": metrics.b64})
    api.delete_later(f"/1.0/certificates/{metrics.fingerprint}")
    assert reply.status == 201
    assert _error(tls_client(address_of(tls), None).send("GET", "/1.0/metrics")) == \
        NOT_AUTHORIZED
    got = tls_client(address_of(tls), metrics).send("GET", "/1.0/metrics")
    assert (got.status, got.content_type) == (200, "text/plain")
    assert got.raw.endswith(b"# EOF\n")
    assert _error(tls_client(address_of(tls), metrics).send("GET", "/1.0/profiles")) == \
        NOT_AUTHORIZED


# -- against the real host ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mirror_tls() -> Iterator[FakeLXD]:
    """A fake with the real host's baseline, listening on HTTPS."""
    with FakeLXD(https=True) as fake:
        client = API.unix("fake", fake.socket_path)
        client.server = fake  # type: ignore[attr-defined]
        instancefixtures.with_busybox(client)
        yield fake


def _both(api: API, tls: TLSTarget, mirror: FakeLXD,
          cert: ClientCert | None) -> tuple[RawClient, RawClient]:
    real = tls_client(address_of(tls), cert)
    host, port = mirror.https_address  # type: ignore[misc]
    return real, tls_client((host, port), cert)


def _compare_all(real: RawClient, fake: RawClient, label: str, project: str | None = None,
                 only_get: bool = False) -> None:
    mismatches = []
    for endpoint in ENDPOINTS:
        if only_get and endpoint.method != "GET":
            continue
        target = request_for(endpoint, project)
        values = {arg: (D.REAL_NAMES.get(f) or [D.MISSING + "x"])[0] for arg, f in endpoint.args}
        if not D.safe_for_real(endpoint, values, b"{"):
            continue
        got_real = real.send(endpoint.method, target, JSON_HEADERS, b"{")
        got_fake = fake.send(endpoint.method, target, JSON_HEADERS, b"{")
        FIGURES.count(f"tls-{label}", endpoint, got_real.status, D._error(got_real))  # noqa: SLF001
        if not D.same(got_fake, got_real) and \
                not D.known(endpoint, target, b"{", got_fake, got_real):
            mismatches.append((endpoint.id, target, D.describe(got_fake, got_real)))
    assert not mismatches, "\n".join(map(str, mismatches))


@pytest.mark.real_only
@pytest.mark.parametrize("who", ["stranger", "no-certificate"])
def test_untrusted_answers_match_lxd(api: API, tls: TLSTarget, mirror_tls: FakeLXD,
                                     tmp_path: Path, who: str) -> None:
    cert = self_signed(tmp_path, "s") if who == "stranger" else None
    real, fake = _both(api, tls, mirror_tls, cert)
    _compare_all(real, fake, "untrusted")


@pytest.mark.real_only
def test_restricted_answers_match_lxd(api: API, tls: TLSTarget, mirror_tls: FakeLXD,
                                      tmp_path: Path) -> None:
    """A certificate restricted to one project: every route, in that project and in the
    default one, answers as in LXD."""
    fake_api = API.unix("fake", mirror_tls.socket_path)
    project = unique("rp")
    cert = self_signed(tmp_path, "r")
    for client in (api, fake_api):
        reply = client.post("/1.0/projects", {"name": project, "config": {
            "features.profiles": "true", "features.storage.volumes": "true"}})
        assert reply.status == 201, reply
        client.delete_later(f"/1.0/projects/{project}")
        reply = client.post("/1.0/certificates", {"type": "client", "certificate": cert.b64,
                                                  "restricted": True, "projects": [project]})
        assert reply.status == 201, reply
        client.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    try:
        real, fake = _both(api, tls, mirror_tls, cert)
        for where in (project, None):
            _compare_all(real, fake, "restricted", where)
    finally:
        fake_api.run_cleanups()
    assert hashlib.sha256(cert.der).hexdigest() == cert.fingerprint


def test_restricted_certificate_outside_its_projects(api: API, tls: TLSTarget,
                                                     tmp_path: Path) -> None:
    """Where the fake used to differ: a restricted client sees images of other projects as
    an untrusted one does, may not delete even a missing certificate, may POST cluster groups
    (LXD answers "not clustered"), and reads metrics of its projects only."""
    instancefixtures.with_busybox(api)
    project = unique("rp")
    reply = api.post("/1.0/projects", {"name": project, "config": {"features.profiles": "true"}})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{project}")
    cert = self_signed(tmp_path, "r")
    reply = api.post("/1.0/certificates", {"type": "client", "certificate": cert.b64,
                                           "restricted": True, "projects": [project]})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    client = tls_client(address_of(tls), cert)
    assert _error(client.send("GET", "/1.0/images/aliases/busybox")) == (
        404, "Image alias not found")
    assert _error(client.send("DELETE", f"/1.0/certificates/{D.MISSING}")) == NOT_AUTHORIZED
    assert _error(client.send("POST", "/1.0/cluster/groups", JSON_HEADERS, b"{}")) == (
        400, "This server is not clustered")
    assert _error(client.send("GET", "/1.0/metrics")) == NOT_AUTHORIZED
    assert client.send("GET", f"/1.0/metrics?project={project}").status == 200
