"""The managed-certificate registry (DynamoDB: table ``ManagedTable``, env ``STEPLESS_MANAGED_TABLE``).

One item per managed certificate, key ``name``::

    name, subject, sans, duration (s), rekey, serial, not_before, not_after, renew_at (epoch s),
    secret_arn, version (int), status ("active" | "renewing" | "revoked"), failures, last_error,
    lease_until (while a run holds it), due ("due" while it is renewed by the schedule)

The scheduled run finds due items through the sparse GSI ``RenewAt`` (partition ``due``, a constant
"due", sort ``renew_at``): ``due = "due" AND renew_at <= now``, oldest first, paginated — never a scan.
An item leaves the index when ``due`` is removed (revoked) or the item is deleted (``managed remove``).
One partition value is plenty at this scale (10,000 items, each written a few times a day; a GSI
partition takes 1,000 writes/s); :data:`DUE` would become ``due#<n>`` shards beyond that.

Every write is conditional on ``version`` (an int bumped by every write): a run that read a stale copy
(an overlapping run, the eventually consistent GSI) fails its condition and leaves the item alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, Protocol

from stepless.errors import BadRequest, NotFound
from stepless.stores import backend
from stepless.stores.errors import LostRace, ManagedExists  # noqa: F401 - re-exported

MANAGED_TABLE = "STEPLESS_MANAGED_TABLE"
INDEX = "RenewAt"
DUE = "due"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

ACTIVE, RENEWING, REVOKED = "active", "renewing", "revoked"


def check_name(name: str) -> str:
    """A managed name: letters, digits, ``.``, ``_``, ``-`` (it is part of the secret's name)."""
    if not NAME.match(name or ""):
        raise BadRequest(f"invalid managed certificate name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def renew_at(name: str, serial: str, not_before: int, not_after: int) -> int:
    """When to renew: 2/3 of the lifetime, minus a jitter of up to 1/20 of it.

    The jitter is deterministic per (name, serial) so a fleet issued together spreads out, and the same
    certificate always gets the same time (a retry computes what the first attempt did).
    """
    lifetime = max(0, not_after - not_before)
    digest = hashlib.sha256(f"{name}#{serial}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return not_before + (2 * lifetime) // 3 - int(fraction * lifetime / 20)


@dataclasses.dataclass
class Managed:
    """A registry item."""

    name: str
    subject: str
    sans: list[str]
    duration: int
    rekey: bool
    serial: str
    not_before: int
    not_after: int
    renew_at: int
    secret_arn: str
    version: int = 1
    status: str = ACTIVE
    failures: int = 0
    last_error: str | None = None
    lease_until: int | None = None
    created_at: int | None = None
    renewed_at: int | None = None
    due: str | None = DUE
    acm_arn: str | None = None  # also imported into ACM, re-imported there at every renewal (managed.acm)

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> Managed:
        """From a plain dict (``stores.dynamo.from_item`` of an item, or :meth:`to_json`)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in values.items() if k in fields}
        data["sans"] = list(data.get("sans") or [])
        data["rekey"] = bool(data.get("rekey", False))
        data.setdefault("due", None)
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def lifetime(self) -> int:
        return self.not_after - self.not_before


def table_spec(name: str) -> dict[str, Any]:
    """``create_table`` arguments for the registry (tests, bench; template.yaml declares the same)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "name", "AttributeType": "S"},
            {"AttributeName": "due", "AttributeType": "S"},
            {"AttributeName": "renew_at", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [{
            "IndexName": INDEX,
            "KeySchema": [{"AttributeName": "due", "KeyType": "HASH"},
                          {"AttributeName": "renew_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    }


class ManagedStore(Protocol):
    def get(self, name: str) -> Managed | None: ...

    def list_all(self) -> list[Managed]: ...

    def due_page(self, now: int, limit: int, start: dict[str, Any] | None
                 ) -> tuple[list[Managed], dict[str, Any] | None]:
        """Due items (``due`` set, ``renew_at <= now``), oldest first, and an opaque key to continue from."""

    def put_new(self, item: Managed, *, expected: int | None, now: int) -> None:
        """A new name, or (``expected``) replace the item still at that version and not leased; ManagedExists."""

    def delete(self, name: str) -> None: ...

    def update(self, name: str, version: int, changes: dict[str, Any], *, increments: dict[str, int] | None = None,
               remove: tuple[str, ...] = (), unleased_at: int | None = None) -> None:
        """Set ``changes`` (and add ``increments``, from 0), remove ``remove``, bump ``version``; only if the
        item is still at ``version`` (and, with ``unleased_at``, holds no lease beyond it): LostRace."""


def _store() -> ManagedStore:
    return backend.current().managed


# ------------------------------------------------------------------------------------------------ reads


def get(name: str) -> Managed | None:
    return _store().get(name)


def require(name: str) -> Managed:
    found = get(name)
    if found is None:
        raise NotFound(f"no managed certificate named {name!r}")
    return found


def list_all() -> list[Managed]:
    """Every registry item, by name (an administrator's listing: a scan is fine here, never in the run)."""
    return _store().list_all()


def due_page(now: int, *, limit: int = 100,
             start: dict[str, Any] | None = None) -> tuple[list[Managed], dict[str, Any] | None]:
    """One page of due items (``renew_at <= now``, oldest first) and the key to continue from."""
    return _store().due_page(now, limit, start)


# ----------------------------------------------------------------------------------------------- writes


def put_new(item: Managed, *, expected: int | None = None, now: int = 0) -> None:
    """Register ``item``: a new name, or (``expected``) replace the item still at that version and not
    held by a run. Otherwise a 400."""
    _store().put_new(item, expected=expected, now=now)


def delete(name: str) -> None:
    _store().delete(name)


def claim(item: Managed, now: int, lease_seconds: int) -> int:
    """Take a lease on ``item`` (status "renewing" until ``now + lease_seconds``); the new version.

    Holds only if nobody wrote the item since it was read and no unexpired lease is held: of two
    overlapping runs exactly one gets it. A run that dies holding a lease leaves the item due; the
    next run after the lease expires takes it over.
    """
    _store().update(item.name, item.version, {"status": RENEWING, "lease_until": now + lease_seconds},
                    unleased_at=now)
    return item.version + 1


def finalize(item: Managed, claimed: int, *, serial: str, not_before: int, not_after: int, now: int) -> Managed:
    """Record the renewal (new serial and validity, next renewal time), release the lease."""
    when = renew_at(item.name, serial, not_before, not_after)
    _store().update(item.name, claimed, {"serial": serial, "not_before": not_before, "not_after": not_after,
                                         "renew_at": when, "status": ACTIVE, "failures": 0, "renewed_at": now},
                    remove=("lease_until", "last_error"))
    return dataclasses.replace(item, serial=serial, not_before=not_before, not_after=not_after, renew_at=when,
                               status=ACTIVE, failures=0, renewed_at=now, version=claimed + 1,
                               lease_until=None, last_error=None)


def fail(item: Managed, claimed: int, error: str, now: int) -> None:
    """Record a failed attempt and release the lease. The item stays due (retried by the next run), but
    ``renew_at`` moves up to ``now``: to the back of the due queue, so certificates that keep failing
    never starve the others when a run cannot reach every due item before its deadline."""
    _store().update(item.name, claimed, {"last_error": error[:500], "status": ACTIVE,
                                         "renew_at": max(item.renew_at, now)},
                    increments={"failures": 1}, remove=("lease_until",))


def mark_revoked(item: Managed, version: int) -> None:
    """Stop renewing a revoked certificate: status "revoked", out of the due index."""
    _store().update(item.name, version, {"status": REVOKED,
                                         "last_error": f"certificate {item.serial} has been revoked"},
                    remove=("due", "lease_until"))
