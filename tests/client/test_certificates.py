"""Trusted certificates through the client: list, add (PEM), edit, tokens, remove."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pytest_lxd import exceptions
from tests.tlsutil import self_signed

from .conftest import LXDEnv


def test_create_get_save_delete(lxd: LXDEnv, tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    name = lxd.unique("cert")
    created = lxd.client.certificates.create("", Path(cert.cert_file).read_bytes(), name=name)
    lxd.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    assert created.fingerprint == cert.fingerprint
    assert (created.name, created.type, created.restricted) == (name, "client", False)
    assert created.certificate.strip() == cert.pem.strip()
    assert created.etag
    certs = lxd.client.certificates
    assert created in certs.all()
    assert certs.exists(cert.fingerprint)
    assert certs.get(cert.fingerprint[:12]) == created  # a prefix works too
    created.name = name + "-renamed"
    created.save()
    assert certs.get(cert.fingerprint).name == name + "-renamed"
    created.delete()
    assert not certs.exists(cert.fingerprint)
    with pytest.raises(exceptions.NotFound, match="Certificate not found"):
        certs.get(cert.fingerprint)


def test_restricted_certificate(lxd: LXDEnv, tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    created = lxd.client.certificates.create("", cert.pem, name=lxd.unique("cert"),
                                             projects=["default"], restricted=True)
    lxd.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    assert created.restricted is True and created.projects == ["default"]


def test_duplicate_is_a_conflict(lxd: LXDEnv, tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    lxd.client.certificates.create("", cert.pem, name=lxd.unique("cert"))
    lxd.delete_later(f"/1.0/certificates/{cert.fingerprint}")
    with pytest.raises(exceptions.Conflict, match="Certificate already in trust store"):
        lxd.client.certificates.create("", cert.pem, name=lxd.unique("cert"))


def test_bad_pem_is_refused_before_sending(lxd: LXDEnv) -> None:
    with pytest.raises(ValueError, match="PEM"):
        lxd.client.certificates.create("", b"not a certificate")


def test_create_token(lxd: LXDEnv) -> None:
    name = lxd.unique("tok")
    token = lxd.client.certificates.create_token(name=name)
    data = json.loads(base64.b64decode(token))
    assert data["client_name"] == name
    assert data["fingerprint"] == lxd.client.host_info["environment"]["certificate_fingerprint"]
    assert len(data["secret"]) == 64
    assert data["addresses"]
    pending = [op for op in lxd.client.operations.all()
               if op.class_ == "token" and (op.metadata or {}).get("secret") == data["secret"]]
    assert len(pending) == 1 and pending[0].status == "Running"
    pending[0].cancel()
    assert pending[0].status == "Cancelled"
