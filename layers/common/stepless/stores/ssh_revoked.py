"""The revoked SSH certificates the KRL lists, kept in one record by each SSH revocation, so the KRL is
built from one read instead of a scan of every revocation.

The record holds a version (incremented by every change: the KRL's version), the time of the last change,
and per certificate type (``user``, ``host``) the revoked serials with their notAfter; entries of expired
certificates are dropped when the record is next written (OpenSSH refuses an expired certificate anyway).

The rules every backend keeps (the contract):
- :func:`add` is atomic (concurrent revocations never lose one) and returns the record as it stands after
  the change; :func:`get` is one point read (a missing record reads as version 0, nothing revoked).
- :func:`add` drops expired entries before it counts, and refuses a new serial that would take the set
  past :data:`MAX_UNEXPIRED` unexpired entries (:class:`~stepless.stores.errors.RevokedSetFull`, 503,
  logged as an error; a warning from :data:`WARN_AT`): the one DynamoDB item holding the set is capped
  at 400 KB, which ~9,750 entries of the longest form (a 20-digit serial, a notAfter of "forever")
  would reach. Re-adding a serial already in the set always succeeds.

DynamoDB: the item ``serial = "krl:ssh"`` of the revocations table (no X.509 or SSH serial looks like it),
attributes ``version``, ``updated_at`` and string sets ``user`` / ``host`` of ``"<serial>:<notAfter>"``.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from stepless.observability import logger
from stepless.stores import backend
from stepless.stores.errors import RevokedSetFull

TYPES = ("user", "host")
MAX_UNEXPIRED = 9_000  # entries of both types; at most 41 bytes each, so the item stays under 400 KB
WARN_AT = MAX_UNEXPIRED * 4 // 5


@dataclasses.dataclass(frozen=True)
class Revoked:
    """The revoked SSH certificates: serial → notAfter (Unix seconds) per type, and the change counter."""

    version: int = 0
    updated_at: int = 0
    user: dict[int, int] = dataclasses.field(default_factory=dict)
    host: dict[int, int] = dataclasses.field(default_factory=dict)


class RevokedStore(Protocol):
    def add(self, serial: int, cert_type: str, not_after: int, now: int) -> Revoked: ...

    def get(self) -> Revoked: ...


def check_room(unexpired: int) -> None:
    """For backends, before adding a new serial: ``unexpired`` entries would be stored with it. Refuses past
    MAX_UNEXPIRED (an error line: the revocation's KRL write fails), warns from WARN_AT."""
    if unexpired > MAX_UNEXPIRED:
        logger.error("revoked SSH set full: SSH revocations cannot reach the KRL",
                     extra={"unexpired": unexpired - 1, "limit": MAX_UNEXPIRED})
        raise RevokedSetFull(MAX_UNEXPIRED)
    if unexpired >= WARN_AT:
        logger.warning("revoked SSH set nearly full", extra={"unexpired": unexpired, "limit": MAX_UNEXPIRED})


def add(serial: int, cert_type: str, not_after: int, now: int) -> Revoked:
    """Record the revocation of SSH certificate ``serial`` (``cert_type`` user or host); the record after it,
    without entries that expired before ``now``."""
    if cert_type not in TYPES:
        raise ValueError(f"unknown SSH certificate type {cert_type!r}")
    return backend.current().ssh_revoked.add(serial, cert_type, not_after, now)


def get() -> Revoked:
    """The record (one consistent read)."""
    return backend.current().ssh_revoked.get()
