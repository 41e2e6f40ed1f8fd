"""The authority configuration and the audit log on DynamoDB: items of ``AuthorityTable``.

``pk="authority"``: ``data`` (the JSON document) and ``version`` (int); a change with its audit record is
one transaction (the configuration's put conditional on the version read, the record's put never
overwriting). ``pk="audit#<time>#<uuid>"``: the audit records.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo
from stepless.stores.audit import PREFIX
from stepless.stores.dynamo import condition_failed, to_item
from stepless.stores.errors import ConfigConflict, ConfigExists

KEY = {"pk": {"S": "authority"}}


def audit_put(record: dict[str, Any]) -> dict[str, Any]:
    """The (never overwriting) put of an audit record, alone or in a transaction."""
    return {
        "TableName": settings.table(settings.AUTHORITY_TABLE),
        "Item": to_item(record),
        "ConditionExpression": "attribute_not_exists(pk)",
    }


class DynamoAuthority:
    def load(self) -> tuple[dict[str, Any], int] | None:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(
                TableName=settings.table(settings.AUTHORITY_TABLE), Key=KEY, ConsistentRead=True
            )
        item = out.get("Item")
        if not item:
            return None
        return json.loads(item["data"]["S"]), int(item["version"]["N"])

    def save(self, doc: dict[str, Any], *, expected_version: int | None,
             audit: dict[str, Any] | None = None) -> int:
        new_version = 1 if expected_version is None else expected_version + 1
        put: dict[str, Any] = {
            "TableName": settings.table(settings.AUTHORITY_TABLE),
            "Item": {**KEY, "data": {"S": json.dumps(doc, sort_keys=True)}, "version": {"N": str(new_version)}},
        }
        if expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        client = aws.client("dynamodb")
        with translate_aws_errors("DynamoDB"):
            try:
                dynamo.write(client, [{"Put": put}] + ([{"Put": audit_put(audit)}] if audit is not None else []))
            except ClientError as e:
                if condition_failed(e, 0):
                    raise (ConfigExists if expected_version is None else ConfigConflict)() from e
                raise
        return new_version


class DynamoAudit:
    def put(self, record: dict[str, Any]) -> None:
        with translate_aws_errors("DynamoDB"):
            aws.client("dynamodb").put_item(**audit_put(record))

    def records(self, provisioner: str | None) -> list[dict[str, Any]]:
        """A filtered scan of the authority table: fine for an administrator's occasional look."""
        kwargs: dict[str, Any] = {
            "TableName": settings.table(settings.AUTHORITY_TABLE),
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": PREFIX}},
            "ConsistentRead": True,
        }
        if provisioner is not None:
            kwargs["FilterExpression"] += " AND #n = :n"
            kwargs["ExpressionAttributeNames"] = {"#n": "provisioner"}
            kwargs["ExpressionAttributeValues"][":n"] = {"S": provisioner}
        return dynamo.scan(**kwargs)
