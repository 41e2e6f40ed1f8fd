"""The CRL (with its number) and the SSH KRL as rows of the SQLite database (always shared: every thread
and process of the local CA serves the same objects)."""

from __future__ import annotations

import datetime as dt
import json

from stepless.stores.crl_store import StoredCRL
from stepless.stores.sqlite import Database

CRL, KRL = "crl/intermediate.crl", "krl/ssh.krl"


class SQLiteObjects:
    def __init__(self, db: Database) -> None:
        self.db = db

    def shared(self) -> bool:
        return True

    def next_crl_number(self) -> int:
        with self.db.write() as conn:
            (number,) = conn.execute("INSERT INTO meta (key, value) VALUES ('crl_number', 1) ON CONFLICT (key) "
                                     "DO UPDATE SET value = value + 1 RETURNING value").fetchone()
        return int(number)

    def _put(self, key: str, body: bytes, meta: dict[str, int]) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO objects (key, body, meta) VALUES (?, ?, ?)",
                         (key, body, json.dumps(meta)))

    def put_crl(self, crl: StoredCRL) -> None:
        self._put(CRL, crl.der, {"number": crl.number, "this_update": int(crl.this_update.timestamp()),
                                 "next_update": int(crl.next_update.timestamp())})

    def put_krl(self, krl: bytes) -> None:
        self._put(KRL, krl, {})

    def get_crl(self) -> StoredCRL | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT body, meta FROM objects WHERE key = ?", (CRL,)).fetchone()
        if row is None:
            return None
        meta = json.loads(row[1])
        return StoredCRL(bytes(row[0]), int(meta["number"]),
                         dt.datetime.fromtimestamp(meta["this_update"], dt.UTC),
                         dt.datetime.fromtimestamp(meta["next_update"], dt.UTC))
