"""Issued certificates (X.509 and SSH), written before a certificate is returned.

Key ``serial``: the decimal serial for X.509, ``ssh:<decimal>`` for SSH certificates.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import Forbidden, ServiceUnavailable, Unauthorized
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo, tokens
from stepless.stores.dynamo import condition_failed, from_item, to_item

# One certificate renewed over and over (not its renewals) would grow its record towards DynamoDB's 400 KB
# item limit, and every renewal's write with it; a client renews the newest certificate anyway.
MAX_RENEWALS_PER_CERTIFICATE = 1000


class ParentRevoked(Unauthorized):
    """401: the certificate being renewed was revoked (the renewal transaction's check failed)."""

    reason = "certificate_revoked"


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
                raise Unauthorized(tokens.USED, reason="token_already_used") from e
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


def get_with_revocation(serial: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(certificate record, revocation record) of ``serial`` in one round trip (BatchGetItem).

    The revocation is read consistently; unprocessed keys (throttling) are retried a few times.
    """
    certs, revs = settings.table(settings.CERTIFICATES_TABLE), settings.table(settings.REVOCATIONS_TABLE)
    key = {"serial": {"S": serial}}
    request: dict[str, Any] = {certs: {"Keys": [key]}, revs: {"Keys": [key], "ConsistentRead": True}}
    found: dict[str, dict[str, Any]] = {}
    with translate_aws_errors("DynamoDB"):
        for _ in range(5):
            out = aws.client("dynamodb").batch_get_item(RequestItems=request)
            for table, items in (out.get("Responses") or {}).items():
                for item in items:
                    found[table] = from_item(item)
            request = out.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise ServiceUnavailable("DynamoDB did not answer, retry", headers={"Retry-After": "1"})
    return found.get(certs), found.get(revs)


def record_renewal(record: dict[str, Any], token: dict[str, Any] | None, parent_serial: str, *,
                   capped: bool = True) -> None:
    """Like :func:`record_issuance`, and atomically only while ``parent_serial`` is not revoked.

    A ConditionCheck on the revocations table rides in the same transaction, so once a revocation of
    the parent has been written no renewal of it can be recorded (revoke racing renew). The same
    transaction adds the new serial to the parent's ``children`` set (the lineage, read by
    :func:`children`), at most :data:`MAX_RENEWALS_PER_CERTIFICATE` of them when ``capped`` (the
    scheduled renewal of managed certificates is not: it retries from the same parent after failures).
    Raises 401 "token already used" / "certificate has been revoked" / "certificate not found" (an
    unrecorded parent), 403 when the parent was renewed too often, 503 on a serial collision.
    """
    items: list[dict[str, Any]] = []
    if token is not None:
        items.append({"Put": token})
    check_index = len(items)
    items.append({"ConditionCheck": {
        "TableName": settings.table(settings.REVOCATIONS_TABLE),
        "Key": {"serial": {"S": parent_serial}},
        "ConditionExpression": "attribute_not_exists(serial)",
    }})
    link_index = len(items)
    items.append({"Update": _link(parent_serial, str(record["serial"]), capped=capped)})
    items.append({"Put": cert_put(record)})
    with translate_aws_errors("DynamoDB"):
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as e:
            if token is not None and condition_failed(e, 0):
                raise Unauthorized(tokens.USED, reason="token_already_used") from e
            if condition_failed(e, check_index):
                raise ParentRevoked("certificate has been revoked") from e
            if condition_failed(e, link_index):
                if get(parent_serial) is None:
                    raise Unauthorized("certificate not found") from e
                raise Forbidden(f"certificate has been renewed {MAX_RENEWALS_PER_CERTIFICATE} times: renew its "
                                "latest renewal instead") from e
            if condition_failed(e):
                raise ServiceUnavailable("serial collision, retry", headers={"Retry-After": "0"}) from e
            raise


def _link(parent: str, child: str, *, capped: bool) -> dict[str, Any]:
    """The update adding ``child`` to the recorded ``parent``'s ``children`` (below the cap when ``capped``)."""
    cap = " AND (attribute_not_exists(children) OR size(children) < :max)" if capped else ""
    values: dict[str, Any] = {":child": {"SS": [child]}}
    if capped:
        values[":max"] = {"N": str(MAX_RENEWALS_PER_CERTIFICATE)}
    return {"TableName": settings.table(settings.CERTIFICATES_TABLE), "Key": {"serial": {"S": parent}},
            "UpdateExpression": "ADD children :child", "ConditionExpression": "attribute_exists(serial)" + cap,
            "ExpressionAttributeValues": values}


def children(serial: str) -> list[str]:
    """The serials renewed directly from ``serial`` (a consistent read of its ``children`` set)."""
    with translate_aws_errors("DynamoDB"):
        out = aws.client("dynamodb").get_item(
            TableName=settings.table(settings.CERTIFICATES_TABLE), Key={"serial": {"S": serial}},
            ProjectionExpression="children", ConsistentRead=True,
        )
    return sorted((out.get("Item") or {}).get("children", {}).get("SS", []))


def link_renewals() -> int:
    """Add every recorded renewal to its parent's ``children`` (records written before renewals linked
    themselves); idempotent (a string set), so an interrupted run is simply run again. One scan, page by
    page; returns the number of renewals linked (links that existed already included)."""
    client = aws.client("dynamodb")
    links = 0
    pages = dynamo.scan_pages(TableName=settings.table(settings.CERTIFICATES_TABLE),
                              ProjectionExpression="serial, parent_serial",
                              FilterExpression="attribute_exists(parent_serial)")
    for rec in (r for page in pages for r in page):
        with translate_aws_errors("DynamoDB"):
            try:
                client.update_item(**_link(str(rec["parent_serial"]), str(rec["serial"]), capped=False))
                links += 1
            except ClientError as e:
                if not condition_failed(e):  # a parent we never recorded: nothing to link from
                    raise
    return links


def scan_ssh_hosts() -> list[dict[str, Any]]:
    """Serial, principals and expiry of every recorded SSH host certificate (a filtered scan)."""
    kwargs: dict[str, Any] = {
        "TableName": settings.table(settings.CERTIFICATES_TABLE),
        "FilterExpression": "#k = :kind AND #t = :host",
        "ProjectionExpression": "#s, #p, #n",
        "ExpressionAttributeNames": {"#k": "kind", "#t": "cert_type", "#s": "serial", "#p": "principals",
                                     "#n": "not_after"},
        "ExpressionAttributeValues": {":kind": {"S": "ssh"}, ":host": {"S": "host"}},
    }
    return dynamo.scan(**kwargs)
