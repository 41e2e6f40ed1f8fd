"""Root and intermediate CA certificates (10 years, P-256 by default)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import NameOID

from stepless.signers import Signer
from stepless.x509.profile import _sign, authority_key_identifier, new_serial

TEN_YEARS = dt.timedelta(days=3650)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def root(signer: Signer, name: str, now: dt.datetime) -> x509.Certificate:
    """A self-signed root: BasicConstraints CA pathlen 1, KU certSign+cRLSign, SKI."""
    subject = _name(f"{name} Root CA", name)
    pub = signer.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(pub)  # type: ignore[arg-type]
        .serial_number(new_serial())
        .not_valid_before(now)
        .not_valid_after(now + TEN_YEARS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)  # type: ignore[arg-type]
    )
    return _sign(builder, signer)


def intermediate(signer: Signer, root_cert: x509.Certificate, root_signer: Signer, name: str,
                 now: dt.datetime) -> x509.Certificate:
    """An intermediate under ``root_cert``: CA pathlen 0, KU certSign+cRLSign, SKI/AKI."""
    pub = signer.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} Intermediate CA", name))
        .issuer_name(root_cert.subject)
        .public_key(pub)  # type: ignore[arg-type]
        .serial_number(new_serial())
        .not_valid_before(now)
        .not_valid_after(min(now + TEN_YEARS, root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)  # type: ignore[arg-type]
        .add_extension(authority_key_identifier(root_cert), critical=False)
    )
    return _sign(builder, root_signer)
