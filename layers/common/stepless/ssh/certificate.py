"""OpenSSH certificates (PROTOCOL.certkeys): build and sign through a Signer, parse, verify."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from stepless.errors import BadRequest, ConfigError
from stepless.signers.base import Signer
from stepless.ssh import keys, wire
from stepless.ssh.keys import SSHPublicKey

USER = 1
HOST = 2
CERT_SUFFIX = "-cert-v01@openssh.com"
NONCE_SIZE = 32
FOREVER = wire.MAX_UINT64

DEFAULT_USER_EXTENSIONS: Mapping[str, bytes] = MappingProxyType(
    {
        "permit-X11-forwarding": b"",
        "permit-agent-forwarding": b"",
        "permit-port-forwarding": b"",
        "permit-pty": b"",
        "permit-user-rc": b"",
    }
)

_EC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "nistp256": hashes.SHA256,
    "nistp384": hashes.SHA384,
    "nistp521": hashes.SHA512,
}
_RSA_ALGORITHMS = {"sha256": "rsa-sha2-256", "sha512": "rsa-sha2-512"}
_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "rsa-sha2-256": hashes.SHA256,
    "rsa-sha2-512": hashes.SHA512,
}


@dataclass(frozen=True)
class SSHCertificate:
    """A parsed (or freshly signed) OpenSSH certificate.

    ``critical_options`` / ``extensions`` values are the raw ``data`` fields (for options such as
    ``force-command`` that is itself an SSH string, see :func:`option_value`). ``signature`` is the
    signature field: ``string algorithm, string blob``. ``raw`` is the whole wire blob.
    """

    key_type: str
    nonce: bytes
    public_key: SSHPublicKey
    serial: int
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: dict[str, bytes]
    extensions: dict[str, bytes]
    signature_key: SSHPublicKey
    signature: bytes
    raw: bytes

    @property
    def signed_data(self) -> bytes:
        """The bytes the CA signed (everything before the signature field)."""
        return self.raw[: len(self.raw) - 4 - len(self.signature)]

    @property
    def signature_algorithm(self) -> str:
        """The signature's algorithm name (``ecdsa-sha2-nistp256``, ``rsa-sha2-512`` ...)."""
        return wire.Reader(self.signature).text()

    @property
    def is_user(self) -> bool:
        """True for a user certificate."""
        return self.cert_type == USER

    @property
    def is_host(self) -> bool:
        """True for a host certificate."""
        return self.cert_type == HOST

    @property
    def ca_fingerprint(self) -> str:
        """SHA256 fingerprint of the signing CA key."""
        return keys.fingerprint(self.signature_key)

    @property
    def key_fingerprint(self) -> str:
        """SHA256 fingerprint of the certified key."""
        return keys.fingerprint(self.public_key)


def option_value(value: str) -> bytes:
    """Encode a critical-option value (``force-command``, ``source-address``) as OpenSSH expects."""
    return wire.string(value)


def _sorted_options(items: Mapping[str, bytes] | None) -> dict[str, bytes]:
    """Options in wire order: sorted by the bytes of their names, as OpenSSH requires."""
    return {name: bytes(data) for name, data in sorted((items or {}).items(), key=lambda kv: kv[0].encode())}


def _options(items: Mapping[str, bytes]) -> bytes:
    """Name/data pairs sorted by name, as one string."""
    return wire.string(b"".join(wire.string(n) + wire.string(d) for n, d in _sorted_options(items).items()))


def _check_uint64(name: str, value: int) -> None:
    if not 0 <= value <= wire.MAX_UINT64:
        raise BadRequest(f"SSH certificate {name} out of range")


def _sign(signer: Signer, data: bytes) -> bytes:
    """Sign ``data`` with ``signer`` and encode the SSH signature field."""
    ca_key = signer.public_key()
    if isinstance(ca_key, ed25519.Ed25519PublicKey):
        return wire.string(keys.ED25519) + wire.string(signer.sign(data))
    if isinstance(ca_key, ec.EllipticCurvePublicKey):
        ident = keys.curve_id(ca_key)
        expected = _EC_HASHES[ident].name
        if signer.hash_algorithm().name != expected:
            raise ConfigError(f"an SSH {ident} CA key must sign with {expected}")
        r, s = decode_dss_signature(signer.sign(data))
        return wire.string(keys.key_type(ca_key)) + wire.string(wire.mpint(r) + wire.mpint(s))
    if isinstance(ca_key, rsa.RSAPublicKey):
        algorithm = _RSA_ALGORITHMS.get(signer.hash_algorithm().name)
        if algorithm is None:
            raise ConfigError("an SSH RSA CA key must sign with sha256 or sha512")
        return wire.string(algorithm) + wire.string(signer.sign(data))
    raise ConfigError(f"unsupported SSH CA key type {type(ca_key).__name__}")


