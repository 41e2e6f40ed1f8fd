"""The loaded certificate authority, cached per container and refreshed after a short TTL.

A warm request reads nothing from AWS: the configuration is re-read at most every ``STEPLESS_CONFIG_TTL``
seconds, and signers (which may hold a key loaded from Secrets Manager) are kept across reloads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless import clock, settings
from stepless.claims import Claims
from stepless.durations import parse_duration
from stepless.errors import ConfigError
from stepless.provisioners import Provisioners, build
from stepless.signers import Signer, load_signer


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, lower-case hex (step's root fingerprint)."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclasses.dataclass
class Authority:
    """The CA as configured: certificates, keys (as signers), claims, provisioners."""

    doc: dict[str, Any]
    version: int

    @cached_property
    def root_pems(self) -> list[str]:
        return list(self.doc["roots"])

    @cached_property
    def roots(self) -> list[x509.Certificate]:
        return [x509.load_pem_x509_certificate(p.encode()) for p in self.root_pems]

    @cached_property
    def roots_by_fingerprint(self) -> dict[str, str]:
        return {fingerprint(c): p for c, p in zip(self.roots, self.root_pems, strict=True)}

    @cached_property
    def federated_pems(self) -> list[str]:
        return self.root_pems + list(self.doc.get("federatedRoots") or [])

    @cached_property
    def intermediate_pem(self) -> str:
        return self.doc["intermediate"]

    @cached_property
    def intermediate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.intermediate_pem.encode())

    @cached_property
    def intermediates(self) -> list[x509.Certificate]:
        """The current intermediate, then those it replaced (``ca rotate-intermediate``) and still valid:
        leaves of any of them may be renewed and revoked over mTLS."""
        now = clock.now()
        previous = (x509.load_pem_x509_certificate(p.encode()) for p in self.doc.get("previousIntermediates") or [])
        return [self.intermediate, *(c for c in previous if c.not_valid_after_utc > now)]

    @cached_property
    def intermediate_signer(self) -> Signer:
        """The intermediate's key, whose public half is the certificate's (no KMS call; checked on first use)."""
        return signer(self.doc["intermediateKey"], self.intermediate.public_key())

    @cached_property
    def hosts(self) -> frozenset[str]:
        return frozenset(h.lower() for h in self.doc.get("dnsNames") or [])

    @cached_property
    def claims(self) -> Claims:
        return Claims.from_json(self.doc.get("claims"), None)

    @cached_property
    def backdate(self):  # noqa: ANN201
        return parse_duration(self.doc.get("backdate") or "1m")

    @cached_property
    def provisioners(self) -> Provisioners:
        return Provisioners([build(p, self.claims) for p in self.doc.get("provisioners") or []])

    @property
    def ssh(self) -> dict[str, Any]:
        """The SSH section (``userKey``/``hostKey`` refs and ``userPublicKey``/``hostPublicKey`` lines)."""
        return self.doc.get("ssh") or {}


_lock = threading.Lock()
_cached: tuple[float, Authority] | None = None
_signers: dict[tuple[str, bytes], Signer] = {}


def signer(ref: str, public_key: PublicKeyTypes | None = None) -> Signer:
    """The container's signer for a key reference (created once per reference and stated public key).

    ``public_key``: the public half the configuration states (the certificate or SSH CA public key the key
    signs for); see :func:`~stepless.signers.load_signer`."""
    key = (ref, b"" if public_key is None else public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    s = _signers.get(key)
    if s is None:
        s = _signers[key] = load_signer(ref, public_key)
    return s


def get() -> Authority:
    """The authority, reloaded from DynamoDB when older than the TTL."""
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and now - cached[0] < settings.config_ttl():
        return cached[1]
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < settings.config_ttl():
            return _cached[1]
        from stepless.stores import authority as store

        doc, version = store.load()
        if cached is not None and cached[1].version == version:
            auth = cached[1]
        else:
            auth = Authority(doc, version)
            try:
                auth.provisioners  # noqa: B018 - validate eagerly
            except (KeyError, ValueError) as e:
                raise ConfigError(f"invalid authority configuration: {e}") from e
        _cached = (time.monotonic(), auth)
        return auth


def expire() -> None:
    """Make the next :func:`get` read the configuration again (kept if its version did not change)."""
    global _cached
    with _lock:
        if _cached is not None:
            _cached = (float("-inf"), _cached[1])


def reset() -> None:
    """Forget the cached authority and signers (tests, `ca init`)."""
    global _cached
    _cached = None
    _signers.clear()
