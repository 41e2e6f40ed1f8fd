"""The SSH host index on DynamoDB: table ``STEPLESS_HOSTS_TABLE``, key (``pk``, ``principal``). ``pk =
"host"``: the principal, forever (check-host). ``pk = "live"``: its listing, ``certs`` a string set of
``"<serial>:<notAfter>"`` and ``expires`` (TTL) at least the latest notAfter (GET /ssh/hosts)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores.dynamo import condition_failed
from stepless.stores.hosts import MAX_PAGE, Host

PARTITION = "host"  # the principal, kept forever (check-host)
LISTING = "live"  # its live certificates and `expires`, the table's TTL attribute (GET /ssh/hosts)
MAX_QUERIES = 4  # Queries per page while expired listings await TTL's deletion
MAX_FOLDED = 16  # principals indexed in a certificate's recording transaction (2 actions each; 100 at most)
MAX_FOLDED_ENTRIES = 64  # a listing this full is indexed by add(), which drops its expired entries


def _table() -> str:
    return settings.table(settings.HOSTS_TABLE)


def _key(principal: str, partition: str = PARTITION) -> dict[str, Any]:
    return {"pk": {"S": partition}, "principal": {"S": principal.lower()}}


def _entry(serial: str, not_after: int) -> str:
    return f"{serial}:{not_after}"


def _certificates(entries: Iterable[str], after: int = -1) -> dict[str, int]:
    """serial → notAfter of the listing's entries unexpired at ``after`` (a folded write, stores.dynamodb.
    certificates, leaves expired entries in place until the listing is pruned)."""
    out: dict[str, int] = {}
    for entry in entries:
        serial, _, not_after = entry.rpartition(":")
        if not_after.isdigit() and int(not_after) > after:
            out[serial] = int(not_after)
    return out


def _update(key: dict[str, Any], expression: str, values: dict[str, Any], condition: str | None = None,
            returns: str = "NONE") -> dict[str, Any] | None:
    """One UpdateItem; None when ``condition`` failed."""
    kwargs: dict[str, Any] = {"TableName": _table(), "Key": key, "UpdateExpression": expression,
                              "ExpressionAttributeValues": values, "ReturnValues": returns}
    if condition:
        kwargs["ConditionExpression"] = condition
    with translate_aws_errors("DynamoDB"):
        try:
            return aws.client("dynamodb").update_item(**kwargs).get("Attributes") or {}
        except ClientError as e:
            if not condition_failed(e):
                raise
            return None


def _delete(principal: str, entries: list[str], now: int) -> None:
    """Remove ``entries`` from a principal's listing (the condition keeps an unknown principal unknown);
    a listing left empty expires now, so TTL deletes it and no page reads it."""
    left = _update(_key(principal, LISTING), "DELETE certs :e", {":e": {"SS": entries}},
                   "attribute_exists(pk)", "ALL_NEW")
    if left is not None and "certs" not in left:
        _update(_key(principal, LISTING), "SET expires = :now", {":now": {"N": str(now)}},
                "attribute_not_exists(certs) AND expires > :now")


def fold(principals: Iterable[str], serial: str, not_after: int, now: int) -> list[dict[str, Any]]:
    """The TransactWriteItems actions that index host certificate ``serial`` under each principal, two per
    principal: its ``seen`` mark (an Update, no condition), then its listing's (an Update adding the entry
    and setting ``expires`` to ``not_after``). A transaction returns no values, so the listing's Update
    cannot raise ``expires`` only when lower or drop expired entries as :meth:`DynamoHosts.add` does:
    instead its condition holds only when ``expires`` is at most ``not_after`` and the listing holds fewer
    than MAX_FOLDED_ENTRIES entries; a principal whose condition fails is left out of the transaction and
    indexed by :meth:`DynamoHosts.add` after it (the rare case: a shorter certificate beside a longer one,
    or a listing due for pruning)."""
    values = {":now": {"N": str(now)}}
    listing = {":e": {"SS": [_entry(serial, not_after)]}, ":x": {"N": str(not_after)},
               ":max": {"N": str(MAX_FOLDED_ENTRIES)}}
    actions: list[dict[str, Any]] = []
    for principal in principals:
        actions.append({"Update": {"TableName": _table(), "Key": _key(principal),
                                   "UpdateExpression": "SET seen = if_not_exists(seen, :now)",
                                   "ExpressionAttributeValues": values}})
        actions.append({"Update": {"TableName": _table(), "Key": _key(principal, LISTING),
                                   "UpdateExpression": "ADD certs :e SET expires = :x",
                                   "ConditionExpression": "(attribute_not_exists(expires) OR expires <= :x) AND "
                                                          "(attribute_not_exists(certs) OR size(certs) < :max)",
                                   "ExpressionAttributeValues": listing}})
    return actions


class DynamoHosts:
    def add(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
        """Record host certificate ``serial`` (valid until ``not_after``) under each principal; entries that
        expired before ``now`` are dropped from the listings written. ``expires`` only grows here (a
        conditional SET), so concurrent issuances leave it at the latest notAfter."""
        exp = {"N": str(not_after)}
        for principal in principals:
            _update(_key(principal), "SET seen = if_not_exists(seen, :now)", {":now": {"N": str(now)}})
            item = _update(_key(principal, LISTING), "ADD certs :e SET expires = if_not_exists(expires, :x)",
                           {":e": {"SS": [_entry(serial, not_after)]}, ":x": exp}, returns="ALL_NEW") or {}
            if int(item.get("expires", exp)["N"]) < not_after:
                _update(_key(principal, LISTING), "SET expires = :x", {":x": exp}, "expires < :x")
            entries = item.get("certs", {}).get("SS", [])
            expired = [e for e in entries if any(t <= now for t in _certificates([e]).values())]
            if expired:
                _delete(principal, expired, now)

    def remove(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
        """Forget host certificate ``serial`` (revoked) under each principal."""
        for principal in principals:
            _delete(principal, [_entry(serial, not_after)], now)

    def exists(self, principal: str) -> bool:
        """Whether a host certificate was ever recorded for ``principal`` (one GetItem)."""
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(TableName=_table(), Key=_key(principal), ProjectionExpression="pk")
        return "Item" in out

    def page(self, limit: int, cursor: str | None, now: int) -> tuple[list[Host], str | None]:
        """Up to ``limit`` hosts live at ``now`` in principal order after ``cursor``, and the next cursor or
        None: a Query of the listings unexpired at ``now`` (up to MAX_PAGE evaluated), again (at most
        MAX_QUERIES in all) while listings that expired or were revoked, not yet deleted by TTL, left the
        page short."""
        hosts: list[Host] = []
        for _ in range(MAX_QUERIES):
            kwargs: dict[str, Any] = {
                "TableName": _table(), "KeyConditionExpression": "pk = :pk", "FilterExpression": "expires > :now",
                "ExpressionAttributeValues": {":pk": {"S": LISTING}, ":now": {"N": str(now)}}, "Limit": MAX_PAGE,
            }
            if cursor:
                kwargs["ExclusiveStartKey"] = _key(cursor, LISTING)
            with translate_aws_errors("DynamoDB"):
                out = aws.client("dynamodb").query(**kwargs)
            found = (Host(i["principal"]["S"], _certificates(i.get("certs", {}).get("SS", []), after=now))
                     for i in out.get("Items", []))
            hosts += [h for h in found if h.live(now)]
            if len(hosts) >= limit:
                more = len(hosts) > limit or "LastEvaluatedKey" in out
                return hosts[:limit], (hosts[limit - 1].principal if more else None)
            last = out.get("LastEvaluatedKey")
            cursor = last["principal"]["S"] if last else None
            if cursor is None:
                break
        return hosts, cursor
