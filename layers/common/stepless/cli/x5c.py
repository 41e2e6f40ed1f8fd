"""X5C tokens: a JWT whose ``x5c`` header carries a certificate chain, signed by the leaf's private key."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from stepless.errors import CLIError

_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def algorithm(key: Any) -> str:
    """The JWS algorithm for a private key: ES256/384/512, RS256 or EdDSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = _EC_ALGS.get(key.curve.name)
        if alg:
            return alg
    elif isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise CLIError(f"unsupported x5c key type {type(key).__name__.removeprefix('_')}")


def load_chain(cert_path: str | Path) -> list[x509.Certificate]:
    """The certificates of the file, leaf first (PEM bundle or DER, as every other command reads them)."""
    from stepless.cli.keys import load_certificates

    return load_certificates(str(cert_path))


def load_key(key_path: str | Path, password: bytes | None = None) -> Any:
    """A PEM private key (PKCS#8, SEC1 or PKCS#1), optionally encrypted."""
    try:
        data = Path(key_path).read_bytes()
    except OSError as e:
        raise CLIError(f"error reading {key_path}: {e.strerror or e}") from e
    try:
        return load_pem_private_key(data, password)
    except TypeError as e:
        raise CLIError(f"{key_path} is encrypted: a password is needed") from e
    except ValueError as e:
        raise CLIError(f"error parsing {key_path}: not a PEM private key (or a wrong password)") from e


def x5c_header(chain: list[x509.Certificate]) -> list[str]:
    """The ``x5c`` header value: standard base64 of each certificate's DER, leaf first."""
    return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]


def x5c_token(cert_path: str | Path, key_path: str | Path, claims: dict[str, Any], *,
              password: bytes | None = None) -> str:
    """A token with ``claims`` whose ``x5c`` header is the chain in ``cert_path``, signed by ``key_path``.

    The key must be the leaf's (the first certificate of the file); CLIError otherwise.
    """
    chain = load_chain(cert_path)
    key = load_key(key_path, password)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if chain[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CLIError(f"the key in {key_path} is not the key of the certificate in {cert_path}")
    return jwt.encode(claims, key, algorithm=algorithm(key), headers={"typ": "JWT", "x5c": x5c_header(chain)})

