"""The local CA's SQLite engine under faults: a corrupt or locked database file, a full disk, a wrong key
password — each a one-line error (a step-style JSON error through the API), and nothing half written."""

from __future__ import annotations

import sqlite3

import pytest

from stepless import authority
from stepless.api.sign import app as sign_app
from stepless.errors import ConfigError
from stepless.stores import backend, certificates
from tests.support.ca import call, make_csr


def sign(ca, cn: str = "svc.example.com", token: str | None = None) -> tuple[int, dict]:
    csr, _ = make_csr(cn)
    return call(sign_app, "POST", "/1.0/sign", {"csr": csr, "ott": token or ca.token(cn)})


def count(table: str) -> int:
    db = backend.current().tokens.db  # type: ignore[attr-defined]
    return db.conn().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_sign_on_sqlite(sqlite_ca):
    status, body = sign(sqlite_ca)
    assert status == 201, body
    assert count("certificates") == 1 and count("tokens") == 1


def test_a_locked_database_is_503_and_writes_nothing(sqlite_ca, monkeypatch):
    monkeypatch.setattr("stepless.stores.sqlite.BUSY_TIMEOUT_S", 0.2)
    backend.reset()  # new connections, with the short timeout
    authority.get()
    path = backend.current().tokens.db.path  # type: ignore[attr-defined]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        token = sqlite_ca.token("locked.example.com")
        status, body = sign(sqlite_ca, "locked.example.com", token)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status == 503 and "is busy, retry" in body["message"]
    assert count("certificates") == 0 and count("tokens") == 0
    assert sign(sqlite_ca, "locked.example.com", token)[0] == 201  # the token was not consumed


def test_a_full_disk_is_503_and_writes_nothing(sqlite_ca):
    conn = backend.current().tokens.db.conn()  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: as a full disk
    token = sqlite_ca.token("full.example.com")
    statuses = []
    for i in range(40):  # fill the free pages first
        status, body = sign(sqlite_ca, f"fill{i}.example.com")
        statuses.append(status)
        if status != 201:
            break
    assert status == 503 and "the disk is full" in body["message"], body
    before = count("certificates"), count("tokens")
    assert before[0] == before[1] == statuses.count(201)  # every recorded certificate has its token, no more
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert sign(sqlite_ca, "full.example.com", token)[0] == 201


def test_a_corrupt_database_is_one_line(tmp_path):
    path = tmp_path / "ca.db"
    path.write_bytes(b"this is not a database, " * 200)
    with pytest.raises(ConfigError) as e:
        backend.open_backend(f"sqlite:{path}")
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "unreadable" in message
    assert path.read_bytes() == b"this is not a database, " * 200  # left as it was


def test_a_wrong_key_password_is_one_line_and_issues_nothing(sqlite_ca, tmp_path):
    (tmp_path / "secrets" / "key-password").write_text("not the password\n")
    authority.reset()  # a new process: the intermediate key is decrypted again
    status, body = sign(sqlite_ca)
    assert status == 500 and body["message"] == "The certificate authority is not configured correctly."
    assert count("certificates") == 0
    from stepless.signers.files import FileSigner

    with pytest.raises(ConfigError, match="cannot decrypt the CA key .*intermediate_ca_key: wrong password"):
        FileSigner(str(tmp_path / "secrets" / "intermediate_ca_key")).public_key()


def test_records_survive_a_new_process(sqlite_ca):
    status, body = sign(sqlite_ca)
    assert status == 201
    from cryptography import x509

    serial = str(x509.load_pem_x509_certificate(body["crt"].encode()).serial_number)
    backend.reset()  # as a restart: the file is opened again
    authority.reset()
    assert certificates.get(serial).subject == "svc.example.com"


class _Died(BaseException):
    """The process dying at this point (nothing after it runs; what was committed stays)."""
