"""ACME anti-replay nonces (RFC 8555 §6.5) that cost one write per use and none per response.

A nonce is ``base64url(version ‖ expiry ‖ 12 random bytes ‖ tag)`` (44 characters), the tag the first 16 bytes
of HMAC-SHA256 over the rest under the CA's nonce key: the CA can tell a nonce it issued, unaltered and
unexpired, without having stored it. Issuing one (every response's ``Replay-Nonce``) writes nothing; using one
checks the tag and the expiry, then records it used — one conditional write (``stores.acme.use_nonce``) that
fails when it was used already, which is what makes it single use; the record expires :data:`RECORD_MARGIN_S`
after the nonce (the store's TTL). A forged, altered, expired, unknown or reused nonce is refused (the caller
answers ``badNonce``).

The key: 32 random bytes in the ACME store (record ``noncekey#hmac``), created by the first container that needs
it (create-once: concurrent first containers read back the one that won) and cached per container for the store
it came from — one read on a cold start, none warm.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import threading

from stepless import jose
from stepless.errors import InternalError
from stepless.stores import acme as store
from stepless.stores import backend
from stepless.stores.acme import AcmeConflict, AcmeRecord

TTL_S = 3600
# a used nonce's record outlives the nonce by this much: DynamoDB's TTL deletes by its own clock to the sub-second,
# while a function accepts the nonce through its expiry second by its own clock (which may lag): no moment where the
# nonce is still accepted somewhere and its record already gone
RECORD_MARGIN_S = 300
KEY_KIND, KEY_ID = "noncekey", "hmac"
KEY_SIZE = 32
_VERSION = b"\x01"
_RANDOM, _TAG = 12, 16
_SIZE = len(_VERSION) + 4 + _RANDOM + _TAG  # 33 bytes: 44 base64url characters, no padding bits
LENGTH = 44

_lock = threading.Lock()
_cache: tuple[object, bytes] | None = None  # (the store the key came from, the key)


def _key() -> bytes:
    global _cache
    stores = backend.current()
    cached = _cache
    if cached is not None and cached[0] is stores:
        return cached[1]
    with _lock:
        rec = store.get(KEY_KIND, KEY_ID)
        if rec is None:
            rec = AcmeRecord(KEY_KIND, KEY_ID, {"key": jose.b64e(secrets.token_bytes(KEY_SIZE))})
            try:
                store.write(rec)
            except AcmeConflict:  # another container created it first: use that one
                rec = store.get(KEY_KIND, KEY_ID)
        key = _valid_key(rec)
        _cache = (stores, key)
    return key


def _valid_key(rec: AcmeRecord | None) -> bytes:
    """The key a record holds; InternalError (never a weaker key: an empty one would let anyone mint nonces) for a
    record that is gone or is not :data:`KEY_SIZE` bytes of base64url. The operator deletes a damaged record (the
    next container makes a new key)."""
    value = rec.doc.get("key") if rec is not None and isinstance(rec.doc, dict) else None
    try:
        key = jose.b64d(value) if isinstance(value, str) else b""
    except ValueError:
        key = b""
    if len(key) != KEY_SIZE or jose.b64e(key) != value:
        raise InternalError(f"the ACME nonce key in the store (record {KEY_KIND}#{KEY_ID}) is not valid")
    return key


def _tag(body: bytes) -> bytes:
    return hmac.new(_key(), body, hashlib.sha256).digest()[:_TAG]


def issue(now: int) -> str:
    """A fresh nonce, valid until ``now`` + :data:`TTL_S` (nothing is written)."""
    body = _VERSION + struct.pack(">I", now + TTL_S) + secrets.token_bytes(_RANDOM)
    return jose.b64e(body + _tag(body))


def use(nonce: object, now: int) -> bool:
    """True when ``nonce`` was issued by this CA, has not expired at ``now`` and was not used before; it is used
    now (recorded until it expires)."""
    if not isinstance(nonce, str) or len(nonce) != LENGTH:
        return False
    try:
        raw = jose.b64d(nonce)
    except ValueError:
        return False
    # one spelling per nonce: the decoder also takes "+" and "/" for "-" and "_", which must not be a second use
    if len(raw) != _SIZE or raw[:1] != _VERSION or jose.b64e(raw) != nonce:
        return False
    body, tag = raw[:-_TAG], raw[-_TAG:]
    if not hmac.compare_digest(tag, _tag(body)):
        return False
    (expires,) = struct.unpack(">I", body[1:5])
    if expires < now:
        return False
    return store.use_nonce(nonce, expires + RECORD_MARGIN_S, now)
