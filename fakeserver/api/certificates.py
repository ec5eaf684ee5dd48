"""``/1.0/certificates``: the TLS trust store, trust passwords, add tokens and restricted clients.

LXD 5.0.2 trusts an HTTPS client whose certificate fingerprint (sha256 of the DER) is in the
store with type ``client`` (``metrics`` ones only on ``/1.0/metrics``); the unix socket is
always trusted. A restricted certificate (``restricted: true``) may only use the projects it
lists: :func:`check_restricted` enforces that for every route, as LXD's access handlers do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..operations import Operation
from ..responses import LXDError
from ..schema import BOOL, LIST_STR, STR, Struct, first_value
from ..state import State
from . import Route, route

CERTIFICATES_POST = Struct("CertificatesPost", name=STR, type=STR, restricted=BOOL,
                           projects=LIST_STR, certificate=STR, password=STR, token=BOOL)
CERTIFICATE_PUT = Struct("CertificatePut", name=STR, type=STR, restricted=BOOL,
                         projects=LIST_STR, certificate=STR)
CERTIFICATE = CERTIFICATE_PUT.extend("Certificate", fingerprint=STR)  # what PATCH decodes into
TYPES = ("client", "metrics")
TOKEN_KIND = "Executing operation"  # LXD has no description of its own for the add token

DUPLICATE_PROJECT = ('Failed to create "certificates_projects" entry: UNIQUE constraint failed: '
                     "certificates_projects.certificate_id, certificates_projects.project_id")
DUPLICATE_FINGERPRINT = ('Update "certificates" entry failed: UNIQUE constraint failed: '
                         "certificates.fingerprint")


# -- rendering ---------------------------------------------------------------------------
def _projects(state: State, names: list[str]) -> list[str]:
    """A certificate's projects as LXD lists them: by project id (creation order)."""
    wanted = set(names)
    return [name for name in state.family("projects") if name in wanted]


def render(state: State, cert: dict[str, Any]) -> dict[str, Any]:
    return {"name": cert["name"], "type": cert["type"], "restricted": cert["restricted"],
            "projects": _projects(state, cert["projects"]), "certificate": cert["certificate"],
            "fingerprint": cert["fingerprint"]}


