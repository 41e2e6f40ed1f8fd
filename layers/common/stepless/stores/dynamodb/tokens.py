"""Used tokens on DynamoDB: ``TokensTable``, key ``id``, TTL attribute ``expires``; a conditional put."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores.dynamo import condition_failed, to_item
from stepless.stores.errors import TokenUsed
from stepless.stores.tokens import UsedToken


def token_put(token: UsedToken) -> dict[str, Any]:
    """The conditional put (for a transaction or alone) that marks a token used."""
    return {
        "TableName": settings.table(settings.TOKENS_TABLE),
        "Item": to_item({"id": token.id, "expires": token.expires, "endpoint": token.endpoint,
                         "used_at": token.used_at}),
        "ConditionExpression": "attribute_not_exists(id)",
    }


class DynamoTokens:
    def use(self, token: UsedToken) -> None:
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").put_item(**token_put(token))
            except ClientError as e:
                if condition_failed(e):
                    raise TokenUsed from e
                raise
