"""Small helpers over the low-level DynamoDB client (faster to import and call than the resource API).

Items are (un)marshalled by :mod:`stepless.stores.attributes` (boto3's rules, without importing boto3).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stepless.stores.attributes import deserialize, serialize


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Python dict → DynamoDB attribute map (None, [] and "" values dropped)."""
    return {k: serialize(v) for k, v in values.items() if v is not None and v != [] and v != ""}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute map → Python dict (numbers come back as int when integral)."""
    out = {}
    for k, v in item.items():
        value = deserialize(v)
        if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):
            value = int(value) if value == int(value) else float(value)
        out[k] = value
    return out


def write(client: Any, items: list[dict[str, Any]]) -> None:
    """Write ``items`` (TransactWriteItems actions) atomically: a lone Put as a PutItem (half a
    transaction's write cost; its condition failure reads as every index's in :func:`condition_failed`),
    anything more as one TransactWriteItems."""
    if len(items) == 1 and "Put" in items[0]:
        client.put_item(**items[0]["Put"])
    else:
        client.transact_write_items(TransactItems=items)


def condition_failed(exc: Exception, index: int | None = None) -> bool:
    """True when ``exc`` is a failed condition (of item ``index`` in a transaction)."""
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        if index is None:
            return any(r.get("Code") == "ConditionalCheckFailed" for r in response.get("CancellationReasons") or [])
        return cancelled(exc, index) == "ConditionalCheckFailed"
    return False


def cancelled(exc: Exception, index: int) -> str | None:
    """Why item ``index`` of a cancelled transaction failed (``ConditionalCheckFailed``,
    ``TransactionConflict`` …), or None when it did not (or ``exc`` is no cancelled transaction)."""
    response = getattr(exc, "response", None) or {}
    reasons = response.get("CancellationReasons") or []
    code = reasons[index].get("Code") if len(reasons) > index else None
    return code if code not in (None, "None") else None


def scan(**kwargs: Any) -> list[dict[str, Any]]:
    """Every item a (paginated) Scan returns, as Python dicts; AWS failures become 429/503."""
    return [item for page in scan_pages(**kwargs) for item in page]


def scan_pages(**kwargs: Any) -> Iterator[list[dict[str, Any]]]:
    """The pages of a Scan, one at a time (as Python dicts); AWS failures become 429/503."""
    from stepless import aws
    from stepless.faults import translate_aws_errors

    client = aws.client("dynamodb")
    while True:
        with translate_aws_errors("DynamoDB"):
            page = client.scan(**kwargs)
        yield [from_item(i) for i in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
