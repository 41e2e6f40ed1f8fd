"""JWK helpers, JWS signature verification and step's ``encryptedKey`` (JWE compact, PBES2-HS256+A128KW /
A256GCM, p2c 100000).

All of it is done with cryptography's primitives directly: jwcrypto refuses p2c above 16384, which step's
own keys use, and pyjwt has no JWE. :func:`key_from_jwk` and :func:`verify` do what PyJWT's ``PyJWK`` and
its algorithms' ``verify`` did here (tests/unit/test_jose.py holds them to PyJWT's answers): importing
PyJWT costs a cold start its JWKS client's imports (``urllib.request``, ``http.client``…), which no
function uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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


# JWS algorithms (RFC 7518 §3) by the key type (``kty``) their keys have, and their digests.
_ALG_KTY = {"ES256": "EC", "ES384": "EC", "ES512": "EC", "ES256K": "EC", "ES521": "EC", "RS256": "RSA", "RS384": "RSA",
            "RS512": "RSA", "PS256": "RSA", "PS384": "RSA", "PS512": "RSA", "EdDSA": "OKP", "HS256": "oct",
            "HS384": "oct", "HS512": "oct"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_JWK_CURVES = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48), "P-521": (ec.SECP521R1, 66),
               "secp256k1": (ec.SECP256K1, 32)}
_OKP = ("Ed25519", "Ed448")
_RSA_CRT = ("p", "q", "dp", "dq", "qi")


def _uint(value: Any) -> int:
    return int.from_bytes(b64d(value), "big")


def _ec_key(jwk: dict[str, Any]) -> Any:
    if "x" not in jwk or "y" not in jwk:
        raise ValueError("not an elliptic curve key")
    x, y = b64d(jwk["x"]), b64d(jwk["y"])
    curve = _JWK_CURVES.get(jwk.get("crv"))  # type: ignore[arg-type]
    if curve is None:
        raise ValueError(f"invalid curve {jwk.get('crv')!r}")
    if not len(x) == len(y) == curve[1]:
        raise ValueError(f"coordinates should be {curve[1]} bytes for curve {jwk['crv']}")
    public = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve[0]())
    if "d" not in jwk:
        return public.public_key()
    d = b64d(jwk["d"])
    if len(d) != len(x):
        raise ValueError(f"d should be {len(x)} bytes for curve {jwk['crv']}")
    return ec.EllipticCurvePrivateNumbers(int.from_bytes(d, "big"), public).private_key()


def _rsa_key(jwk: dict[str, Any]) -> Any:
    if "n" not in jwk or "e" not in jwk:
        raise ValueError("not a public or private key")
    public = rsa.RSAPublicNumbers(_uint(jwk["e"]), _uint(jwk["n"]))
    if "d" not in jwk:
        return public.public_key()
    if "oth" in jwk:
        raise ValueError("RSA private keys with more than 2 primes are not supported")
    found = [name in jwk for name in _RSA_CRT]
    if any(found) and not all(found):
        raise ValueError("an RSA key must include all parameters if any are present besides d")
    d = _uint(jwk["d"])
    if all(found):
        p, q, dp, dq, qi = (_uint(jwk[name]) for name in _RSA_CRT)
    else:
        p, q = rsa.rsa_recover_prime_factors(public.n, public.e, d)
        dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
    return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public).private_key()


def _okp_key(jwk: dict[str, Any], alg: str | None) -> Any:
    crv = jwk.get("crv")
    if crv not in _OKP or (crv != "Ed25519" and alg is None):  # an Ed448 key is taken when its alg says EdDSA
        raise ValueError(f"unsupported crv {crv!r}")
    x = b64d(jwk["x"])
    if crv == "Ed25519":
        public, private = ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey
    else:
        public, private = ed448.Ed448PublicKey, ed448.Ed448PrivateKey  # type: ignore[assignment]
    if "d" not in jwk:
        return public.from_public_bytes(x)
    key = private.from_private_bytes(b64d(jwk["d"]))
    if key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) != x:
        raise ValueError("the public key does not match the private key")
    return key


def key_from_jwk(jwk: dict[str, Any]) -> Any:
    """A cryptography key (public, or private when ``d`` is present) from a JWK: EC (P-256/384/521, secp256k1),
    RSA, OKP (Ed25519; Ed448 when its ``alg`` is EdDSA), ``oct`` (its bytes). An ``alg`` member must be one
    for the key's type. ValueError for anything else."""
    try:
        kty, alg = jwk.get("kty"), jwk.get("alg") or None
        if not kty:
            raise ValueError("kty is not found")
        if alg is not None and _ALG_KTY.get(alg) != kty:
            raise ValueError(f"alg {alg!r} is not an algorithm for kty {kty!r}")
        if kty == "EC":
            return _ec_key(jwk)
        if kty == "RSA":
            return _rsa_key(jwk)
        if kty == "OKP":
            return _okp_key(jwk, alg)
        if kty == "oct":
            return b64d(jwk["k"])
        raise ValueError(f"unsupported kty {kty!r}")
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"invalid JWK: {e}") from e


def verify(alg: str, key: Any, signing_input: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a JWS signature (RFC 7518 §3) of ``signing_input`` by ``key`` (a cryptography
    public key) with ``alg``, an asymmetric algorithm: ES256/384/512 (R || S), RS*, PS* (salt = digest
    size), EdDSA. False for a wrong signature, a malformed one, a key of another type, another algorithm."""
    try:
        if alg in ("ES256", "ES384", "ES512"):
            if isinstance(key, ec.EllipticCurvePrivateKey):
                key = key.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(_HASHES[alg[2:]]()))
        elif alg[:2] in ("RS", "PS") and alg[2:] in _HASHES:
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            digest = _HASHES[alg[2:]]()
            pad = padding.PKCS1v15() if alg[0] == "R" else padding.PSS(padding.MGF1(digest), digest.digest_size)
            key.verify(signature, signing_input, pad, digest)
        elif alg == "EdDSA":
            if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
                key = key.public_key()
            if not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
                return False
            key.verify(signature, signing_input)
        else:
            return False
    except InvalidSignature:
        return False
    return True


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
