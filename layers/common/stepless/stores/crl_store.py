"""Published revocation objects: the CRL (with its number) and the SSH KRL.

- CRL number: a counter shared by every container, incremented atomically for every CRL generated, so
  numbers are unique and increase.
- The latest CRL (DER, with thisUpdate/nextUpdate/number) and KRL, when the backend shares them
  (:func:`shared`): DynamoDB's backend keeps them in ``STEPLESS_CRL_BUCKET`` (S3, servable by a CDN)
  when that is set; the SQLite backend in its database. Not shared: each container keeps the CRL it
  generated in memory (see services.crl).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol

from stepless.stores import backend


@dataclasses.dataclass(frozen=True)
class StoredCRL:
    der: bytes
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


class ObjectStore(Protocol):
    def shared(self) -> bool:
        """Whether CRL/KRL objects are stored (else :meth:`put_crl` and :meth:`put_krl` do nothing)."""

    def next_crl_number(self) -> int: ...

    def put_crl(self, crl: StoredCRL) -> None: ...

    def get_crl(self) -> StoredCRL | None:
        """The stored CRL, or None (not shared, none yet, unreadable)."""

    def put_krl(self, krl: bytes) -> None: ...


def _store() -> ObjectStore:
    return backend.current().objects


def shared() -> bool:
    """Whether the CRL and KRL are stored for every container (else each keeps its own)."""
    return _store().shared()


def next_number() -> int:
    """The next CRL number (1, 2, 3, … across every container)."""
    return _store().next_crl_number()


def put(crl: StoredCRL) -> None:
    """Store the CRL (when shared)."""
    _store().put_crl(crl)


def get() -> StoredCRL | None:
    """The stored CRL, or None."""
    return _store().get_crl()


def put_krl(krl: bytes) -> None:
    """Publish the SSH KRL next to the CRL (when shared), for hosts that fetch RevokedKeys from it."""
    _store().put_krl(krl)
