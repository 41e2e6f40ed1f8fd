"""Is a certificate ours? Issued by our intermediate: issuer name, AKI and signature all agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepless.errors import BadRequest, Unauthorized

NOT_OURS = "certificate was not issued by this certificate authority"


def load_pem(pem: object, *, what: str = "client certificate") -> x509.Certificate:
    """The first certificate of a PEM string; 400 when it does not parse."""
    if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
        raise BadRequest(f"invalid {what}: not a PEM certificate")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as e:
        raise BadRequest(f"invalid {what}") from e


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` signed ``cert``: issuer name, key identifier and signature all match."""
    if cert.issuer != issuer.subject:
        return False
    aki, ski = _aki(cert), _ski(issuer)
    if aki is None or (ski is not None and aki != ski):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issuer_among(cert: x509.Certificate, intermediates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The one of ``intermediates`` (the current one first, then replaced ones) that issued ``cert``."""
    return next((i for i in intermediates if issued_by(cert, i)), None)


def check_ours(cert: x509.Certificate, intermediates: Sequence[x509.Certificate]) -> x509.Certificate:
    """The intermediate of ours that issued the leaf ``cert`` (401 when none did, or for a CA)."""
    issuer = issuer_among(cert, intermediates)
    if issuer is None:
        raise Unauthorized(NOT_OURS)
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise Unauthorized("certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    return issuer


def within(cert: x509.Certificate, at: dt.datetime) -> bool:
    """Whether ``at`` falls in the certificate's validity window."""
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def has_client_auth(cert: x509.Certificate, *, absent_ok: bool = False) -> bool:
    """The certificate's EKU allows TLS client authentication (or anyExtendedKeyUsage); a certificate
    without an EKU passes only with ``absent_ok`` (Go's chain rule for CAs and X5C credentials)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return absent_ok
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def allows_digital_signature(cert: x509.Certificate) -> bool:
    """KeyUsage digitalSignature set (or no KeyUsage at all, as Go's x509 reads it: not set)."""
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        return False
