"""Revoked serials (X.509: decimal; SSH: ``ssh:<decimal>``), one :class:`RevocationRecord` each.

A serial is revoked once: a second revocation raises
:class:`~stepless.stores.errors.AlreadyRevoked` (400) and changes nothing.

Pruning: a record whose certificate's end (``not_after``) is known carries ``expires`` =
not_after + :data:`RETENTION_AFTER_EXPIRY` (:func:`with_expiry`; DynamoDB: the table's TTL attribute), so
it is removed once the certificate can no longer be used (an expired certificate is off the CRL and the
KRL anyway). Renewal of a certificate that ended longer ago than that is refused (:func:`outlived`): its
revocation may be gone. A record without ``not_after`` (a serial we never recorded) is kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from stepless.stores import backend
from stepless.stores.tokens import UsedToken


@dataclasses.dataclass(frozen=True, slots=True)
class RevocationRecord:
    serial: str
    reason_code: int
    revoked_at: int
    kind: str = "x509"  # "x509" | "ssh"
    reason: str = ""
    revoked_by: str | None = None  # "mtls" | "provisioner:<name>" | "admin" …
    not_after: int | None = None
    subject: str | None = None
    provisioner: str | None = None
    provisioner_type: str | None = None
    lineage_of: str | None = None  # revoked with the lineage of this serial
    cert_type: str | None = None  # SSH: "user" | "host"
    key_id: str | None = None
    token_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RevocationRecord:
        data = {k: v for k, v in values.items() if k in _FIELDS}
        data["serial"] = str(data.get("serial") or "")
        data["reason_code"] = int(data.get("reason_code") or 0)
        data["revoked_at"] = int(data.get("revoked_at") or 0)
        data.setdefault("kind", "x509")
        if data.get("not_after") is not None:
            data["not_after"] = int(data["not_after"])
        return cls(**data)


_FIELDS = tuple(f.name for f in dataclasses.fields(RevocationRecord))

EXPIRES = "expires"  # the RevocationsTable's TimeToLiveSpecification attribute (template.yaml)
RETENTION_AFTER_EXPIRY = dt.timedelta(days=90)


def with_expiry(record: RevocationRecord) -> dict[str, Any]:
    """The record's values, with ``expires`` when its certificate's end is known."""
    values = record.to_dict()
    if record.not_after is not None:
        values[EXPIRES] = record.not_after + int(RETENTION_AFTER_EXPIRY.total_seconds())
    return values


def outlived(not_after: dt.datetime, now: dt.datetime) -> bool:
    """Whether a certificate ended so long ago that a revocation of it may have been pruned."""
    return now > not_after + RETENTION_AFTER_EXPIRY


class RevocationStore(Protocol):
    def get(self, serial: str) -> RevocationRecord | None:
        """The revocation of ``serial`` (a consistent read), or None."""

    def put(self, record: RevocationRecord, token: UsedToken | None = None) -> None:
        """Record the revocation (and the token's use, atomically); AlreadyRevoked / TokenUsed."""

    def scan(self) -> Iterable[RevocationRecord]:
        """Every revocation (CRL and KRL generation)."""

    def revoked_among(self, serials: list[str]) -> set[str]:
        """Which of ``serials`` are revoked (consistent reads, batched)."""


def _store() -> RevocationStore:
    return backend.current().revocations


def get(serial: str) -> RevocationRecord | None:
    """The revocation record of ``serial``, or None when it is not revoked."""
    return _store().get(serial)


def put(record: RevocationRecord) -> None:
    """Record a revocation; a serial revoked before raises 400 "already revoked"."""
    _store().put(record)


def put_with_token(record: RevocationRecord, token: UsedToken) -> None:
    """Record a revocation and mark the revoke token used, atomically.

    A used token raises 401 "token already used"; a serial revoked before 400 "already revoked".
    """
    _store().put(record, token)


def scan_all() -> list[RevocationRecord]:
    """Every revocation record (for CRL and KRL generation)."""
    return list(_store().scan())


def revoked_among(serials: list[str]) -> set[str]:
    """Which of ``serials`` are revoked."""
    return _store().revoked_among(serials)
