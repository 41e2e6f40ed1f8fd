"""POST /ssh/renew and /ssh/rekey (SSHPOP, host certificates only); /ssh/revoke is ssh_revoke.py.

Renew and rekey keep the key (or take the new one), key ID, principals, extensions and critical
options and the duration; the new certificate has a new serial, is backdated and records its parent.
Unlike step-ca 0.19, an SSH revocation blocks renew and rekey: a ConditionCheck on the revocation rides in
the recording transaction (no read first; revoke racing renew loses too), whose refusal records nothing and
drops the signed certificate. That one TransactWriteItems also consumes the token, links and checks the
parent's record and writes the host index (stores.certificates.record_renewal): with a KMS key, two AWS
calls per renewal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from stepless import clock
from stepless.authority import Authority
from stepless.durations import format_duration
from stepless.errors import BadRequest, Forbidden, Unauthorized
from stepless.observability import logger, metrics
from stepless.provisioners.sshpop import SSHPOPAuthorization, SSHPOPProvisioner
from stepless.services import ssh_ca, ssh_issuance
from stepless.services.authorize import SSH_REKEY, SSH_RENEW, authorize
from stepless.ssh import FOREVER, HOST, SSHCertificate, build_and_sign
from stepless.ssh.keys import SSHPublicKey
from stepless.stores import certificates, revocations
from stepless.stores.tokens import UsedToken


def _sshpop(auth: Authority, ott: object, endpoint: str) -> tuple[SSHPOPProvisioner, SSHPOPAuthorization]:
    """The SSHPOP provisioner and the host certificate a renew or rekey token proves possession of."""
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing or empty ott", reason="missing_token")
    ssh_ca.ca_signer(auth, HOST)  # 501 when the host CA is not configured
    granted = authorize(auth, ott, endpoint)
    return cast(SSHPOPProvisioner, granted.provisioner), cast(SSHPOPAuthorization, granted.grant)


def _reissue(auth: Authority, prov: SSHPOPProvisioner, authz: SSHPOPAuthorization,
             public_key: SSHPublicKey, endpoint: str) -> dict[str, Any]:
    old: SSHCertificate = authz.certificate
    parent = ssh_issuance.key_of(old.serial)
    if old.valid_after == 0 or old.valid_before in (0, FOREVER):
        raise BadRequest(f"cannot {endpoint.removeprefix('ssh/')} a certificate without validity period")
    now = clock.now()
    if revocations.outlived(dt.datetime.fromtimestamp(old.valid_before, dt.UTC), now):
        raise Unauthorized("certificate expired too long ago to be renewed")
    duration = dt.timedelta(seconds=old.valid_before - old.valid_after)
    limit = prov.claims.max_host_ssh + auth.backdate
    if endpoint == "ssh/rekey" and duration > limit:  # as step-ca: rekey checks the claims, renew doesn't
        raise Forbidden(f"requested duration of {format_duration(duration)} is more than the authorized "
                        f"maximum ssh certificate duration of {format_duration(limit)}", reason="forbidden_duration")
    valid_after = now - auth.backdate
    cert = build_and_sign(
        public_key,
        serial=ssh_issuance.new_serial(),
        cert_type=old.cert_type,
        key_id=old.key_id,
        principals=old.principals,
        valid_after=int(valid_after.timestamp()),
        valid_before=int((valid_after + duration).timestamp()),
        critical_options=old.critical_options,
        extensions=old.extensions,
        signer=ssh_ca.ca_signer(auth, old.cert_type),
    )
    ts = int(now.timestamp())
    item = ssh_issuance.record(cert, provisioner=prov.name, provisioner_type=prov.type, issued_at=ts,
                      parent_serial=parent)
    certificates.record_renewal(item, UsedToken.of(authz.token, endpoint, ts), parent)  # + the host index
    metrics.renewed("ssh", prov.type, provisioner=prov.name, serial=item.serial)
    logger.info("ssh certificate renewed" if endpoint == "ssh/renew" else "ssh certificate rekeyed",
                extra={"serial": str(cert.serial), "parent_serial": str(old.serial), "key_id": cert.key_id})
    return ssh_issuance.response(cert)


def renew(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /ssh/renew: a new certificate for the SSHPOP host certificate's key (201)."""
    prov, authz = _sshpop(auth, body.get("ott"), SSH_RENEW)
    return _reissue(auth, prov, authz, authz.certificate.public_key, SSH_RENEW)


def rekey(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """POST /ssh/rekey: as renew, for the new ``publicKey`` (201)."""
    if not isinstance(body.get("ott"), str) or not body.get("ott"):
        raise BadRequest("missing or empty ott", reason="missing_token")
    public_key = ssh_issuance.public_key_from(body.get("publicKey"), "public key", reason="invalid_public_key")
    prov, authz = _sshpop(auth, body.get("ott"), SSH_REKEY)
    return _reissue(auth, prov, authz, public_key, SSH_REKEY)
