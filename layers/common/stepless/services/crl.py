"""The CRL: an RFC 5280 v2 CRL of our intermediate, signed through the intermediate's Signer.

Contents: issuer = the intermediate's subject; thisUpdate = now; nextUpdate = now + 24h; extensions
AuthorityKeyIdentifier and CRLNumber (a counter shared by every container, see stores.crl_store);
one entry per revoked X.509 serial whose certificate has not expired yet (expired entries drop off),
with its revocation date and, when meaningful, a reasonCode extension (RFC 5280 §5.3.1: unspecified (0)
is expressed by leaving the extension out; 7 is not a reason; removeFromCRL (8) belongs to delta CRLs,
so both are also listed without a reason).

Freshness (what a relying party gets): GET /crl serves a CRL at most ``STEPLESS_CRL_TTL`` seconds old
(default 60). A revocation invalidates the cache of the container that recorded it at once; other
containers pick it up within the TTL. With ``STEPLESS_CRL_BUCKET`` the generated CRL is stored in S3 and
shared (a revocation publishes a new one at once, and a scheduled ``refresh`` keeps it there even when nobody
asks); without a bucket each container regenerates on demand. OCSP (services.ocsp) is current at once: a
revocation stores its revoked response.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import clock
from stepless.authority import Authority, fingerprint
from stepless.observability import logger
from stepless.signers import as_private_key
from stepless.stores import crl_store, revocations
from stepless.stores.crl_store import StoredCRL
from stepless.stores.revocations import RevocationRecord
from stepless.x509.profile import authority_key_identifier

TTL = "STEPLESS_CRL_TTL"
VALIDITY = dt.timedelta(hours=24)

REASONS: dict[int, x509.ReasonFlags] = {
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}


def reason_flag(code: object) -> x509.ReasonFlags | None:
    """The CRL/OCSP reason for a stored reasonCode; None for unspecified (and 7, 8)."""
    return REASONS.get(code) if isinstance(code, int) and not isinstance(code, bool) else None


def ttl() -> float:
    """Seconds a generated CRL is served before it is regenerated (default 60)."""
    try:
        return max(0.0, float(os.environ.get(TTL, "60")))
    except ValueError:
        return 60.0


def _at(epoch: int, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(epoch, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return default


def entries(records: Iterable[RevocationRecord], now: dt.datetime) -> list[x509.RevokedCertificate]:
    """CRL entries for the X.509 revocations still worth listing (certificate not expired)."""
    now_ts = int(now.timestamp())
    out = []
    for rec in records:
        serial = rec.serial
        if not serial.isdigit() or rec.kind != "x509":
            continue  # SSH revocations live in the same table as "ssh:<serial>"
        if rec.not_after is not None and rec.not_after < now_ts:
            continue
        builder = (x509.RevokedCertificateBuilder()
                   .serial_number(int(serial))
                   .revocation_date(min(_at(rec.revoked_at, now), now)))
        flag = reason_flag(rec.reason_code)
        if flag is not None:
            builder = builder.add_extension(x509.CRLReason(flag), critical=False)
        out.append(builder.build())
    return out


def build(auth: Authority, records: Iterable[RevocationRecord], now: dt.datetime, number: int,
          validity: dt.timedelta = VALIDITY) -> x509.CertificateRevocationList:
    """Build and sign the CRL (one signature by the intermediate's signer)."""
    inter = auth.intermediate
    # all entries at once: add_revoked_certificate copies the list each time (quadratic for 100k entries)
    builder = x509.CertificateRevocationListBuilder(revoked_certificates=entries(records, now))
    builder = (
        builder.issuer_name(inter.subject)
        .last_update(now)
        .next_update(now + validity)
        .add_extension(authority_key_identifier(inter), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    signer = auth.intermediate_signer
    algorithm = None if isinstance(signer.public_key(), ed25519.Ed25519PublicKey) else signer.hash_algorithm()
    return builder.sign(as_private_key(signer), algorithm)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class _Cached:
    issuer: str  # fingerprint of the intermediate it belongs to
    crl: StoredCRL


_lock = threading.Lock()
_cache: _Cached | None = None


def invalidate() -> None:
    """Forget this container's CRL (a revocation just landed here)."""
    global _cache
    _cache = None


def _fresh(crl: StoredCRL, now: dt.datetime) -> bool:
    age = (now - crl.this_update).total_seconds()
    return 0 <= age < ttl() and now < crl.next_update


def generate(auth: Authority) -> StoredCRL:
    """A new CRL from the revocations table; stored in S3 when a bucket is configured, and cached."""
    global _cache
    now = clock.now()
    number = crl_store.next_number()
    crl = build(auth, revocations.scan_all(), now, number)
    stored = StoredCRL(crl.public_bytes(Encoding.DER), number, now, now + VALIDITY)
    crl_store.put(stored)
    _cache = _Cached(fingerprint(auth.intermediate), stored)
    logger.info("CRL generated", extra={"crl_number": number, "entries": len(crl)})
    return stored


def current(auth: Authority) -> StoredCRL:
    """The CRL to serve: this container's if fresh, else the bucket's if fresh, else a new one."""
    global _cache
    now = clock.now()
    issuer = fingerprint(auth.intermediate)
    cached = _cache
    if cached is not None and cached.issuer == issuer and _fresh(cached.crl, now):
        return cached.crl
    with _lock:
        cached = _cache
        if cached is not None and cached.issuer == issuer and _fresh(cached.crl, now):
            return cached.crl
        stored = crl_store.get()
        if stored is not None and _fresh(stored, now) and _issued_by(stored.der, auth):
            _cache = _Cached(issuer, stored)
            return stored
        return generate(auth)


def _issued_by(der: bytes, auth: Authority) -> bool:
    try:
        return x509.load_der_x509_crl(der).issuer == auth.intermediate.subject
    except ValueError:
        return False


def publish(auth: Authority) -> None:
    """After a revocation: with a bucket, store a new CRL at once, so the plain-HTTP distribution point
    (CloudFront in front of the bucket) and every container serve it. Best effort: the revocation is
    recorded (OCSP already answers "revoked"); if this fails, the next GET /crl or the hourly refresh stores
    it. Two revocations publishing at once may leave the older CRL in the bucket until the next one does."""
    if not crl_store.shared():
        return
    try:
        generate(auth)
    except Exception as e:  # noqa: BLE001 - never fail a recorded revocation over its CRL
        logger.warning("CRL not published after the revocation; the next refresh will",
                       extra={"error": type(e).__name__})


def refresh(auth: Authority) -> dict[str, Any]:
    """The scheduled regeneration (EventBridge): always a new CRL."""
    stored = generate(auth)
    return {"crlNumber": stored.number, "nextUpdate": stored.next_update.isoformat()}


def pem(der: bytes) -> str:
    """The CRL in PEM (``GET /crl?pem``)."""
    return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM).decode()
