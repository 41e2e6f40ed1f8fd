"""50 requests race to redeem ONE token: exactly one certificate, 49 × 401 "token already used".

The handler runs in 50 real threads (token check, CSR check, KMS signing through moto, the DynamoDB
transaction), all released at once by a barrier.

moto is not a faithful DynamoDB under concurrency: its ``transact_write_items`` (moto 5.x) snapshots
each table with ``copy.deepcopy``, checks the conditions, writes, and on a failed condition *restores
the snapshot* — with no lock. A transaction that snapshotted before another thread committed and then
fails its condition rolls the other thread's committed token and certificate back, so a later request
can redeem the token again. moto's ThreadedMotoServer has the same problem (its werkzeug server is
threaded and the lock in moto's WSGI app only covers the backend lookup). Real DynamoDB serializes
transactions per item, so the :func:`serialized_dynamodb` fixture gives moto that one guarantee — each
DynamoDB *backend operation* runs under one lock — and nothing else: the handlers still run concurrently.
``test_moto_alone_is_not_thread_safe`` documents the moto behaviour (it is informative, never failing).
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from stepless.api.sign import app
from tests.support.ca import call, make_csr

THREADS = 50
CN = "race.example.com"


def certificate_count() -> int:
    return boto3.client("dynamodb").scan(TableName="test-certificates", Select="COUNT")["Count"]


def token_count() -> int:
    return boto3.client("dynamodb").scan(TableName="test-tokens", Select="COUNT")["Count"]


@pytest.fixture
def serialized_dynamodb(monkeypatch):
    """Make each moto DynamoDB backend operation atomic, as DynamoDB's own operations are."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("transact_write_items", "put_item", "get_item", "update_item", "delete_item",
                 "batch_get_item", "scan", "query"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args, __original=original, **kwargs):
            with lock:
                return __original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, functools.wraps(original)(locked))


def race(test_ca, threads: int = THREADS) -> list[tuple[int, dict]]:
    """``threads`` requests, each with its own CSR, all carrying the same token, released together."""
    token = test_ca.token(CN)
    csrs = [make_csr(CN)[0] for _ in range(threads)]
    test_ca.authority  # warm the authority cache and the boto3 clients before the race  # noqa: B018
    barrier = threading.Barrier(threads)

    def one(csr: str) -> tuple[int, dict]:
        barrier.wait()
        return call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token})

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, csrs))


def test_one_token_fifty_requests_one_certificate(test_ca, serialized_dynamodb):
    results = race(test_ca)
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(401) == THREADS - 1, statuses
    for status, body in results:
        if status == 401:
            assert "token already used" in body["message"], body
            assert "crt" not in body
        else:
            assert "crt" in body
    assert certificate_count() == 1
    assert token_count() == 1


def test_moto_alone_is_not_thread_safe(test_ca):
    """Informative: the same race against unmodified in-process moto (see the module docstring).

    Whatever moto does, the CA must never answer anything but 201 or 401 "token already used", and never
    hand out a certificate it did not record. The counts themselves are not asserted here.
    """
    results = race(test_ca)
    issued = [body for status, body in results if status == 201]
    for status, body in results:
        assert status in (201, 401), (status, body)
        if status == 401:
            assert "token already used" in body["message"], body
    print(f"unserialized moto: {len(issued)} × 201, {certificate_count()} certificate record(s)")
