"""ACME state (RFC 8555): accounts, orders, authorizations (with their challenges), EAB keys, nonces.

Records are :class:`AcmeRecord`: a ``kind`` (``account``, ``key``, ``order``, ``authz``, ``eab``), an id, a
JSON document (the typed messages of :mod:`stepless.acme.messages` serialize to it), a ``version`` for
optimistic locking and an optional ``expires`` (epoch s; DynamoDB's TTL attribute — a pending order and its
authorizations expire, an account does not).

:func:`write` is one atomic transaction: a record of version 1 must not exist yet, a record of version
``n > 1`` must still be at version ``n - 1``; any failed condition raises :class:`AcmeConflict` and writes
nothing. Nonces are single use: :func:`use_nonce` records a used one (``stepless.acme.nonces`` issues them
without a write) and says whether it was used before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from stepless.errors import ServiceUnavailable
from stepless.stores import backend


@dataclasses.dataclass(frozen=True, slots=True)
class AcmeRecord:
    kind: str
    id: str
    doc: dict[str, Any]
    version: int = 1
    expires: int | None = None

    @property
    def key(self) -> str:
        """The record's key in the store: ``<kind>#<id>``."""
        return f"{self.kind}#{self.id}"

    def next(self, doc: dict[str, Any], expires: int | None = None) -> AcmeRecord:
        """The record's next version with ``doc`` (an update conditional on this version)."""
        return AcmeRecord(self.kind, self.id, doc, self.version + 1,
                          self.expires if expires is None else expires)


MAX_WRITE = 100  # records in one write (DynamoDB's TransactWriteItems limit)


class AcmeConflict(ServiceUnavailable):
    """503 + Retry-After: a record changed (or was created) meanwhile; nothing was written."""

    def __init__(self) -> None:
        super().__init__("the ACME state changed meanwhile, retry", headers={"Retry-After": "1"})


class AcmeStore(Protocol):
    def use_nonce(self, nonce: str, expires: int, now: int) -> bool:
        """Record the nonce used until ``expires`` (one conditional write); False when it was used already.
        Records expired at ``now`` may go (DynamoDB's TTL; SQLite deletes them here)."""

    def get(self, kind: str, id: str) -> AcmeRecord | None:
        """The record, or None (an expired record may still be returned: callers check ``expires``)."""

    def write(self, records: Sequence[AcmeRecord]) -> None:
        """Write every record in one transaction (conditions: see the module); AcmeConflict when one fails."""


def use_nonce(nonce: str, expires: int, now: int) -> bool:
    return backend.current().acme.use_nonce(nonce, expires, now)


def get(kind: str, id: str) -> AcmeRecord | None:
    return backend.current().acme.get(kind, id)


def write(*records: AcmeRecord) -> None:
    backend.current().acme.write(records)
