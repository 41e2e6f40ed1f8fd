"""ACME records and nonces on DynamoDB: ``AcmeTable``, key ``pk`` (``<kind>#<id>``, ``nonce#<value>``),
attributes ``doc`` (JSON), ``version``, TTL attribute ``expires``; a used nonce is an item until its TTL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo
from stepless.stores.acme import AcmeConflict, AcmeRecord
from stepless.stores.dynamo import condition_failed, from_item, to_item

ACME_TABLE = "STEPLESS_ACME_TABLE"


def _table() -> str:
    return settings.table(ACME_TABLE)


def _put(r: AcmeRecord) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": _table(),
                           "Item": to_item({"pk": r.key, "doc": json.dumps(r.doc, separators=(",", ":")),
                                            "version": r.version, "expires": r.expires})}
    if r.version == 1:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put["ConditionExpression"] = "version = :v"
        put["ExpressionAttributeValues"] = {":v": {"N": str(r.version - 1)}}
    return put


class DynamoAcme:
    def use_nonce(self, nonce: str, expires: int, now: int) -> bool:
        """Record the nonce used (a conditional put; no function may delete items, the TTL removes it)."""
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").put_item(
                    TableName=_table(), Item={"pk": {"S": f"nonce#{nonce}"}, "expires": {"N": str(expires)}},
                    ConditionExpression="attribute_not_exists(pk)")
            except ClientError as e:
                if condition_failed(e):
                    return False
                raise
        return True

    def get(self, kind: str, id: str) -> AcmeRecord | None:
        with translate_aws_errors("DynamoDB"):
            item = aws.client("dynamodb").get_item(TableName=_table(), Key={"pk": {"S": f"{kind}#{id}"}},
                                                   ConsistentRead=True).get("Item")
        if item is None:
            return None
        values = from_item(item)
        return AcmeRecord(kind, id, json.loads(values["doc"]), int(values["version"]), values.get("expires"))

    def write(self, records: Sequence[AcmeRecord]) -> None:
        client = aws.client("dynamodb")
        with translate_aws_errors("DynamoDB"):
            try:
                dynamo.write(client, [{"Put": _put(r)} for r in records])
            except ClientError as e:
                if condition_failed(e):
                    raise AcmeConflict from e
                raise
