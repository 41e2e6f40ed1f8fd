"""The SSH host index: one record per host principal (lower-cased), kept by host certificate issuance,
renewal, rekey and revocation, so ``POST /ssh/check-host`` is one read and ``GET /ssh/hosts`` one bounded
page, whatever the number of certificates recorded.

A record holds the principal's live host certificates as (serial, notAfter) pairs: issuance adds one,
revocation removes one, expired ones are dropped when the record is next written. The record itself stays
once written (``check-host`` answers whether a host certificate was ever issued for the principal, as
step-ca does); ``GET /ssh/hosts`` lists the principals with an unexpired one (:meth:`Host.live`).

The rules every backend keeps (the contract):
- :func:`add` and :func:`remove` are atomic per principal (concurrent writers never lose an entry) and
  need no read by the caller; :func:`add` returns nothing, :func:`remove` of an absent entry is a no-op.
- A principal longer than :data:`MAX_PRINCIPAL_BYTES` (UTF-8, lower-cased) is not indexed: :func:`add` and
  :func:`remove` skip it, :func:`exists` says False without a read.
- :func:`exists` is one point read; :func:`page` returns at most ``limit`` records in principal order
  starting after ``cursor``, and the cursor of the next page (None at the end).

DynamoDB: table ``STEPLESS_HOSTS_TABLE``, key (``pk`` = ``"host"``, ``principal``); ``certs`` is a string
set of ``"<serial>:<notAfter>"``. One partition holds every host, so a page is one Query.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from stepless import aws, settings
from stepless.faults import translate_aws_errors

PARTITION = "host"
MAX_PAGE = 1000
MAX_PRINCIPAL_BYTES = 1024  # DynamoDB's limit for a sort key: longer principals are not indexed


@dataclasses.dataclass(frozen=True)
class Host:
    """A host principal and its live host certificates (serial → notAfter, Unix seconds)."""

    principal: str
    certificates: dict[str, int]

    def live(self, now: int) -> bool:
        """Whether one of its certificates is unexpired at ``now``."""
        return any(not_after > now for not_after in self.certificates.values())


def _table() -> str:
    return settings.table(settings.HOSTS_TABLE)


def _key(principal: str) -> dict[str, Any]:
    return {"pk": {"S": PARTITION}, "principal": {"S": principal.lower()}}


def indexable(principal: str) -> bool:
    """Whether ``principal`` fits the index (at most MAX_PRINCIPAL_BYTES of UTF-8 once lower-cased; text with
    a lone surrogate, which JSON admits and no key can hold, does not)."""
    try:
        return 0 < len(principal.lower().encode("utf-8")) <= MAX_PRINCIPAL_BYTES
    except UnicodeEncodeError:
        return False


def _names(principals: Iterable[str]) -> list[str]:
    return [p for p in dict.fromkeys(p.lower() for p in principals) if indexable(p)]


def _entry(serial: str, not_after: int) -> str:
    return f"{serial}:{not_after}"


def _certificates(entries: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in entries:
        serial, _, not_after = entry.rpartition(":")
        if not_after.isdigit():
            out[serial] = int(not_after)
    return out


def add(principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
    """Record host certificate ``serial`` (valid until ``not_after``) under each principal; entries that
    expired before ``now`` are dropped from the records written."""
    client = aws.client("dynamodb")
    for principal in _names(principals):
        with translate_aws_errors("DynamoDB"):
            out = client.update_item(
                TableName=_table(), Key=_key(principal), UpdateExpression="ADD certs :e",
                ExpressionAttributeValues={":e": {"SS": [_entry(serial, not_after)]}}, ReturnValues="UPDATED_NEW",
            )
        entries = (out.get("Attributes") or {}).get("certs", {}).get("SS", [])
        expired = [e for e in entries if any(t <= now for t in _certificates([e]).values())]
        if expired:
            _delete(principal, expired)


def remove(principals: Iterable[str], serial: str, not_after: int) -> None:
    """Forget host certificate ``serial`` (revoked) under each principal."""
    for principal in _names(principals):
        _delete(principal, [_entry(serial, not_after)])


def _delete(principal: str, entries: list[str]) -> None:
    with translate_aws_errors("DynamoDB"):
        aws.client("dynamodb").update_item(TableName=_table(), Key=_key(principal), UpdateExpression="DELETE certs :e",
                                           ExpressionAttributeValues={":e": {"SS": entries}})


def exists(principal: str) -> bool:
    """Whether a host certificate was ever recorded for ``principal`` (one GetItem)."""
    if not indexable(principal):
        return False
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(TableName=_table(), Key=_key(principal), ProjectionExpression="pk")
    return "Item" in out


def page(limit: int = MAX_PAGE, cursor: str | None = None) -> tuple[list[Host], str | None]:
    """Up to ``limit`` hosts in principal order after ``cursor`` (one Query), and the next cursor or None."""
    kwargs: dict[str, Any] = {
        "TableName": _table(), "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": PARTITION}}, "Limit": max(1, min(limit, MAX_PAGE)),
    }
    if cursor:
        if not indexable(cursor):
            raise ValueError("cursor is not a host principal")
        kwargs["ExclusiveStartKey"] = _key(cursor)
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").query(**kwargs)
    hosts = [Host(i["principal"]["S"], _certificates(i.get("certs", {}).get("SS", []))) for i in out.get("Items", [])]
    last = out.get("LastEvaluatedKey")
    return hosts, (last["principal"]["S"] if last else None)
