"""STEPLESS_STORE picks the backend once per container: DynamoDB by default, SQLite by path, else one line."""

from __future__ import annotations

import pytest

from stepless.errors import ConfigError
from stepless.stores import backend


@pytest.fixture(autouse=True)
def fresh():
    backend.reset()
    yield
    backend.reset()


def test_dynamodb_is_the_default(monkeypatch):
    monkeypatch.delenv(backend.STORE, raising=False)
    assert backend.current().name == "dynamodb"
    assert backend.current() is backend.current()  # resolved once


def test_sqlite_by_path(monkeypatch, tmp_path):
    monkeypatch.setenv(backend.STORE, f"sqlite:{tmp_path / 'sub' / 'ca.db'}")
    stores = backend.current()
    assert stores.name == "sqlite" and (tmp_path / "sub" / "ca.db").exists()
    assert oct((tmp_path / "sub" / "ca.db").stat().st_mode & 0o777) == "0o600"
    assert stores.authority.load() is None


@pytest.mark.parametrize("value", ["sqlite:", "postgres://x", "dynamo"])
def test_anything_else_is_one_line(monkeypatch, value):
    monkeypatch.setenv(backend.STORE, value)
    with pytest.raises(ConfigError, match=f"invalid STEPLESS_STORE '{value}'") as e:
        backend.current()
    assert "\n" not in str(e.value)
