"""Certificates built for the CLI tests, with step's provisioner extension when asked."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless.cli import keys

PROVISIONER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1")
NOT_BEFORE = dt.datetime(2026, 11, 30, 5, 50, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2026, 12, 1, 5, 51, tzinfo=dt.UTC)


def der(tag: int, body: bytes) -> bytes:
    """One DER TLV (short or long length)."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def provisioner_der(kind: int, name: str, cred: str) -> bytes:
    """step's provisioner extension value."""
    return der(0x30, der(0x02, bytes([kind])) + der(0x04, name.encode()) + der(0x04, cred.encode()))


def make_cert(
    cn: str,
    sans: list[str] | None = None,
    *,
    ca: bool = False,
    issuer: x509.Certificate | None = None,
    issuer_key: keys.PrivateKey | None = None,
    provisioner: tuple[int, str, str] | None = None,
    serial: int = 7720123456789011576,
    key: keys.PrivateKey | None = None,
) -> tuple[x509.Certificate, keys.PrivateKey]:
    """A certificate for ``cn`` (self-signed unless ``issuer``) and its key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        b = b.add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True
        )
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(keys.general_names(sans)), critical=False)
    if provisioner is not None:
        b = b.add_extension(
            x509.UnrecognizedExtension(PROVISIONER_OID, provisioner_der(*provisioner)), critical=False
        )
    signer = issuer_key or key
    return b.sign(signer, keys.signature_hash(signer)), key