def build_and_sign(
    public_key: SSHPublicKey,
    *,
    serial: int,
    cert_type: int,
    key_id: str,
    principals: Iterable[str],
    valid_after: int,
    valid_before: int,
    critical_options: Mapping[str, bytes] | None = None,
    extensions: Mapping[str, bytes] | None = None,
    signer: Signer,
) -> SSHCertificate:
    """Build a certificate for ``public_key`` and sign it with the CA ``signer``."""
    keys.check_key(public_key)
    if cert_type not in (USER, HOST):
        raise BadRequest(f"invalid SSH certificate type {cert_type}")
    for name, value in (("serial", serial), ("validAfter", valid_after), ("validBefore", valid_before)):
        _check_uint64(name, value)
    if valid_before <= valid_after:
        raise BadRequest("SSH certificate validBefore must be after validAfter", reason="invalid_validity")
    ca_key = signer.public_key()
    if not isinstance(ca_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ConfigError(f"unsupported SSH CA key type {type(ca_key).__name__}")
    principals = tuple(principals)
    key_type = keys.key_type(public_key) + CERT_SUFFIX
    nonce = os.urandom(NONCE_SIZE)
    body = b"".join(
        (
            wire.string(key_type),
            wire.string(nonce),
            keys.encode_key_fields(public_key),
            wire.uint64(serial),
            wire.uint32(cert_type),
            wire.string(key_id),
            wire.string(wire.strings(principals)),
            wire.uint64(valid_after),
            wire.uint64(valid_before),
            _options(critical_options or {}),
            _options(extensions or {}),
            wire.string(b""),
            wire.string(keys.encode_public_key(ca_key)),
        )
    )
    signature = _sign(signer, body)
    # the fields are known: no need to parse back what was just encoded (a hot path)
    return SSHCertificate(key_type, nonce, public_key, serial, cert_type, key_id, principals, valid_after,
                          valid_before, _sorted_options(critical_options), _sorted_options(extensions), ca_key,
                          signature, body + wire.string(signature))


def _read_options(data: bytes, what: str) -> dict[str, bytes]:
    reader = wire.Reader(data)
    result: dict[str, bytes] = {}
    while not reader.at_end():
        name = reader.text()
        if name in result:
            raise BadRequest(f"duplicate SSH certificate {what} {name}")
        result[name] = reader.string()
    return result


def _read_principals(data: bytes) -> tuple[str, ...]:
    reader = wire.Reader(data)
    names: list[str] = []
    while not reader.at_end():
        names.append(reader.text())
    return tuple(names)


def _blob(data: bytes | str) -> bytes:
    """Wire bytes from wire bytes, base64, or a ``type b64 [comment]`` line."""
    if isinstance(data, bytes) and data.startswith(b"\x00"):
        return data
    try:
        text = data.decode("ascii") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise BadRequest("invalid SSH certificate") from exc
    declared, blob = keys.split_line(text)
    if declared is not None and declared != wire.Reader(blob).text():
        raise BadRequest("SSH certificate type does not match its data")
    return blob


def parse_certificate(data: bytes | str) -> SSHCertificate:
    """Parse a certificate from wire bytes, base64, or an authorized_keys style line."""
    raw = _blob(data)
    reader = wire.Reader(raw)
    name = reader.text()
    if not name.endswith(CERT_SUFFIX):
        raise BadRequest(f"not an SSH certificate: {name}")
    nonce = reader.string()
    public_key = keys.read_key_fields(name.removesuffix(CERT_SUFFIX), reader)
    serial = reader.uint64()
    cert_type = reader.uint32()
    if cert_type not in (USER, HOST):
        raise BadRequest(f"invalid SSH certificate type {cert_type}")
    key_id = reader.text()
    principals = _read_principals(reader.string())
    valid_after = reader.uint64()
    valid_before = reader.uint64()
    critical_options = _read_options(reader.string(), "critical option")
    extensions = _read_options(reader.string(), "extension")
    reader.string()  # reserved
    signature_key = keys.decode_public_key(reader.string())
    signature = reader.string()
    reader.expect_end()
    return SSHCertificate(
        key_type=name,
        nonce=nonce,
        public_key=public_key,
        serial=serial,
        cert_type=cert_type,
        key_id=key_id,
        principals=principals,
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=critical_options,
        extensions=extensions,
        signature_key=signature_key,
        signature=signature,
        raw=raw,
    )


def _verify(key: SSHPublicKey, algorithm: str, blob: bytes, data: bytes) -> None:
    """Raise ``InvalidSignature`` (or ``ValueError``) unless ``blob`` signs ``data``."""
    if isinstance(key, ed25519.Ed25519PublicKey) and algorithm == keys.ED25519:
        key.verify(blob, data)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm == keys.key_type(key):
        reader = wire.Reader(blob)
        r, s = reader.mpint(), reader.mpint()
        reader.expect_end()
        if r <= 0 or s <= 0:
            raise InvalidSignature
        ecdsa = ec.ECDSA(_EC_HASHES[keys.curve_id(key)]())
        key.verify(encode_dss_signature(r, s), data, ecdsa)
    elif isinstance(key, rsa.RSAPublicKey) and algorithm in _RSA_HASHES:
        key.verify(blob, data, padding.PKCS1v15(), _RSA_HASHES[algorithm]())
    else:
        raise InvalidSignature


def verify_signature(cert: SSHCertificate) -> bool:
    """True when the certificate's signature verifies with its embedded signature key."""
    try:
        reader = wire.Reader(cert.signature)
        algorithm = reader.text()
        blob = reader.string()
        reader.expect_end()
        _verify(cert.signature_key, algorithm, blob, cert.signed_data)
    except (InvalidSignature, ValueError, BadRequest):
        return False
    return True


def to_b64(cert: SSHCertificate) -> str:
    """Standard base64 of the wire blob (what the step-ca API carries)."""
    return base64.b64encode(cert.raw).decode()


def to_line(cert: SSHCertificate, comment: str = "") -> str:
    """A ``-cert.pub`` line: ``type base64 [comment]``."""
    line = f"{cert.key_type} {to_b64(cert)}"
    return f"{line} {comment}" if comment else line
