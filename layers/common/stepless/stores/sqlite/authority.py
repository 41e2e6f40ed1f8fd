"""The authority configuration (one row, optimistic locking on ``version``) and the audit log in SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from stepless.stores.errors import ConfigConflict, ConfigExists
from stepless.stores.sqlite import Database


class SQLiteAuthority:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> tuple[dict[str, Any], int] | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT doc, version FROM authority WHERE id = 1").fetchone()
        return (json.loads(row[0]), int(row[1])) if row else None

    def save(self, doc: dict[str, Any], *, expected_version: int | None,
             audit: dict[str, Any] | None = None) -> int:
        data = json.dumps(doc, sort_keys=True)
        with self.db.write() as conn:
            if expected_version is None:
                try:
                    conn.execute("INSERT INTO authority (id, doc, version) VALUES (1, ?, 1)", (data,))
                except sqlite3.IntegrityError as e:
                    raise ConfigExists from e
                new_version = 1
            else:
                new_version = expected_version + 1
                changed = conn.execute("UPDATE authority SET doc = ?, version = ? WHERE id = 1 AND version = ?",
                                       (data, new_version, expected_version)).rowcount
                if changed != 1:
                    raise ConfigConflict
            if audit is not None:
                _audit(conn, audit)
        return new_version


def _audit(conn: sqlite3.Connection, record: dict[str, Any]) -> None:
    conn.execute("INSERT INTO audit (pk, provisioner, record) VALUES (?, ?, ?)",
                 (record["pk"], record.get("provisioner"), json.dumps(record, sort_keys=True)))


class SQLiteAudit:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, record: dict[str, Any]) -> None:
        with self.db.write() as conn:
            _audit(conn, record)

    def records(self, provisioner: str | None) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            if provisioner is None:
                rows = conn.execute("SELECT record FROM audit ORDER BY pk").fetchall()
            else:
                rows = conn.execute("SELECT record FROM audit WHERE provisioner = ? ORDER BY pk",
                                    (provisioner,)).fetchall()
        return [json.loads(r[0]) for r in rows]
