"""Trusted certificates: ``client.certificates``."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, ClassVar

from .. import exceptions
from ..operations import handle_async
from ..transport import pem_to_der
from .base import Manager, Model, name_from_url

if TYPE_CHECKING:
    from ..client import APINode

__all__ = ["Certificate", "CertificateManager"]


class Certificate(Model):
    """A trusted certificate, keyed by ``fingerprint``.

    Writable: ``name``, ``type``, ``restricted``, ``projects``, ``certificate``.
    """

    fingerprint: str
    certificate: str
    type: str
    name: str
    projects: list[str]
    restricted: bool

    _key: ClassVar[tuple[str, ...]] = ("fingerprint",)
    _writable: ClassVar[tuple[str, ...]] = ("name", "type", "restricted", "projects",
                                            "certificate")

    @property
    def api(self) -> APINode:
        return self.client.api.certificates[self.fingerprint]


def _certificate_b64(cert_data: bytes | str) -> str:
    """LXD wants the certificate as base64 DER (PEM without its armour)."""
    try:
        return base64.b64encode(pem_to_der(cert_data)).decode()
    except ValueError:
        raise ValueError("cert_data must be a PEM certificate") from None


class CertificateManager(Manager):
    """``client.certificates``."""

    def all(self, recursion: int = 0) -> list[Certificate]:
        return self._list(Certificate, self.client.api.certificates, recursion,
                          key="fingerprint")

    def get(self, fingerprint: str) -> Certificate:
        """The certificate with this fingerprint (a unique prefix works too)."""
        return self._fetch(Certificate, self.client.api.certificates[fingerprint])

    def exists(self, fingerprint: str) -> bool:
        return self._exists(self.get, fingerprint)

    def create(self, password: str, cert_data: bytes | str, cert_type: str = "client",
               name: str = "", projects: list[str] | None = None, restricted: bool = False,
               secret: str = "") -> Certificate:
        """Trust a certificate (PEM ``cert_data``) and return it.

        ``password`` is the trust password (not needed over the unix socket); ``secret`` a
        trust token, sent as ``trust_token`` where the server has ``explicit_trust_token``.
        """
        body: dict[str, Any] = {"type": cert_type, "certificate": _certificate_b64(cert_data),
                                "name": name, "restricted": restricted}
        if projects is not None:
            body["projects"] = projects
        if secret and self.client.has_api_extension("explicit_trust_token"):
            body["trust_token"] = secret
        elif password or secret:
            body["password"] = password or secret
        response = self.client.api.certificates.post(json=body)
        handle_async(self.client, response, True)
        location = response.headers.get("Location")
        if not location:
            raise exceptions.LXDAPIException(response, "no Location in the certificate reply")
        return self.get(name_from_url(location))

    def create_token(self, name: str = "", projects: list[str] | None = None,
                     restricted: bool = False) -> str:
        """A trust token for a new client (``lxc config trust add``), as a base64 string."""
        self.client.assert_has_api_extension("certificate_token")
        body: dict[str, Any] = {"type": "client", "token": True, "name": name,
                                "restricted": restricted}
        if projects is not None:
            body["projects"] = projects
        response = self.client.api.certificates.post(json=body)
        metadata = response.json()["metadata"]["metadata"]
        token = {"client_name": name, "fingerprint": metadata["fingerprint"],
                 "addresses": metadata["addresses"], "secret": metadata["secret"]}
        if metadata.get("expires_at"):
            token["expires_at"] = metadata["expires_at"]
        encoded = json.dumps(token, separators=(",", ":")).encode()
        return base64.b64encode(encoded).decode()
