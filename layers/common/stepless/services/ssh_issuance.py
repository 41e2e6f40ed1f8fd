"""What every SSH issuance shares (sign, renew, rekey): serials, principal and key-ID checks, the
subject key from a request body, the certificates-table record (a host certificate's carries its host-index
entries: stores.hosts.entry_of), the response."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from stepless.errors import BadRequest
from stepless.observability import logger, metrics
from stepless.provisioners import TokenUse
from stepless.services.ssh_ca import TYPE_NAMES
from stepless.ssh import (
    SSHCertificate,
    fingerprint,
    parse_public_key,
    to_b64,
)
from stepless.ssh.keys import SSHPublicKey
from stepless.stores import certificates
from stepless.stores.certificates import CertificateRecord
from stepless.stores.tokens import UsedToken

MAX_PRINCIPALS = 256
MAX_NAME = 1024  # key IDs and principals, characters
_FORBIDDEN_CHARS = {",": "commas", "\n": "newlines", "\r": "newlines", "\x00": "NUL characters"}


def key_of(serial: int | str) -> str:
    """The certificates/revocations table key of an SSH serial."""
    return f"ssh:{serial}"


def new_serial() -> int:
    """A random non-zero 64-bit serial."""
    while True:
        serial = secrets.randbits(64)
        if serial:
            return serial


def check_name(value: object, what: str, *, commas: bool = False, reason: str = "bad_request") -> str:
    """A principal (or, ``commas`` allowed, a key ID): a non-blank string without commas, newlines or
    NULs (400 otherwise)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} cannot be empty", reason=reason)
    for char, name in _FORBIDDEN_CHARS.items():
        if char in value and not (commas and char == ","):
            raise BadRequest(f"invalid {what} {value!r}: {name} are not allowed", reason=reason)
    if len(value) > MAX_NAME:
        raise BadRequest(f"{what} is longer than {MAX_NAME} characters", reason=reason)
    return value


def check_principals(values: object) -> tuple[str, ...]:
    """A non-empty list of at most 256 valid principals, duplicates dropped (order kept)."""
    if not isinstance(values, (list, tuple)) or not values:
        raise BadRequest("ssh certificate principals cannot be empty", reason="invalid_principals")
    if len(values) > MAX_PRINCIPALS:
        raise BadRequest(f"too many principals ({len(values)}); at most {MAX_PRINCIPALS} are allowed",
                         reason="invalid_principals")
    return tuple(dict.fromkeys(check_name(p, "principal", reason="invalid_principals") for p in values))


def public_key_from(value: object, field: str = "publicKey", *, reason: str = "bad_request") -> SSHPublicKey:
    """The subject key from the body (base64 of the wire blob, or an authorized_keys line)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"missing or empty {field}", reason=reason)
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
    """Record the certificate, consume the token and index a host certificate (POST /ssh/check-host, GET
    /ssh/hosts) in one transaction, before anything is returned."""
    certificates.record_issuance(item, UsedToken.of(token, endpoint, now))
    metrics.issued("ssh", item.provisioner_type, provisioner=item.provisioner, serial=item.serial)
    logger.info("ssh certificate issued", extra={
        "serial": str(cert.serial), "cert_type": TYPE_NAMES[cert.cert_type], "key_id": cert.key_id,
        "principals": list(cert.principals), "endpoint": endpoint,
        "key_fingerprint": fingerprint(cert.public_key),
    })


def response(cert: SSHCertificate) -> dict[str, Any]:
    """step-ca's SSHSignResponse."""
    return {"crt": base64.b64encode(cert.raw).decode()}
