"""POST /ssh/revoke (an SSHPOP token, or a JWK/OIDC/X5C revoke token): record the revocation, which blocks
renew and rekey, then update the KRL and the host index (:func:`stepless.services.ssh_info.record_revocation`).
"""

from __future__ import annotations

from typing import Any

from stepless.authority import Authority
from stepless.errors import BadRequest, NotFound, Unauthorized
from stepless.observability import logger, metrics
from stepless.services import ssh_info, ssh_issuance
from stepless.services.authorize import SSH_REVOKE, authorize
from stepless.ssh import FOREVER
from stepless.stores import certificates, revocations
from stepless.stores.revocations import RevocationRecord
from stepless.stores.tokens import UsedToken

MAX_REASON_CODE = 10  # RFC 5280 aACompromise


def _serial(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("missing serial", reason="invalid_serial")
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > FOREVER:
        raise BadRequest(f"invalid ssh certificate serial number {value!r}: a decimal 64-bit number is required",
                         reason="invalid_serial")
    return str(int(text))


def revoke(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /ssh/revoke: record the revocation (it blocks renew and rekey), update the KRL and the host index."""
    serial = _serial(body.get("serial"))
    code = body.get("reasonCode", 0)
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= MAX_REASON_CODE:
        raise BadRequest("reasonCode out of bounds", reason="invalid_reason")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise BadRequest("reason must be a string", reason="invalid_reason")
    if not isinstance(body.get("passive", True), bool):  # the KRL is active revocation: both are accepted
        raise BadRequest("passive must be true or false")
    ott = body.get("ott")
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing ott", reason="missing_token")

    granted = authorize(auth, ott, SSH_REVOKE)
    prov, use, now, subject = granted.provisioner, granted.use, granted.now, str(granted.subject)
    if subject != serial:
        raise Unauthorized(f"token subject {subject!r} is not the serial number {serial}", reason="serial_mismatch")

    key = ssh_issuance.key_of(serial)
    rec = certificates.get(key)
    if rec is None:
        raise NotFound(f"ssh certificate with serial number {serial} was not found", reason="certificate_not_found")
    item = RevocationRecord(
        serial=key,
        kind="ssh",
        cert_type=rec.cert_type,
        key_id=rec.key_id,
        reason_code=code,
        reason=reason,
        revoked_at=int(now.timestamp()),
        not_after=rec.not_after,
        provisioner=prov.name,
        provisioner_type=prov.type,
        token_id=use.id,
    )
    try:
        revocations.put_with_token(item, UsedToken.of(use, SSH_REVOKE, int(now.timestamp())))
    except BadRequest as e:  # a retry after a failure between this write and the KRL's: complete the latter
        ssh_info.ensure_revoked(auth, rec, int(now.timestamp()))
        raise BadRequest(f"ssh certificate with serial number {serial} is already revoked",
                         reason="already_revoked") from e
    metrics.revoked("ssh", provisioner=prov.name, serial=key)
    ssh_info.record_revocation(auth, rec, int(now.timestamp()))
    logger.info("ssh certificate revoked", extra={"serial": serial, "provisioner": prov.name,
                                                  "reason_code": code})
    return {"status": "ok"}
