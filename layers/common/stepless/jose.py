"""JWK helpers and step's ``encryptedKey`` (JWE compact, PBES2-HS256+A128KW / A256GCM, p2c 100000).

The JWE is done with cryptography's primitives directly: jwcrypto refuses p2c above 16384, which step's
own keys use, and pyjwt has no JWE.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

STEP_P2C = 100_000
MAX_P2C = 1_000_000
_PBES2 = "PBES2-HS256+A128KW"
_CURVES = {"P-256": (ec.SECP256R1, 32, "ES256"), "P-384": (ec.SECP384R1, 48, "ES384"),
           "P-521": (ec.SECP521R1, 66, "ES512")}


def b64e(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(n: int, size: int | None = None) -> str:
    size = size or max(1, (n.bit_length() + 7) // 8)
    return b64e(n.to_bytes(size, "big"))


def public_jwk(key: Any) -> dict[str, Any]:
    """The public JWK members of a cryptography public or private key."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[pub.curve.name]
        size = _CURVES[crv][1]
        nums = pub.public_numbers()
        return {"kty": "EC", "crv": crv, "x": _int(nums.x, size), "y": _int(nums.y, size)}
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}
    if isinstance(pub, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return {"kty": "OKP", "crv": "Ed25519", "x": b64e(pub.public_bytes(Encoding.Raw, PublicFormat.Raw))}
    raise ValueError(f"unsupported key type {type(pub).__name__}")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url (step's provisioner ``kid``)."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return b64e(hashlib.sha256(canonical.encode()).digest())


def default_alg(jwk: dict[str, Any]) -> str:
    """The signing alg for a JWK: ES256/384/512, RS256 or EdDSA."""
    if jwk["kty"] == "EC":
        return _CURVES[jwk["crv"]][2]
    return "RS256" if jwk["kty"] == "RSA" else "EdDSA"


def private_jwk(key: Any) -> dict[str, Any]:
    """A private JWK with ``kid`` (thumbprint), ``alg`` and ``use``, as step stores it."""
    pub = public_jwk(key)
    out = {"use": "sig", **pub, "kid": thumbprint(pub), "alg": default_alg(pub)}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        out["d"] = _int(key.private_numbers().private_value, _CURVES[pub["crv"]][1])
    else:
        raise ValueError("only EC provisioner keys are supported")
    return out


def public_part(jwk: dict[str, Any]) -> dict[str, Any]:
    """``jwk`` without its private members."""
    return {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


def key_from_jwk(jwk: dict[str, Any]) -> Any:
    """A cryptography key (public, or private when ``d`` is present) from a JWK."""
    try:
        return jwt.PyJWK(jwk).key
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as e:
        raise ValueError(f"invalid JWK: {e}") from e


def _kek(password: str, p2s: bytes, p2c: int) -> bytes:
    salt = _PBES2.encode() + b"\x00" + p2s
    return PBKDF2HMAC(hashes.SHA256(), 16, salt, p2c).derive(password.encode())


def encrypt_jwk(jwk: dict[str, Any], password: str, *, p2c: int = STEP_P2C) -> str:
    """Encrypt a private JWK with a password into step's JWE compact form."""
    p2s = os.urandom(16)
    header = {"alg": _PBES2, "cty": "jwk+json", "enc": "A256GCM", "p2c": p2c, "p2s": b64e(p2s)}
    protected = b64e(json.dumps(header, separators=(",", ":")).encode())
    cek, iv = os.urandom(32), os.urandom(12)
    wrapped = aes_key_wrap(_kek(password, p2s, p2c), cek)
    sealed = AESGCM(cek).encrypt(iv, json.dumps(jwk).encode(), protected.encode())
    return ".".join([protected, b64e(wrapped), b64e(iv), b64e(sealed[:-16]), b64e(sealed[-16:])])


def decrypt_jwk(compact: str, password: str) -> dict[str, Any]:
    """Decrypt step's JWE compact form; ValueError on a wrong password or a malformed JWE."""
    try:
        protected, wrapped, iv, ciphertext, tag = compact.strip().split(".")
        header = json.loads(b64d(protected))
        if header.get("alg") != _PBES2 or header.get("enc") != "A256GCM":
            raise ValueError(f"unsupported JWE algorithm {header.get('alg')}/{header.get('enc')}")
        p2c = int(header["p2c"])
        if not 1000 <= p2c <= MAX_P2C:
            raise ValueError("unacceptable p2c")
        cek = aes_key_unwrap(_kek(password, b64d(header["p2s"]), p2c), b64d(wrapped))
        plain = AESGCM(cek).decrypt(b64d(iv), b64d(ciphertext) + b64d(tag), protected.encode())
        return json.loads(plain)
    except InvalidUnwrap as e:
        raise ValueError("wrong password (could not decrypt the key)") from e
    except (KeyError, TypeError, json.JSONDecodeError, Exception) as e:
        if isinstance(e, ValueError):
            raise
        raise ValueError("malformed encrypted key") from e
