"""Compatibility tests: unmodified third-party clients (pylxd, the ``lxc`` CLI) on both backends.

Helpers shared by the modules here: where a backend listens, and client certificates.
"""

from __future__ import annotations

import datetime
import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import API


def socket_path(api: API) -> str:
    """The unix socket behind an ``api`` fixture (fake or real)."""
    return urllib.parse.unquote(api.base.removeprefix("http+unix://"))


@dataclass(frozen=True)
class ClientCert:
    cert_file: str
    key_file: str
    pem: bytes

    @property
    def pair(self) -> tuple[str, str]:
        return self.cert_file, self.key_file

    @property
    def fingerprint(self) -> str:
        der = x509.load_pem_x509_certificate(self.pem).public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest()


def client_cert(directory: Path, name: str = "client") -> ClientCert:
    """A self-signed EC client certificate, as ``lxc`` makes for itself."""
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pytest-lxd"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{name}@pytest-lxd")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA384()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ClientCert(str(cert_file), str(key_file), pem)
