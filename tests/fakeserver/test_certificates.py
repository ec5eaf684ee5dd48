"""``/1.0/certificates``: the trust store API, passwords and add tokens, fake and real alike.

Every certificate a test adds is removed at teardown, every token it issues is cancelled, and
the server config it changes (``core.trust_password``) is put back, so the real host's trust
store and config end as they began. Other runs may share the real host: lists are only checked
for the certificates a test made.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.sync.client import ClientConnection, unix_connect

from tests.support import API, Reply, unique
from tests.tlsutil import ClientCert, TLSTarget, from_trustme, self_signed, tls_target

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

NOT_AUTHORIZED = (403, "not authorized")
NO_TOKEN = (403, "No matching certificate add operation found")


@pytest.fixture
def tls(api: API) -> TLSTarget:
    return tls_target(api)


def url(cert: ClientCert) -> str:
    return f"/1.0/certificates/{cert.fingerprint}"


def add(api: API, cert: ClientCert, **fields: Any) -> Reply:
    """POST ``cert`` over the unix socket (removed at teardown whatever the answer)."""
    api.delete_later(url(cert))
    return api.post("/1.0/certificates", {"type": "client", "certificate": cert.b64, **fields})


def go_json_etag(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((text + "\n").encode()).hexdigest()


def project(api: API) -> str:
    name = unique("cp")
    assert api.post("/1.0/projects", {"name": name}).status == 201
    api.delete_later(f"/1.0/projects/{name}")
    return name


@contextlib.contextmanager
def trust_password(api: API, password: str) -> Iterator[None]:
    """Set ``core.trust_password`` for the block; the previous config comes back after."""
    before = api.get("/1.0").metadata["config"]
    if "core.trust_password" in before:
        pytest.skip("the host already has a trust password; setting ours would lose it")
    api.later(lambda: api.patch("/1.0", {"config": {"core.trust_password": ""}}))
    assert api.patch("/1.0", {"config": {"core.trust_password": password}}).status == 200
    yield


def issue_token(api: API, **fields: Any) -> dict[str, Any]:
    """A certificate add token operation (cancelled at teardown if still running)."""
    reply = api.post("/1.0/certificates", {"type": "client", "token": True, **fields})
    assert reply.status == 202, reply
    op: dict[str, Any] = reply.metadata
    api.later(lambda: api.delete(f"/1.0/operations/{op['id']}"))
    return op


def token_for(op: dict[str, Any], client_name: str = "") -> str:
    """The token string ``lxc`` prints: base64 of the add-token JSON."""
    meta = op["metadata"]
    data = {"client_name": client_name or meta["request"]["name"] or "client",
            "fingerprint": meta["fingerprint"], "addresses": meta["addresses"],
            "secret": meta["secret"], "expires_at": "0001-01-01T00:00:00Z"}
    return base64.b64encode(json.dumps(data).encode()).decode()


# -- add, list, show -----------------------------------------------------------------------
def test_add_list_and_show(api: API, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "c", common_name="root@probe")
    reply = add(api, cert)
    assert reply.status == 201
    assert reply.headers["Location"] == url(cert)
    assert reply.body["metadata"] is None
    assert url(cert) in api.get("/1.0/certificates").metadata
    got = api.get(url(cert))
    expected = {"name": "root@probe", "type": "client", "restricted": False, "projects": [],
                "certificate": cert.pem, "fingerprint": cert.fingerprint}
    assert got.metadata == expected
    assert list(got.metadata) == list(expected)
    assert got.headers["ETag"] == f'"{go_json_etag(got.metadata)}"'
    listed = api.get("/1.0/certificates", params={"recursion": "1"}).metadata
    assert [c for c in listed if c["fingerprint"] == cert.fingerprint] == [expected]


def test_add_named_restricted_and_trustme(api: API, tmp_path: Path) -> None:
    proj1, proj2 = project(api), project(api)
    cert = from_trustme(tmp_path, "tm")
    reply = add(api, cert, name="given", restricted=True, projects=[proj2, "default", proj1])
    assert reply.status == 201, reply
    got = api.get(url(cert)).metadata
    assert (got["name"], got["restricted"]) == ("given", True)
    assert got["projects"] == ["default", proj1, proj2]  # listed by project id


def test_duplicate_certificate(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "dup")
    assert add(api, cert).status == 201
    reply = add(api, cert, name="again")
    assert (reply.status, reply.error) == (409, "Certificate already in trust store")
    reply = tls.client(cert).post("/1.0/certificates", {"type": "client",
                                                        "certificate": cert.b64})
    assert (reply.status, reply.error) == (409, "Certificate already in trust store")
    assert api.get(url(cert)).metadata["name"] == "root@pytest"


def test_already_trusted_clients_need_a_certificate(api: API, tls: TLSTarget,
                                                    tmp_path: Path) -> None:
    for body in [{}, {"type": "client", "name": "x"}, {"type": "bogus"}]:
        reply = api.post("/1.0/certificates", body)
        assert (reply.status, reply.error) == (400, "Client is already trusted"), body
    cert = self_signed(tmp_path, "t")
    assert add(api, cert).status == 201
    reply = tls.client(cert).post("/1.0/certificates", {"type": "client", "password": "x"})
    assert (reply.status, reply.error) == (400, "Client is already trusted")


BAD_BASE64 = [("!!", 0), ("AAA", 0), ("AAAA!", 4), ("AA=A", 2), ("A===", 1), ("AAAA\nAA", 5),
              ("AA==AA", 4), ("AA=", 3), ("AAAA====", 4), ("AAAAA", 4), ("AAAAAAA=B", 8),
              ("é", 0)]


def test_bad_certificates(api: API, tmp_path: Path) -> None:
    for text, pos in BAD_BASE64:
        reply = api.post("/1.0/certificates", {"type": "client", "certificate": text})
        assert (reply.status, reply.error) == (400, f"illegal base64 data at input byte {pos}")
    good = self_signed(tmp_path, "good")
    reply = api.post("/1.0/certificates", {"type": "client", "certificate": good.pem})
    assert (reply.status, reply.error) == (400, "illegal base64 data at input byte 0")
    for text in ["AAAA", "AAAAAA==", "\nAAAA\n", "AA\n=\n="]:
        reply = api.post("/1.0/certificates", {"type": "client", "certificate": text})
        assert (reply.status, reply.error) == (
            400, "Invalid certificate material: x509: malformed certificate"), text
    past = self_signed(tmp_path, "expired", not_before=_utc(2001), days=10)
    future = self_signed(tmp_path, "future", not_before=_utc(2100), days=10)
    weak = self_signed(tmp_path, "weak", key="rsa1024")
    for cert, message in [(past, "The provided certificate is expired"),
                          (future, "The provided certificate isn't valid yet"),
                          (weak, "RSA key is too weak (minimum of 2048bit)")]:
        reply = add(api, cert)
        assert (reply.status, reply.error) == (400, message)
        assert api.get(url(cert)).status == 404


def _utc(year: int) -> Any:
    import datetime

    return datetime.datetime(year, 1, 1, tzinfo=datetime.timezone.utc)


def test_bad_fields(api: API, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "f", common_name="")
    for fields in [{"type": "bogus"}, {"type": ""}]:
        reply = add(api, cert, **fields)
        assert (reply.status, reply.error) == (400, "Invalid certificate type")
    reply = api.post("/1.0/certificates", {"type": "bogus", "certificate": "!!"})
    assert (reply.status, reply.error) == (400, "Invalid certificate type")
    reply = api.request("POST", "/1.0/certificates", data=b'{"type": 1}')
    assert (reply.status, reply.error) == (
        400, "json: cannot unmarshal number into Go struct field CertificatesPost.type of "
             "type string")
    reply = add(api, cert, name="x", projects=["nope"])
    assert (reply.status, reply.error) == (404, "Project not found")
    reply = add(api, cert, name="x", restricted=True, projects=["default", "default"])
    assert reply.status == 500
    assert reply.error.startswith('Failed to create "certificates_projects" entry: UNIQUE')
    assert api.get(url(cert)).status == 404
    # No name and no common name: LXD falls back to the client's address, "@" on unix.
    reply = add(api, cert)
    assert (reply.status, reply.error) == (500, "address @: missing port in address")
    assert api.get(url(cert)).status == 404


# -- lookup by prefix ----------------------------------------------------------------------
def test_prefix_lookup(api: API, tmp_path: Path) -> None:
    """A fingerprint prefix works as SQL ``LIKE 'prefix%'``: any case, ``_``/``%`` wildcards."""
    cert = self_signed(tmp_path, "p")
    assert add(api, cert).status == 201
    fp = cert.fingerprint
    for prefix in [fp[:12], fp[:10].upper(), f"{fp[:3]}_{fp[4:9]}",
                   urllib.parse.quote(f"{fp[:4]}%")]:
        got = api.get(f"/1.0/certificates/{prefix}")
        assert got.status == 200, prefix
        assert got.metadata["fingerprint"] == fp
    reply = api.get("/1.0/certificates/nope")
    assert (reply.status, reply.error) == (404, "Certificate not found")
    assert api.patch(f"/1.0/certificates/{fp[:8]}", {"name": "patched"}).status == 200
    assert api.get(url(cert)).metadata["name"] == "patched"
    assert api.delete(f"/1.0/certificates/{fp[:8]}").status == 200
    assert api.get(url(cert)).status == 404


def test_ambiguous_prefix(api: API, tmp_path: Path) -> None:
    seen: dict[str, ClientCert] = {}
    for i in range(300):
        cert = self_signed(tmp_path, f"a{i}")
        if cert.fingerprint[:2] in seen:
            pair = (seen[cert.fingerprint[:2]], cert)
            break
        seen[cert.fingerprint[:2]] = cert
    for cert in pair:
        assert add(api, cert).status == 201
    prefix = pair[0].fingerprint[:2]
    for method in ("GET", "PUT", "DELETE"):
        reply = api.request(method, f"/1.0/certificates/{prefix}", json_body={"type": "client"})
        assert (reply.status, reply.error) == (500, "More than one certificate matches")


# -- update --------------------------------------------------------------------------------
def test_put_and_patch(api: API, tmp_path: Path) -> None:
    proj = project(api)
    cert = self_signed(tmp_path, "u")
    assert add(api, cert, name="u").status == 201
    path = url(cert)
    reply = api.put(path, {"name": "n2", "type": "client", "restricted": True,
                           "projects": [proj]})
    assert reply.status == 200 and reply.metadata == {}
    got = api.get(path).metadata
    assert (got["name"], got["restricted"], got["projects"]) == ("n2", True, [proj])
    # PATCH merges; null empties projects but leaves strings and bools alone.
    assert api.patch(path, {"restricted": False}).status == 200
    assert api.get(path).metadata["projects"] == [proj]
    assert api.patch(path, {"projects": None, "name": None, "restricted": None}).status == 200
    got = api.get(path).metadata
    assert (got["name"], got["restricted"], got["projects"]) == ("n2", False, [])
    # PUT replaces: projects are kept even when unrestricted, an empty name is fine.
    assert api.put(path, {"type": "client", "projects": ["default"]}).status == 200
    got = api.get(path).metadata
    assert (got["name"], got["restricted"], got["projects"]) == ("", False, ["default"])
    assert got["certificate"] == cert.pem


def test_update_errors(api: API, tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "e")
    assert add(api, cert, name="e").status == 201
    path = url(cert)
    for body in [{"name": "e", "type": "metrics"}, {}, {"type": "bogus"}]:
        reply = api.put(path, body)
        assert (reply.status, reply.error) == (403, "The certificate type cannot be changed")
    etag = api.get(path).headers["ETag"].strip('"')
    for method in ("PUT", "PATCH"):
        reply = api.request(method, path, json_body={"type": "client"},
                            headers={"If-Match": '"stale"'})
        assert (reply.status, reply.error) == (412, f"ETag doesn't match: {etag} vs stale")
    reply = api.request("PUT", path, data=b"{")
    assert (reply.status, reply.error) == (400, "unexpected EOF")
    reply = api.request("PUT", path, data=b'{"name": 1}')
    assert reply.error == ("json: cannot unmarshal number into Go struct field "
                           "CertificatePut.name of type string")
    reply = api.request("PATCH", path, data=b'{"name": 1}')
    assert reply.error == ("json: cannot unmarshal number into Go struct field "
                           "Certificate.name of type string")
    reply = api.put(path, {"name": "e", "type": "client", "projects": ["nope"]})
    assert (reply.status, reply.error) == (404, "Project not found")
    reply = api.put(path, {"name": "e", "type": "client", "restricted": True,
                           "projects": ["default", "default"]})
    assert reply.status == 500 and "UNIQUE constraint failed" in reply.error
    for method in ("PUT", "PATCH", "DELETE"):
        reply = api.request(method, "/1.0/certificates/nope", data=b"{")
        assert (reply.status, reply.error) == (404, "Certificate not found"), method
    got = api.get(path)
    assert got.headers["ETag"].strip('"') == etag
    assert (got.metadata["name"], got.metadata["projects"]) == ("e", [])


def test_put_replaces_the_certificate(api: API, tmp_path: Path) -> None:
    old, new, taken = (self_signed(tmp_path, n) for n in ("old", "new", "taken"))
    assert add(api, old, name="keep").status == 201
    assert add(api, taken).status == 201
    api.delete_later(url(new))
    reply = api.put(url(old), {"name": "keep", "type": "client", "certificate": taken.pem})
    assert (reply.status, reply.error) == (
        500, 'Update "certificates" entry failed: UNIQUE constraint failed: '
             "certificates.fingerprint")
    reply = api.put(url(old), {"name": "keep", "type": "client", "certificate": new.pem})
    assert reply.status == 200
    assert api.get(url(old)).status == 404
    got = api.get(url(new)).metadata
    assert (got["name"], got["certificate"], got["fingerprint"]) == \
        ("keep", new.pem, new.fingerprint)


def test_put_with_a_certificate_that_is_not_pem_drops_the_connection(api: API,
                                                                     tmp_path: Path) -> None:
    """LXD 5.0.2 dereferences a nil PEM block: the handler panics, Go's HTTP server recovers
    and closes the connection without answering. Nothing changes."""
    cert = self_signed(tmp_path, "np")
    assert add(api, cert, name="np").status == 201
    with pytest.raises(requests.ConnectionError):
        api.put(url(cert), {"name": "x", "type": "client", "certificate": "garbage"})
    assert api.get(url(cert)).metadata["name"] == "np"


# -- passwords -----------------------------------------------------------------------------
def test_trust_password(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    first = self_signed(tmp_path, "first", common_name="root@first")
    nocn = self_signed(tmp_path, "nocn", common_name="")
    other = from_trustme(tmp_path, "other")
    for cert in (first, nocn, other):
        api.delete_later(url(cert))
    client = tls.client(first)
    reply = client.post("/1.0/certificates", {"type": "client", "password": "pw1"})
    assert (reply.status, reply.error) == NOT_AUTHORIZED  # no trust password set at all
    with trust_password(api, "pw1"):
        assert api.get("/1.0").metadata["config"]["core.trust_password"] is True
        for body in [{"type": "client", "password": "wrong"}, {"type": "client"},
                     {"type": "client", "password": "pw1", "token": True}]:
            reply = client.post("/1.0/certificates", body)
            assert (reply.status, reply.error) == NOT_AUTHORIZED, body
        reply = client.post("/1.0/certificates", {"password": "pw1"})
        assert (reply.status, reply.error) == (400, "Invalid certificate type")
        reply = tls.client(None).post("/1.0/certificates", {"type": "client",
                                                            "password": "pw1"})
        assert (reply.status, reply.error) == (400, "No client certificate provided")
        reply = client.post("/1.0/certificates", {"type": "client", "password": "pw1"})
        assert reply.status == 201
        assert reply.headers["Location"] == url(first)
        assert api.get(url(first)).metadata["name"] == "root@first"
        assert client.get("/1.0").metadata["auth"] == "trusted"
        # Without a common name the certificate is named after the client's address.
        reply = tls.client(nocn).post("/1.0/certificates", {"type": "client",
                                                            "password": "pw1"})
        assert reply.status == 201
        assert api.get(url(nocn)).metadata["name"] == tls.address.rpartition(":")[0]
        # A password and a certificate: that certificate is added, not the caller's.
        stranger = tls.client(self_signed(tmp_path, "stranger"))
        reply = stranger.post("/1.0/certificates", {
            "type": "client", "password": "pw1", "certificate": other.b64, "name": "other",
            "restricted": True, "projects": ["default"]})
        assert reply.status == 201 and reply.headers["Location"] == url(other)
        got = api.get(url(other)).metadata
        assert (got["name"], got["restricted"], got["projects"]) == ("other", True, ["default"])
        assert stranger.get("/1.0/certificates").status == 403


# -- tokens --------------------------------------------------------------------------------
def test_token_operation(api: API, tls: TLSTarget) -> None:
    op = issue_token(api, name=unique("tk"), restricted=True, projects=["default"])
    assert (op["class"], op["description"], op["status"], op["status_code"]) == \
        ("token", "Executing operation", "Running", 103)
    assert (op["resources"], op["may_cancel"], op["err"]) == (None, True, "")
    meta = op["metadata"]
    assert list(meta) == ["addresses", "fingerprint", "request", "secret"]
    assert meta["addresses"] == [tls.address]
    env = api.get("/1.0").metadata["environment"]
    assert meta["fingerprint"] == env["certificate_fingerprint"]
    assert meta["request"] == {"name": op["metadata"]["request"]["name"], "type": "client",
                               "restricted": True, "projects": ["default"], "certificate": "",
                               "password": "", "token": True}
    assert re.fullmatch("[0-9a-f]{64}", meta["secret"])
    got = api.get(f"/1.0/operations/{op['id']}").metadata
    assert (got["status"], got["metadata"]) == ("Running", meta)
    bare = issue_token(api, projects=None, password="kept")
    assert bare["metadata"]["request"] == {"name": "", "type": "client", "restricted": False,
                                           "projects": [], "certificate": "",
                                           "password": "kept", "token": True}


def test_token_refusals(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    for body, message in [
        ({"token": True, "certificate": "x"}, "Can't use certificate if token is requested"),
        ({"token": True, "type": "metrics"}, "Tokens can only be issued for client "
                                             "certificates"),
        ({"token": True}, "Tokens can only be issued for client certificates"),
    ]:
        reply = api.post("/1.0/certificates", body)
        assert (reply.status, reply.error) == (400, message), body
    stranger = tls.client(self_signed(tmp_path, "s"))
    reply = stranger.post("/1.0/certificates", {"type": "client", "token": True})
    assert (reply.status, reply.error) == NOT_AUTHORIZED
    reply = stranger.post("/1.0/certificates", {"type": "bogus", "token": True})
    assert (reply.status, reply.error) == (400, "Tokens can only be issued for client "
                                                "certificates")


def test_token_flow(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    name = unique("tk")
    op = issue_token(api, name=name, restricted=True, projects=["default"])
    joiner, late = self_signed(tmp_path, "joiner"), self_signed(tmp_path, "late")
    for cert in (joiner, late):
        api.delete_later(url(cert))
    client = tls.client(joiner)
    # The bare secret is no token: it falls through to the trust password check.
    reply = client.post("/1.0/certificates", {"type": "client",
                                              "password": op["metadata"]["secret"]})
    assert (reply.status, reply.error) == NOT_AUTHORIZED
    forged = dict(op, metadata={**op["metadata"], "secret": "0" * 64})
    reply = client.post("/1.0/certificates", {"type": "client", "password": token_for(forged)})
    assert (reply.status, reply.error) == NO_TOKEN
    # The token decides name, type and restrictions; the body's own are ignored.
    reply = client.post("/1.0/certificates", {"password": token_for(op, "anything"),
                                              "name": "ignored", "type": "bogus",
                                              "certificate": late.b64})
    assert reply.status == 201, reply
    assert reply.headers["Location"] == url(joiner)
    got = api.get(url(joiner)).metadata
    assert (got["name"], got["type"], got["restricted"], got["projects"]) == \
        (name, "client", True, ["default"])
    assert api.get(url(late)).status == 404
    assert client.get("/1.0/certificates").status == 200
    used = api.get(f"/1.0/operations/{op['id']}").metadata
    assert (used["status"], used["status_code"]) == ("Cancelled", 401)
    reply = tls.client(late).post("/1.0/certificates", {"type": "client",
                                                        "password": token_for(op)})
    assert (reply.status, reply.error) == NO_TOKEN


def test_cancelled_token_cannot_be_used(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    op = issue_token(api, name=unique("tk"))
    cert = self_signed(tmp_path, "c")
    api.delete_later(url(cert))
    assert api.delete(f"/1.0/operations/{op['id']}").status == 200
    reply = tls.client(cert).post("/1.0/certificates", {"type": "client",
                                                        "password": token_for(op)})
    assert (reply.status, reply.error) == NO_TOKEN
    assert api.get(url(cert)).status == 404


@pytest.mark.fake_only
def test_token_needs_an_https_address(api: API) -> None:
    """Fake only: unsetting ``core.https_address`` on the real host would stop the HTTPS
    listener that other tests use. (The fake keeps listening; only the config changes.)"""
    before = api.get("/1.0").metadata["config"]
    api.later(lambda: api.put("/1.0", {"config": before}))
    assert api.patch("/1.0", {"config": {"core.https_address": ""}}).status == 200
    reply = api.post("/1.0/certificates", {"type": "client", "token": True})
    assert (reply.status, reply.error) == (
        400, "Can't issue token when server isn't listening on network")


# -- events --------------------------------------------------------------------------------
def _socket_path(api: API) -> str:
    return urllib.parse.unquote(api.base[len("http+unix://"):])


def _lifecycle(ws: ClientConnection, wanted: set[str],
               timeout: float = 10.0) -> list[dict[str, Any]]:
    """Lifecycle events whose source mentions one of ``wanted``, until none arrives for 0.5 s
    after the last match (or ``timeout``)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = ws.recv(timeout=0.5 if found else deadline - time.monotonic())
        except TimeoutError:
            break
        event = json.loads(message)
        meta = event["metadata"]
        if any(w in meta.get("source", "") for w in wanted):
            found.append(meta)
    return found


