"""Issued certificates (X.509 and SSH), written before a certificate is returned.

Key ``serial``: the decimal serial for X.509, ``ssh:<decimal>`` for SSH certificates.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import ServiceUnavailable, Unauthorized
from stepless.faults import translate_aws_errors
from stepless.stores import tokens
from stepless.stores.dynamo import condition_failed, from_item, to_item


def cert_put(record: dict[str, Any]) -> dict[str, Any]:
    """A put of a new certificate record (never overwrites a serial)."""
    return {
        "TableName": settings.table(settings.CERTIFICATES_TABLE),
        "Item": to_item(record),
        "ConditionExpression": "attribute_not_exists(serial)",
    }


def record_issuance(record: dict[str, Any], token: dict[str, Any] | None) -> None:
    """Write the certificate record, and mark the token used, in one round trip (a transaction).

    A used token raises 401 "token already used" and nothing is written; any other failure raises
    503, so no certificate leaves the CA unrecorded.
    """
    client = aws.client("dynamodb")
    with translate_aws_errors("DynamoDB"):
        try:
            if token is None:
                client.put_item(**cert_put(record))
                return
            client.transact_write_items(TransactItems=[{"Put": token}, {"Put": cert_put(record)}])
        except ClientError as e:
            if token is not None and condition_failed(e, 0):
                raise Unauthorized(tokens.USED) from e
            if condition_failed(e):
                raise ServiceUnavailable("serial collision, retry", headers={"Retry-After": "0"}) from e
            raise


def get(serial: str) -> dict[str, Any] | None:
    """The record of ``serial`` (a key as above), or None."""
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(
            TableName=settings.table(settings.CERTIFICATES_TABLE), Key={"serial": {"S": serial}}
        )
    item = out.get("Item")
    return from_item(item) if item else None
