"""The managed-certificate registry on DynamoDB: ``ManagedTable`` (key ``name``; sparse GSI ``RenewAt`` on
``due`` + ``renew_at``); every write conditional on ``version``."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.faults import translate_aws_errors
from stepless.stores import dynamo
from stepless.stores.dynamo import condition_failed, from_item, to_item
from stepless.stores.errors import LostRace, ManagedExists
from stepless.stores.managed import DUE, INDEX, MANAGED_TABLE, Managed


def table() -> str:
    return settings.table(MANAGED_TABLE)


class DynamoManaged:
    def get(self, name: str) -> Managed | None:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").get_item(TableName=table(), Key={"name": {"S": name}}, ConsistentRead=True)
        item = out.get("Item")
        return Managed.from_record(from_item(item)) if item else None

    def list_all(self) -> list[Managed]:
        return sorted((Managed.from_record(r) for r in dynamo.scan(TableName=table())), key=lambda m: m.name)

    def due_page(self, now: int, limit: int, start: dict[str, Any] | None
                 ) -> tuple[list[Managed], dict[str, Any] | None]:
        """A query of the ``RenewAt`` index (never a scan), paginated by DynamoDB's LastEvaluatedKey."""
        kwargs: dict[str, Any] = {
            "TableName": table(),
            "IndexName": INDEX,
            "KeyConditionExpression": "#d = :due AND renew_at <= :now",
            "ExpressionAttributeNames": {"#d": "due"},
            "ExpressionAttributeValues": {":due": {"S": DUE}, ":now": {"N": str(now)}},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").query(**kwargs)
        return [Managed.from_record(from_item(i)) for i in out.get("Items", [])], out.get("LastEvaluatedKey")

    def put_new(self, item: Managed, *, expected: int | None, now: int) -> None:
        kwargs: dict[str, Any] = {"TableName": table(), "Item": to_item(item.to_json())}
        if expected is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(#n)"
            kwargs["ExpressionAttributeNames"] = {"#n": "name"}
        else:
            kwargs["ConditionExpression"] = ("version = :v AND (attribute_not_exists(lease_until) OR "
                                             "lease_until < :now)")
            kwargs["ExpressionAttributeValues"] = to_item({":v": expected, ":now": now})
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").put_item(**kwargs)
            except ClientError as e:
                if condition_failed(e):
                    raise ManagedExists(item.name) from e
                raise

    def delete(self, name: str) -> None:
        with translate_aws_errors("DynamoDB"):
            aws.client("dynamodb").delete_item(TableName=table(), Key={"name": {"S": name}})

    def update(self, name: str, version: int, changes: dict[str, Any], *, increments: dict[str, int] | None = None,
               remove: tuple[str, ...] = (), unleased_at: int | None = None) -> None:
        """One UpdateItem conditional on ``version`` (every attribute by placeholder: ``status`` and ``due``
        are reserved words)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {":v": version, ":next": version + 1}
        sets = []
        for i, (attr, value) in enumerate(changes.items()):
            names[f"#s{i}"], values[f":s{i}"] = attr, value
            sets.append(f"#s{i} = :s{i}")
        for i, (attr, step) in enumerate((increments or {}).items()):
            names[f"#i{i}"], values[f":i{i}"] = attr, step
            values[":zero"] = 0
            sets.append(f"#i{i} = if_not_exists(#i{i}, :zero) + :i{i}")
        sets.append("version = :next")
        expression = "SET " + ", ".join(sets)
        if remove:
            for i, attr in enumerate(remove):
                names[f"#r{i}"] = attr
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = "version = :v"
        if unleased_at is not None:
            condition += " AND (attribute_not_exists(lease_until) OR lease_until < :now)"
            values[":now"] = unleased_at
        kwargs: dict[str, Any] = {
            "TableName": table(), "Key": {"name": {"S": name}}, "UpdateExpression": expression,
            "ConditionExpression": condition, "ExpressionAttributeValues": to_item(values),
            "ExpressionAttributeNames": names,
        }
        with translate_aws_errors("DynamoDB"):
            try:
                aws.client("dynamodb").update_item(**kwargs)
            except ClientError as e:
                if condition_failed(e):
                    raise LostRace(name) from e
                raise
