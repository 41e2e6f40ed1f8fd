"""The JWS of every ACME POST (RFC 8555 §6.2): flattened JSON serialization, ``alg`` one of
ES256/ES384/RS256/EdDSA (matching the key), exactly one of ``jwk``/``kid``, ``nonce``, ``url``; the
signature checked with the key. Nonce and ``url`` are checked by :mod:`stepless.acme.service`, which
knows the request."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stepless import jose
from stepless.acme.errors import AcmeError, malformed

ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
MIN_RSA_BITS = 2048
_KEYS: dict[str, tuple[type, type | None, int | None]] = {  # alg: key type, EC curve, raw r|s half size
    "ES256": (ec.EllipticCurvePublicKey, ec.SECP256R1, 32), "ES384": (ec.EllipticCurvePublicKey, ec.SECP384R1, 48),
    "RS256": (rsa.RSAPublicKey, None, None), "EdDSA": (ed25519.Ed25519PublicKey, None, None)}
_PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@dataclasses.dataclass(frozen=True)
class JWS:
    """A parsed (not yet verified) request JWS."""

    header: dict[str, Any]
    protected: str
    payload_b64: str
    signature: bytes

    @property
    def alg(self) -> str:
        return self.header["alg"]

    @property
    def signing_input(self) -> bytes:
        return f"{self.protected}.{self.payload_b64}".encode()

    @property
    def post_as_get(self) -> bool:
        return self.payload_b64 == ""

    def payload(self) -> dict[str, Any]:
        """The payload as a JSON object ({} for POST-as-GET is refused: callers decide)."""
        try:
            value = json.loads(jose.b64d(self.payload_b64))
        except (ValueError, RecursionError) as e:
            raise malformed("the JWS payload is not base64url-encoded JSON") from e
        if not isinstance(value, dict):
            raise malformed("the JWS payload must be a JSON object")
        return value


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise malformed(f"the JWS {what} must be a base64url string")
    try:
        return jose.b64d(value)
    except ValueError as e:
        raise malformed(f"the JWS {what} is not base64url") from e


def parse(body: bytes | dict[str, Any]) -> JWS:
    """The flattened JWS of a request body (or an already decoded object, e.g. an EAB or an inner JWS)."""
    if isinstance(body, dict):
        obj = body
    else:
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise malformed("the request body is not a JWS (flattened JSON serialization)") from e
    if not isinstance(obj, dict) or not {"protected", "payload", "signature"} <= set(obj):
        raise malformed("the request body must be a flattened JWS with protected, payload and signature")
    if "header" in obj:
        raise malformed("unprotected JWS headers are not allowed")
    raw = _b64(obj["protected"], "protected header")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise malformed("the JWS protected header is not JSON") from e
    if not isinstance(header, dict):
        raise malformed("the JWS protected header must be a JSON object")
    if not isinstance(header.get("alg"), str):
        raise malformed("the JWS protected header has no alg")
    _b64(obj["payload"], "payload")
    return JWS(header, obj["protected"], obj["payload"], _b64(obj["signature"], "signature"))


def account_key(jwk: Any) -> Any:
    """A cryptography public key from a request's ``jwk`` (badPublicKey for anything unacceptable)."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in ("EC", "RSA", "OKP"):
        raise AcmeError("badPublicKey", "the jwk must be an EC (P-256, P-384), RSA or Ed25519 public key")
    if any(k in jwk for k in _PRIVATE):
        raise AcmeError("badPublicKey", "the jwk contains private key material")
    try:
        key = jose.key_from_jwk(jwk)
    except ValueError as e:
        raise AcmeError("badPublicKey", str(e)[:200]) from e
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise AcmeError("badPublicKey", f"RSA keys must have at least {MIN_RSA_BITS} bits")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in ("secp256r1", "secp384r1"):
        raise AcmeError("badPublicKey", "EC keys must be on P-256 or P-384")
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise AcmeError("badPublicKey", "unsupported key type")
    return key


def check_alg(jws: JWS) -> str:
    """The JWS's ``alg``, badSignatureAlgorithm unless it is one of :data:`ALGORITHMS`."""
    if jws.alg not in ALGORITHMS:
        raise AcmeError("badSignatureAlgorithm", f"alg {jws.alg[:16]!r} is not one of {', '.join(ALGORITHMS)}")
    return jws.alg


def thumbprint(jwk: Any) -> str | None:
    """The RFC 7638 thumbprint of a JWK a request sent (None when it is not one)."""
    try:
        return jose.thumbprint(jwk) if isinstance(jwk, dict) else None
    except (KeyError, TypeError):
        return None


def verify(jws: JWS, key: Any) -> None:
    """The signature and ``alg`` against ``key`` (badSignatureAlgorithm, or malformed for a bad signature); the
    signature itself is checked by PyJWT's algorithm, as :func:`stepless.tokens.verify_signature` does."""
    alg = check_alg(jws)
    key_type, curve, size = _KEYS[alg]
    if not isinstance(key, key_type) or (curve is not None and not isinstance(key.curve, curve)):
        raise AcmeError("badSignatureAlgorithm", f"alg {alg} does not match the account key")
    if size is not None and len(jws.signature) != 2 * size:
        raise malformed("the JWS signature has the wrong length")
    if not jwt.get_algorithm_by_name(alg).verify(jws.signing_input, key, jws.signature):
        raise malformed("the JWS signature is invalid")
