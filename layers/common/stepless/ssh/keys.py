"""OpenSSH public keys: parse (authorized_keys line, base64 or wire blob), encode, fingerprint."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless.errors import BadRequest
from stepless.ssh import wire

SSHPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384

# SSH curve identifier -> (key type, cryptography curve class)
_CURVES: dict[str, tuple[str, type[ec.EllipticCurve]]] = {
    "nistp256": ("ecdsa-sha2-nistp256", ec.SECP256R1),
    "nistp384": ("ecdsa-sha2-nistp384", ec.SECP384R1),
    "nistp521": ("ecdsa-sha2-nistp521", ec.SECP521R1),
}
_CURVE_BY_NAME = {cls.name: ident for ident, (_, cls) in _CURVES.items()}
ECDSA_TYPES = {key_type: ident for ident, (key_type, _) in _CURVES.items()}
KEY_TYPES = (ED25519, RSA, *ECDSA_TYPES)


def curve_id(key: ec.EllipticCurvePublicKey) -> str:
    """The SSH curve identifier (``nistp256`` ...) of an EC key."""
    try:
        return _CURVE_BY_NAME[key.curve.name]
    except KeyError:
        raise BadRequest(f"unsupported elliptic curve {key.curve.name}", reason="unsupported_key") from None


_KIND_BY_CLASS: dict[type, str] = {}


def _kind(key: SSHPublicKey) -> str:
    """``ed25519``, ``ec`` or ``rsa``, by the key's class (cryptography's key classes are ABCs, whose
    isinstance checks cost each SSH request several microseconds: the answer is kept per concrete class)."""
    kind = _KIND_BY_CLASS.get(type(key))
    if kind is None:
        if isinstance(key, ed25519.Ed25519PublicKey):
            kind = "ed25519"
        elif isinstance(key, ec.EllipticCurvePublicKey):
            kind = "ec"
        elif isinstance(key, rsa.RSAPublicKey):
            kind = "rsa"
        else:
            raise BadRequest(f"unsupported SSH key type {type(key).__name__}", reason="unsupported_key")
        _KIND_BY_CLASS[type(key)] = kind
    return kind


def key_type(key: SSHPublicKey) -> str:
    """The SSH key type name (``ssh-ed25519``, ``ecdsa-sha2-nistp256``, ``ssh-rsa``)."""
    kind = _kind(key)
    if kind == "ec":
        return "ecdsa-sha2-" + curve_id(key)  # type: ignore[arg-type]
    return ED25519 if kind == "ed25519" else RSA


def encode_key_fields(key: SSHPublicKey) -> bytes:
    """The type-specific public fields (what follows the type name in the blob)."""
    kind = _kind(key)
    if kind == "ec":
        point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return wire.string(curve_id(key)) + wire.string(point)  # type: ignore[arg-type]
    if kind == "ed25519":
        return wire.string(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    numbers = key.public_numbers()  # type: ignore[union-attr]
    return wire.mpint(numbers.e) + wire.mpint(numbers.n)


def encode_public_key(key: SSHPublicKey) -> bytes:
    """The SSH wire blob of a public key."""
    return wire.string(key_type(key)) + encode_key_fields(key)


def to_b64(key: SSHPublicKey) -> str:
    """Standard base64 of the wire blob."""
    return base64.b64encode(encode_public_key(key)).decode()


def to_authorized_key(key: SSHPublicKey, comment: str = "") -> str:
    """An authorized_keys line: ``type base64 [comment]``."""
    line = f"{key_type(key)} {to_b64(key)}"
    return f"{line} {comment}" if comment else line


def fingerprint(key: SSHPublicKey | bytes) -> str:
    """OpenSSH SHA256 fingerprint (``SHA256:`` + unpadded base64) of a key or key blob."""
    blob = key if isinstance(key, bytes) else encode_public_key(key)
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def check_key(key: SSHPublicKey) -> SSHPublicKey:
    """Apply the policy (RSA at least 2048 bits); returns ``key``."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise BadRequest(f"RSA keys must be at least {MIN_RSA_BITS} bits", reason="unsupported_key")
        if key.key_size > MAX_RSA_BITS:
            raise BadRequest(f"RSA keys must be at most {MAX_RSA_BITS} bits", reason="unsupported_key")
    return key


def read_key_fields(name: str, reader: wire.Reader) -> SSHPublicKey:
    """Read the fields of a key of type ``name`` (no policy applied)."""
    try:
        if name == ED25519:
            raw = reader.string()
            if len(raw) != 32:
                raise BadRequest("invalid ssh-ed25519 public key", reason="invalid_public_key")
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        if name in ECDSA_TYPES:
            ident = reader.text()
            if ident != ECDSA_TYPES[name]:
                raise BadRequest(f"SSH key type {name} does not match curve {ident}", reason="unsupported_key")
            curve = _CURVES[ident][1]()
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, reader.string())
        if name == RSA:
            e = reader.mpint()
            n = reader.mpint()
            if n.bit_length() > MAX_RSA_BITS:
                raise BadRequest(f"RSA keys must be at most {MAX_RSA_BITS} bits", reason="unsupported_key")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise BadRequest(f"invalid {name} public key", reason="invalid_public_key") from exc
    raise BadRequest(f"unsupported SSH key type {name}", reason="unsupported_key")


def decode_public_key(blob: bytes) -> SSHPublicKey:
    """A public key from its wire blob (no policy applied)."""
    reader = wire.Reader(blob)
    key = read_key_fields(reader.text(), reader)
    reader.expect_end()
    return key


def b64decode(text: str) -> bytes:
    """Strict standard base64 (``BadRequest`` when invalid)."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("invalid base64 in SSH data", reason="invalid_body_encoding") from exc


def split_line(text: str) -> tuple[str | None, bytes]:
    """``(declared type or None, blob)`` from ``type b64 [comment]`` or bare base64."""
    parts = text.strip().split()
    if not parts:
        raise BadRequest("empty SSH key")
    if len(parts) == 1:
        return None, b64decode(parts[0])
    return parts[0], b64decode(parts[1])


def parse_public_key(data: bytes | str) -> SSHPublicKey:
    """Parse and check an SSH public key: authorized_keys line, base64 of the blob, or the blob.

    Accepted: ed25519, ECDSA P-256/384/521, RSA of at least 2048 bits; else ``BadRequest``.
    """
    declared: str | None = None
    if isinstance(data, bytes):
        blob = data
        if not data.startswith(b"\x00"):  # a wire blob starts with its uint32 type length
            try:
                declared, blob = split_line(data.decode("ascii"))
            except UnicodeDecodeError as exc:
                raise BadRequest("invalid SSH public key", reason="invalid_public_key") from exc
    else:
        declared, blob = split_line(data)
    name = wire.Reader(blob).text()
    if declared is not None and declared != name:
        raise BadRequest(f"SSH key type {declared} does not match its data ({name})", reason="unsupported_key")
    return check_key(decode_public_key(blob))
