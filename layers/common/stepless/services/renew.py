"""POST /renew and /rekey: a certificate we issued, presented over mTLS or in an x5cInsecure token,
exchanged for a fresh one with the same subject, SANs, extensions and duration.

Rules (step-ca's ``authorizeRenew`` and ``DefaultAuthorizeRenew``, plus the issue's): the certificate
chains to our intermediate; it is recorded in our certificates table; it is not revoked; now ≥ notBefore;
not expired unless the provisioner allows renewal after expiry (token path only: API Gateway's mTLS
refuses an expired client certificate anyway); the issuing provisioner has renewal enabled; over mTLS the
certificate carries the ClientAuth EKU. Each refusal is a 401 with its reason.

AWS calls: no read; the signature (kms.Sign with a KMS key), then one TransactWriteItems, the commit
point, which carries the record rules as conditions: the certificate's record exists and is this
certificate (its fingerprint, or none recorded), no revocation of it, the renewal cap; with the token's
use and the new record. Signing before the commit is how every issuance works: a refused transaction
(unknown, revoked, token used ...) records nothing, and the signed bytes are dropped, never returned —
so once a revocation of the old serial has landed no renewal of it can succeed. Each refusal keeps its
401 message and reason; a refused request costs the signature (as a renewal by a valid holder would).
The provisioner comes from the certificate's step provisioner extension; only a certificate without one
is looked up first (its record and revocation, one BatchGetItem: the rare path).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from cryptography import x509

from stepless import clock
from stepless.authority import Authority, fingerprint
from stepless.errors import BadRequest, Unauthorized
from stepless.observability import logger, metrics
from stepless.provisioners import Provisioner, TokenUse, x5c_insecure
from stepless.services.issuance import record, sign_response
from stepless.stores import certificates, revocations
from stepless.stores.certificates import CertificateRecord
from stepless.stores.errors import ParentRevoked, UnknownCertificate
from stepless.stores.tokens import UsedToken
from stepless.x509 import chain, extensions, profile
from stepless.x509 import csr as csrs


@dataclasses.dataclass(frozen=True)
class Renewable:
    """A certificate that passed the renew rules, and the provisioner that issued it."""

    cert: x509.Certificate
    provisioner: Provisioner


def _provisioner(cert: x509.Certificate, auth: Authority) -> Provisioner:
    """The issuing provisioner: named by the certificate's extension, else by its record (read then)."""
    try:
        ext = extensions.of(cert)
    except ValueError:
        ext = None
    name = ext[1] if ext else _recorded(cert).provisioner
    prov = auth.provisioners.get(name) if name else None
    if prov is None:
        raise Unauthorized("provisioner not found", reason="unknown_provisioner")
    return prov


def _recorded(cert: x509.Certificate) -> CertificateRecord:
    """The record of ``cert`` (the rare path: a certificate without the provisioner extension); the same
    refusals as the recording transaction's conditions."""
    rec, revoked = certificates.get_with_revocation(str(cert.serial_number))
    if rec is None or rec.fingerprint not in (None, fingerprint(cert)):
        raise UnknownCertificate
    if revoked is not None:
        raise ParentRevoked
    return rec


def authorize(cert: x509.Certificate, auth: Authority, now: dt.datetime, *, mtls: bool) -> Renewable:
    """Apply the renew rules to ``cert``; 401 with the reason on any failure."""
    chain.check_ours(cert, auth.intermediates)
    return _renewable(cert, auth, now, mtls=mtls)


def _renewable(cert: x509.Certificate, auth: Authority, now: dt.datetime, *, mtls: bool) -> Renewable:
    """The renew rules for a leaf of ours that need no read (provisioner, validity); recorded and not
    revoked are conditions of the recording transaction (:func:`_issue`)."""
    if mtls and not chain.has_client_auth(cert):
        raise Unauthorized("certificate is not authorized for client authentication (no ClientAuth usage)",
                           reason="no_client_auth")
    prov = _provisioner(cert, auth)
    if prov.claims.disable_renewal:
        raise Unauthorized(f"renew is disabled for provisioner '{prov.name}'", reason="renewal_disabled")
    if now < cert.not_valid_before_utc:
        raise Unauthorized("certificate is not yet valid", reason="certificate_not_yet_valid")
    if now > cert.not_valid_after_utc and (mtls or not prov.claims.allow_renewal_after_expiry):
        raise Unauthorized("certificate has expired", reason="certificate_expired")
    if revocations.outlived(cert.not_valid_after_utc, now):
        raise Unauthorized("certificate expired too long ago to be renewed")
    return Renewable(cert, prov)


def _issue(ok: Renewable, auth: Authority, now: dt.datetime, *, public_key: object | None,
           token: TokenUse | None, endpoint: str) -> dict[str, Any]:
    old = ok.cert
    duration = old.not_valid_after_utc - old.not_valid_before_utc
    not_before = now - auth.backdate
    not_after = min(not_before + duration, auth.intermediate.not_valid_after_utc)
    cert = profile.renewal(old, public_key=public_key, not_before=not_before, not_after=not_after,
                           issuer=auth.intermediate, signer=auth.intermediate_signer)
    ts = int(now.timestamp())
    parent = str(old.serial_number)
    item = record(cert, provisioner=ok.provisioner.name, provisioner_type=ok.provisioner.type,
                  parent_serial=parent, issued_at=ts)
    certificates.record_renewal(item, UsedToken.of(token, endpoint, ts) if token else None, parent,
                                parent_fingerprint=fingerprint(old))  # the commit point: refused, cert is dropped
    metrics.renewed("x509", ok.provisioner.type, provisioner=ok.provisioner.name, serial=item.serial)
    logger.info("certificate renewed" if endpoint == "renew" else "certificate rekeyed",
                extra={"serial": str(cert.serial_number), "parent_serial": parent,
                       "provisioner": ok.provisioner.name})
    return sign_response(cert, auth)


def renew_mtls(client_cert_pem: str, auth: Authority) -> dict[str, Any]:
    """Renew the TLS client certificate."""
    now = clock.now()
    cert = chain.load_pem(client_cert_pem)
    return _issue(authorize(cert, auth, now, mtls=True), auth, now, public_key=None, token=None,
                  endpoint="renew")


def renew_token(token: str, auth: Authority) -> dict[str, Any]:
    """Renew the certificate in an x5cInsecure token (its jti is consumed with the new record)."""
    now = clock.now()
    verified = x5c_insecure.verify(token, auth.intermediates, auth.hosts)  # a leaf of ours, checked there
    ok = _renewable(verified.leaf, auth, now, mtls=False)
    return _issue(ok, auth, now, public_key=None, token=verified.use, endpoint="renew")


def renew(client_cert_pem: str | None, authorization: str | None, auth: Authority) -> dict[str, Any]:
    """POST /renew: the TLS client certificate first (as step-ca), else a Bearer renew token."""
    if client_cert_pem:
        return renew_mtls(client_cert_pem, auth)
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return renew_token(value.strip(), auth)
        raise Unauthorized("the Authorization header must be 'Bearer <renew token>'")
    raise BadRequest("missing client certificate", reason="missing_client_certificate")


def rekey(client_cert_pem: str | None, body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /rekey: as renew over mTLS, with the CSR's (verified) key as the new key."""
    if not client_cert_pem:
        raise BadRequest("missing client certificate", reason="missing_client_certificate")
    req = csrs.read(body.get("csr"))
    now = clock.now()
    cert = chain.load_pem(client_cert_pem)
    ok = authorize(cert, auth, now, mtls=True)
    return _issue(ok, auth, now, public_key=req.public_key, token=None, endpoint="rekey")
