"""The revoked SSH certificates the KRL lists, kept in one record by each SSH revocation, so the KRL is
built from one read instead of a scan of every revocation.

The record holds a version (incremented by every change: the KRL's version), the time of the last change,
and per certificate type (``user``, ``host``) the revoked serials with their notAfter; entries of expired
certificates are dropped when the record is next written (OpenSSH refuses an expired certificate anyway).

The rules every backend keeps (the contract):
- :func:`add` is atomic (concurrent revocations never lose one) and returns the record as it stands after
  the change; :func:`get` is one point read (a missing record reads as version 0, nothing revoked).

DynamoDB: the item ``serial = "krl:ssh"`` of the revocations table (no X.509 or SSH serial looks like it),
attributes ``version``, ``updated_at`` and string sets ``user`` / ``host`` of ``"<serial>:<notAfter>"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stepless import aws, settings
from stepless.faults import translate_aws_errors

KEY = {"serial": {"S": "krl:ssh"}}
TYPES = ("user", "host")


@dataclasses.dataclass(frozen=True)
class Revoked:
    """The revoked SSH certificates: serial → notAfter (Unix seconds) per type, and the change counter."""

    version: int = 0
    updated_at: int = 0
    user: dict[int, int] = dataclasses.field(default_factory=dict)
    host: dict[int, int] = dataclasses.field(default_factory=dict)


def _entries(item: dict[str, Any], name: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in item.get(name, {}).get("SS", []):
        serial, _, not_after = entry.partition(":")
        if serial.isdigit() and not_after.isdigit():
            out[int(serial)] = int(not_after)
    return out


def _revoked(item: dict[str, Any]) -> Revoked:
    num = lambda name: int(item[name]["N"]) if name in item else 0  # noqa: E731
    return Revoked(num("version"), num("updated_at"), _entries(item, "user"), _entries(item, "host"))


def add(serial: int, cert_type: str, not_after: int, now: int) -> Revoked:
    """Record the revocation of SSH certificate ``serial`` (``cert_type`` user or host); the record after it,
    without entries that expired before ``now``."""
    if cert_type not in TYPES:
        raise ValueError(f"unknown SSH certificate type {cert_type!r}")
    client = aws.client("dynamodb")
    with translate_aws_errors("DynamoDB"):
        out = client.update_item(
            TableName=settings.table(settings.REVOCATIONS_TABLE), Key=KEY,
            UpdateExpression="ADD #t :e, version :one SET updated_at = :now",
            ExpressionAttributeNames={"#t": cert_type},
            ExpressionAttributeValues={":e": {"SS": [f"{serial}:{not_after}"]}, ":one": {"N": "1"},
                                       ":now": {"N": str(now)}},
            ReturnValues="ALL_NEW",
        )
    state = _revoked(out.get("Attributes") or {})
    for name in TYPES:
        expired = [f"{s}:{t}" for s, t in getattr(state, name).items() if t <= now]
        if expired:
            with translate_aws_errors("DynamoDB"):
                client.update_item(TableName=settings.table(settings.REVOCATIONS_TABLE), Key=KEY,
                                   UpdateExpression="DELETE #t :e", ExpressionAttributeNames={"#t": name},
                                   ExpressionAttributeValues={":e": {"SS": expired}})
            state = dataclasses.replace(state, **{name: {s: t for s, t in getattr(state, name).items() if t > now}})
    return state


def get() -> Revoked:
    """The record (one consistent GetItem)."""
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(TableName=settings.table(settings.REVOCATIONS_TABLE), Key=KEY,
                                              ConsistentRead=True)
    return _revoked(out.get("Item") or {})
