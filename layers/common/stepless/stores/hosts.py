"""The SSH host index: one record per host principal (lower-cased), kept by host certificate issuance,
renewal, rekey and revocation, so ``POST /ssh/check-host`` is one read and ``GET /ssh/hosts`` one bounded
page, whatever the number of certificates recorded.

Two records per principal, as step-ca's ``ssh_hosts`` and ``ssh_host_principals`` tables:
- the principal itself, kept forever: ``check-host`` answers whether a host certificate was ever issued
  for it, as step-ca does;
- its listing: the live host certificates as (serial, notAfter) pairs, and the expiry (the latest
  notAfter). Issuance adds one, revocation removes one, expired ones are dropped when the record is next
  written, and the whole listing is pruned once its expiry has passed (DynamoDB's TTL, SQLite on write),
  so ``GET /ssh/hosts`` reads only hosts with an unexpired certificate however many ever existed —
  step's client reads one page of 1000.

The rules every backend keeps (the contract):
- :func:`add` and :func:`remove` are atomic per principal (concurrent writers never lose an entry) and
  need no read by the caller; :func:`add` returns nothing, :func:`remove` of an absent entry is a no-op.
- A host certificate issued, renewed or rekeyed is indexed by the certificate store in the transaction
  that records it (:func:`entry_of`; on DynamoDB, as Update actions of that one TransactWriteItems for up
  to :data:`stepless.stores.dynamodb.hosts.MAX_FOLDED` principals), not by a separate :func:`add`.
- A principal longer than :data:`MAX_PRINCIPAL_BYTES` (UTF-8, lower-cased) is not indexed: :func:`add` and
  :func:`remove` skip it, :func:`exists` says False without a read.
- :func:`exists` is one point read; :func:`page` returns at most ``limit`` live hosts (:meth:`Host.live`
  at ``now``) in principal order starting after ``cursor``, and the cursor of the next page (None at the
  end); expired and revoked hosts are never returned.

DynamoDB: table ``STEPLESS_HOSTS_TABLE``, key (``pk``, ``principal``): ``pk = "host"`` the principal
(forever), ``pk = "live"`` its listing, ``certs`` a string set of ``"<serial>:<notAfter>"`` and ``expires``
(the table's TTL attribute) at least the latest notAfter. A page is a Query of the ``live`` partition
filtered on ``expires`` (a few Queries at most while TTL has not yet deleted expired listings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from stepless.stores import backend

if TYPE_CHECKING:
    from stepless.stores.certificates import CertificateRecord

MAX_PAGE = 1000
MAX_PRINCIPAL_BYTES = 1024  # DynamoDB's limit for a sort key: longer principals are not indexed


@dataclasses.dataclass(frozen=True)
class Host:
    """A host principal and its live host certificates (serial → notAfter, Unix seconds)."""

    principal: str
    certificates: dict[str, int]

    def live(self, now: int) -> bool:
        """Whether one of its certificates is unexpired at ``now``."""
        return any(not_after > now for not_after in self.certificates.values())


def indexable(principal: str) -> bool:
    """Whether ``principal`` fits the index (at most MAX_PRINCIPAL_BYTES of UTF-8 once lower-cased; text with
    a lone surrogate, which JSON admits and no key can hold, does not)."""
    try:
        return 0 < len(principal.lower().encode("utf-8")) <= MAX_PRINCIPAL_BYTES
    except UnicodeEncodeError:
        return False


def names(principals: Iterable[str]) -> list[str]:
    """The indexable principals, lower-cased, each once."""
    return [p for p in dict.fromkeys(p.lower() for p in principals) if indexable(p)]


class HostStore(Protocol):
    """Principals come lower-cased and indexable (the functions below check); the page size within bounds."""

    def add(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None: ...

    def remove(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None: ...

    def exists(self, principal: str) -> bool: ...

    def page(self, limit: int, cursor: str | None, now: int) -> tuple[list[Host], str | None]: ...


@dataclasses.dataclass(frozen=True)
class Entry:
    """What one host certificate adds to the index: its indexable principals (lower-cased, each once), its
    serial (decimal, without the certificates table's ``ssh:``), its notAfter and the time it was recorded."""

    principals: tuple[str, ...]
    serial: str
    not_after: int
    now: int


def entry_of(record: CertificateRecord) -> Entry | None:
    """The index entry of a certificate record: an SSH host certificate's, else None. The certificate stores
    write it in the record's own transaction (:func:`stepless.stores.certificates.record_issuance`)."""
    if record.kind != "ssh" or record.cert_type != "host":
        return None
    return Entry(tuple(names(record.principals)), record.serial.removeprefix("ssh:"), record.not_after,
                 record.issued_at)


def add(principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
    """Record host certificate ``serial`` (valid until ``not_after``) under each principal; entries that
    expired before ``now`` are dropped from the records written."""
    backend.current().hosts.add(names(principals), serial, not_after, now)


def remove(principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
    """Forget host certificate ``serial`` (revoked at ``now``) under each principal."""
    backend.current().hosts.remove(names(principals), serial, not_after, now)


def exists(principal: str) -> bool:
    """Whether a host certificate was ever recorded for ``principal`` (one point read)."""
    return indexable(principal) and backend.current().hosts.exists(principal.lower())


def page(now: int, limit: int = MAX_PAGE, cursor: str | None = None) -> tuple[list[Host], str | None]:
    """Up to ``limit`` hosts live at ``now`` in principal order after ``cursor``, and the next cursor or
    None."""
    if cursor and not indexable(cursor):
        raise ValueError("cursor is not a host principal")
    return backend.current().hosts.page(max(1, min(limit, MAX_PAGE)), cursor, now)
