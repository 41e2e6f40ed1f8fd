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
Measured here without the fixture (switch interval 1 µs, 15 races): some tokens were redeemed twice
(2 × 201, 22 certificate records for 15 tokens) and ~3 % of requests got 500 from moto's own
``RuntimeError: dictionary changed size during iteration`` inside that ``deepcopy``. With the fixture:
exactly one 201 per token, every time.
"""

from __future__ import annotations

import functools
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from stepless.api.sign import app
from tests.support.ca import call, make_csr

THREADS = 50
ROUNDS = 3
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


@pytest.fixture
def busy_threads():
    """Switch threads far more often than the default 5 ms, to interleave the requests finely."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


def test_one_token_fifty_requests_one_certificate(test_ca, serialized_dynamodb, busy_threads):
    for n in range(1, ROUNDS + 1):  # a new token each round, each raced by THREADS requests
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
        assert certificate_count() == n
        assert token_count() == n