def etag(rendered: dict[str, Any]) -> str:
    """LXD hashes the whole Certificate struct: Go JSON in field order, plus a newline."""
    text = json.dumps(rendered, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return hashlib.sha256((text + "\n").encode()).hexdigest()


def _url(fingerprint: str) -> str:
    return f"/1.0/certificates/{fingerprint}"


def _requestor(ctx: Ctx) -> dict[str, str]:
    """Untrusted requests (password or token) carry an empty requestor, as in LXD."""
    if ctx.trusted:
        return ctx.requestor
    return {"username": "", "protocol": "", "address": ctx.address}


def _lifecycle(ctx: Ctx, action: str, source: str) -> None:
    ctx.events.lifecycle(action, source, "default", None, _requestor(ctx))


# -- decoding certificates as Go does ----------------------------------------------------
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_b64decode(text: str) -> bytes:
    """``base64.StdEncoding.DecodeString``: newlines skipped, Go's error positions."""
    src = text.encode()
    clean = bytearray()
    si, end = 0, len(src)

    def corrupt(pos: int) -> LXDError:
        return LXDError(400, f"illegal base64 data at input byte {pos}")

    while True:
        j = 0
        while j < 4:
            if si == end:
                if j == 0:
                    return base64.b64decode(bytes(clean))
                raise corrupt(si - j)
            char = src[si]
            si += 1
            if char in (0x0A, 0x0D):
                continue
            if char in _B64:
                clean.append(char)
                j += 1
                continue
            if char != 0x3D or j < 2:  # not "=", or padding too early
                raise corrupt(si - 1)
            if j == 2:  # "==" expected: the second one must follow (newlines aside)
                while si < end and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == end:
                    raise corrupt(end)
                if src[si] != 0x3D:
                    raise corrupt(si - 1)
                si += 1
            while si < end and src[si] in (0x0A, 0x0D):
                si += 1
            if si < end:
                raise corrupt(si)  # trailing garbage after the padding
            clean.extend(b"=" * (4 - j))
            return base64.b64decode(bytes(clean))


_PEM = re.compile(rb"-----BEGIN ([^\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)


def pem_block(text: str) -> bytes | None:
    """The bytes of the first PEM block, of any type (Go's ``pem.Decode``), or None."""
    for match in _PEM.finditer(text.encode()):
        body = match.group(2)
        if b":" in body.split(b"\n\n")[0] and b"\n\n" in body:
            body = body.split(b"\n\n", 1)[1]  # PEM headers
        try:
            return base64.b64decode(b"".join(body.split()), validate=True)
        except ValueError:
            continue
    return None


def parse(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise LXDError(400, "Invalid certificate material: x509: malformed certificate") from None


def validate(cert: x509.Certificate) -> None:
    """LXD's ``certificateValidate``: in its validity period, RSA keys of 2048 bits or more."""
    now = datetime.now(timezone.utc)
    if now < cert.not_valid_before_utc:
        raise LXDError(400, "The provided certificate isn't valid yet")
    if now > cert.not_valid_after_utc:
        raise LXDError(400, "The provided certificate is expired")
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise LXDError(400, "RSA key is too weak (minimum of 2048bit)")


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode()


# -- the store ---------------------------------------------------------------------------
def lookup(state: State, prefix: str) -> dict[str, Any]:
    """A certificate by fingerprint prefix, matched as LXD's SQL ``LIKE 'prefix%'`` does
    (ASCII case-insensitive; ``%`` and ``_`` are wildcards)."""
    certs: dict[str, dict[str, Any]] = state.family("certificates")
    if prefix in certs:
        return certs[prefix]
    pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
                      for ch in prefix)
    regex = re.compile(pattern + ".*", re.I | re.S)
    found = [cert for fp, cert in certs.items() if regex.fullmatch(fp)]
    if len(found) > 1:
        raise LXDError(500, "More than one certificate matches")
    if not found:
        raise LXDError(404, "Certificate not found")
    return found[0]


def check_projects(state: State, projects: list[str]) -> None:
    """LXD links each project in turn: a missing one is 404, a repeated one a DB error."""
    known = state.family("projects")
    seen: set[str] = set()
    for name in projects:
        if name not in known:
            raise LXDError(404, "Project not found")
        if name in seen:
            raise LXDError(500, DUPLICATE_PROJECT)
        seen.add(name)


def add(state: State, cert: x509.Certificate, name: str, cert_type: str = "client",
        restricted: bool = False, projects: list[str] | None = None) -> str:
    """Put ``cert`` in the trust store (no checks); returns its fingerprint."""
    fingerprint = _fingerprint(cert)
    with state.lock:
        state.family("certificates")[fingerprint] = {
            "name": name, "type": cert_type, "restricted": restricted,
            "projects": list(projects or []), "certificate": _pem(cert),
            "fingerprint": fingerprint}
    return fingerprint


# -- restricted clients ------------------------------------------------------------------
_ANY_METHOD = re.compile(r"/1\.0/(certificates|operations)(/.*)?|/1\.0/cluster/groups")
_GET_ONLY = re.compile(r"/1\.0/(events|resources(/.*)?|cluster(/.*)?|projects"
                       r"|storage-pools(/[^/]+)?(/resources)?)")
_PROJECT = re.compile(r"/1\.0/projects/([^/]+)(/state)?")
_IN_PROJECT = re.compile(r"/1\.0/(instances|containers|virtual-machines|profiles|images|networks"
                         r"|network-acls|network-zones|storage-pools/[^/]+/volumes)(/.*)?")


def check_restricted(ctx: Ctx, item: Route) -> None:
    """403 ``not authorized`` where LXD 5.0.2 refuses a restricted client certificate.

    Any trusted client may use the trust store, operations, events, resources, cluster and
    storage pool reads; project-scoped endpoints need ``?project=`` (default ``default``) in
    the certificate's projects; everything else (server config, project and pool changes,
    warnings) is for unrestricted clients only. Routes open to untrusted clients decide in
    their handler (``ctx.restricted``).
    """
    allowed = ctx.restricted or []
    if item.untrusted:
        # The image routes serve untrusted clients too: a restricted certificate outside its
        # projects gets what an untrusted client gets (public images only), as in LXD.
        if item.path.startswith("/1.0/images") and ctx.project not in allowed:
            ctx.trusted = False
        return
    path = ctx.request.path
    reading = ctx.request.method in ("GET", "HEAD")
    if _ANY_METHOD.fullmatch(path) or (reading and _GET_ONLY.fullmatch(path)):
        return
    match = _PROJECT.fullmatch(path)
    if match and reading:
        if match.group(1) in allowed:
            return
        raise responses.forbidden()
    if _IN_PROJECT.fullmatch(path) and ctx.project in allowed:
        return
    raise responses.forbidden()


# -- tokens ------------------------------------------------------------------------------
def _decode_token(text: str) -> dict[str, Any] | None:
    """A certificate add token (base64 JSON), or None when ``text`` is not one."""
    try:
        data = json.loads(go_b64decode(text))
    except (LXDError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    fields = {key.lower(): value for key, value in data.items()}
    strings = [fields.get(key) for key in ("client_name", "fingerprint", "secret")]
    addresses = fields.get("addresses")
    if not all(isinstance(value, str) and value for value in strings):
        return None
    if not isinstance(addresses, list) or not addresses or \
            not all(isinstance(a, str) for a in addresses):
        return None
    if fields.get("expires_at") is not None and not isinstance(fields["expires_at"], str):
        return None
    return {"client_name": strings[0], "fingerprint": strings[1], "secret": strings[2],
            "addresses": addresses}


def _token_op(ctx: Ctx, secret: str) -> Operation | None:
    for op in ctx.ops.all():
        meta = op.metadata
        if (op.cls == "token" and op.description == TOKEN_KIND and not op.final
                and isinstance(meta, dict) and "request" in meta
                and meta.get("secret") == secret):
            return op
    return None


def _issue_token(ctx: Ctx, body: dict[str, Any], address: str) -> Response:
    request = {"name": body["name"], "type": body["type"], "restricted": body["restricted"],
               "projects": list(body["projects"]), "certificate": body["certificate"],
               "password": body["password"], "token": body["token"]}
    metadata = {"addresses": [address], "fingerprint": ctx.server.tls.fingerprint,
                "request": request, "secret": secrets.token_hex(32)}
    op = ctx.ops.create(TOKEN_KIND, None, project="default", cls="token", metadata=metadata,
                        may_cancel=True)
    return ctx.async_reply(op)


def _redeem(ctx: Ctx, token: dict[str, Any]) -> dict[str, Any]:
    """Use up the matching add token; the new certificate takes its fields from the token."""
    op = _token_op(ctx, token["secret"])
    if op is None:
        raise LXDError(403, "No matching certificate add operation found")
    try:
        ctx.ops.cancel(op)
    except LXDError:  # cancelled by someone else a moment ago
        raise LXDError(403, "No matching certificate add operation found") from None
    _lifecycle(ctx, "operation-cancelled", op.url)
    request = op.metadata["request"]
    return {"name": request["name"], "type": request["type"],
            "restricted": request["restricted"], "projects": list(request["projects"]),
            "certificate": "", "password": "", "token": False}


# -- handlers ----------------------------------------------------------------------------
@route("/1.0/certificates", "GET")
def list_certificates(ctx: Ctx) -> Response:
    with ctx.state.lock:
        certs = [ctx.state.family("certificates")[fp]
                 for fp in sorted(ctx.state.family("certificates"))]
        if ctx.recursion >= 1:
            return responses.sync([render(ctx.state, cert) for cert in certs])
        return responses.sync([_url(cert["fingerprint"]) for cert in certs])


@route("/1.0/certificates", "POST", untrusted=True)
def add_certificate(ctx: Ctx) -> Response:
    body: dict[str, Any] = ctx.body(CERTIFICATES_POST)
    address = ctx.state.config.get("core.https_address", "")
    if body["token"] and body["certificate"]:
        raise LXDError(400, "Can't use certificate if token is requested")
    if body["token"]:
        if body["type"] != "client":
            raise LXDError(400, "Tokens can only be issued for client certificates")
        if not address:
            raise LXDError(400, "Can't issue token when server isn't listening on network")
    if ctx.trusted and not body["token"] and not body["certificate"]:
        raise LXDError(400, "Client is already trusted")
    if not ctx.trusted or ctx.restricted is not None:
        if body["token"] or not body["password"]:
            raise responses.forbidden()
        token = _decode_token(body["password"])
        if token is not None:
            body = _redeem(ctx, token)
        elif body["password"] != ctx.state.config.get("core.trust_password", ""):
            raise responses.forbidden()
    if body["type"] not in TYPES:
        raise LXDError(400, "Invalid certificate type")
    if body["certificate"]:
        cert = parse(go_b64decode(body["certificate"]))
    elif body["token"]:
        return _issue_token(ctx, body, address)
    else:
        der = ctx.request.environ.get("fakeserver.peer_der")
        if ctx.protocol != "tls":
            raise LXDError(400, "Can't use TLS data on non-TLS link")
        if not der:
            raise LXDError(400, "No client certificate provided")
        cert = x509.load_der_x509_certificate(der)
    validate(cert)
    name = body["name"] or _common_name(cert)
    if not name:
        if ctx.protocol != "tls":  # LXD splits "@" as host:port
            raise LXDError(500, f"address {ctx.address}: missing port in address")
        name = ctx.address.rpartition(":")[0].strip("[]")
    with ctx.state.lock:
        if _fingerprint(cert) in ctx.state.family("certificates"):
            raise LXDError(409, "Certificate already in trust store")
        check_projects(ctx.state, body["projects"])
        fingerprint = add(ctx.state, cert, name, body["type"], body["restricted"],
                          body["projects"])
    _lifecycle(ctx, "certificate-created", _url(fingerprint))
    return responses.created(_url(fingerprint))


@route("/1.0/certificates/<fingerprint>", "GET")
def get_certificate(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        rendered = render(ctx.state, lookup(ctx.state, fingerprint))
    return responses.sync(rendered, etag=etag(rendered))


def _patched(ctx: Ctx, current: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body laid over the current certificate with Go's rules: ``null`` leaves a
    string or bool alone and empties ``projects``."""
    body = ctx.body(CERTIFICATE)
    raw = first_value(ctx.raw_body()) or {}
    lowered = {key.lower(): value for key, value in raw.items()}
    merged = {key: current[key] for key in CERTIFICATE_PUT.fields}
    for key in body.present:
        if key not in merged:
            continue
        value = raw[key] if key in raw else lowered.get(key.lower())
        if value is None and key != "projects":
            continue
        merged[key] = body[key]
    return merged


@route("/1.0/certificates/<fingerprint>", "PUT", "PATCH")
def update_certificate(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        cert = lookup(ctx.state, fingerprint)
        current = render(ctx.state, cert)
        ctx.check_etag(etag(current))
        req = dict(ctx.body(CERTIFICATE_PUT)) if ctx.request.method == "PUT" else \
            _patched(ctx, current)
        if req["type"] != cert["type"]:
            raise LXDError(403, "The certificate type cannot be changed")
        if ctx.restricted is not None:
            if (req["restricted"], req["name"], list(req["projects"])) != \
                    (current["restricted"], current["name"], current["projects"]):
                raise LXDError(403, "Only the certificate can be changed")
            req.update(name=current["name"], restricted=current["restricted"],
                       projects=current["projects"])
        new_cert: x509.Certificate | None = None
        if req["certificate"] and req["certificate"] != cert["certificate"]:
            der = pem_block(req["certificate"])
            if der is None:
                return responses.drop_connection(
                    ctx.request.environ,
                    "runtime error: invalid memory address or nil pointer dereference")
            new_cert = parse(der)
            validate(new_cert)
            if _fingerprint(new_cert) in ctx.state.family("certificates"):
                raise LXDError(500, DUPLICATE_FINGERPRINT)
        check_projects(ctx.state, req["projects"])
        cert.update(name=req["name"], restricted=req["restricted"],
                    projects=list(req["projects"]))
        if new_cert is not None:
            certs = ctx.state.family("certificates")
            del certs[cert["fingerprint"]]
            cert.update(certificate=_pem(new_cert), fingerprint=_fingerprint(new_cert))
            certs[cert["fingerprint"]] = cert
    _lifecycle(ctx, "certificate-updated", _url(current["fingerprint"]))
    return responses.empty()


@route("/1.0/certificates/<fingerprint>", "DELETE")
def delete_certificate(ctx: Ctx, fingerprint: str) -> Response:
    if ctx.restricted is not None:
        raise responses.forbidden()  # not even its own certificate, nor a missing one
    with ctx.state.lock:
        cert = lookup(ctx.state, fingerprint)
        del ctx.state.family("certificates")[cert["fingerprint"]]
    _lifecycle(ctx, "certificate-deleted", _url(fingerprint))  # LXD echoes the URL's prefix
    return responses.empty()
