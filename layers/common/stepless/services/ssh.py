"""POST /ssh/sign, and what every SSH issuance shares: CA keys, serials, principals, records.

Certificate type, key ID and principals come from the token; the request body may only repeat (or,
for principals, narrow the check of) what the token says. Validity follows step-ca: both ``validAfter``
and ``validBefore`` count from now; an unset ``validAfter`` means now, backdated; an unset
``validBefore`` means ``validAfter`` + the provisioner's default duration.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
from functools import lru_cache
from typing import Any

from stepless import authority as authorities
from stepless import clock, tokens
from stepless.authority import Authority
from stepless.durations import TimeArg, format_duration
from stepless.errors import BadRequest, Forbidden, NotImplementedYet, Unauthorized
from stepless.observability import logger, metrics
from stepless.provisioners import TokenUse
from stepless.provisioners.sshpop import CAKeys
from stepless.services.context import context
from stepless.signers import Signer
from stepless.ssh import (
    DEFAULT_USER_EXTENSIONS,
    HOST,
    USER,
    SSHCertificate,
    build_and_sign,
    fingerprint,
    parse_public_key,
    to_b64,
)
from stepless.ssh.keys import SSHPublicKey, decode_public_key, split_line
from stepless.stores import certificates, hosts
from stepless.stores.certificates import CertificateRecord
from stepless.stores.tokens import UsedToken

MAX_PRINCIPALS = 256
MAX_NAME = 1024  # key IDs and principals, characters
CERT_TYPES = {"user": USER, "host": HOST}
TYPE_NAMES = {USER: "user", HOST: "host"}
_FORBIDDEN_CHARS = {",": "commas", "\n": "newlines", "\r": "newlines", "\x00": "NUL characters"}


def key_of(serial: int | str) -> str:
    """The certificates/revocations table key of an SSH serial."""
    return f"ssh:{serial}"


# --- the CA's SSH keys -------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _public_key(line: str) -> SSHPublicKey:
    return decode_public_key(split_line(line)[1])


def _section(auth: Authority) -> dict[str, Any]:
    section = auth.ssh
    if not section.get("userKey") and not section.get("hostKey"):
        raise NotImplementedYet("SSH certificates are not enabled on this certificate authority")
    return section


def ca_public_key(auth: Authority, cert_type: int) -> SSHPublicKey | None:
    """The user or host CA public key (from the configuration; no AWS call), or None."""
    line = auth.ssh.get("userPublicKey" if cert_type == USER else "hostPublicKey")
    return _public_key(line) if line else None


def federated_keys(auth: Authority, cert_type: int) -> list[SSHPublicKey]:
    """Extra trusted CA keys (``ssh.federatedUserKeys`` / ``ssh.federatedHostKeys`` lines), if any."""
    lines = auth.ssh.get("federatedUserKeys" if cert_type == USER else "federatedHostKeys") or []
    return [_public_key(line) for line in lines]


def ca_keys(auth: Authority) -> CAKeys:
    """The keys an SSHPOP certificate may be signed by: our own SSH CA keys only (as step-ca 0.19).

    Federated keys are published for trust (``/ssh/federation``, the config templates) and never
    authenticate: a partner CA could otherwise sign a certificate reusing one of our serials and renew,
    rekey or revoke ours. (Our CA keys are never rotated, so there is no previous key to accept.)
    """
    user = [k for k in (ca_public_key(auth, USER),) if k is not None]
    host = [k for k in (ca_public_key(auth, HOST),) if k is not None]
    return CAKeys.of(user, host)


def ca_signer(auth: Authority, cert_type: int) -> Signer:
    """The signer of the user or host CA (501 when that CA is not configured)."""
    ref = _section(auth).get("userKey" if cert_type == USER else "hostKey")
    if not ref:
        raise NotImplementedYet(f"{TYPE_NAMES[cert_type]} certificate signing is not enabled")
    return authorities.signer(ref)


# --- shared checks and records --------------------------------------------------------------------


def new_serial() -> int:
    """A random non-zero 64-bit serial."""
    while True:
        serial = secrets.randbits(64)
        if serial:
            return serial


def check_name(value: object, what: str, *, commas: bool = False) -> str:
    """A principal (or, ``commas`` allowed, a key ID): a non-blank string without commas, newlines or
    NULs (400 otherwise)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} cannot be empty")
    for char, name in _FORBIDDEN_CHARS.items():
        if char in value and not (commas and char == ","):
            raise BadRequest(f"invalid {what} {value!r}: {name} are not allowed")
    if len(value) > MAX_NAME:
        raise BadRequest(f"{what} is longer than {MAX_NAME} characters")
    return value


