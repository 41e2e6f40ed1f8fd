"""Certificates and lineage on DynamoDB: ``CertificatesTable`` (key ``serial``); a renewal's transaction
adds its serial to the parent's ``children`` string set and checks ``RevocationsTable`` for the parent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import ServiceUnavailable
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo, errors
from stepless.stores.certificates import CertificateRecord
from stepless.stores.dynamo import condition_failed, from_item, to_item
from stepless.stores.dynamodb.tokens import token_put
from stepless.stores.errors import (
    ParentRevoked,
    ParentUnknown,
    RenewalCap,
    SerialCollision,
    TokenUsed,
)
from stepless.stores.revocations import RevocationRecord
from stepless.stores.tokens import UsedToken


def cert_put(record: CertificateRecord) -> dict[str, Any]:
    """A put of a new certificate record (never overwrites a serial)."""
    return {
        "TableName": settings.table(settings.CERTIFICATES_TABLE),
        "Item": to_item(record.present()),
        "ConditionExpression": "attribute_not_exists(serial)",
    }


def _link(parent: str, child: str, *, capped: bool) -> dict[str, Any]:
    """The update adding ``child`` to the recorded ``parent``'s ``children`` (below the cap when ``capped``)."""
    cap = " AND (attribute_not_exists(children) OR size(children) < :max)" if capped else ""
    values: dict[str, Any] = {":child": {"SS": [child]}}
    if capped:
        values[":max"] = {"N": str(errors.MAX_RENEWALS_PER_CERTIFICATE)}
    return {"TableName": settings.table(settings.CERTIFICATES_TABLE), "Key": {"serial": {"S": parent}},
            "UpdateExpression": "ADD children :child", "ConditionExpression": "attribute_exists(serial)" + cap,
            "ExpressionAttributeValues": values}


class DynamoCertificates:
    def record_issuance(self, record: CertificateRecord, token: UsedToken | None) -> None:
        client = aws.client("dynamodb")
        with translate_aws_errors("DynamoDB"):
            try:
                if token is None:
                    client.put_item(**cert_put(record))
                    return
                client.transact_write_items(TransactItems=[{"Put": token_put(token)}, {"Put": cert_put(record)}])
            except ClientError as e:
                if token is not None and condition_failed(e, 0):
                    raise TokenUsed from e
                if condition_failed(e):
                    raise SerialCollision from e
                raise

    def record_renewal(self, record: CertificateRecord, token: UsedToken | None, parent_serial: str, *,
                       capped: bool) -> None:
        """One transaction: the token's put, a ConditionCheck that the parent has no revocation, the
        parent's ``children`` update (it exists; below the cap) and the new record's put."""
        items: list[dict[str, Any]] = []
        if token is not None:
            items.append({"Put": token_put(token)})
        check_index = len(items)
        items.append({"ConditionCheck": {
            "TableName": settings.table(settings.REVOCATIONS_TABLE),
            "Key": {"serial": {"S": parent_serial}},
            "ConditionExpression": "attribute_not_exists(serial)",
        }})
        link_index = len(items)
        items.append({"Update": _link(parent_serial, record.serial, capped=capped)})
        items.append({"Put": cert_put(record)})
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").transact_write_items(TransactItems=items)
            except ClientError as e:
                if token is not None and condition_failed(e, 0):
                    raise TokenUsed from e
                if condition_failed(e, check_index):
                    raise ParentRevoked from e
                if condition_failed(e, link_index):
                    if self.get(parent_serial) is None:
                        raise ParentUnknown from e
                    raise RenewalCap from e
                if condition_failed(e):
                    raise SerialCollision from e
                raise

    def get(self, serial: str) -> CertificateRecord | None:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(
                TableName=settings.table(settings.CERTIFICATES_TABLE), Key={"serial": {"S": serial}}
            )
        item = out.get("Item")
        return CertificateRecord.from_dict(from_item(item)) if item else None

    def get_with_revocation(self, serial: str) -> tuple[CertificateRecord | None, RevocationRecord | None]:
        """One BatchGetItem (the revocation read consistently); unprocessed keys retried a few times."""
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
        cert, rev = found.get(certs), found.get(revs)
        return (CertificateRecord.from_dict(cert) if cert else None,
                RevocationRecord.from_dict(rev) if rev else None)

    def children(self, serial: str) -> list[str]:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(
                TableName=settings.table(settings.CERTIFICATES_TABLE), Key={"serial": {"S": serial}},
                ProjectionExpression="children", ConsistentRead=True,
            )
        return sorted((out.get("Item") or {}).get("children", {}).get("SS", []))

    def link_renewals(self) -> int:
        """One scan, page by page (eventually consistent: renewals link themselves)."""
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

    def ssh_hosts(self) -> Iterator[CertificateRecord]:
        """A filtered scan (serial, principals, not_after)."""
        kwargs: dict[str, Any] = {
            "TableName": settings.table(settings.CERTIFICATES_TABLE),
            "FilterExpression": "#k = :kind AND #t = :host",
            "ProjectionExpression": "#s, #p, #n, #k, #t",
            "ExpressionAttributeNames": {"#k": "kind", "#t": "cert_type", "#s": "serial", "#p": "principals",
                                         "#n": "not_after"},
            "ExpressionAttributeValues": {":kind": {"S": "ssh"}, ":host": {"S": "host"}},
        }
        return (CertificateRecord.from_dict(r) for r in dynamo.scan(**kwargs))
