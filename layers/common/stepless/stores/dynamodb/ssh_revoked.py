"""The revoked-SSH set on DynamoDB: the item ``serial = "krl:ssh"`` of the revocations table (no X.509 or SSH
serial looks like it), attributes ``version``, ``updated_at`` and string sets ``user`` / ``host`` of
``"<serial>:<notAfter>"``."""

from __future__ import annotations

import dataclasses
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores import ssh_revoked
from stepless.stores.dynamo import condition_failed
from stepless.stores.ssh_revoked import TYPES, Revoked, check_room

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


def _update(**kwargs: Any) -> dict[str, Any] | None:
    """One UpdateItem of the record; its attributes after it, or None when its condition failed."""
    with translate_aws_errors("DynamoDB"):
        try:
            out = aws.client("dynamodb").update_item(TableName=settings.table(settings.REVOCATIONS_TABLE), Key=KEY,
                                                     **kwargs)
        except ClientError as e:
            if not condition_failed(e):
                raise
            return None
    return out.get("Attributes") or {}


class DynamoSSHRevoked:
    ATTEMPTS = 3

    def add(self, serial: int, cert_type: str, not_after: int, now: int) -> Revoked:
        """Drop expired entries, check the room left (:func:`check_room`), then ADD the entry under a
        condition that the set has not grown past the room meanwhile (re-read and retried if it has)."""
        other = "host" if cert_type == "user" else "user"
        for _ in range(self.ATTEMPTS):
            state = self.get()
            for name in TYPES:
                expired = [f"{s}:{t}" for s, t in getattr(state, name).items() if t <= now]
                if expired:
                    _update(UpdateExpression="DELETE #t :e", ExpressionAttributeNames={"#t": name},
                            ExpressionAttributeValues={":e": {"SS": expired}})
            live = {name: sum(t > now for t in getattr(state, name).values()) for name in TYPES}
            values: dict[str, Any] = {":e": {"SS": [f"{serial}:{not_after}"]}, ":one": {"N": "1"},
                                      ":now": {"N": str(now)}}
            kwargs: dict[str, Any] = {}
            if serial not in getattr(state, cert_type) and not_after > now:
                check_room(live["user"] + live["host"] + 1)
                values[":room"] = {"N": str(ssh_revoked.MAX_UNEXPIRED - live[other])}
                kwargs["ConditionExpression"] = "attribute_not_exists(#t) OR size(#t) < :room"
            attributes = _update(UpdateExpression="ADD #t :e, version :one SET updated_at = :now",
                                 ExpressionAttributeNames={"#t": cert_type}, ExpressionAttributeValues=values,
                                 ReturnValues="ALL_NEW", **kwargs)
            if attributes is not None:
                state = _revoked(attributes)
                return dataclasses.replace(state, **{n: {s: t for s, t in getattr(state, n).items() if t > now}
                                                     for n in TYPES})
        check_room(ssh_revoked.MAX_UNEXPIRED + 1)  # concurrent revocations kept filling the last room: raises
        raise AssertionError("check_room raised")

    def get(self) -> Revoked:
        """The record (one consistent GetItem)."""
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(TableName=settings.table(settings.REVOCATIONS_TABLE), Key=KEY,
                                                  ConsistentRead=True)
        return _revoked(out.get("Item") or {})