def check_principals(values: object) -> tuple[str, ...]:
    """A non-empty list of at most 256 valid principals, duplicates dropped (order kept)."""
    if not isinstance(values, (list, tuple)) or not values:
        raise BadRequest("ssh certificate principals cannot be empty")
    if len(values) > MAX_PRINCIPALS:
        raise BadRequest(f"too many principals ({len(values)}); at most {MAX_PRINCIPALS} are allowed")
    return tuple(dict.fromkeys(check_name(p, "principal") for p in values))


def public_key_from(value: object, field: str = "publicKey") -> SSHPublicKey:
    """The subject key from the body (base64 of the wire blob, or an authorized_keys line)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"missing or empty {field}")
    return parse_public_key(value)


def record(cert: SSHCertificate, *, provisioner: str, provisioner_type: str, issued_at: int,
           parent_serial: str | None = None) -> CertificateRecord:
    """The record of an SSH certificate."""
    return CertificateRecord(
        serial=key_of(cert.serial),
        kind="ssh",
        cert_type=TYPE_NAMES[cert.cert_type],
        key_id=cert.key_id,
        principals=tuple(cert.principals),
        not_before=cert.valid_after,
        not_after=cert.valid_before,
        provisioner=provisioner,
        provisioner_type=provisioner_type,
        key_fingerprint=cert.key_fingerprint,
        ca_fingerprint=cert.ca_fingerprint,
        issued_at=issued_at,
        parent_serial=parent_serial,
        cert=to_b64(cert),
    )


def commit(cert: SSHCertificate, item: CertificateRecord, token: TokenUse, endpoint: str, now: int) -> None:
    """Record the certificate and consume the token in one transaction, before anything is returned."""
    certificates.record_issuance(item, UsedToken.of(token, endpoint, now))
    index_host(cert, now)
    metrics.issued("ssh", item.provisioner_type, provisioner=item.provisioner, serial=item.serial)
    logger.info("ssh certificate issued", extra={
        "serial": str(cert.serial), "cert_type": TYPE_NAMES[cert.cert_type], "key_id": cert.key_id,
        "principals": list(cert.principals), "endpoint": endpoint,
        "key_fingerprint": fingerprint(cert.public_key),
    })


def index_host(cert: SSHCertificate, now: int) -> None:
    """Add a recorded host certificate to the host index (POST /ssh/check-host, GET /ssh/hosts)."""
    if cert.cert_type == HOST:
        hosts.add(cert.principals, str(cert.serial), cert.valid_before, now)


def response(cert: SSHCertificate) -> dict[str, Any]:
    """step-ca's SSHSignResponse."""
    return {"crt": base64.b64encode(cert.raw).decode()}


# --- validity ----------------------------------------------------------------------------------


def _same(a: TimeArg, b: TimeArg) -> bool:
    return a.duration == b.duration and a.instant == b.instant


def _choose(token_value: str, body: TimeArg, field: str) -> TimeArg:
    """The token's time argument (the body's when the token has none); both set must agree (403)."""
    mine = TimeArg.parse(token_value, field)
    if mine.is_zero:
        return body
    if not body.is_zero and not _same(mine, body):
        raise Forbidden(f"ssh certificate {field} does not match - got {body_text(body)}, want {token_value}")
    return mine


def body_text(arg: TimeArg) -> str:
    if arg.duration is not None:
        return format_duration(arg.duration)
    return arg.instant.strftime("%Y-%m-%dT%H:%M:%SZ") if arg.instant else ""


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def validity(valid_after: TimeArg, valid_before: TimeArg, *, cert_type: int, claims: Any,
             backdate: dt.timedelta, now: dt.datetime,
             not_after_limit: dt.datetime | None = None) -> tuple[int, int]:
    """(validAfter, validBefore) in Unix seconds under the provisioner's claims (400/403 otherwise)."""
    try:
        return _validity(valid_after, valid_before, cert_type=cert_type, claims=claims, backdate=backdate,
                         now=now, not_after_limit=not_after_limit)
    except OverflowError as e:  # an instant near year 1 or 9999 plus or minus a duration
        raise BadRequest("ssh certificate validAfter or validBefore is out of range") from e


