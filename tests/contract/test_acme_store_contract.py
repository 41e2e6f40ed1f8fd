"""The ACME store (stepless.stores.acme) answers alike on SQLite and DynamoDB: single-use nonces with expiry,
create-once records, optimistic versions, all-or-nothing transactions."""

from __future__ import annotations

import pytest

from stepless.stores import acme
from stepless.stores.acme import AcmeConflict, AcmeRecord
from tests.contract.test_store_contract import moto_url, store  # noqa: F401 - the backends under test


def test_nonce_is_recorded_once(store):  # noqa: F811
    """A used nonce is recorded until its expiry: a second use is refused (stepless.acme.nonces checks the
    issuer's tag and the expiry before it asks)."""
    assert acme.use_nonce("n1", 1000, 999)
    assert not acme.use_nonce("n1", 1000, 999)  # replay
    assert acme.use_nonce("n2", 1000, 999)
    assert not acme.use_nonce("n2", 1000, 1000)  # still recorded until its expiry


def test_records_create_once_update_by_version(store):  # noqa: F811
    first = AcmeRecord("account", "a1", {"status": "valid"})
    acme.write(first)
    with pytest.raises(AcmeConflict):
        acme.write(AcmeRecord("account", "a1", {"status": "other"}))
    got = acme.get("account", "a1")
    assert got == AcmeRecord("account", "a1", {"status": "valid"}, 1, None)
    acme.write(got.next({"status": "deactivated"}))
    with pytest.raises(AcmeConflict):  # a second writer of version 2 lost the race
        acme.write(got.next({"status": "valid"}))
    assert acme.get("account", "a1").doc == {"status": "deactivated"}
    assert acme.get("account", "missing") is None


def test_transaction_is_all_or_nothing(store):  # noqa: F811
    acme.write(AcmeRecord("key", "k1", {"account": "a1"}))
    with pytest.raises(AcmeConflict):
        acme.write(AcmeRecord("order", "o1", {"x": 1}, expires=5000), AcmeRecord("key", "k1", {"account": "a2"}))
    assert acme.get("order", "o1") is None
    acme.write(AcmeRecord("order", "o1", {"x": 1}, expires=5000), AcmeRecord("authz", "z1", {"y": 2}, expires=5000))
    assert acme.get("order", "o1").expires == 5000 and acme.get("authz", "z1").doc == {"y": 2}


def test_a_versioned_write_moves_the_expiry(store):  # noqa: F811
    """A valid order (and its authorizations) is kept until its certificate's notAfter, past the pending 24 h."""
    acme.write(AcmeRecord("order", "o2", {"status": "pending"}, expires=5000),
               AcmeRecord("authz", "z2", {"status": "valid"}, expires=5000))
    order, authz = acme.get("order", "o2"), acme.get("authz", "z2")
    acme.write(order.next({"status": "valid"}, expires=90_000), AcmeRecord("cert", "123", {}, expires=90_000))
    acme.write(authz.next(authz.doc, expires=90_000))
    assert acme.get("order", "o2") == AcmeRecord("order", "o2", {"status": "valid"}, 2, 90_000)
    assert acme.get("authz", "z2").expires == 90_000 and acme.get("cert", "123").expires == 90_000
    acme.write(acme.get("order", "o2").next({"status": "valid"}))  # no expiry given: the record keeps its own
    assert acme.get("order", "o2").expires == 90_000


def test_sqlite_forgets_expired_orders_on_open_as_dynamodb_ttl_does(tmp_path):
    from stepless.stores import backend

    stores = backend.open_backend(f"sqlite:{tmp_path / 'ca.db'}")
    stores.acme.write([AcmeRecord("order", "old", {}, expires=1), AcmeRecord("account", "a", {})])
    stores.close()
    stores = backend.open_backend(f"sqlite:{tmp_path / 'ca.db'}")
    try:
        assert stores.acme.get("order", "old") is None and stores.acme.get("account", "a") is not None
    finally:
        stores.close()
