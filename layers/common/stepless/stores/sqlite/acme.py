"""ACME records and used nonces in the SQLite file (tables ``acme`` and ``acme_nonces``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from stepless.stores.acme import AcmeConflict, AcmeRecord
from stepless.stores.sqlite import Database


class SQLiteAcme:
    def __init__(self, db: Database) -> None:
        self.db = db

    def use_nonce(self, nonce: str, expires: int, now: int) -> bool:
        with self.db.write() as conn:
            conn.execute("DELETE FROM acme_nonces WHERE expires < ?", (now,))  # what DynamoDB's TTL does
            done = conn.execute("INSERT INTO acme_nonces (nonce, expires) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING",
                                (nonce, expires))
        return done.rowcount == 1

    def get(self, kind: str, id: str) -> AcmeRecord | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT doc, version, expires FROM acme WHERE pk = ?", (f"{kind}#{id}",)).fetchone()
        return None if row is None else AcmeRecord(kind, id, json.loads(row[0]), int(row[1]), row[2])

    def write(self, records: Sequence[AcmeRecord]) -> None:
        with self.db.write() as conn:
            for r in records:
                if r.version == 1:
                    done = conn.execute("INSERT INTO acme (pk, doc, version, expires) VALUES (?, ?, 1, ?) "
                                        "ON CONFLICT (pk) DO NOTHING", (r.key, json.dumps(r.doc), r.expires))
                else:
                    done = conn.execute("UPDATE acme SET doc = ?, version = ?, expires = ? "
                                        "WHERE pk = ? AND version = ?",
                                        (json.dumps(r.doc), r.version, r.expires, r.key, r.version - 1))
                if done.rowcount != 1:
                    raise AcmeConflict  # the transaction is rolled back by Database.write