def _validity(valid_after: TimeArg, valid_before: TimeArg, *, cert_type: int, claims: Any,
              backdate: dt.timedelta, now: dt.datetime,
              not_after_limit: dt.datetime | None) -> tuple[int, int]:
    kind = "user" if cert_type == USER else "host"
    default = getattr(claims, f"default_{kind}_ssh")
    minimum = getattr(claims, f"min_{kind}_ssh")
    maximum = getattr(claims, f"max_{kind}_ssh")
    va = valid_after.resolve(now)
    applied = dt.timedelta(0)
    if va is None:
        va, applied = now, backdate
    vb = valid_before.resolve(now)
    if vb is None:
        vb = va + default
        if not_after_limit is not None and vb > not_after_limit:
            vb = not_after_limit
    elif not_after_limit is not None and vb > not_after_limit:
        raise Forbidden(f"provisioning credential expiration ({_fmt(not_after_limit)}) is before "
                        f"requested certificate validBefore ({_fmt(vb)})")
    va -= applied
    if vb <= now:
        raise BadRequest("ssh certificate validBefore cannot be in the past")
    if va > vb:
        raise BadRequest("ssh certificate validAfter cannot be greater than validBefore")
    duration = vb - va
    if duration < minimum:
        raise Forbidden(f"requested duration of {format_duration(duration)} is less than the authorized "
                        f"minimum ssh certificate duration of {format_duration(minimum)}")
    if duration > maximum + backdate:
        raise Forbidden(f"requested duration of {format_duration(duration)} is more than the authorized "
                        f"maximum ssh certificate duration of {format_duration(maximum + backdate)}")
    return int(va.timestamp()), int(vb.timestamp())


# --- POST /ssh/sign ----------------------------------------------------------------------------


def _body_principals(body: dict[str, Any]) -> list[str]:
    value = body.get("principals")
    if value in (None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise BadRequest("principals must be a list of strings")
    return value


def sign(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """Verify everything, sign with the user or host CA, record, respond (201)."""
    _section(auth)  # 501 before anything else when SSH is off
    cert_type_name = body.get("certType")
    cert_type_name = "" if cert_type_name is None else cert_type_name  # 0, false, [] are not "unset"
    if not isinstance(cert_type_name, str) or cert_type_name not in ("", "user", "host"):
        raise BadRequest(f"invalid certType '{cert_type_name}'")
    ott = body.get("ott")
    if body.get("publicKey") in (None, ""):
        raise BadRequest("missing or empty publicKey")
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing or empty ott")
    public_key = public_key_from(body.get("publicKey"))
    key_id = body.get("keyID")
    key_id = "" if key_id is None else key_id
    if not isinstance(key_id, str):
        raise BadRequest("keyID must be a string")
    principals = _body_principals(body)
    valid_after = TimeArg.parse(body.get("validAfter"), "validAfter")
    valid_before = TimeArg.parse(body.get("validBefore"), "validBefore")

    now = clock.now()
    header, unverified = tokens.unverified(ott)
    prov = auth.provisioners.select(header, unverified)
    authz = prov.authorize_ssh_sign(ott, header, unverified, context(auth, now))
    if not prov.claims.enable_ssh_ca:
        raise Unauthorized(f"ssh certificates are disabled for provisioner '{prov.name}'")

    if authz.cert_type not in CERT_TYPES:
        raise Forbidden(f"invalid certificate type '{authz.cert_type}'")
    if authz.any_principals:  # OIDC admins may choose type, key ID and principals in the request
        authz = dataclasses.replace(authz, cert_type=cert_type_name or authz.cert_type,
                                    key_id=key_id or authz.key_id)
    if cert_type_name and cert_type_name != authz.cert_type:
        raise Forbidden(f"ssh certificate type does not match - got {cert_type_name}, want {authz.cert_type}")
    if key_id and key_id != authz.key_id:
        raise Forbidden(f"ssh certificate key id does not match - got {key_id}, want {authz.key_id}")
    if authz.any_principals:
        allowed = check_principals(principals or list(authz.principals))
    else:
        allowed = check_principals(list(authz.principals))
        extra = [p for p in principals if p not in allowed]
        if extra:
            raise Forbidden(f"ssh certificate principals does not match - got {principals}, "
                            f"want {list(allowed)}")
    cert_type = CERT_TYPES[authz.cert_type]
    check_name(authz.key_id, "ssh certificate key id", commas=True)
    va, vb = validity(
        _choose(authz.valid_after, valid_after, "validAfter"),
        _choose(authz.valid_before, valid_before, "validBefore"),
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
           authz.token, "ssh/sign", ts)
    return response(cert)
