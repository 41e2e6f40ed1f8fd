"""Is a certificate ours? Issued by our intermediate: issuer name, AKI and signature all agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepless.errors import BadRequest, Unauthorized

E = TypeVar("E", bound=x509.ExtensionType)
NOT_OURS = "certificate was not issued by this certificate authority"


def load_pem(pem: object, *, what: str = "client certificate") -> x509.Certificate:
    """The first certificate of a PEM string; 400 when it does not parse."""
    if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
        raise BadRequest(f"invalid {what}: not a PEM certificate", reason="client_certificate_mismatch")
    try:
        return well_formed(x509.load_pem_x509_certificate(pem.encode()))
    except ValueError as e:
        raise BadRequest(f"invalid {what}", reason="client_certificate_mismatch") from e


def well_formed(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` once its extensions parse; ValueError for a duplicated or malformed one (RFC 5280 forbids
    both), which cryptography raises only when they are first read — else a 500 wherever that happens."""
    try:
        cert.extensions  # noqa: B018 - parsed once, cached by cryptography
    except x509.DuplicateExtension as e:
        raise ValueError(str(e)) from e
    return cert


def extension_value(cert: x509.Certificate, kind: type[E]) -> E | None:
    """The value of ``cert``'s extension of class ``kind``, or None when it has none."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def is_ca(cert: x509.Certificate) -> bool:
    """BasicConstraints says CA (a certificate without BasicConstraints is not one)."""
    bc = extension_value(cert, x509.BasicConstraints)
    return bc is not None and bc.ca


def _ski(cert: x509.Certificate) -> bytes | None:
    ski = extension_value(cert, x509.SubjectKeyIdentifier)
    return ski.digest if ski is not None else None


def _aki(cert: x509.Certificate) -> bytes | None:
    aki = extension_value(cert, x509.AuthorityKeyIdentifier)
    return aki.key_identifier if aki is not None else None


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` signed ``cert``: issuer name, key identifier and signature all match (a
    certificate whose extensions do not parse was not: whichever path presents it gets a refusal, never a
    500)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        well_formed(cert)
    except ValueError:
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
    if is_ca(cert):
        raise Unauthorized("certificate is a CA certificate")
    return issuer


def within(cert: x509.Certificate, at: dt.datetime) -> bool:
    """Whether ``at`` falls in the certificate's validity window."""
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def has_client_auth(cert: x509.Certificate, *, absent_ok: bool = False) -> bool:
    """The certificate's EKU allows TLS client authentication (or anyExtendedKeyUsage); a certificate
    without an EKU passes only with ``absent_ok`` (Go's chain rule for CAs and X5C credentials)."""
    eku = extension_value(cert, x509.ExtendedKeyUsage)
    if eku is None:
        return absent_ok
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def allows_digital_signature(cert: x509.Certificate) -> bool:
    """KeyUsage digitalSignature set (or no KeyUsage at all, as Go's x509 reads it: not set)."""
    ku = extension_value(cert, x509.KeyUsage)
    return ku is not None and ku.digital_signature
