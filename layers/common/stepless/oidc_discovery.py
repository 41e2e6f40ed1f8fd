"""OpenID Connect discovery and JWKS, cached per container (module level).

* ``configuration(endpoint)``: the provider's ``/.well-known/openid-configuration`` (issuer, jwks_uri,
  authorization and token endpoints), fetched once and kept for ``DISCOVERY_TTL``; ``cached(endpoint)``
  answers from the cache only (provisioner selection never calls the IdP).
* ``keys(jwks_uri, kid)``: the verification keys for a token's ``kid``. A known kid is answered from the
  cache (no HTTP); an unknown kid refreshes the set, at most once per ``REFRESH_INTERVAL`` per URI; the
  whole set is also refetched after ``JWKS_TTL``. A failed refresh keeps the keys we had.
* URLs must be https; plain http is accepted only for loopback hosts (tests, local IdPs).
* Only asymmetric signature keys are kept (RSA, EC P-256/384/521, Ed25519); ``oct`` keys and keys whose
  ``use`` is not ``sig`` are ignored, so ``none``/HMAC can never verify a token.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stepless import jose
from stepless.errors import ServiceUnavailable

WELL_KNOWN = "/.well-known/openid-configuration"
DISCOVERY_TTL = 24 * 3600.0
JWKS_TTL = 24 * 3600.0
REFRESH_INTERVAL = 60.0  # at most one refresh per minute on unknown kids
TIMEOUT = 5.0
MAX_BODY = 1 << 20
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}

monotonic = time.monotonic  # replaced by tests to move time along


@dataclasses.dataclass(frozen=True)
class Configuration:
    """The parts of a provider's discovery document stepless uses."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str = ""
    token_endpoint: str = ""


@dataclasses.dataclass(frozen=True)
class Key:
    """One verification key of a JWKS."""

    kid: str
    key: Any  # cryptography public key
    algorithms: frozenset[str]


@dataclasses.dataclass
class _KeySet:
    keys: list[Key]
    fetched: float  # monotonic time of the last successful fetch
    refreshed: float = float("-inf")  # monotonic time of the last refresh caused by an unknown kid


_lock = threading.Lock()
_configs: dict[str, tuple[float, Configuration]] = {}
_jwks: dict[str, _KeySet] = {}


