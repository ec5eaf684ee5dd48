"""TLS test helpers: client certificates (self-signed EC as ``lxc`` makes, or trustme-issued)
and each backend's HTTPS endpoint.

Each certificate helper writes ``<name>.crt`` / ``<name>.key`` into a directory and returns a
:class:`ClientCert` whose ``pair`` goes straight into ``requests``' ``cert=``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import API


@dataclass(frozen=True)
class ClientCert:
    """A client certificate on disk: PEM files, its DER and its LXD fingerprint."""

    cert_file: str
    key_file: str
    der: bytes

    @property
    def pair(self) -> tuple[str, str]:
        return self.cert_file, self.key_file

    @property
    def fingerprint(self) -> str:
        """sha256 of the DER, lowercase hex: what LXD calls the fingerprint."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def b64(self) -> str:
        """The certificate as ``CertificatesPost.certificate`` wants it: base64 DER, no armor."""
        return base64.b64encode(self.der).decode()

    @property
    def pem(self) -> str:
        return x509.load_der_x509_certificate(self.der).public_bytes(
            serialization.Encoding.PEM).decode()


def _write(directory: Path, name: str, cert: x509.Certificate, key_pem: bytes) -> ClientCert:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{name}.crt"
    key_file = directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key_pem)
    return ClientCert(str(cert_file), str(key_file), cert.public_bytes(serialization.Encoding.DER))


def self_signed(directory: str | Path, name: str = "client", *, common_name: str = "root@pytest",
                days: int = 3650, not_before: datetime.datetime | None = None,
                key: str = "ec") -> ClientCert:
    """A self-signed client certificate like ``lxc`` generates (ECDSA P-384, SHA-384).

    ``key="rsa1024"`` makes a weak RSA key (LXD refuses those); ``not_before`` / ``days``
    shift validity (an expired certificate is refused too).
    """
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key == "ec":
        private = ec.generate_private_key(ec.SECP384R1())
        digest: hashes.SHA256 | hashes.SHA384 = hashes.SHA384()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=int(key[3:]))
        digest = hashes.SHA256()
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        minutes=5)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "linuxcontainers.org")]
    if common_name:  # "" leaves the CN out (LXD then names the certificate by address)
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    cert = builder.sign(private, digest)
    key_pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    return _write(Path(directory), name, cert, key_pem)


def from_trustme(directory: str | Path, name: str = "tm-client",
                 ca: trustme.CA | None = None, common_name: str = "trustme-client") -> ClientCert:
    """A client certificate issued by a (fresh, unknown to the server) trustme CA."""
    ca = ca or trustme.CA(organization_name="pytest-lxd client CA")
    leaf = ca.issue_cert("client.invalid", common_name=common_name)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return _write(Path(directory), name, cert, leaf.private_key_pem.bytes())


@dataclass(frozen=True)
class TLSTarget:
    """A backend's HTTPS endpoint: the fake verifies against its CA, the real host's
    self-signed certificate is not verified."""

    kind: str
    url: str
    verify: bool | str
    address: str  # core.https_address

    def client(self, cert: ClientCert | None = None) -> API:
        """Raw REST over HTTPS, presenting ``cert`` (or no client certificate)."""
        return API.https(self.kind, self.url, cert.pair if cert else None, self.verify)


def tls_target(api: API) -> TLSTarget:
    """Where ``api``'s backend listens for HTTPS (from its ``core.https_address``)."""
    if api.is_fake:
        server = api.server  # type: ignore[attr-defined]
        host, port = server.https_address
        return TLSTarget("fake", server.https_url, server.ca_file, f"{host}:{port}")
    address = api.get("/1.0").metadata["config"].get("core.https_address", "")
    assert address, "the real host does not listen on HTTPS (core.https_address unset)"
    return TLSTarget("real", f"https://{address}", False, address)
