"""Tokens, certificates (with lineage) and revocations in SQLite: the single-use rule and the recording
transactions, with DynamoDB's semantics (the same checks, in the same precedence, in one BEGIN IMMEDIATE; a
host certificate's host-index rows in its record's transaction)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from stepless.stores import errors, hosts
from stepless.stores.certificates import CertificateRecord
from stepless.stores.errors import (
    AlreadyRevoked,
    ParentRevoked,
    ParentUnknown,
    RenewalCap,
    SerialCollision,
    TokenUsed,
    UnknownCertificate,
)
from stepless.stores.revocations import RevocationRecord
from stepless.stores.sqlite import Database
from stepless.stores.sqlite.indexes import index_host
from stepless.stores.tokens import UsedToken


def _use(conn: sqlite3.Connection, token: UsedToken) -> None:
    try:
        conn.execute("INSERT INTO tokens (id, expires, endpoint, used_at) VALUES (?, ?, ?, ?)",
                     (token.id, token.expires, token.endpoint, token.used_at))
    except sqlite3.IntegrityError as e:
        raise TokenUsed from e


def _insert(conn: sqlite3.Connection, record: CertificateRecord) -> None:
    try:
        conn.execute("INSERT INTO certificates (serial, kind, cert_type, parent_serial, record) VALUES (?, ?, ?, ?, ?)",
                     (record.serial, record.kind, record.cert_type, record.parent_serial,
                      json.dumps(record.to_dict(), separators=(",", ":"))))
    except sqlite3.IntegrityError as e:
        raise SerialCollision from e


def _index(conn: sqlite3.Connection, record: CertificateRecord) -> None:
    """A host certificate's host-index entries, in its record's transaction."""
    entry = hosts.entry_of(record)
    if entry is not None:
        index_host(conn, entry.principals, entry.serial, entry.not_after, entry.now)


def _certificate(row: tuple | None) -> CertificateRecord | None:
    return CertificateRecord.from_dict(json.loads(row[0])) if row else None


def _revocation(row: tuple | None) -> RevocationRecord | None:
    return RevocationRecord.from_dict(json.loads(row[0])) if row else None


class SQLiteTokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    def use(self, token: UsedToken) -> None:
        with self.db.write() as conn:
            _use(conn, token)


class SQLiteCertificates:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record_issuance(self, record: CertificateRecord, token: UsedToken | None) -> None:
        with self.db.write() as conn:
            if token is not None:
                _use(conn, token)
            _insert(conn, record)
            _index(conn, record)

    def record_renewal(self, record: CertificateRecord, token: UsedToken | None, parent_serial: str, *,
                       capped: bool, parent_fingerprint: str | None = None) -> None:
        with self.db.write() as conn:
            parent = _certificate(conn.execute("SELECT record FROM certificates WHERE serial = ?",
                                               (parent_serial,)).fetchone())
            if parent is None or parent_fingerprint not in (None, parent.fingerprint or parent_fingerprint):
                raise UnknownCertificate if parent_fingerprint is not None else ParentUnknown
            if conn.execute("SELECT 1 FROM revocations WHERE serial = ?", (parent_serial,)).fetchone():
                raise ParentRevoked
            if token is not None:
                _use(conn, token)
            linked = conn.execute("SELECT 1 FROM lineage WHERE parent = ? AND child = ?",
                                  (parent_serial, record.serial)).fetchone()
            if capped and not linked:
                (count,) = conn.execute("SELECT count(*) FROM lineage WHERE parent = ?", (parent_serial,)).fetchone()
                if count >= errors.MAX_RENEWALS_PER_CERTIFICATE:
                    raise RenewalCap
            conn.execute("INSERT OR IGNORE INTO lineage (parent, child) VALUES (?, ?)", (parent_serial, record.serial))
            _insert(conn, record)
            _index(conn, record)

    def get(self, serial: str) -> CertificateRecord | None:
        with self.db.read() as conn:
            return _certificate(conn.execute("SELECT record FROM certificates WHERE serial = ?", (serial,)).fetchone())

    def get_with_revocation(self, serial: str) -> tuple[CertificateRecord | None, RevocationRecord | None]:
        with self.db.read() as conn:
            cert = conn.execute("SELECT record FROM certificates WHERE serial = ?", (serial,)).fetchone()
            rev = conn.execute("SELECT record FROM revocations WHERE serial = ?", (serial,)).fetchone()
        return _certificate(cert), _revocation(rev)

    def children(self, serial: str) -> list[str]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT child FROM lineage WHERE parent = ? ORDER BY child", (serial,)).fetchall()
        return [r[0] for r in rows]

    def link_renewals(self) -> int:
        """Renewals link themselves here; links any recorded renewal whose parent is recorded (idempotent)."""
        with self.db.write() as conn:
            rows = conn.execute("SELECT c.serial, c.parent_serial FROM certificates c JOIN certificates p "
                                "ON p.serial = c.parent_serial").fetchall()
            conn.executemany("INSERT OR IGNORE INTO lineage (parent, child) VALUES (?, ?)",
                             [(parent, child) for child, parent in rows])
        return len(rows)

    def ssh_hosts(self) -> Iterator[CertificateRecord]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT record FROM certificates WHERE kind = 'ssh' AND cert_type = 'host'").fetchall()
        return (CertificateRecord.from_dict(json.loads(r[0])) for r in rows)


class SQLiteRevocations:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, serial: str) -> RevocationRecord | None:
        with self.db.read() as conn:
            return _revocation(conn.execute("SELECT record FROM revocations WHERE serial = ?", (serial,)).fetchone())

    def put(self, record: RevocationRecord, token: UsedToken | None = None) -> None:
        """The revocation (and the token's use); a stored OCSP response of the serial goes in the same
        transaction: a process that dies before writing the ``revoked`` one (services.ocsp) leaves no
        ``good`` response to be served, the next OCSP request signs the status from the records."""
        with self.db.write() as conn:
            if token is not None:
                _use(conn, token)
            try:
                conn.execute("INSERT INTO revocations (serial, record) VALUES (?, ?)",
                             (record.serial, json.dumps(record.to_dict(), separators=(",", ":"))))
            except sqlite3.IntegrityError as e:
                raise AlreadyRevoked(record.serial) from e
            conn.execute("DELETE FROM ocsp_responses WHERE serial = ?", (record.serial,))

    def scan(self) -> Iterator[RevocationRecord]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT record FROM revocations").fetchall()
        return (RevocationRecord.from_dict(json.loads(r[0])) for r in rows)

    def revoked_among(self, serials: list[str]) -> set[str]:
        unique = list(dict.fromkeys(serials))
        found: set[str] = set()
        with self.db.read() as conn:
            for i in range(0, len(unique), 500):
                chunk = unique[i:i + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in conn.execute(f"SELECT serial FROM revocations WHERE serial IN ({marks})",
                                                        chunk))
        return found
