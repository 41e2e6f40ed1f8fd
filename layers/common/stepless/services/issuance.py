"""Shared by every X.509 issuance (sign, renew, rekey): record the certificate, render the response."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless.authority import Authority
from stepless.provisioners import TokenUse
from stepless.stores import certificates
from stepless.stores.certificates import CertificateRecord
from stepless.stores.tokens import UsedToken
from stepless.x509.csr import SANs


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def _pem_from_der(der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def record(cert: x509.Certificate, *, provisioner: str, provisioner_type: str, parent_serial: str | None = None,
           issued_at: int, sans: SANs | None = None) -> CertificateRecord:
    """The record of an X.509 certificate (``sans`` when the caller already has them)."""
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    der = cert.public_bytes(Encoding.DER)
    return CertificateRecord(
        serial=str(cert.serial_number),
        kind="x509",
        subject=str(cn[0].value) if cn else "",
        sans=tuple((sans or SANs.of(cert)).names()),
        not_before=int(cert.not_valid_before_utc.timestamp()),
        not_after=int(cert.not_valid_after_utc.timestamp()),
        provisioner=provisioner,
        provisioner_type=provisioner_type,
        fingerprint=hashlib.sha256(der).hexdigest(),
        pem=_pem_from_der(der),
        parent_serial=parent_serial,
        issued_at=issued_at,
    )


def commit(cert: x509.Certificate, item: CertificateRecord, token: TokenUse | None, endpoint: str,
           now: int) -> None:
    """Record the certificate (and consume the token) before anything is returned."""
    certificates.record_issuance(item, UsedToken.of(token, endpoint, now) if token else None)


def sign_response(cert: x509.Certificate | str, auth: Authority) -> dict[str, Any]:
    """step-ca's SignResponse: crt, ca, certChain (``cert`` may already be PEM)."""
    leaf = cert if isinstance(cert, str) else pem(cert)
    return {"crt": leaf, "ca": auth.intermediate_pem, "certChain": [leaf, auth.intermediate_pem]}
