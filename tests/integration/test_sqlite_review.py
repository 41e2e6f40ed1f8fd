"""A hostile review of the SQLite store (the local CA's engine), each finding a regression test: the
connection a gateway thread opens is closed once the thread ends (it leaked two file descriptors per
client connection until the process could open no file), the files are private even when an earlier
version left them readable, a process killed mid-transaction leaves nothing half written, a token is used
once across processes, creating a secret is one transaction, and text that looks like SQL is only data."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from stepless.local import devstack
from stepless.stores import backend, hosts, secrets, tokens
from stepless.stores.errors import TokenUsed
from stepless.stores.sqlite import Database
from stepless.stores.tokens import UsedToken

NOW = 1_800_000_000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def store(tmp_path: Path):
    stores = backend.open_backend(f"sqlite:{tmp_path / 'db' / 'ca.db'}")
    backend.use(stores)
    yield tmp_path / "db" / "ca.db"
    backend.reset()


def token(jti: str) -> UsedToken:
    return UsedToken(id=f"admin#{jti}", expires=NOW + 600, endpoint="sign", used_at=NOW)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_a_finished_threads_connection_is_closed(tmp_path: Path) -> None:
    """The gateway runs a thread per client connection: each opened a SQLite connection that was never
    closed (close() from another thread even failed silently)."""
    db = Database(tmp_path / "ca.db")
    before = open_fds()

    def read() -> None:
        with db.read() as conn:
            conn.execute("SELECT count(*) FROM tokens").fetchone()

    for _ in range(200):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    assert open_fds() - before < 10  # at most the last thread's connection (2-3 files) besides ours
    db.close()
    assert open_fds() < before  # every connection closed, this thread's included


def test_the_database_files_are_private_even_when_left_readable(tmp_path: Path) -> None:
    path = tmp_path / "home" / "db" / "ca.db"
    Database(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for p in (path, Path(f"{path}-wal")):  # as an earlier version or another tool may have left them
        p.touch()
        p.chmod(0o644)
    Database(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not Path(f"{path}-wal").exists() or stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600


def test_dev_home_state_is_private_and_an_empty_password_file_is_replaced(tmp_path: Path) -> None:
    for name in ("db", "secrets", "tls"):
        (tmp_path / name).mkdir(mode=0o755)
        (tmp_path / name).chmod(0o755)
        devstack.private(tmp_path / name)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o700
    password = tmp_path / "secrets" / "key-password"
    password.write_text("")  # a run killed while writing it (it used to be written in place)
    password.chmod(0o644)
    value = devstack._secret_file(password, overwrite=False)  # was an IndexError: a traceback on start
    assert value and password.read_text() == value + "\n" and stat.S_IMODE(password.stat().st_mode) == 0o600
    assert devstack._secret_file(password, overwrite=False) == value


def test_a_process_killed_mid_transaction_leaves_nothing_written(tmp_path: Path) -> None:
    """``stepless dev`` killed mid-request: the transaction (token + certificate) is all or nothing, the
    file opens again, and the token can still be used, once."""
    path = tmp_path / "ca.db"
    Database(path).close()
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from stepless.stores.sqlite import Database
        db = Database({str(path)!r})
        with db.write() as conn:
            conn.execute("INSERT INTO tokens VALUES ('admin#k', {NOW + 600}, 'sign', {NOW})")
            print("inside", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "inside"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    backend.use(backend.open_backend(f"sqlite:{path}"))
    try:
        assert backend.current().tokens.db.conn().execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tokens.use(token("k"))  # nothing of the killed transaction was kept
        with pytest.raises(TokenUsed):
            tokens.use(token("k"))
    finally:
        backend.reset()


def _redeem(path: str, start, results) -> None:
    backend.use(backend.open_backend(f"sqlite:{path}"))
    start.wait(10)
    try:
        tokens.use(token("shared"))
        results.put("used")
    except TokenUsed:
        results.put("refused")
    except Exception as e:  # noqa: BLE001 - reported to the parent
        results.put(repr(e))


def test_a_token_is_used_once_across_processes(tmp_path: Path) -> None:
    """The gateway and an administrator's command are separate processes on one file."""
    path = str(tmp_path / "ca.db")
    Database(path).close()
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_redeem, args=(path, start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert outcomes == ["refused", "refused", "refused", "used"]


def test_creating_a_secret_is_one_transaction(store, monkeypatch) -> None:
    """create() committed the secret's row, then wrote its value in a second transaction: a failure (or a
    kill) between them left a secret with no value."""
    from stepless.stores.sqlite import secrets as sqlite_secrets

    def fail(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_secrets, "_put", fail)
    with pytest.raises(Exception, match="disk I/O error"):
        secrets.current().create("web", "v1", description="", tags={})
    monkeypatch.undo()
    db = backend.current().secrets.db
    assert db.conn().execute("SELECT count(*) FROM secrets").fetchone() == (0,)
    arn = secrets.current().create("web", "v1", description="", tags={})
    assert secrets.current().read(arn) == "v1"


def test_text_that_looks_like_sql_is_only_data(store) -> None:
    """Every statement takes values as parameters; table and column names are never built from input."""
    hostile = "x'); DROP TABLE hosts; --"
    hosts.add([hostile, 'a" OR 1=1 --'], "1'--", NOW + 100, NOW)
    assert hosts.exists(hostile) and not hosts.exists("x")
    assert {h.principal for h in hosts.page(NOW)[0]} == {hostile.lower(), 'a" or 1=1 --'}
    tokens.use(UsedToken(id="p#' OR '1'='1", expires=NOW + 600, endpoint="sign", used_at=NOW))
    tokens.use(token("other"))  # not matched by the first id
