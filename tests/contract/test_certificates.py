"""Trusted certificates (global): add, get (also by a fingerprint prefix), all, exists, change
+ dirty + save, sync, rollback, delete, errors; trust tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import Certificate
from tests.tlsutil import ClientCert, self_signed


@pytest.fixture
def cert(tmp_path: Path) -> ClientCert:
    return self_signed(tmp_path, "contract")


def test_add_get_all_exists(lxd_client: Client, lxd_backend: LXDBackend,
                            cert: ClientCert) -> None:
    name = lxd_backend.unique("cert")
    added = lxd_client.certificates.create("", Path(cert.cert_file).read_bytes(), name=name)
    assert isinstance(added, Certificate)
    assert (added.fingerprint, added.name, added.type) == (cert.fingerprint, name, "client")
    assert (added.restricted, added.projects) == (False, [])
    assert added.certificate.strip() == cert.pem.strip()
    assert lxd_client.certificates.get(cert.fingerprint) == added
    assert lxd_client.certificates.get(cert.fingerprint[:12]).name == name  # a prefix
    assert cert.fingerprint in [c.fingerprint for c in lxd_client.certificates.all()]
    assert lxd_client.certificates.exists(cert.fingerprint)
    assert not lxd_client.certificates.exists("0" * 64)


def test_change_dirty_save_sync_rollback_delete(lxd_client: Client, lxd_backend: LXDBackend,
                                                cert: ClientCert) -> None:
    added = lxd_client.certificates.create("", Path(cert.cert_file).read_bytes(),
                                           name=lxd_backend.unique("cert"))
    added.restricted = True
    added.projects = [lxd_backend.project]
    assert added.dirty_fields == ["restricted", "projects"]
    added.save()
    assert not added.dirty
    fresh = lxd_client.certificates.get(cert.fingerprint)
    assert (fresh.restricted, fresh.projects) == (True, [lxd_backend.project])
    added.name = "local only"
    added.rollback()
    assert added.name == fresh.name and not added.dirty
    theirs = lxd_backend.client().certificates.get(cert.fingerprint)
    theirs.name = lxd_backend.unique("theirs")
    theirs.save()
    added.name = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        added.save()
    added.sync()
    assert added.name == theirs.name and not added.dirty
    added.delete()
    assert not lxd_client.certificates.exists(cert.fingerprint)


def test_errors(lxd_client: Client, lxd_backend: LXDBackend, cert: ClientCert) -> None:
    with pytest.raises(exceptions.NotFound, match="Certificate not found"):
        lxd_client.certificates.get("0" * 64)
    pem = Path(cert.cert_file).read_bytes()
    lxd_client.certificates.create("", pem, name=lxd_backend.unique("cert"))
    with pytest.raises(exceptions.Conflict, match="Certificate already in trust store"):
        lxd_client.certificates.create("", pem, name=lxd_backend.unique("cert"))
    with pytest.raises(ValueError, match="cert_data must be a PEM certificate"):
        lxd_client.certificates.create("", b"not a certificate")


def test_trust_token(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    """A token is a pending ``token`` operation until used or cancelled."""
    name = lxd_backend.unique("tok")
    token = lxd_client.certificates.create_token(name=name)
    assert isinstance(token, str) and len(token) > 40
    # a token belongs to no project: LXD lists its operation in the default project's
    listed = lxd_backend.client(project=None).operations.all()
    assert [op.metadata["request"]["name"] for op in listed
            if op.class_ == "token" and op.status == "Running" and op.metadata
            and "request" in op.metadata].count(name) == 1
