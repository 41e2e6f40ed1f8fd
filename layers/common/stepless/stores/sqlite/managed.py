"""The managed-certificate registry in SQLite: one row per name (the item as JSON, with ``due`` and
``renew_at`` columns indexed for the due query); every write checks ``version`` inside BEGIN IMMEDIATE."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from stepless.stores.errors import LostRace, ManagedExists
from stepless.stores.managed import DUE, Managed
from stepless.stores.sqlite import Database


def _row(item: dict[str, Any]) -> tuple[str, str | None, int, str]:
    return item["name"], item.get("due"), int(item["renew_at"]), json.dumps(item, sort_keys=True)


def _leased(item: dict[str, Any], now: int) -> bool:
    return item.get("lease_until") is not None and item["lease_until"] >= now


class SQLiteManaged:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> Managed | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT record FROM managed WHERE name = ?", (name,)).fetchone()
        return Managed.from_record(json.loads(row[0])) if row else None

    def list_all(self) -> list[Managed]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT record FROM managed ORDER BY name").fetchall()
        return [Managed.from_record(json.loads(r[0])) for r in rows]

    def due_page(self, now: int, limit: int, start: dict[str, Any] | None
                 ) -> tuple[list[Managed], dict[str, Any] | None]:
        after = (int(start["renew_at"]), str(start["name"])) if start else (-(2**62), "")
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT record FROM managed WHERE due = ? AND renew_at <= ? AND (renew_at, name) > (?, ?) "
                "ORDER BY renew_at, name LIMIT ?", (DUE, now, *after, limit)).fetchall()
        items = [Managed.from_record(json.loads(r[0])) for r in rows]
        more = {"renew_at": items[-1].renew_at, "name": items[-1].name} if len(items) == limit else None
        return items, more

    def put_new(self, item: Managed, *, expected: int | None, now: int) -> None:
        values = item.to_json()
        with self.db.write() as conn:
            if expected is None:
                try:
                    conn.execute("INSERT INTO managed (name, due, renew_at, record) VALUES (?, ?, ?, ?)", _row(values))
                except sqlite3.IntegrityError as e:
                    raise ManagedExists(item.name) from e
                return
            row = conn.execute("SELECT record FROM managed WHERE name = ?", (item.name,)).fetchone()
            current = json.loads(row[0]) if row else None
            if current is None or current.get("version") != expected or _leased(current, now):
                raise ManagedExists(item.name)
            conn.execute("UPDATE managed SET due = ?, renew_at = ?, record = ? WHERE name = ?",
                         (*_row(values)[1:], item.name))

    def delete(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM managed WHERE name = ?", (name,))

    def update(self, name: str, version: int, changes: dict[str, Any], *, increments: dict[str, int] | None = None,
               remove: tuple[str, ...] = (), unleased_at: int | None = None) -> None:
        with self.db.write() as conn:
            row = conn.execute("SELECT record FROM managed WHERE name = ?", (name,)).fetchone()
            item = json.loads(row[0]) if row else None
            if item is None or item.get("version") != version or (
                    unleased_at is not None and _leased(item, unleased_at)):
                raise LostRace(name)
            item.update(changes)
            for attr, step in (increments or {}).items():
                item[attr] = int(item.get(attr) or 0) + step
            for attr in remove:
                item[attr] = None
            item["version"] = version + 1
            conn.execute("UPDATE managed SET due = ?, renew_at = ?, record = ? WHERE name = ?",
                         (*_row(item)[1:], name))
