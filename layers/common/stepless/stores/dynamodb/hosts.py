"""The SSH host index on DynamoDB: table ``STEPLESS_HOSTS_TABLE``, key (``pk`` = ``"host"``, ``principal``);
``certs`` is a string set of ``"<serial>:<notAfter>"``. One partition holds every host, so a page is one Query."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores.dynamo import condition_failed
from stepless.stores.hosts import Host

PARTITION = "host"


def _table() -> str:
    return settings.table(settings.HOSTS_TABLE)


def _key(principal: str) -> dict[str, Any]:
    return {"pk": {"S": PARTITION}, "principal": {"S": principal.lower()}}


def _entry(serial: str, not_after: int) -> str:
    return f"{serial}:{not_after}"


def _certificates(entries: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in entries:
        serial, _, not_after = entry.rpartition(":")
        if not_after.isdigit():
            out[serial] = int(not_after)
    return out


def _delete(principal: str, entries: list[str]) -> None:
    """Remove ``entries`` from a recorded principal (an UpdateItem on a missing item would create it: the
    condition keeps an unknown principal unknown)."""
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").update_item(TableName=_table(), Key=_key(principal),
                                               UpdateExpression="DELETE certs :e",
                                               ConditionExpression="attribute_exists(pk)",
                                               ExpressionAttributeValues={":e": {"SS": entries}})
        except ClientError as e:
            if not condition_failed(e):
                raise


class DynamoHosts:
    def add(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
        """Record host certificate ``serial`` (valid until ``not_after``) under each principal; entries that
        expired before ``now`` are dropped from the records written."""
        client = aws.client("dynamodb")
        for principal in principals:
            with translate_aws_errors("DynamoDB"):
                out = client.update_item(
                    TableName=_table(), Key=_key(principal), UpdateExpression="ADD certs :e",
                    ExpressionAttributeValues={":e": {"SS": [_entry(serial, not_after)]}}, ReturnValues="UPDATED_NEW",
                )
            entries = (out.get("Attributes") or {}).get("certs", {}).get("SS", [])
            expired = [e for e in entries if any(t <= now for t in _certificates([e]).values())]
            if expired:
                _delete(principal, expired)

    def remove(self, principals: Iterable[str], serial: str, not_after: int) -> None:
        """Forget host certificate ``serial`` (revoked) under each principal."""
        for principal in principals:
            _delete(principal, [_entry(serial, not_after)])

    def exists(self, principal: str) -> bool:
        """Whether a host certificate was ever recorded for ``principal`` (one GetItem)."""
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(TableName=_table(), Key=_key(principal), ProjectionExpression="pk")
        return "Item" in out

    def page(self, limit: int, cursor: str | None) -> tuple[list[Host], str | None]:
        """Up to ``limit`` hosts in principal order after ``cursor`` (one Query), and the next cursor or None."""
        kwargs: dict[str, Any] = {
            "TableName": _table(), "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": PARTITION}}, "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = _key(cursor)
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").query(**kwargs)
        hosts = [Host(i["principal"]["S"], _certificates(i.get("certs", {}).get("SS", [])))
                 for i in out.get("Items", [])]
        last = out.get("LastEvaluatedKey")
        return hosts, (last["principal"]["S"] if last else None)
