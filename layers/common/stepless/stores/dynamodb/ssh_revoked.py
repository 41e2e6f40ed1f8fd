"""The revoked-SSH set on DynamoDB: the item ``serial = "krl:ssh"`` of the revocations table (no X.509 or SSH
serial looks like it), attributes ``version``, ``updated_at`` and string sets ``user`` / ``host`` of
``"<serial>:<notAfter>"``."""

from __future__ import annotations

import dataclasses
from typing import Any

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores.ssh_revoked import TYPES, Revoked

KEY = {"serial": {"S": "krl:ssh"}}


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


class DynamoSSHRevoked:
    def add(self, serial: int, cert_type: str, not_after: int, now: int) -> Revoked:
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

    def get(self) -> Revoked:
        """The record (one consistent GetItem)."""
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(TableName=settings.table(settings.REVOCATIONS_TABLE), Key=KEY,
                                                  ConsistentRead=True)
        return _revoked(out.get("Item") or {})
