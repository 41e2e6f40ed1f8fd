"""POST /revoke: by a provisioner's revoke token (``sub`` = the serial) or over mTLS (the client
certificate revokes itself). The revocation is recorded in the revocations table, its OCSP response
signed and stored at once (services.ocsp), and the CRL follows within its TTL (services.crl); a renewal
of the serial is refused from then on.

``"lineage": true`` (stepless) also revokes every certificate renewed from this one, transitively
(each renewal adds itself to its parent's ``children``), skipping those already revoked — step-ca
issues #319 and #909: revoking a compromised certificate used to leave its renewals alive. Asked with a
token of a certificate revoked before (alone, or by a lineage revocation cut short), it is not "already
revoked": the walk completes the lineage (200, the renewals revoked now). The root
revocation is written first, so no new renewal of it can be recorded afterwards (the renewal
transaction checks it); the descendants are then found by consistent reads along those links, one per
certificate (see stores.certificates.children).

A self-revocation (over mTLS) proves only possession of the revoked certificate's key, so its lineage
stops at a rekey: a renewal with a different public key, and everything renewed from it, stays valid.
Whoever stole a key the owner has since rekeyed away from cannot revoke the owner's new certificate. A
revocation by a provisioner's token (an administrator) follows the whole lineage, rekeys included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless import clock
from stepless.authority import Authority, fingerprint
from stepless.errors import BadRequest, NotFound, Unauthorized
from stepless.observability import logger, metrics
from stepless.services import crl, ocsp
from stepless.services.authorize import REVOKE, authorize
from stepless.stores import certificates, revocations
from stepless.stores import tokens as used_tokens
from stepless.stores.certificates import CertificateRecord
from stepless.stores.revocations import RevocationRecord
from stepless.stores.tokens import UsedToken
from stepless.x509 import chain

MAX_REASON = 1024
_DIGITS = re.compile(r"[0-9]{1,50}")


def _serial(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest("missing serial", reason="invalid_serial")
    if not _DIGITS.fullmatch(value):
        raise BadRequest("serial must be a decimal number", reason="invalid_serial")
    return str(int(value))


def _reason_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("reasonCode must be an integer", reason="invalid_reason")
    if not 0 <= value <= 10:
        raise BadRequest("reasonCode out of bounds", reason="invalid_reason")
    return value


def _reason(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("reason must be a string", reason="invalid_reason")
    if len(value) > MAX_REASON:
        raise BadRequest(f"reason is longer than {MAX_REASON} characters", reason="invalid_reason")
    return value


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean")
    return value


def revoke(body: dict[str, Any], client_cert_pem: str | None, auth: Authority) -> dict[str, Any]:
    """Authorize, record (one conditional write; a transaction with the token's use), respond 200."""
    serial = _serial(body.get("serial"))
    code = _reason_code(body.get("reasonCode"))
    reason = _reason(body.get("reason"))
    _flag(body, "passive", True)  # active revocation (CRL, OCSP) is always on: both are accepted
    lineage = _flag(body, "lineage", False)
    ott = body.get("ott")
    now = clock.now()
    ts = int(now.timestamp())

    token_put = None
    if ott not in (None, ""):
        if not isinstance(ott, str):
            raise BadRequest("ott must be a string", reason="missing_token")
        granted = authorize(auth, ott, REVOKE)
        prov, sub = granted.provisioner, granted.subject
        if prov.type == "OIDC":  # sub is the user's id; authorize_revoke allows admins only (as step-ca)
            pass
        elif not isinstance(sub, str) or not _DIGITS.fullmatch(sub) or str(int(sub)) != serial:
            raise Unauthorized("token subject does not match the serial number to revoke", reason="serial_mismatch")
        token_put = UsedToken.of(granted.use, REVOKE, ts)
        revoked_by = f"provisioner:{prov.name}"
    elif client_cert_pem:
        cert = chain.load_pem(client_cert_pem)
        chain.check_ours(cert, auth.intermediates)
        if str(cert.serial_number) != serial:
            raise BadRequest("serial number in client certificate different than body",
                             reason="client_certificate_mismatch")
        revoked_by = "mtls"
    else:
        raise BadRequest("missing ott or client certificate", reason="missing_token")

    rec = certificates.get(serial)
    if rec is None or rec.kind != "x509":
        raise NotFound(f"certificate with serial number {serial} was not found", reason="certificate_not_found")
    if revoked_by == "mtls" and rec.fingerprint not in (None, fingerprint(cert)):
        raise Unauthorized("the client certificate is not the certificate recorded with this serial number",
                           reason="serial_mismatch")

    item = _record(serial, rec, reason, code, ts, revoked_by)
    try:
        if token_put is not None:
            revocations.put_with_token(item, token_put)
        else:
            revocations.put(item)
    except BadRequest:  # already revoked: a retry after a failure between this write and the OCSP one?
        ocsp.ensure_revoked(auth, serial)
        if not lineage or token_put is None:  # a revoked certificate authenticates nothing, not even a walk
            raise
        # lineage asked by a token of a certificate revoked before (alone, or by a lineage revocation cut
        # short): the renewals are what the request is about, so the walk completes them (idempotent); the
        # token is spent, so each walk costs a new one
        used_tokens.use(token_put)
    else:
        recorded(auth, item, revoked_by.partition("provisioner:")[2] or None)

    out: dict[str, Any] = {"status": "ok"}
    if lineage:
        same_key = public_key_der(cert) if revoked_by == "mtls" else None
        out["lineage"] = revoke_lineage(auth, serial, reason, code, ts, revoked_by, same_key=same_key)
    crl.publish(auth)
    return out


def recorded(auth: Authority, item: RevocationRecord, provisioner: str | None) -> None:
    """What follows a certificate's revocation once it is written: the CRL cache dropped, its OCSP response
    signed and stored, the metric (``provisioner``: the one that revoked it) and the log line."""
    crl.invalidate()
    ocsp.record_revocation(auth, item.serial, item)
    metrics.revoked("x509", provisioner=provisioner, serial=item.serial)
    logger.info("certificate revoked",
                extra={"serial": item.serial, "reasonCode": item.reason_code, "revoked_by": item.revoked_by})


def public_key_der(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo (DER)."""
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _recorded_key(rec: CertificateRecord | None) -> bytes | None:
    """The SubjectPublicKeyInfo of a certificate record's PEM (None when it has none)."""
    pem = rec.pem if rec else ""
    try:
        return public_key_der(x509.load_pem_x509_certificate(pem.encode())) if pem else None
    except ValueError:
        return None


def _record(serial: str, rec: CertificateRecord | None, reason: str, code: int, ts: int, revoked_by: str,
            lineage_of: str | None = None) -> RevocationRecord:
    return RevocationRecord(serial=serial, kind="x509", reason=reason, reason_code=code, revoked_at=ts,
                            revoked_by=revoked_by, not_after=rec.not_after if rec else None,
                            subject=rec.subject if rec else None, provisioner=rec.provisioner if rec else None,
                            lineage_of=lineage_of)


def descendants(serial: str, children: Callable[[str], list[str]],
                follow: Callable[[str], bool] | None = None) -> list[str]:
    """Every serial renewed (transitively) from ``serial``, breadth first, each once; with ``follow``, only
    children it accepts (and nothing below a refused one)."""
    seen = {serial}
    order: list[str] = []
    frontier = [serial]
    while frontier:
        following = []
        for parent in frontier:
            for child in children(parent):
                if child not in seen:
                    seen.add(child)
                    if follow is not None and not follow(child):
                        continue
                    order.append(child)
                    following.append(child)
        frontier = following
    return order


def revoke_lineage(auth: Authority, serial: str, reason: str, code: int, ts: int, revoked_by: str, *,
                   same_key: bytes | None = None) -> list[str]:
    """Revoke the renewals of ``serial`` (already revoked ones are skipped); the serials newly revoked.

    Walks the lineage again (consistent reads of each record's ``children``) until a walk finds nothing
    new: a descendant renewed between a walk and its own revocation shows up in the next walk, and after
    its revocation it cannot be renewed any more. With ``same_key`` (a self-revocation: the revoking
    certificate's SubjectPublicKeyInfo) the walk stops at a rekey: a renewal whose recorded key differs
    (or whose record cannot be read) is left valid, and so is everything renewed from it.
    """
    records: dict[str, CertificateRecord | None] = {}

    def record(child: str) -> CertificateRecord | None:
        if child not in records:
            records[child] = certificates.get(child)
        return records[child]

    follow = None if same_key is None else (lambda child: _recorded_key(record(child)) == same_key)
    done: list[str] = []
    handled = {serial}
    for _ in range(10):
        fresh = [c for c in descendants(serial, certificates.children, follow) if c not in handled]
        if not fresh:
            break
        for child in fresh:
            handled.add(child)
            rec = record(child)
            item = _record(child, rec, reason, code, ts, revoked_by, lineage_of=serial)
            try:
                revocations.put(item)
            except BadRequest:
                ocsp.ensure_revoked(auth, child)
                continue  # revoked before
            ocsp.record_revocation(auth, child, item)
            done.append(child)
    if done:
        crl.invalidate()
        logger.info("lineage revoked", extra={"serial": serial, "descendants": done})
    return done
