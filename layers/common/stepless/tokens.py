"""Checks every one-time token gets, whatever its provisioner: audience, times, subject, jti.

Signature checks belong to the provisioner (it knows the key); this module never trusts an
unverified claim for anything but choosing the provisioner.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

import jwt

from stepless import clock
from stepless.durations import format_duration
from stepless.errors import Unauthorized

LEEWAY = 60  # seconds of clock skew accepted on exp/nbf/iat
MAX_LIFETIME = 3600  # a one-time token may not live longer than an hour
MAX_TOKEN_BYTES = 16 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ASYMMETRIC = {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}


@dataclasses.dataclass(frozen=True)
class Audience:
    """Where a token must be aimed: this endpoint's path on one of the CA's host names."""

    path: str  # e.g. "/1.0/sign"
    hosts: frozenset[str]  # lower-case names/IPs, no ports

    def matches(self, aud: object, fragments: frozenset[str] = frozenset()) -> bool:
        """True when some ``aud`` entry names this endpoint (fragment empty or one of ``fragments``)."""
        values = aud if isinstance(aud, list) else [aud]
        for value in values:
            if not isinstance(value, str):
                continue
            try:
                url = urlsplit(value)
                host = (url.hostname or "").lower()
            except ValueError:
                continue
            path = url.path.rstrip("/")
            if url.scheme != "https" or host not in self.hosts:
                continue
            if path not in (self.path, self.path.removeprefix("/1.0")):
                continue
            if url.fragment and url.fragment not in fragments:
                continue
            return True
        return False


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A compact JWS split and decoded once: header, claims, the signed bytes and the signature."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_STRING_MEMBERS = ("alg", "kid", "typ", "cty")  # RFC 7515 §4.1: strings when present (alg always present)


def check_header(header: dict[str, Any]) -> None:
    """401 for a protected header this CA cannot take as it is: ``alg`` missing or ``alg``/``kid``/``typ``/
    ``cty`` not strings (RFC 7515 §4.1), and JWS extensions we do not implement, so none is silently
    ignored: any ``crit`` parameter (§4.1.11: unknown critical parameters must be rejected, and we know
    none) and an unencoded payload (RFC 7797 ``b64`` other than true: the payload would not be what was
    signed)."""
    if not all(isinstance(header.get(name, ""), str) for name in _STRING_MEMBERS) or "alg" not in header:
        raise Unauthorized("malformed token header", reason="malformed_token")
    if "crit" in header:
        raise Unauthorized("token has critical header parameters this certificate authority does not support",
                           reason="invalid_token")
    if header.get("b64", True) is not True:
        raise Unauthorized("token has an unencoded payload (b64), which is not supported", reason="invalid_token")


@functools.lru_cache(maxsize=128)
def parse(token: str) -> Parsed:
    """Split and decode ``token`` (cached: a request parses its token once); 401 when malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.fullmatch(p) for p in parts):
        raise Unauthorized("malformed token", reason="malformed_token")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except (ValueError, RecursionError) as e:
        raise Unauthorized("malformed token", reason="malformed_token") from e
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthorized("malformed token", reason="malformed_token")
    check_header(header)
    return Parsed(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``token`` without checking anything (only to pick the provisioner)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized("malformed token", reason="malformed_token")
    p = parse(token)
    return dict(p.header), dict(p.claims)


def check_algorithm(header: dict[str, Any], allowed: set[str] | None = None) -> str:
    """The token's alg, refused unless asymmetric (never ``none``, never HMAC) and in ``allowed``."""
    alg = header.get("alg")
    if alg not in _ASYMMETRIC or (allowed is not None and alg not in allowed):
        raise Unauthorized(f"token algorithm {alg!r} is not allowed", reason="invalid_token_algorithm")
    return alg


def verify_signature(token: str, key: Any, alg: str) -> dict[str, Any]:
    """Verify the signature with ``key`` (a cryptography public key) for ``alg``; returns the claims."""
    if alg not in _ASYMMETRIC:
        raise Unauthorized(f"token algorithm {alg!r} is not allowed", reason="invalid_token_algorithm")
    p = parse(token)
    if p.header.get("alg") != alg:
        raise Unauthorized("token algorithm does not match the key", reason="invalid_token_algorithm")
    try:
        ok = jwt.get_algorithm_by_name(alg).verify(p.signing_input, key, p.signature)
    except Exception:  # noqa: BLE001 - a key of the wrong type, a malformed signature: all invalid
        ok = False
    if not ok:
        raise Unauthorized("token signature is invalid", reason="invalid_token_signature")
    return dict(p.claims)


def _number(claims: dict[str, Any], name: str, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise Unauthorized(f"token has no {name} claim", reason="invalid_token")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Unauthorized(f"token {name} claim is not a number", reason="invalid_token")
    if abs(value) > 2**40:
        raise Unauthorized(f"token {name} claim is out of range", reason="invalid_token")
    return int(value)


def check_times(claims: dict[str, Any], *, max_lifetime: int = MAX_LIFETIME) -> int:
    """exp/nbf/iat with a minute of leeway, lifetime at most ``max_lifetime``; returns exp."""
    now = int(clock.now().timestamp())
    exp = _number(claims, "exp", True)
    nbf = _number(claims, "nbf", False)
    iat = _number(claims, "iat", False)
    assert exp is not None
    if now > exp + LEEWAY:
        raise Unauthorized("token expired", reason="token_expired")
    if nbf is not None and now < nbf - LEEWAY:
        raise Unauthorized("token not valid yet", reason="token_not_yet_valid")
    if iat is not None and now < iat - LEEWAY:
        raise Unauthorized("token issued in the future", reason="token_not_yet_valid")
    start = nbf if nbf is not None else iat if iat is not None else now
    if exp - start > max_lifetime or exp - now > max_lifetime + LEEWAY:
        raise Unauthorized(f"token lifetime is longer than {format_duration(dt.timedelta(seconds=max_lifetime))}",
                           reason="token_lifetime_too_long")
    return exp


def check_common(claims: dict[str, Any], audience: Audience, issuer: str,
                 fragments: frozenset[str] = frozenset(), *, need_jti: bool = True) -> None:
    """Issuer, audience, times, subject and jti presence."""
    if claims.get("iss") != issuer:
        raise Unauthorized("invalid token issuer", reason="invalid_issuer")
    if not audience.matches(claims.get("aud"), fragments):
        raise Unauthorized("invalid audience", reason="invalid_audience")
    check_times(claims)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise Unauthorized("token subject cannot be empty", reason="invalid_token")
    if need_jti:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("token has no jti claim", reason="invalid_token")


def token_id(issuer: str, claims: dict[str, Any], token: str) -> str:
    """The single-use key of a token: ``<iss>#<jti>`` (or of its hash when it has no jti)."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        jti = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    return f"{issuer}#{jti}"
