"""Certificates and lineage on DynamoDB: ``CertificatesTable`` (key ``serial``); a renewal's transaction
adds its serial to the parent's ``children`` string set (conditional on the parent's record, the
certificate presented) and checks ``RevocationsTable`` for the parent; a host certificate's transaction
also updates ``HostsTable`` (stores.dynamodb.hosts.fold). One TransactWriteItems per recording, no read
before it: every check rides in it as a condition, and its cancellation reasons say which failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.errors import ServiceUnavailable
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo, errors, hosts
from stepless.stores.certificates import CertificateRecord
from stepless.stores.dynamo import cancelled, condition_failed, from_item, to_item
from stepless.stores.dynamodb import hosts as dynamo_hosts
from stepless.stores.dynamodb.tokens import token_put
from stepless.stores.errors import (
    ParentRevoked,
    ParentUnknown,
    RenewalCap,
    SerialCollision,
    TokenUsed,
    UnknownCertificate,
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


def _link(parent: str, child: str, *, capped: bool, fingerprint: str | None = None) -> dict[str, Any]:
    """The update adding ``child`` to the recorded ``parent``'s ``children`` (below the cap when ``capped``;
    only while the parent's record has ``fingerprint`` or none, when given)."""
    condition = "attribute_exists(serial)"
    values: dict[str, Any] = {":child": {"SS": [child]}}
    if fingerprint is not None:
        condition += " AND (attribute_not_exists(fingerprint) OR fingerprint = :fp)"
        values[":fp"] = {"S": fingerprint}
    if capped:
        condition += " AND (attribute_not_exists(children) OR size(children) < :max)"
        values[":max"] = {"N": str(errors.MAX_RENEWALS_PER_CERTIFICATE)}
    return {"TableName": settings.table(settings.CERTIFICATES_TABLE), "Key": {"serial": {"S": parent}},
            "UpdateExpression": "ADD children :child", "ConditionExpression": condition,
            "ExpressionAttributeValues": values}


def _commit(items: list[dict[str, Any]], record: CertificateRecord,
            refusal: Callable[[ClientError], Exception | None]) -> None:
    """Run the recording transaction ``items`` (their conditions mapped to typed errors by ``refusal``), with
    the host-index actions of ``record`` when it is an SSH host certificate: up to hosts.MAX_FOLDED
    principals folded in. When only index actions failed (a listing's condition, or a conflict with a
    concurrent transaction on the same principal), the transaction is run again without those principals,
    which DynamoHosts.add indexes after it commits, like any principal beyond MAX_FOLDED."""
    entry = hosts.entry_of(record)
    folded = list(entry.principals[:dynamo_hosts.MAX_FOLDED]) if entry else []
    rest = list(entry.principals[dynamo_hosts.MAX_FOLDED:]) if entry else []
    client = aws.client("dynamodb")
    with translate_aws_errors("DynamoDB"):
        while True:
            actions = items + (dynamo_hosts.fold(folded, entry.serial, entry.not_after, entry.now) if entry else [])
            try:
                dynamo.write(client, actions)
                break
            except ClientError as e:
                base = len(items)
                declined = [p for k, p in enumerate(folded)
                            if cancelled(e, base + 2 * k) or cancelled(e, base + 2 * k + 1)]
                if declined and not any(cancelled(e, i) for i in range(base)):
                    folded = [p for p in folded if p not in declined]
                    rest += declined
                    continue
                error = refusal(e)
                if error is None:
                    raise
                raise error from e
    if entry and rest:
        dynamo_hosts.DynamoHosts().add(rest, entry.serial, entry.not_after, entry.now)


class DynamoCertificates:
    def record_issuance(self, record: CertificateRecord, token: UsedToken | None) -> None:
        """One TransactWriteItems: the token's put, the record's put, a host certificate's index updates (a
        PutItem when there is only the record)."""
        items = ([{"Put": token_put(token)}] if token is not None else []) + [{"Put": cert_put(record)}]

        def refusal(e: ClientError) -> Exception | None:
            if token is not None and condition_failed(e, 0):
                return TokenUsed()
            return SerialCollision() if condition_failed(e, len(items) - 1) else None

        _commit(items, record, refusal)

    def record_renewal(self, record: CertificateRecord, token: UsedToken | None, parent_serial: str, *,
                       capped: bool, parent_fingerprint: str | None = None) -> None:
        """One transaction: a ConditionCheck that the parent has no revocation, the parent's ``children``
        update (it is recorded, with ``parent_fingerprint`` or none when given; below the cap), the token's
        put, the new record's put, a host certificate's index updates. Which condition failed is in the
        cancellation reasons; a failed parent update is told apart (unknown or capped) by one consistent
        read of the parent, on that failure only."""
        items: list[dict[str, Any]] = [
            {"ConditionCheck": {"TableName": settings.table(settings.REVOCATIONS_TABLE),
                                "Key": {"serial": {"S": parent_serial}},
                                "ConditionExpression": "attribute_not_exists(serial)"}},
            {"Update": _link(parent_serial, record.serial, capped=capped, fingerprint=parent_fingerprint)},
        ]
        if token is not None:
            items.append({"Put": token_put(token)})
        items.append({"Put": cert_put(record)})

        def refusal(e: ClientError) -> Exception | None:
            if condition_failed(e, 1) and not self._is_parent(parent_serial, parent_fingerprint):
                return UnknownCertificate() if parent_fingerprint is not None else ParentUnknown()
            if condition_failed(e, 0):
                return ParentRevoked()
            if token is not None and condition_failed(e, 2):
                return TokenUsed()
            if condition_failed(e, 1):
                return RenewalCap()
            return SerialCollision() if condition_failed(e, len(items) - 1) else None

        _commit(items, record, refusal)

    def _is_parent(self, serial: str, fingerprint: str | None) -> bool:
        """Whether ``serial`` is recorded (with ``fingerprint`` or none, when given): a consistent read."""
        with translate_aws_errors("DynamoDB"):
            item = aws.client("dynamodb").get_item(
                TableName=settings.table(settings.CERTIFICATES_TABLE), Key={"serial": {"S": serial}},
                ProjectionExpression="serial, fingerprint", ConsistentRead=True,
            ).get("Item")
        return item is not None and (fingerprint is None or item.get("fingerprint", {}).get("S") in (None, fingerprint))

    def get(self, serial: str) -> CertificateRecord | None:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(
                TableName=settings.table(settings.CERTIFICATES_TABLE), Key={"serial": {"S": serial}}
            )
        item = out.get("Item")
        return CertificateRecord.from_dict(from_item(item)) if item else None

    def get_with_revocation(self, serial: str) -> tuple[CertificateRecord | None, RevocationRecord | None]:
        """One BatchGetItem, both items read consistently (OCSP asks about a certificate issued a moment ago: an
        eventually consistent miss would be an ``unauthorized`` answer cached for a minute); unprocessed keys
        retried a few times."""
        certs, revs = settings.table(settings.CERTIFICATES_TABLE), settings.table(settings.REVOCATIONS_TABLE)
        key = {"serial": {"S": serial}}
        request: dict[str, Any] = {certs: {"Keys": [key], "ConsistentRead": True},
                                   revs: {"Keys": [key], "ConsistentRead": True}}
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
