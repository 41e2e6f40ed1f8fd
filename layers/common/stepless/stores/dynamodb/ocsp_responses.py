"""Pre-produced OCSP responses on DynamoDB: table ``STEPLESS_OCSP_TABLE``, key ``serial`` (decimal string),
attributes ``status``, ``revoked_at``, ``reason_code``, ``expires`` (TTL) and ``responses`` (a map: algorithm →
{der, this_update, next_update})."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores.dynamo import condition_failed
from stepless.stores.ocsp_responses import KEEP, REVOKED, Record, Response


def _table() -> str:
    return settings.table(settings.OCSP_TABLE)


def _response_item(r: Response) -> dict[str, Any]:
    return {"M": {"der": {"B": r.der}, "this_update": {"N": str(r.this_update)},
                  "next_update": {"N": str(r.next_update)}}}


def _record(item: dict[str, Any]) -> Record:
    responses = {
        alg: Response(v["M"]["der"]["B"], int(v["M"]["this_update"]["N"]), int(v["M"]["next_update"]["N"]))
        for alg, v in (item.get("responses") or {}).get("M", {}).items()
    }
    num = lambda name: int(item[name]["N"]) if name in item else None  # noqa: E731
    return Record(item["serial"]["S"], item["status"]["S"], num("expires") or 0, num("revoked_at"),
                  num("reason_code"), responses)


def _put_item(rec: Record) -> dict[str, Any]:
    item: dict[str, Any] = {"serial": {"S": rec.serial}, "status": {"S": rec.status},
                            "expires": {"N": str(rec.expires)},
                            "responses": {"M": {a: _response_item(r) for a, r in rec.responses.items()}}}
    if rec.revoked_at is not None:
        item["revoked_at"] = {"N": str(rec.revoked_at)}
    if rec.reason_code is not None:
        item["reason_code"] = {"N": str(rec.reason_code)}
    return item


def revoked_put(serial: str, revoked_at: int, reason_code: int, not_after: int | None) -> dict[str, Any]:
    """A transaction's Put of the serial's ``revoked`` record, with no response yet (services.ocsp signs one
    on the next request): what a revocation writes with its own record, so that no ``good`` response stored
    before outlives it, even if the function dies before storing the signed ``revoked`` one."""
    rec = Record(serial, REVOKED, (not_after or 0) + KEEP, revoked_at, reason_code)
    return {"TableName": _table(), "Item": _put_item(rec)}


class DynamoOCSPResponses:
    def get(self, serial: str) -> Record | None:
        """The stored record of ``serial`` (one consistent GetItem), or None."""
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(TableName=_table(), Key={"serial": {"S": serial}},
                                                  ConsistentRead=True)
        item = out.get("Item")
        return _record(item) if item else None

    def create(self, rec: Record) -> bool:
        """Store a new ``good`` record; False (nothing written) when ``serial`` has a record already."""
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").put_item(TableName=_table(), Item=_put_item(rec),
                                                ConditionExpression="attribute_not_exists(serial)")
            except ClientError as e:
                if condition_failed(e):
                    return False
                raise
        return True

    def put_revoked(self, rec: Record) -> None:
        """Store a ``revoked`` record, replacing whatever was stored for the serial."""
        with translate_aws_errors("DynamoDB"):
            aws.client("dynamodb").put_item(TableName=_table(), Item=_put_item(rec))

    def add_response(self, serial: str, status: str, algorithm: str, response: Response) -> bool:
        """Set the ``algorithm`` response of a stored record while its status is ``status``; False otherwise."""
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").update_item(
                    TableName=_table(), Key={"serial": {"S": serial}},
                    UpdateExpression="SET #r.#a = :r", ConditionExpression="#s = :s",
                    ExpressionAttributeNames={"#r": "responses", "#a": algorithm, "#s": "status"},
                    ExpressionAttributeValues={":r": _response_item(response), ":s": {"S": status}},
                )
            except ClientError as e:
                if condition_failed(e):
                    return False
                raise
        return True
