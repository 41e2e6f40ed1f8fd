"""POST /ssh/sign: a public key and a one-time token in, a recorded SSH certificate out. (What every SSH
issuance shares: ssh_ca.py, the CA keys; ssh_issuance.py, checks and records; ssh_validity.py.)

Certificate type, key ID and principals come from the token; the request body may only repeat (or,
for principals, narrow the check of) what the token says. Validity follows step-ca: both ``validAfter``
and ``validBefore`` count from now; an unset ``validAfter`` means now, backdated; an unset
``validBefore`` means ``validAfter`` + the provisioner's default duration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from stepless.authority import Authority
from stepless.durations import TimeArg
from stepless.errors import BadRequest, Forbidden
from stepless.provisioners import SSHAuthorization
from stepless.services.authorize import SSH_SIGN, authorize
from stepless.services.ssh_ca import ca_signer, section
from stepless.services.ssh_issuance import (
    check_name,
    check_principals,
    commit,
    new_serial,
    public_key_from,
    record,
    response,
)
from stepless.services.ssh_validity import choose, validity
from stepless.ssh import (
    DEFAULT_USER_EXTENSIONS,
    HOST,
    USER,
    build_and_sign,
)

CERT_TYPES = {"user": USER, "host": HOST}


def _body_principals(body: dict[str, Any]) -> list[str]:
    value = body.get("principals")
    if value in (None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise BadRequest("principals must be a list of strings", reason="invalid_principals")
    return value


def sign(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """Verify everything, sign with the user or host CA, record, respond (201)."""
    section(auth)  # 501 before anything else when SSH is off
    cert_type_name = body.get("certType")
    cert_type_name = "" if cert_type_name is None else cert_type_name  # 0, false, [] are not "unset"
    if not isinstance(cert_type_name, str) or cert_type_name not in ("", "user", "host"):
        raise BadRequest(f"invalid certType '{cert_type_name}'")
    ott = body.get("ott")
    if body.get("publicKey") in (None, ""):
        raise BadRequest("missing or empty publicKey")
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing or empty ott", reason="missing_token")
    public_key = public_key_from(body.get("publicKey"))
    key_id = body.get("keyID")
    key_id = "" if key_id is None else key_id
    if not isinstance(key_id, str):
        raise BadRequest("keyID must be a string")
    principals = _body_principals(body)
    valid_after = TimeArg.parse(body.get("validAfter"), "validAfter")
    valid_before = TimeArg.parse(body.get("validBefore"), "validBefore")

    granted = authorize(auth, ott, SSH_SIGN)
    prov, authz, now = granted.provisioner, cast(SSHAuthorization, granted.grant), granted.now

    if authz.cert_type not in CERT_TYPES:
        raise Forbidden(f"invalid certificate type '{authz.cert_type}'", reason="invalid_certificate_type")
    if authz.any_principals:  # OIDC admins may choose type, key ID and principals in the request
        authz = dataclasses.replace(authz, cert_type=cert_type_name or authz.cert_type,
                                    key_id=key_id or authz.key_id)
    if cert_type_name and cert_type_name != authz.cert_type:
        raise Forbidden(f"ssh certificate type does not match - got {cert_type_name}, want {authz.cert_type}",
                        reason="ssh_options_mismatch")
    if key_id and key_id != authz.key_id:
        raise Forbidden(f"ssh certificate key id does not match - got {key_id}, want {authz.key_id}",
                        reason="ssh_options_mismatch")
    if authz.any_principals:
        allowed = check_principals(principals or list(authz.principals))
    else:
        allowed = check_principals(list(authz.principals))
        extra = [p for p in principals if p not in allowed]
        if extra:
            raise Forbidden(f"ssh certificate principals does not match - got {principals}, "
                            f"want {list(allowed)}", reason="principals_mismatch")
    cert_type = CERT_TYPES[authz.cert_type]
    check_name(authz.key_id, "ssh certificate key id", commas=True)
    va, vb = validity(
        choose(authz.valid_after, valid_after, "validAfter"),
        choose(authz.valid_before, valid_before, "validBefore"),
        cert_type=cert_type, claims=prov.claims, backdate=auth.backdate, now=now,
        not_after_limit=authz.not_after_limit,
    )
    cert = build_and_sign(
        public_key,
        serial=new_serial(),
        cert_type=cert_type,
        key_id=authz.key_id,
        principals=allowed,
        valid_after=va,
        valid_before=vb,
        extensions=DEFAULT_USER_EXTENSIONS if cert_type == USER else None,
        signer=ca_signer(auth, cert_type),
    )
    ts = int(now.timestamp())
    commit(cert, record(cert, provisioner=prov.name, provisioner_type=prov.type, issued_at=ts),
           granted.use, SSH_SIGN, ts)
    return response(cert)
