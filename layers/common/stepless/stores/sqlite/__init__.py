"""The SQLite backend (the local CA of ``stepless dev``): one WAL-mode database file, one module per concern.

- One connection per thread (SQLite connections are not shared across threads), each with a busy
  timeout, so concurrent requests wait for the single writer instead of failing. The gateway runs a
  thread per connection: a finished thread's connection is closed when the next one is opened (else
  each client connection would leak two file descriptors until the process ran out).
- Every write that must be atomic runs in ``BEGIN IMMEDIATE`` (:meth:`Database.write`): the writer lock
  is taken first, so the checks inside (token unused, parent not revoked, version unchanged) and the
  writes that depend on them cannot interleave with another writer — the same guarantees as DynamoDB's
  conditional writes and transactions.
- ``synchronous=NORMAL`` in WAL mode: a crash of the process never loses or tears a committed
  transaction (a power loss may lose the last ones, never corrupt the file). tests/e2e/test_dev_crash.py
  SIGKILLs ``stepless dev`` under load and checks what the clients were told against the records.
- SQLite's failures (locked, full disk, not a database, read-only) become one-line typed errors
  (:func:`translate`), and a transaction that fails is rolled back: nothing half written.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from stepless.errors import ConfigError, ServiceUnavailable
from stepless.stores.backend import Stores

BUSY_TIMEOUT_S = 10.0
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, expires INTEGER NOT NULL, endpoint TEXT NOT NULL,
                                   used_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (serial TEXT PRIMARY KEY, kind TEXT NOT NULL, cert_type TEXT,
                                         parent_serial TEXT, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS certificates_kind ON certificates (kind, cert_type);
CREATE TABLE IF NOT EXISTS lineage (parent TEXT NOT NULL, child TEXT NOT NULL,
                                    PRIMARY KEY (parent, child)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revocations (serial TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS authority (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL,
                                      version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (pk TEXT PRIMARY KEY, provisioner TEXT, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS managed (name TEXT PRIMARY KEY, due TEXT, renew_at INTEGER NOT NULL,
                                    record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS managed_due ON managed (due, renew_at, name) WHERE due IS NOT NULL;
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, body BLOB NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hosts (principal TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS host_certificates (principal TEXT NOT NULL, serial TEXT NOT NULL, not_after INTEGER NOT NULL,
                                              PRIMARY KEY (principal, serial)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS host_certificates_expiry ON host_certificates (not_after);
CREATE TABLE IF NOT EXISTS ssh_revoked (cert_type TEXT NOT NULL, serial TEXT NOT NULL, not_after INTEGER NOT NULL,
                                        PRIMARY KEY (cert_type, serial)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ocsp_responses (serial TEXT PRIMARY KEY, status TEXT NOT NULL, expires INTEGER NOT NULL,
                                           revoked_at INTEGER, reason_code INTEGER, responses TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS secret_versions (arn TEXT NOT NULL, version_id TEXT NOT NULL, token TEXT NOT NULL,
                                            value TEXT NOT NULL, stage TEXT, PRIMARY KEY (arn, version_id));
CREATE TABLE IF NOT EXISTS acme (pk TEXT PRIMARY KEY, doc TEXT NOT NULL, version INTEGER NOT NULL, expires INTEGER);
CREATE TABLE IF NOT EXISTS acme_nonces (nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS acme_nonces_expires ON acme_nonces (expires);
CREATE INDEX IF NOT EXISTS acme_expires ON acme (expires) WHERE expires IS NOT NULL;
"""


def private(path: Path) -> None:
    """Make this user's ``path`` (a file 0600, a directory 0700) unreadable to others when it is not (a file
    created by an earlier version or another tool); another user's file is left as it is."""
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, 0o700 if path.is_dir() else 0o600)


class StoreUnavailable(ServiceUnavailable):
    """503: the database is busy (another writer past the busy timeout) or cannot be written now."""


@contextlib.contextmanager
def translate(path: Path) -> Iterator[None]:
    """SQLite's failures as one-line typed errors (the one place they are mapped)."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise  # a constraint the caller did not expect to fail: a bug, not the file's state
    except sqlite3.OperationalError as e:
        text = str(e)
        if "locked" in text or "busy" in text:
            raise StoreUnavailable(f"the database {path} is busy, retry", headers={"Retry-After": "1"}) from e
        if "full" in text:
            raise StoreUnavailable(f"the database {path} cannot grow: the disk is full") from e
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            raise ConfigError(f"cannot write the database {path}: {text}") from e
        raise StoreUnavailable(f"the database {path} failed: {text}") from e
    except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
        raise ConfigError(f"the database {path} is unreadable ({e}): restore it, or start over "
                          "(stepless dev --reset)") from e


class Database:
    """The database file, a connection per thread, and the transaction helpers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():  # only this user reads the records (SQLite gives -wal/-shm the same mode)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            private(path)
        with translate(self.path):
            conn = self.conn()
            conn.execute("PRAGMA journal_mode=WAL")
            with self.write() as c:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        c.execute(statement)
                found = c.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if found is None:
                    c.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                elif found[0] > SCHEMA_VERSION:
                    raise ConfigError(f"the database {self.path} was written by a newer stepless "
                                      f"(schema {found[0]})")
                c.execute("DELETE FROM tokens WHERE expires < ?", (int(time.time()),))  # what DynamoDB's TTL does
                c.execute("DELETE FROM acme WHERE expires < ?", (int(time.time()),))  # orders, authorizations

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode: transactions are explicit)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # used by this thread only (the thread-local); closed by another once this thread has ended
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._local.conn = conn
            with self._lock:
                ended = [c for t, c in self._all if not t.is_alive()]
                self._all = [(t, c) for t, c in self._all if t.is_alive()] + [(threading.current_thread(), conn)]
            for old in ended:
                with contextlib.suppress(sqlite3.Error):
                    old.close()
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if anything inside raises.

        This process's writers queue on a lock first: SQLite's own busy handler sleeps (1, 2, 5 … 100 ms)
        between retries, which under concurrent requests would cost more than the writes. Other processes
        (an administrator's command) still meet the busy timeout.
        """
        conn = self.conn()
        with self._writer, translate(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction (one snapshot for several statements)."""
        conn = self.conn()
        with translate(self.path):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for _, conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def stores(path: str) -> Stores:
    """Every concern in the SQLite file at ``path`` (created when missing)."""
    from stepless.stores.sqlite.acme import SQLiteAcme
    from stepless.stores.sqlite.authority import SQLiteAudit, SQLiteAuthority
    from stepless.stores.sqlite.certificates import SQLiteCertificates, SQLiteRevocations, SQLiteTokens
    from stepless.stores.sqlite.indexes import SQLiteHosts, SQLiteOCSPResponses, SQLiteSSHRevoked
    from stepless.stores.sqlite.managed import SQLiteManaged
    from stepless.stores.sqlite.objects import SQLiteObjects
    from stepless.stores.sqlite.secrets import SQLiteSecrets

    db = Database(os.path.expanduser(path))
    classes = {"tokens": SQLiteTokens, "certificates": SQLiteCertificates, "revocations": SQLiteRevocations,
               "authority": SQLiteAuthority, "audit": SQLiteAudit, "managed": SQLiteManaged, "objects": SQLiteObjects,
               "secrets": SQLiteSecrets, "hosts": SQLiteHosts, "ssh_revoked": SQLiteSSHRevoked,
               "ocsp": SQLiteOCSPResponses, "acme": SQLiteAcme}
    return Stores("sqlite", {concern: functools.partial(cls, db) for concern, cls in classes.items()}, close=db.close)
