"""Concurrency: revocations racing renewals, and one SSH token redeemed by 50 requests at once.

The handlers run in real threads released together by a barrier. moto's DynamoDB is made atomic per
operation by :func:`serialized_dynamodb` (see test_sign_race: real DynamoDB serializes transactions, moto
does not), and every successful TransactWriteItems is logged in commit order, so the tests can check the
property that matters — no renewal of a serial is *committed* after that serial's revocation — as well as
the one a client sees: no renewal that started after the revoke had returned succeeded, and once a revoke
has returned every fresh renewal attempt is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import DynamoDBBackend

from stepless.api import revoke as revoke_api
from stepless.api import ssh as ssh_api
from stepless.ssh import parse_certificate
from tests.integration.test_renew import issue, renew_mtls
from tests.integration.test_sign_race import busy_threads, serialized_dynamodb  # noqa: F401 - fixtures
from tests.integration.test_ssh_sign import b64key, ssh_token
from tests.support.ca import call, make_key

PAIRS = 20
REDEMPTIONS = 50


@dataclasses.dataclass
class Outcome:
    """One request of the race: what it did, when it started and returned (monotonic), what it got."""

    kind: str  # "renew" | "revoke"
    serial: str
    start: float
    end: float
    status: int
    body: Any


@pytest.fixture
def commits(serialized_dynamodb, monkeypatch) -> list[tuple[str, str]]:  # noqa: F811 - the imported fixture
    """("renew", parent serial) for every committed renewal, ("revoke", serial) for every committed
    revocation, in commit order (read from the transactions' items, not from what the code under test says)."""
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    locked = DynamoDBBackend.transact_write_items  # already serialized by serialized_dynamodb

    def logged(self, transact_items, *args, **kwargs):
        with lock:  # every transaction passes here: the log order is the commit order
            result = locked(self, transact_items, *args, **kwargs)
            for item in transact_items:
                (op, spec), = item.items()
                if op != "Put":
                    continue
                table, record = spec.get("TableName"), spec["Item"]
                if table == "test-certificates" and "parent_serial" in record:  # a renewal's new certificate
                    log.append(("renew", record["parent_serial"]["S"]))
                elif table == "test-revocations":
                    log.append(("revoke", record["serial"]["S"]))
            return result

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", logged)
    return log


def count(table: str) -> int:
    return boto3.client("dynamodb").describe_table(TableName=table)["Table"]["ItemCount"]


def race(jobs: list[Callable[[], Outcome]]) -> list[Outcome]:
    """Run ``jobs`` in as many threads, all released at once."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Outcome]) -> Outcome:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def renew_job(serial: str, pem: str) -> Callable[[], Outcome]:
    def job() -> Outcome:
        start = time.monotonic()
        status, body = renew_mtls(pem)
        return Outcome("renew", serial, start, time.monotonic(), status, body)

    return job


def revoke_job(test_ca, serial: str) -> Callable[[], Outcome]:
    token = test_ca.token(serial, path="/1.0/revoke")  # made before the race

    def job() -> Outcome:
        start = time.monotonic()
        status, body = call(revoke_api.app, "POST", "/1.0/revoke", {"serial": serial, "ott": token, "reasonCode": 1})
        return Outcome("revoke", serial, start, time.monotonic(), status, body)

    return job


def check_no_renewal_after_revocation(outcomes: list[Outcome], commits: list[tuple[str, str]],
                                      serials: list[str], pems: dict[str, str]) -> None:
    revoked_at = {o.serial: o.end for o in outcomes if o.kind == "revoke" and o.status == 200}
    assert sorted(revoked_at) == sorted(serials), "every serial was revoked exactly once"
    for o in outcomes:
        if o.kind != "renew":
            continue
        if o.status == 201:
            assert "crt" in o.body
            assert o.start < revoked_at[o.serial], "a renewal that started after the revoke returned succeeded"
        else:
            assert o.status == 401 and "revoked" in o.body["message"], (o.status, o.body)
            assert "crt" not in o.body
    # in commit order: once a serial's revocation is committed, no renewal of it is committed
    revoked: set[str] = set()
    for kind, serial in commits:
        if kind == "revoke":
            revoked.add(serial)
        else:
            assert serial not in revoked, f"renewal of {serial} committed after its revocation"
    renewed = sum(1 for o in outcomes if o.kind == "renew" and o.status == 201)
    assert sum(1 for kind, _ in commits if kind == "renew") == renewed
    # and once the revokes have returned, no fresh attempt succeeds
    for serial in serials:
        status, body = renew_mtls(pems[serial])
        assert status == 401 and "revoked" in body["message"], body
        assert "crt" not in body


def test_twenty_revoke_renew_pairs_of_twenty_serials(test_ca, commits, busy_threads):  # noqa: F811
    """20 serials, each revoked by one thread while another renews it: 40 threads at once."""
    certs = [issue(test_ca, f"pair{i}.example.com") for i in range(PAIRS)]
    serials = [str(c.serial_number) for c, _, _ in certs]
    pems = {str(c.serial_number): pem for c, _, pem in certs}
    jobs: list[Callable[[], Outcome]] = []
    for serial in serials:
        jobs += [revoke_job(test_ca, serial), renew_job(serial, pems[serial])]
    outcomes = race(jobs)
    check_no_renewal_after_revocation(outcomes, commits, serials, pems)


def test_twenty_revoke_renew_pairs_of_one_serial(test_ca, commits, busy_threads):  # noqa: F811
    """One serial, 20 revokes and 20 renewals at once: one revocation wins, the other 19 find it revoked."""
    cert, _, pem = issue(test_ca, "target.example.com")
    serial = str(cert.serial_number)
    jobs: list[Callable[[], Outcome]] = []
    for _ in range(PAIRS):
        jobs += [revoke_job(test_ca, serial), renew_job(serial, pem)]
    outcomes = race(jobs)
    revokes = sorted(o.status for o in outcomes if o.kind == "revoke")
    assert revokes == [200] + [400] * (PAIRS - 1), revokes
    for o in outcomes:
        if o.kind == "revoke" and o.status == 400:
            assert "already revoked" in o.body["message"], o.body
    winner = next(o for o in outcomes if o.kind == "revoke" and o.status == 200)
    check_no_renewal_after_revocation([winner] + [o for o in outcomes if o.kind == "renew"], commits, [serial],
                                      {serial: pem})
    assert count("test-revocations") == 1


def test_fifty_redemptions_of_one_ssh_token(test_ca, serialized_dynamodb, busy_threads):  # noqa: F811
    """50 requests, each with its own key, all carrying one SSH token: exactly one SSH certificate."""
    token = ssh_token(test_ca, "alice@example.com")
    bodies = [{"publicKey": b64key(make_key()), "ott": token} for _ in range(REDEMPTIONS)]
    test_ca.authority  # noqa: B018 - warm the authority and the clients before the race
    certificates, tokens = count("test-certificates"), count("test-tokens")

    def job(body: dict) -> Callable[[], tuple[int, Any]]:
        return lambda: call(ssh_api.app, "POST", "/1.0/ssh/sign", body)

    results = race([job(b) for b in bodies])
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [401] * (REDEMPTIONS - 1), statuses
    for status, body in results:
        if status == 401:
            assert "token already used" in body["message"] and "crt" not in body, body
        else:
            serial = parse_certificate(base64.b64decode(body["crt"])).serial
    assert count("test-certificates") == certificates + 1
    assert count("test-tokens") == tokens + 1
    item = boto3.client("dynamodb").get_item(TableName="test-certificates",
                                             Key={"serial": {"S": f"ssh:{serial}"}}).get("Item")
    assert item is not None and item["kind"]["S"] == "ssh"