def test_lifecycle_events(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    first, second = self_signed(tmp_path, "ev1"), self_signed(tmp_path, "ev2")
    with unix_connect(_socket_path(api), "ws://localhost/1.0/events?type=lifecycle",
                      open_timeout=10, close_timeout=2) as ws:
        time.sleep(0.2)
        assert add(api, first).status == 201
        assert api.patch(f"/1.0/certificates/{first.fingerprint[:12]}", {"name": "e"}).status \
            == 200
        client = tls.client(first)
        assert client.post("/1.0/certificates", {"type": "client",
                                                 "certificate": second.b64}).status == 201
        assert client.delete(f"/1.0/certificates/{second.fingerprint[:12]}").status == 200
        events = _lifecycle(ws, {first.fingerprint[:12], second.fingerprint[:12]})
    unix = {"username": "root", "protocol": "unix", "address": "@"}
    assert [(e["action"], e["source"]) for e in events] == [
        ("certificate-created", url(first)),
        ("certificate-updated", url(first)),
        ("certificate-created", url(second)),
        ("certificate-deleted", f"/1.0/certificates/{second.fingerprint[:12]}"),
    ]
    assert events[0]["requestor"] == events[1]["requestor"] == unix
    tls_requestor = events[2]["requestor"]
    assert (tls_requestor["username"], tls_requestor["protocol"]) == (first.fingerprint, "tls")
    assert tls_requestor["address"].startswith(tls.address.rpartition(":")[0] + ":")


def test_token_redeem_events(api: API, tls: TLSTarget, tmp_path: Path) -> None:
    """An untrusted redeemer shows as an empty requestor; the token is cancelled first."""
    cert = self_signed(tmp_path, "rd")
    api.delete_later(url(cert))
    op = issue_token(api, name=unique("tk"))
    with unix_connect(_socket_path(api), "ws://localhost/1.0/events?type=lifecycle",
                      open_timeout=10, close_timeout=2) as ws:
        time.sleep(0.2)
        reply = tls.client(cert).post("/1.0/certificates", {"password": token_for(op)})
        assert reply.status == 201
        events = _lifecycle(ws, {op["id"], cert.fingerprint})
    assert [(e["action"], e["source"]) for e in events] == [
        ("operation-cancelled", f"/1.0/operations/{op['id']}"),
        ("certificate-created", url(cert)),
    ]
    for event in events:
        requestor = event["requestor"]
        assert (requestor["username"], requestor["protocol"]) == ("", "")
        assert requestor["address"].startswith(tls.address.rpartition(":")[0] + ":")
