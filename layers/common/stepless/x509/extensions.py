"""step's provisioner extension (OID 1.3.6.1.4.1.37476.9000.64.1), hand-encoded DER (three fields)."""

from __future__ import annotations

from cryptography import x509

from stepless.x509 import der

OID = x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1")
# The extension's type field: step's provisioner type codes (go.step.sm/crypto's provisioner types).
TYPE_CODES = {"JWK": 1, "OIDC": 2, "GCP": 3, "AWS": 4, "Azure": 5, "ACME": 6, "X5C": 7, "K8sSA": 8, "SSHPOP": 9}
TYPE_NAMES = {code: name for name, code in TYPE_CODES.items()}


def encode(type_code: int, name: str, credential_id: str) -> bytes:
    """DER of ``SEQUENCE { INTEGER type, OCTET STRING name, OCTET STRING credentialID }``."""
    return der.sequence(der.integer(type_code), der.octet_string(name.encode()),
                        der.octet_string(credential_id.encode()))


def extension(type_code: int, name: str, credential_id: str) -> x509.UnrecognizedExtension:
    """The extension value for a certificate builder (non-critical)."""
    return x509.UnrecognizedExtension(OID, encode(type_code, name, credential_id))


def decode(data: bytes) -> tuple[int, str, str]:
    """(type, name, credentialID) from the extension's DER; ValueError when malformed."""

    def read(buf: bytes, pos: int, tag: int) -> tuple[bytes, int]:
        found, start, end = der.read(buf, pos)
        if found != tag:
            raise ValueError("malformed provisioner extension")
        return buf[start:end], end

    seq, end = read(data, 0, 0x30)
    if end != len(data):
        raise ValueError("malformed provisioner extension")
    t, pos = read(seq, 0, 0x02)
    name, pos = read(seq, pos, 0x04)
    cred, pos = read(seq, pos, 0x04)
    return int.from_bytes(t, "big", signed=True), name.decode(errors="replace"), cred.decode(errors="replace")


def of(cert: x509.Certificate) -> tuple[int, str, str] | None:
    """The provisioner extension of ``cert``, or None."""
    try:
        ext = cert.extensions.get_extension_for_oid(OID)
    except x509.ExtensionNotFound:
        return None
    return decode(ext.value.value)  # type: ignore[attr-defined]
