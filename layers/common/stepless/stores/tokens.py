"""Used one-time tokens: a conditional put on ``<iss>#<jti>`` with a TTL (the ``expires`` attribute)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import Unauthorized
from stepless.faults import translate_aws_errors
from stepless.stores.dynamo import condition_failed, to_item

USED = "token already used"


def token_put(token_id: str, expires: int, endpoint: str, used_at: int) -> dict[str, Any]:
    """The conditional put (for a transaction or alone) that marks a token used."""
    return {
        "TableName": settings.table(settings.TOKENS_TABLE),
        "Item": to_item({"id": token_id, "expires": expires, "endpoint": endpoint, "used_at": used_at}),
        "ConditionExpression": "attribute_not_exists(id)",
    }


def use(token_id: str, expires: int, endpoint: str, used_at: int) -> None:
    """Mark a token used; a second use raises 401 "token already used"."""
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").put_item(**token_put(token_id, expires, endpoint, used_at))
        except ClientError as e:
            if condition_failed(e):
                raise Unauthorized(USED, reason="token_already_used") from e
            raise
