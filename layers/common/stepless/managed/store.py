"""The managed-certificate registry: DynamoDB table ``ManagedTable`` (env ``STEPLESS_MANAGED_TABLE``).

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
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import BadRequest, NotFound
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo
from stepless.stores.dynamo import condition_failed, from_item, to_item

MANAGED_TABLE = "STEPLESS_MANAGED_TABLE"
INDEX = "RenewAt"
DUE = "due"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

ACTIVE, RENEWING, REVOKED = "active", "renewing", "revoked"


class LostRace(Exception):
    """The item changed since it was read (another run claimed or renewed it): do nothing."""


def table() -> str:
    return settings.table(MANAGED_TABLE)


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


# ------------------------------------------------------------------------------------------------ reads


def get(name: str) -> Managed | None:
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(TableName=table(), Key={"name": {"S": name}}, ConsistentRead=True)
    item = out.get("Item")
    return Managed.from_record(from_item(item)) if item else None


def require(name: str) -> Managed:
    found = get(name)
    if found is None:
        raise NotFound(f"no managed certificate named {name!r}")
    return found


def list_all() -> list[Managed]:
    """Every registry item, by name (an administrator's listing: a scan is fine here, never in the run)."""
    return sorted((Managed.from_record(r) for r in dynamo.scan(TableName=table())), key=lambda m: m.name)


def due_page(now: int, *, limit: int = 100,
             start: dict[str, Any] | None = None) -> tuple[list[Managed], dict[str, Any] | None]:
    """One page of due items (``renew_at <= now``, oldest first) and the key to continue from."""
    kwargs: dict[str, Any] = {
        "TableName": table(),
        "IndexName": INDEX,
        "KeyConditionExpression": "#d = :due AND renew_at <= :now",
        "ExpressionAttributeNames": {"#d": "due"},
        "ExpressionAttributeValues": {":due": {"S": DUE}, ":now": {"N": str(now)}},
        "Limit": limit,
    }
    if start:
        kwargs["ExclusiveStartKey"] = start
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").query(**kwargs)
    return [Managed.from_record(from_item(i)) for i in out.get("Items", [])], out.get("LastEvaluatedKey")


# ----------------------------------------------------------------------------------------------- writes


def put_new(item: Managed, *, expected: int | None = None, now: int = 0) -> None:
    """Register ``item``: a new name, or (``expected``) replace the item still at that version and not
    held by a run. Otherwise a 400."""
    kwargs: dict[str, Any] = {"TableName": table(), "Item": to_item(item.to_json())}
    if expected is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(#n)"
        kwargs["ExpressionAttributeNames"] = {"#n": "name"}
    else:
        kwargs["ConditionExpression"] = "version = :v AND (attribute_not_exists(lease_until) OR lease_until < :now)"
        kwargs["ExpressionAttributeValues"] = to_item({":v": expected, ":now": now})
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").put_item(**kwargs)
        except ClientError as e:
            if condition_failed(e):
                raise BadRequest(f"managed certificate {item.name!r} exists or is being renewed; retry") from e
            raise


def delete(name: str) -> None:
    with translate_aws_errors("DynamoDB"):
        aws.client("dynamodb").delete_item(TableName=table(), Key={"name": {"S": name}})


def _update(name: str, version: int, expression: str, values: dict[str, Any], *,
            names: dict[str, str] | None = None, extra_condition: str = "") -> None:
    """A conditional update on ``version`` (LostRace when it changed or the item is gone)."""
    condition = "version = :v" + (f" AND ({extra_condition})" if extra_condition else "")
    kwargs: dict[str, Any] = {
        "TableName": table(),
        "Key": {"name": {"S": name}},
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": to_item({":v": version, ":next": version + 1, **values}),
    }
    if names:
        kwargs["ExpressionAttributeNames"] = names
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").update_item(**kwargs)
        except ClientError as e:
            if condition_failed(e):
                raise LostRace(name) from e
            raise


def claim(item: Managed, now: int, lease_seconds: int) -> int:
    """Take a lease on ``item`` (status "renewing" until ``now + lease_seconds``); the new version.

    Holds only if nobody wrote the item since it was read and no unexpired lease is held: of two
    overlapping runs exactly one gets it. A run that dies holding a lease leaves the item due; the
    next run after the lease expires takes it over.
    """
    _update(item.name, item.version,
            "SET #s = :renewing, lease_until = :lease, version = :next",
            {":renewing": RENEWING, ":lease": now + lease_seconds, ":now": now},
            names={"#s": "status"},
            extra_condition="attribute_not_exists(lease_until) OR lease_until < :now")
    return item.version + 1


def finalize(item: Managed, claimed: int, *, serial: str, not_before: int, not_after: int, now: int) -> Managed:
    """Record the renewal (new serial and validity, next renewal time), release the lease."""
    when = renew_at(item.name, serial, not_before, not_after)
    _update(item.name, claimed,
            "SET serial = :serial, not_before = :nb, not_after = :na, renew_at = :ra, #s = :active, "
            "failures = :zero, renewed_at = :now, version = :next REMOVE lease_until, last_error",
            {":serial": serial, ":nb": not_before, ":na": not_after, ":ra": when, ":active": ACTIVE,
             ":zero": 0, ":now": now},
            names={"#s": "status"})
    return dataclasses.replace(item, serial=serial, not_before=not_before, not_after=not_after, renew_at=when,
                               status=ACTIVE, failures=0, renewed_at=now, version=claimed + 1,
                               lease_until=None, last_error=None)


def fail(item: Managed, claimed: int, error: str, now: int) -> None:
    """Record a failed attempt and release the lease. The item stays due (retried by the next run), but
    ``renew_at`` moves up to ``now``: to the back of the due queue, so certificates that keep failing
    never starve the others when a run cannot reach every due item before its deadline."""
    _update(item.name, claimed,
            "SET failures = if_not_exists(failures, :zero) + :one, last_error = :err, #s = :active, "
            "renew_at = :ra, version = :next REMOVE lease_until",
            {":zero": 0, ":one": 1, ":err": error[:500], ":active": ACTIVE, ":ra": max(item.renew_at, now)},
            names={"#s": "status"})


def mark_revoked(item: Managed, version: int) -> None:
    """Stop renewing a revoked certificate: status "revoked", out of the due index."""
    _update(item.name, version,
            "SET #s = :revoked, last_error = :err, version = :next REMOVE #d, lease_until",
            {":revoked": REVOKED, ":err": f"certificate {item.serial} has been revoked"},
            names={"#s": "status", "#d": "due"})
