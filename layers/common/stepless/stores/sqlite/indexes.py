"""The SSH host index, the revoked-SSH set (the KRL's source) and the pre-produced OCSP responses in SQLite,
with the contracts their modules state (stores.hosts, stores.ssh_revoked, stores.ocsp_responses)."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable

from stepless.stores.hosts import Host
from stepless.stores.ocsp_responses import Record, Response
from stepless.stores.sqlite import Database
from stepless.stores.ssh_revoked import TYPES, Revoked, check_room


def index_host(conn: sqlite3.Connection, principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
    """Add host certificate ``serial`` under each principal within the caller's transaction (SQLiteHosts.add;
    the certificate store's recording transaction) and prune expired entries."""
    for principal in principals:
        conn.execute("INSERT OR IGNORE INTO hosts (principal) VALUES (?)", (principal,))
        conn.execute("INSERT OR REPLACE INTO host_certificates (principal, serial, not_after) VALUES (?, ?, ?)",
                     (principal, serial, not_after))
    conn.execute("DELETE FROM host_certificates WHERE not_after <= ?", (now,))  # what DynamoDB's TTL does


class SQLiteHosts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
        with self.db.write() as conn:
            index_host(conn, principals, serial, not_after, now)

    def remove(self, principals: Iterable[str], serial: str, not_after: int, now: int) -> None:
        with self.db.write() as conn:
            for principal in principals:
                conn.execute("DELETE FROM host_certificates WHERE principal = ? AND serial = ?", (principal, serial))

    def exists(self, principal: str) -> bool:
        with self.db.read() as conn:
            return conn.execute("SELECT 1 FROM hosts WHERE principal = ?", (principal,)).fetchone() is not None

    def page(self, limit: int, cursor: str | None, now: int) -> tuple[list[Host], str | None]:
        """The principals with a certificate unexpired at ``now`` (an index on ``not_after`` finds them)."""
        certs: dict[str, dict[str, int]] = {}
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT principal, serial, not_after FROM host_certificates WHERE principal IN "
                "(SELECT DISTINCT principal FROM host_certificates WHERE principal > ? AND not_after > ? "
                "ORDER BY principal LIMIT ?) AND not_after > ? ORDER BY principal", (cursor or "", now, limit, now))
            for principal, serial, not_after in rows:
                certs.setdefault(principal, {})[serial] = not_after
        hosts = [Host(n, c) for n, c in certs.items()]
        return hosts, (hosts[-1].principal if len(hosts) == limit else None)


class SQLiteSSHRevoked:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _state(conn: sqlite3.Connection) -> Revoked:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('krl_version', 'krl_updated_at')"))
        lists: dict[str, dict[int, int]] = {t: {} for t in TYPES}
        for cert_type, serial, not_after in conn.execute("SELECT cert_type, serial, not_after FROM ssh_revoked"):
            lists[cert_type][int(serial)] = not_after
        return Revoked(meta.get("krl_version", 0), meta.get("krl_updated_at", 0), lists["user"], lists["host"])

    def add(self, serial: int, cert_type: str, not_after: int, now: int) -> Revoked:
        with self.db.write() as conn:
            conn.execute("DELETE FROM ssh_revoked WHERE not_after <= ?", (now,))
            present = conn.execute("SELECT 1 FROM ssh_revoked WHERE cert_type = ? AND serial = ?",
                                   (cert_type, str(serial))).fetchone()
            if present is None and not_after > now:
                check_room(conn.execute("SELECT COUNT(*) FROM ssh_revoked").fetchone()[0] + 1)
            conn.execute("INSERT OR REPLACE INTO ssh_revoked (cert_type, serial, not_after) VALUES (?, ?, ?)",
                         (cert_type, str(serial), not_after))
            conn.execute("DELETE FROM ssh_revoked WHERE not_after <= ?", (now,))
            conn.execute("INSERT INTO meta (key, value) VALUES ('krl_version', 1) ON CONFLICT (key) "
                         "DO UPDATE SET value = value + 1")
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('krl_updated_at', ?)", (now,))
            return self._state(conn)

    def get(self) -> Revoked:
        with self.db.read() as conn:
            return self._state(conn)


def _response_dict(r: Response) -> dict[str, object]:
    return {"der": base64.b64encode(r.der).decode(), "this_update": r.this_update, "next_update": r.next_update}


def _responses_json(responses: dict[str, Response]) -> str:
    return json.dumps({a: _response_dict(r) for a, r in responses.items()})


class SQLiteOCSPResponses:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, serial: str) -> Record | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT status, expires, revoked_at, reason_code, responses FROM ocsp_responses "
                               "WHERE serial = ?", (serial,)).fetchone()
        if row is None:
            return None
        responses = {a: Response(base64.b64decode(v["der"]), v["this_update"], v["next_update"])
                     for a, v in json.loads(row[4]).items()}
        return Record(serial, row[0], row[1], row[2], row[3], responses)

    def _values(self, rec: Record) -> tuple:
        return (rec.serial, rec.status, rec.expires, rec.revoked_at, rec.reason_code, _responses_json(rec.responses))

    def create(self, rec: Record) -> bool:
        with self.db.write() as conn:
            try:
                conn.execute("INSERT INTO ocsp_responses VALUES (?, ?, ?, ?, ?, ?)", self._values(rec))
            except sqlite3.IntegrityError:
                return False
        return True

    def put_revoked(self, rec: Record) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO ocsp_responses VALUES (?, ?, ?, ?, ?, ?)", self._values(rec))

    def add_response(self, serial: str, status: str, algorithm: str, response: Response) -> bool:
        with self.db.write() as conn:
            row = conn.execute("SELECT status, responses FROM ocsp_responses WHERE serial = ?", (serial,)).fetchone()
            if row is None or row[0] != status:
                return False
            responses = json.loads(row[1])
            responses[algorithm] = _response_dict(response)
            conn.execute("UPDATE ocsp_responses SET responses = ? WHERE serial = ?", (json.dumps(responses), serial))
        return True
