"""Revoked serials (X.509: decimal; SSH: ``ssh:<decimal>``).

Pruning: a record whose certificate's end (``not_after``) is known carries ``expires`` =
not_after + :data:`RETENTION_AFTER_EXPIRY`, the table's TTL attribute, so DynamoDB removes it once the
certificate can no longer be used (an expired certificate is off the CRL and the KRL anyway). Renewal
of a certificate that ended longer ago than that is refused (:func:`outlived`): its revocation may be
gone. A record without ``not_after`` (a serial we never recorded) is kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import BadRequest
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo
from stepless.stores.dynamo import condition_failed, from_item, to_item

EXPIRES = "expires"  # the RevocationsTable's TimeToLiveSpecification attribute (template.yaml)
RETENTION_AFTER_EXPIRY = dt.timedelta(days=90)


def _with_expiry(record: dict[str, Any]) -> dict[str, Any]:
    not_after = record.get("not_after")
    if isinstance(not_after, int) and not isinstance(not_after, bool):
        return {**record, EXPIRES: not_after + int(RETENTION_AFTER_EXPIRY.total_seconds())}
    return record


def outlived(not_after: dt.datetime, now: dt.datetime) -> bool:
    """Whether a certificate ended so long ago that a revocation of it may have been pruned."""
    return now > not_after + RETENTION_AFTER_EXPIRY


def get(serial: str) -> dict[str, Any] | None:
    """The revocation record of ``serial``, or None when it is not revoked."""
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(
            TableName=settings.table(settings.REVOCATIONS_TABLE),
            Key={"serial": {"S": serial}},
            ConsistentRead=True,
        )
    item = out.get("Item")
    return from_item(item) if item else None


def put(record: dict[str, Any]) -> None:
    """Record a revocation; a serial revoked before raises 400 "already revoked"."""
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").put_item(
                TableName=settings.table(settings.REVOCATIONS_TABLE),
                Item=to_item(_with_expiry(record)),
                ConditionExpression="attribute_not_exists(serial)",
            )
        except ClientError as e:
            if condition_failed(e):
                raise BadRequest(f"certificate with serial number {record['serial']} is already revoked") from e
            raise


def scan_all() -> list[dict[str, Any]]:
    """Every revocation record (for CRL and KRL generation)."""
    return dynamo.scan(TableName=settings.table(settings.REVOCATIONS_TABLE))


def put_with_token(record: dict[str, Any], token: dict[str, Any]) -> None:
    """Record a revocation and mark the revoke token used, in one transaction.

    A used token raises 401 "token already used"; a serial revoked before 400 "already revoked".
    """
    from stepless.errors import Unauthorized
    from stepless.stores.tokens import USED

    put = {
        "TableName": settings.table(settings.REVOCATIONS_TABLE),
        "Item": to_item(_with_expiry(record)),
        "ConditionExpression": "attribute_not_exists(serial)",
    }
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=[{"Put": token}, {"Put": put}])
        except ClientError as e:
            if condition_failed(e, 0):
                raise Unauthorized(USED) from e
            if condition_failed(e, 1):
                raise BadRequest(f"certificate with serial number {record['serial']} is already revoked") from e
            raise
