"""POST /ssh/renew, /ssh/rekey (SSHPOP, host certificates only) and /ssh/revoke (SSHPOP or JWK).

Renew and rekey keep the key (or take the new one), key ID, principals, extensions and critical
options and the duration; the new certificate has a new serial, is backdated and records its parent.
Unlike step-ca 0.19, an SSH revocation blocks renew and rekey: it is checked before signing, and a
ConditionCheck on the revocation rides in the recording transaction (revoke racing renew).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from stepless import clock, tokens
from stepless.authority import Authority
from stepless.durations import format_duration
from stepless.errors import BadRequest, Forbidden, NotFound, Unauthorized
from stepless.observability import logger, metrics
from stepless.provisioners.sshpop import SSHPOPAuthorization, SSHPOPProvisioner
from stepless.services import ssh, ssh_info
from stepless.services.context import context
from stepless.ssh import FOREVER, HOST, SSHCertificate, build_and_sign
from stepless.ssh.keys import SSHPublicKey
from stepless.stores import certificates, revocations
from stepless.stores.revocations import RevocationRecord
from stepless.stores.tokens import UsedToken

MAX_REASON_CODE = 10  # RFC 5280 aACompromise


def _sshpop(auth: Authority, ott: object, method: str) -> tuple[SSHPOPProvisioner, SSHPOPAuthorization]:
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing or empty ott")
    ssh.ca_signer(auth, HOST)  # 501 when the host CA is not configured
    now = clock.now()
    header, unverified = tokens.unverified(ott)
    prov = auth.provisioners.select(header, unverified)
    if not isinstance(prov, SSHPOPProvisioner):
        raise Unauthorized(f"ssh {method} requires an sshpop token; provisioner {prov.name} cannot {method} "
                           "ssh certificates")
    ctx = context(auth, now)
    keys = ssh.ca_keys(auth)
    if method == "renew":
        return prov, prov.authorize_ssh_renew(ott, header, ctx, keys)
    return prov, prov.authorize_ssh_rekey(ott, header, ctx, keys)


def _reissue(auth: Authority, prov: SSHPOPProvisioner, authz: SSHPOPAuthorization,
             public_key: SSHPublicKey, endpoint: str) -> dict[str, Any]:
    old: SSHCertificate = authz.certificate
    parent = ssh.key_of(old.serial)
    if revocations.get(parent) is not None:
        raise Unauthorized("certificate has been revoked")
    if old.valid_after == 0 or old.valid_before in (0, FOREVER):
        raise BadRequest(f"cannot {endpoint.removeprefix('ssh/')} a certificate without validity period")
    if revocations.outlived(dt.datetime.fromtimestamp(old.valid_before, dt.UTC), clock.now()):
        raise Unauthorized("certificate expired too long ago to be renewed")
    duration = dt.timedelta(seconds=old.valid_before - old.valid_after)
    limit = prov.claims.max_host_ssh + auth.backdate
    if endpoint == "ssh/rekey" and duration > limit:  # as step-ca: rekey checks the claims, renew doesn't
        raise Forbidden(f"requested duration of {format_duration(duration)} is more than the authorized "
                        f"maximum ssh certificate duration of {format_duration(limit)}")
    now = clock.now()
    valid_after = now - auth.backdate
    cert = build_and_sign(
        public_key,
        serial=ssh.new_serial(),
        cert_type=old.cert_type,
        key_id=old.key_id,
        principals=old.principals,
        valid_after=int(valid_after.timestamp()),
        valid_before=int((valid_after + duration).timestamp()),
        critical_options=old.critical_options,
        extensions=old.extensions,
        signer=ssh.ca_signer(auth, old.cert_type),
    )
    ts = int(now.timestamp())
    item = ssh.record(cert, provisioner=prov.name, provisioner_type=prov.type, issued_at=ts,
                      parent_serial=parent)
    certificates.record_renewal(item, UsedToken.of(authz.token, endpoint, ts), parent)
    ssh.index_host(cert, ts)
    metrics.renewed("ssh", prov.type, provisioner=prov.name, serial=item.serial)
    logger.info("ssh certificate renewed" if endpoint == "ssh/renew" else "ssh certificate rekeyed",
                extra={"serial": str(cert.serial), "parent_serial": str(old.serial), "key_id": cert.key_id})
    return ssh.response(cert)


def renew(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /ssh/renew: a new certificate for the SSHPOP host certificate's key (201)."""
    prov, authz = _sshpop(auth, body.get("ott"), "renew")
    return _reissue(auth, prov, authz, authz.certificate.public_key, "ssh/renew")


def rekey(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /ssh/rekey: as renew, for the new ``publicKey`` (201)."""
    if not isinstance(body.get("ott"), str) or not body.get("ott"):
        raise BadRequest("missing or empty ott")
    public_key = ssh.public_key_from(body.get("publicKey"), "public key")
    prov, authz = _sshpop(auth, body.get("ott"), "rekey")
    return _reissue(auth, prov, authz, public_key, "ssh/rekey")


def _serial(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("missing serial")
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > FOREVER:
        raise BadRequest(f"invalid ssh certificate serial number {value!r}: a decimal 64-bit number is required")
    return str(int(text))


def revoke(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /ssh/revoke: record the revocation (it blocks renew and rekey), update the KRL and the host index."""
    serial = _serial(body.get("serial"))
    code = body.get("reasonCode", 0)
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= MAX_REASON_CODE:
        raise BadRequest("reasonCode out of bounds")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise BadRequest("reason must be a string")
    if not isinstance(body.get("passive", True), bool):  # the KRL is active revocation: both are accepted
        raise BadRequest("passive must be true or false")
    ott = body.get("ott")
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing ott")

    now = clock.now()
    header, unverified = tokens.unverified(ott)
    prov = auth.provisioners.select(header, unverified)
    ctx = context(auth, now)
    if isinstance(prov, SSHPOPProvisioner):
        authz = prov.authorize_ssh_revoke(ott, header, ctx, ssh.ca_keys(auth))
        use, subject = authz.token, authz.subject
    else:
        use = prov.authorize_revoke(ott, header, unverified, ctx, "/1.0/ssh/revoke")
        subject = str(unverified.get("sub"))  # the signature over these claims has just been verified
    if subject != serial:
        raise Unauthorized(f"token subject {subject!r} is not the serial number {serial}")

    key = ssh.key_of(serial)
    rec = certificates.get(key)
    if rec is None:
        raise NotFound(f"ssh certificate with serial number {serial} was not found")
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
        revocations.put_with_token(item, UsedToken.of(use, "ssh/revoke", int(now.timestamp())))
    except BadRequest as e:  # a retry after a failure between this write and the KRL's: complete the latter
        ssh_info.ensure_revoked(auth, rec, int(now.timestamp()))
        raise BadRequest(f"ssh certificate with serial number {serial} is already revoked") from e
    metrics.revoked("ssh", provisioner=prov.name, serial=key)
    ssh_info.record_revocation(auth, rec, int(now.timestamp()))
    logger.info("ssh certificate revoked", extra={"serial": serial, "provisioner": prov.name,
                                                  "reason_code": code})
    return {"status": "ok"}
