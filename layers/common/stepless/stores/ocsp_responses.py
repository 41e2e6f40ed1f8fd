"""Pre-produced OCSP responses (RFC 6960 §2.2, RFC 5019): one record per X.509 serial we issued.

A record holds the certificate's status as last produced (``good`` or ``revoked``, with the revocation
time and reason) and, per CertID hash algorithm (``sha1``, ``sha256``, …), the signed response and its
thisUpdate/nextUpdate. The OCSP responder serves a stored response while it is fresh, so a request costs
one read and no signature (services.ocsp).

The rules every backend keeps (the contract):
- :func:`get` is a consistent read: a revocation stored by another container is seen by the next request.
- ``revoked`` is terminal: :func:`put_revoked` replaces the whole record (every stored ``good`` response
  goes); :func:`add_response` adds one response only while the record's status is still the one the
  caller produced it for, and :func:`create` only when there is no record yet — both return False
  (nothing written) otherwise, so a ``good`` response signed before a revocation never overwrites it.
- ``expires`` (Unix seconds; the certificate's notAfter plus a margin) lets the backend forget a record
  (DynamoDB TTL); a forgotten record is produced again on demand.

DynamoDB: table ``STEPLESS_OCSP_TABLE``, key ``serial`` (decimal string), attributes ``status``,
``revoked_at``, ``reason_code``, ``expires`` and ``responses`` (a map: algorithm → {der, this_update,
next_update}).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from stepless.stores import backend

GOOD = "good"
REVOKED = "revoked"
KEEP = 86400  # seconds a record is kept after the certificate's notAfter


@dataclasses.dataclass(frozen=True)
class Response:
    """One signed OCSP response (DER) and its validity (Unix seconds)."""

    der: bytes
    this_update: int
    next_update: int


@dataclasses.dataclass(frozen=True)
class Record:
    """The stored status of one serial and its responses by CertID hash algorithm."""

    serial: str
    status: str  # GOOD or REVOKED
    expires: int
    revoked_at: int | None = None
    reason_code: int | None = None
    responses: dict[str, Response] = dataclasses.field(default_factory=dict)


class OCSPStore(Protocol):
    def get(self, serial: str) -> Record | None: ...

    def create(self, rec: Record) -> bool: ...

    def put_revoked(self, rec: Record) -> None: ...

    def add_response(self, serial: str, status: str, algorithm: str, response: Response) -> bool: ...


def get(serial: str) -> Record | None:
    """The stored record of ``serial`` (one consistent read), or None."""
    return backend.current().ocsp.get(serial)


def create(rec: Record) -> bool:
    """Store a new ``good`` record; False (nothing written) when ``serial`` has a record already."""
    return backend.current().ocsp.create(rec)


def put_revoked(rec: Record) -> None:
    """Store a ``revoked`` record, replacing whatever was stored for the serial."""
    backend.current().ocsp.put_revoked(rec)


def add_response(serial: str, status: str, algorithm: str, response: Response) -> bool:
    """Set the ``algorithm`` response of a stored record while its status is ``status``; False otherwise."""
    return backend.current().ocsp.add_response(serial, status, algorithm, response)