def reset() -> None:
    """Forget every cached document (tests)."""
    with _lock:
        _configs.clear()
        _jwks.clear()


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str = "URL") -> str:
    """``url`` when it is https (or http on a loopback address); ValueError otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise ValueError(f"invalid {what} {url!r}: {e}") from e
    if not host:
        raise ValueError(f"invalid {what} {url!r}: no host")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return url
    raise ValueError(f"{what} {url!r} must use https (plain http only on loopback addresses)")


def configuration_url(endpoint: str) -> str:
    """The discovery document URL for a configured ``configurationEndpoint`` (step adds the well-known path)."""
    check_url(endpoint, "configuration endpoint")
    parts = urlsplit(endpoint)
    if WELL_KNOWN in parts.path:
        return endpoint
    path = parts.path.rstrip("/") + WELL_KNOWN
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def get_json(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
             timeout: float = TIMEOUT) -> Any:
    """GET (or POST ``data``) ``url`` and decode its JSON body; ServiceUnavailable when that fails. The one
    HTTP client for identity providers: the functions at run time and ``stepless provisioner add``."""
    req = urllib.request.Request(url, data=data, headers={"Accept": "application/json", "User-Agent": "stepless",
                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 - scheme checked by callers
            body = res.read(MAX_BODY + 1)
    except urllib.error.HTTPError as e:
        raise ServiceUnavailable(f"identity provider at {url} answered HTTP {e.code}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ServiceUnavailable(f"identity provider at {url} is unreachable") from e
    if len(body) > MAX_BODY:
        raise ServiceUnavailable(f"identity provider document at {url} is larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError as e:
        raise ServiceUnavailable(f"identity provider at {url} did not return JSON") from e


def parse_configuration(doc: Any, url: str = "") -> Configuration:
    """A Configuration from a discovery document; ValueError when issuer or jwks_uri is missing."""
    if not isinstance(doc, dict):
        raise ValueError(f"discovery document {url} is not a JSON object")
    issuer, jwks_uri = doc.get("issuer"), doc.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError(f"discovery document {url} has no issuer")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise ValueError(f"discovery document {url} has no jwks_uri")
    check_url(jwks_uri, "jwks_uri")
    return Configuration(
        issuer=issuer,
        jwks_uri=jwks_uri,
        authorization_endpoint=str(doc.get("authorization_endpoint") or ""),
        token_endpoint=str(doc.get("token_endpoint") or ""),
    )


def cached(endpoint: str) -> Configuration | None:
    """The cached configuration of ``endpoint`` (even if stale), without any network call."""
    try:
        hit = _configs.get(configuration_url(endpoint))
    except ValueError:
        return None
    return hit[1] if hit else None


def configuration(endpoint: str) -> Configuration:
    """The discovery document of ``endpoint``, fetched when not cached or older than DISCOVERY_TTL.

    ServiceUnavailable when the provider cannot be reached (a stale copy is used instead, if any).
    """
    url = configuration_url(endpoint)
    hit = _configs.get(url)
    now = monotonic()
    if hit is not None and now - hit[0] < DISCOVERY_TTL:
        return hit[1]
    try:
        config = parse_configuration(get_json(url), url)
    except (ServiceUnavailable, ValueError) as e:
        if hit is not None:  # keep the stale copy; try again in a minute at the earliest
            with _lock:
                _configs[url] = (now - DISCOVERY_TTL + REFRESH_INTERVAL, hit[1])
            return hit[1]
        if isinstance(e, ValueError):
            raise ServiceUnavailable(str(e)) from e
        raise
    with _lock:
        _configs[url] = (now, config)
    return config


def _algorithms(jwk: dict[str, Any]) -> frozenset[str]:
    kty = jwk.get("kty")
    if kty == "RSA":
        allowed = set(_RSA_ALGS)
    elif kty == "EC":
        alg = _EC_ALGS.get(str(jwk.get("crv")))
        allowed = {alg} if alg else set()
    elif kty == "OKP" and jwk.get("crv") == "Ed25519":
        allowed = {"EdDSA"}
    else:
        return frozenset()
    declared = jwk.get("alg")
    if declared:
        return frozenset({declared} & allowed)
    return frozenset(allowed)


def parse_jwks(doc: Any) -> list[Key]:
    """The usable signature keys of a JWKS document (others are skipped)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("JWKS document has no keys list")
    out = []
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        algs = _algorithms(jwk)
        if not algs:
            continue
        try:
            key = jose.key_from_jwk(jose.public_part(jwk))
        except ValueError:
            continue
        if hasattr(key, "private_bytes"):  # never keep a private key, whatever the document says
            key = key.public_key()
        out.append(Key(str(jwk.get("kid") or ""), key, algs))
    return out


def _fetch(jwks_uri: str, current: _KeySet | None, now: float, *, unknown_kid: bool) -> _KeySet:
    try:
        fetched = parse_jwks(get_json(check_url(jwks_uri, "jwks_uri")))
    except (ServiceUnavailable, ValueError):
        if current is None:
            raise ServiceUnavailable(f"cannot load the identity provider keys from {jwks_uri}") from None
        # keep the keys we have; try again in a minute at the earliest
        if unknown_kid:
            current.refreshed = now
        else:
            current.fetched = now - JWKS_TTL + REFRESH_INTERVAL
        return current
    return _KeySet(fetched, now, now if unknown_kid else (current.refreshed if current else float("-inf")))


def _select(keys: list[Key], kid: str | None) -> list[Key]:
    if kid:
        return [k for k in keys if k.kid == kid]
    return list(keys)


def _needs_fetch(current: _KeySet | None, kid: str | None, now: float) -> tuple[bool, bool]:
    """(fetch now?, because of an unknown kid?)."""
    if current is None or now - current.fetched >= JWKS_TTL:
        return True, False
    if _select(current.keys, kid):
        return False, False
    return now - current.refreshed >= REFRESH_INTERVAL, True


def keys(jwks_uri: str, kid: str | None) -> list[Key]:
    """The keys that may have signed a token with ``kid`` (all keys when it has none).

    Cached: a known kid costs no HTTP request. An unknown kid refreshes the set, at most once per
    REFRESH_INTERVAL (the first fetch does not count); the set is also refetched after JWKS_TTL.
    """
    current = _jwks.get(jwks_uri)
    if current is not None and not _needs_fetch(current, kid, monotonic())[0]:
        return _select(current.keys, kid)
    with _lock:
        current = _jwks.get(jwks_uri)
        now = monotonic()
        fetch, unknown = _needs_fetch(current, kid, now)
        if fetch:
            current = _jwks[jwks_uri] = _fetch(jwks_uri, current, now, unknown_kid=unknown)
    assert current is not None
    return _select(current.keys, kid)
