"""Keys, PEM files, certificates and CSRs for the CLI, with step's defaults and error texts."""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from stepless.cli import ui
from stepless.errors import ClientError

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
KTYS = ("EC", "OKP", "RSA")
MIN_RSA_SIZE = 2048
DECRYPT_PROMPT = "Please enter the password to decrypt {}: "

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def generate_key(kty: str = "EC", crv: str | None = "P-256", size: int | None = 2048) -> PrivateKey:
    """A new private key: EC P-256/P-384/P-521, RSA (``size`` ≥ 2048) or OKP Ed25519.

    ``crv`` is ignored for RSA and ``size`` for EC/OKP; ``crv=None`` means the type's default.
    """
    kty_u = (kty or "EC").upper()
    if kty_u not in KTYS:
        raise ClientError(f"invalid value '{kty}' for flag '--kty'; options are {', '.join(KTYS)}")
    if kty_u == "RSA":
        bits = MIN_RSA_SIZE if size is None else size
        if bits < MIN_RSA_SIZE:
            raise ClientError(f"flag '--size' requires at least {MIN_RSA_SIZE}")
        if bits > 8192:
            raise ClientError("flag '--size' must be at most 8192")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if kty_u == "OKP":
        if crv not in (None, "P-256") and crv.lower() != "ed25519":
            raise ClientError(f"invalid value '{crv}' for flag '--crv'; options are Ed25519")
        return ed25519.Ed25519PrivateKey.generate()
    name = "P-256" if crv is None else crv.upper()
    if name not in CURVES:
        raise ClientError(f"invalid value '{crv}' for flag '--crv'; options are {', '.join(CURVES)}")
    return ec.generate_private_key(CURVES[name]())


def key_to_pem(key: PrivateKey, password: str | None) -> bytes:
    """PEM for ``key``; encrypted with ``password`` (AES-256-CBC) when given.

    EC and RSA keys use the traditional "EC/RSA PRIVATE KEY" blocks (with Proc-Type/DEK-Info when
    encrypted, as step writes them); Ed25519 uses PKCS#8 ("[ENCRYPTED ]PRIVATE KEY").
    """
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    fmt = (
        serialization.PrivateFormat.PKCS8
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a key (private keys give their public half)."""
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]


def describe_key(key: object) -> str:
    """Step's short key text: ``ECDSA P-256``, ``RSA 2048``, ``Ed25519``."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return type(key).__name__.removesuffix("PublicKey") or "unknown"


def signature_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The hash Go's x509 picks for ``key``: SHA-256/384/512 by curve, SHA-256 for RSA, none for Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None


def read_input(path: str) -> bytes:
    """The bytes of ``path``; ``-`` reads standard input."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as e:
        raise ClientError(f"open {path}: no such file or directory") from e
    except IsADirectoryError as e:
        raise ClientError(f"read {path}: is a directory") from e
    except OSError as e:
        raise ClientError(f"open {path}: {(e.strerror or str(e)).lower()}") from e


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every ``(type, whole PEM block)`` in ``data``, in order."""
    return [(m.group(1).decode(), m.group(0) + b"\n") for m in _PEM_BLOCK.finditer(data)]


def load_private_key(
    path: str, password_file: str | None = None, *, password: str | None = None, flag: str | None = None
) -> PrivateKey:
    """Load a PEM (or DER) private key; asks the password only when the key is encrypted (``flag``: the
    command's password-file flag, named in the errors)."""
    data = read_input(path)
    blocks = [(t, b) for t, b in pem_blocks(data) if t.endswith("PRIVATE KEY")]
    if not blocks and b"-----BEGIN" in data:
        raise ClientError(f"error decoding {path}: no private key found")
    raw = blocks[0][1] if blocks else data
    encrypted = bool(blocks) and (blocks[0][0] == "ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in raw)
    secret: bytes | None = None
    if encrypted:
        if password is None:
            password = ui.password(password_file, DECRYPT_PROMPT.format(path), flag=flag)
        secret = password.encode()
    try:
        if blocks:
            key = serialization.load_pem_private_key(raw, secret)
        else:
            key = serialization.load_der_private_key(raw, None)
    except TypeError as e:  # unencrypted key given a password or the reverse
        raise ClientError(f"error decrypting {path}: {e}") from e
    except ValueError as e:
        if encrypted:
            source = f" (the password from {flag} {password_file})" if password_file and flag else ""
            raise ClientError(f"error decrypting {path}: x509: decryption password incorrect{source}") from e
        raise ClientError(f"error decoding {path}: invalid private key") from e
    except Exception as e:  # unsupported algorithms and the like
        raise ClientError(f"error decoding {path}: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ClientError(f"error decoding {path}: unsupported key type {type(key).__name__}")
    return key


def parse_certificates(data: bytes, name: str = "input") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or the one DER certificate in ``data``."""
    try:
        if b"-----BEGIN" in data:
            certs = [x509.load_pem_x509_certificate(b) for t, b in pem_blocks(data) if t == "CERTIFICATE"]
            if not certs:
                raise ClientError(f"error decoding {name}: no certificate found")
            return certs
        return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise ClientError(f"error parsing {name}: invalid certificate") from e


def load_certificates(path: str) -> list[x509.Certificate]:
    """The certificates in ``path`` (PEM bundle or DER; ``-`` is stdin)."""
    return parse_certificates(read_input(path), path)


def split_sans(sans: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split SAN strings as step does: ``(dns, ips, emails, uris)``; duplicates dropped."""
    dns: list[str] = []
    ips: list[str] = []
    emails: list[str] = []
    uris: list[str] = []
    for raw in sans:
        s = raw.strip()
        if not s:
            continue
        try:
            target, value = ips, str(ipaddress.ip_address(s))
        except ValueError:
            if "://" in s:
                target, value = uris, s
            elif "@" in s:
                target, value = emails, s
            else:
                target, value = dns, s
        if value not in target:
            target.append(value)
    return dns, ips, emails, uris


def general_names(sans: list[str]) -> list[x509.GeneralName]:
    """SAN strings as typed x509 general names (DNS, IP, email, URI)."""
    dns, ips, emails, uris = split_sans(sans)
    try:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        names += [x509.RFC822Name(e) for e in emails]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
    except (ValueError, TypeError) as e:
        raise ClientError(f"invalid subject alternative name: {e}") from e
    return names


def make_csr(key: PrivateKey, subject: str, sans: list[str] | None = None) -> x509.CertificateSigningRequest:
    """A CSR with CN=``subject`` and typed SANs; with no SANs the subject itself is the SAN (step)."""
    names = general_names(list(sans) if sans else [subject])
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]) if subject else x509.Name([])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    try:
        return builder.sign(key, signature_hash(key))
    except ValueError as e:
        raise ClientError(f"error creating certificate request: {e}") from e
