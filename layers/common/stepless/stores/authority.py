"""The authority configuration document (step-ca's ca.json equivalent), one DynamoDB item.

Item ``pk="authority"``: ``data`` (JSON), ``version`` (int, optimistic locking for administrators).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import ConfigError, NotInitialized
from stepless.faults import translate_aws_errors
from stepless.stores.dynamo import condition_failed

KEY = {"pk": {"S": "authority"}}


def load() -> tuple[dict[str, Any], int]:
    """The configuration document and its version; NotInitialized when the CA is not initialized."""
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(
            TableName=settings.table(settings.AUTHORITY_TABLE), Key=KEY, ConsistentRead=True
        )
    item = out.get("Item")
    if not item:
        raise NotInitialized("the certificate authority is not initialized (run `stepless ca init`)")
    return json.loads(item["data"]["S"]), int(item["version"]["N"])


def exists() -> bool:
    """Whether a configuration is stored."""
    try:
        load()
    except ConfigError:
        return False
    return True


def save(doc: dict[str, Any], *, expected_version: int | None) -> int:
    """Store ``doc``; ``expected_version`` None creates (fails if present), else must match."""
    new_version = 1 if expected_version is None else expected_version + 1
    kwargs: dict[str, Any] = {
        "TableName": settings.table(settings.AUTHORITY_TABLE),
        "Item": {**KEY, "data": {"S": json.dumps(doc, sort_keys=True)}, "version": {"N": str(new_version)}},
    }
    if expected_version is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        kwargs["ConditionExpression"] = "version = :v"
        kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
    try:
        aws.client("dynamodb").put_item(**kwargs)
    except ClientError as e:
        if condition_failed(e):
            raise ConfigError("the authority configuration changed meanwhile; retry") from e
        raise
    return new_version


def overwrite(doc: dict[str, Any]) -> int:
    """Store ``doc`` whatever is there (``ca init --force``)."""
    try:
        _, version = load()
    except ConfigError:
        return save(doc, expected_version=None)
    return save(doc, expected_version=version)
