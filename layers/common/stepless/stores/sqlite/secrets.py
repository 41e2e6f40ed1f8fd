"""Managed certificates' secrets in the local CA's SQLite database, versioned as Secrets Manager does it."""

from __future__ import annotations

import sqlite3
import uuid
from collections import defaultdict

from stepless.errors import NotFound
from stepless.stores.secrets import CURRENT, PREVIOUS
from stepless.stores.sqlite import Database


def _put(conn: sqlite3.Connection, arn: str, value: str, request_token: str) -> str:
    """A new current version (the current one becomes previous); the same version for the same token."""
    same = conn.execute("SELECT version_id FROM secret_versions WHERE arn = ? AND token = ?",
                        (arn, request_token)).fetchone()
    if same is not None:
        return same[0]
    version = str(uuid.uuid4())
    conn.execute("UPDATE secret_versions SET stage = NULL WHERE arn = ? AND stage = ?", (arn, PREVIOUS))
    conn.execute("UPDATE secret_versions SET stage = ? WHERE arn = ? AND stage = ?", (PREVIOUS, arn, CURRENT))
    conn.execute("INSERT INTO secret_versions (arn, version_id, token, value, stage) VALUES (?, ?, ?, ?, ?)",
                 (arn, version, request_token, value, CURRENT))
    return version


class SQLiteSecrets:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, value: str, *, description: str, tags: dict[str, str]) -> str:
        arn = f"local:secret:{name}"
        with self.db.write() as conn:  # one transaction: never a secret without a value
            conn.execute("INSERT OR IGNORE INTO secrets (arn, name) VALUES (?, ?)", (arn, name))
            _put(conn, arn, value, str(uuid.uuid4()))
        return arn

    def read(self, arn: str) -> str:
        with self.db.read() as conn:
            row = conn.execute("SELECT value FROM secret_versions WHERE arn = ? AND stage = ?",
                               (arn, CURRENT)).fetchone()
        if row is None:
            raise NotFound(f"secret {arn} not found")
        return row[0]

    def write(self, arn: str, value: str, request_token: str) -> str:
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM secrets WHERE arn = ?", (arn,)).fetchone() is None:
                raise NotFound(f"secret {arn} not found")
            return _put(conn, arn, value, request_token)

    def delete(self, arn: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM secret_versions WHERE arn = ?", (arn,))
            conn.execute("DELETE FROM secrets WHERE arn = ?", (arn,))

    def versions(self, arn: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        with self.db.read() as conn:
            for version, stage in conn.execute("SELECT version_id, stage FROM secret_versions WHERE arn = ?", (arn,)):
                out[version] += [stage] if stage else []
        return dict(out)
