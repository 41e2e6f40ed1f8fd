"""Revocations on DynamoDB: ``RevocationsTable`` (key ``serial``); conditional puts, alone or in a
transaction with the revoke token's use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo
from stepless.stores.dynamo import condition_failed, from_item, to_item
from stepless.stores.dynamodb.ocsp_responses import revoked_put
from stepless.stores.dynamodb.tokens import token_put
from stepless.stores.errors import AlreadyRevoked, TokenUsed
from stepless.stores.revocations import RevocationRecord, with_expiry
from stepless.stores.tokens import UsedToken


class DynamoRevocations:
    def get(self, serial: str) -> RevocationRecord | None:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(
                TableName=settings.table(settings.REVOCATIONS_TABLE),
                Key={"serial": {"S": serial}},
                ConsistentRead=True,
            )
        item = out.get("Item")
        return RevocationRecord.from_dict(from_item(item)) if item else None

    def put(self, record: RevocationRecord, token: UsedToken | None = None) -> None:
        """The revocation (with the token's use), and for an X.509 serial its OCSP record set to ``revoked``
        (no response yet), in one transaction: a function that dies before services.ocsp stores the signed
        ``revoked`` response must not leave a ``good`` one served (the next OCSP request signs one;
        tests/integration/test_revocation_ocsp_crash.py). A Put, not a Delete: no function deletes items."""
        put = {
            "TableName": settings.table(settings.REVOCATIONS_TABLE),
            "Item": to_item(with_expiry(record)),
            "ConditionExpression": "attribute_not_exists(serial)",
        }
        items: list[dict[str, Any]] = [{"Put": token_put(token)}] if token is not None else []
        items.append({"Put": put})
        if record.kind == "x509":
            items.append({"Put": revoked_put(record.serial, record.revoked_at, record.reason_code,
                                             record.not_after)})
        client = aws.client("dynamodb")
        with translate_aws_errors("DynamoDB"):
            try:
                dynamo.write(client, items)
            except ClientError as e:
                if token is not None and condition_failed(e, 0):
                    raise TokenUsed from e
                if condition_failed(e):
                    raise AlreadyRevoked(record.serial) from e
                raise

    def scan(self) -> Iterator[RevocationRecord]:
        table = settings.table(settings.REVOCATIONS_TABLE)
        return (RevocationRecord.from_dict(r) for r in dynamo.scan(TableName=table))

    def revoked_among(self, serials: list[str]) -> set[str]:
        """BatchGetItem (consistent), 100 keys a call, unprocessed keys retried."""
        found: set[str] = set()
        table = settings.table(settings.REVOCATIONS_TABLE)
        client = aws.client("dynamodb")
        unique = list(dict.fromkeys(serials))
        for i in range(0, len(unique), 100):
            request: dict[str, Any] = {table: {"Keys": [{"serial": {"S": s}} for s in unique[i:i + 100]],
                                               "ConsistentRead": True, "ProjectionExpression": "serial"}}
            for _ in range(8):
                out = client.batch_get_item(RequestItems=request)
                found.update(str(from_item(it)["serial"]) for it in (out.get("Responses") or {}).get(table, []))
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError("the revocations table did not answer (unprocessed keys)")
        return found
