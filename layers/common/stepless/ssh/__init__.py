"""SSH support: wire format, public keys, certificates and KRLs (pure Python over cryptography)."""

from stepless.ssh.certificate import (
    DEFAULT_USER_EXTENSIONS,
    FOREVER,
    HOST,
    USER,
    SSHCertificate,
    build_and_sign,
    option_value,
    parse_certificate,
    to_b64,
    to_line,
    verify_signature,
)
from stepless.ssh.keys import (
    SSHPublicKey,
    encode_public_key,
    fingerprint,
    key_type,
    parse_public_key,
    to_authorized_key,
)
from stepless.ssh.krl import build_krl

__all__ = [
    "DEFAULT_USER_EXTENSIONS",
    "FOREVER",
    "HOST",
    "USER",
    "SSHCertificate",
    "SSHPublicKey",
    "build_and_sign",
    "build_krl",
    "encode_public_key",
    "fingerprint",
    "key_type",
    "option_value",
    "parse_certificate",
    "parse_public_key",
    "to_authorized_key",
    "to_b64",
    "to_line",
    "verify_signature",
]
