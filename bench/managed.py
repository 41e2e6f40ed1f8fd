"""Scheduled renewal of managed certificates at scale (``python -m bench managed [--only calls,scale]``).

Sections:

* calls — 200 due certificates renewed by one run against moto (KMS backend): AWS calls per renewal,
  by operation. Target ≤ 8 (claim, secret read, KMS sign, record transaction, secret write, finalize,
  plus the query / revocation batch / PutEvents shared by a page or ten renewals).
* scale — ``BENCH_MANAGED_N`` (default 10,000) due certificates; runs with a wall-clock budget
  (``BENCH_MANAGED_BUDGET`` s, default 60, margin 5 s) until the query is exhausted: how many runs,
  what each renewed, and that every certificate was renewed exactly once (none lost, none twice).
  The projection for Lambda multiplies the calls per renewal by typical in-region latencies and divides
  by the run's workers (``STEPLESS_MANAGED_WORKERS``, 8). moto is in-process and not thread-safe, so
  the bench renews with one worker: its absolute times are moto's, notes only.

moto's TransactWriteItems deep-copies every table it touches for its rollback: O(table size) per call,
gigabytes and minutes at 10,000 certificates (DynamoDB's cost is O(1)). Both sections turn that backup
off (:func:`_no_transaction_backup`): the writes still land in moto and are counted; only a failed
transaction could no longer be rolled back, and none fails here (the test suite covers that path).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench.common import AWSCalls, Row, environ, quiet_logger, run_sections

SECTIONS = ("calls", "scale")
TARGET_CALLS = 8.0
TABLE = "bench-managed"
PREFIX = "bench"
# typical in-region latencies (ms) for the projection; a note, not a measurement
LATENCY_MS = {"dynamodb": 8, "secrets-manager": 20, "kms": 25, "eventbridge": 20}
LAMBDA_TIMEOUT_S, MARGIN_S, WORKERS = 300, 30, 8


class WallClock:
    """A Lambda context whose remaining time is a real budget."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@contextlib.contextmanager
def _no_transaction_backup() -> Iterator[None]:
    """moto's transact_write_items without its per-call deep copy of the tables (see the module doc)."""
    import copy
    import types

    from moto.dynamodb import models

    real = models.copy
    models.copy = types.SimpleNamespace(deepcopy=lambda obj, *a, **k: obj, copy=copy.copy)  # type: ignore[assignment]
    try:
        yield
    finally:
        models.copy = real


@contextlib.contextmanager
def _ca() -> Iterator[Any]:
    """An initialized CA (KMS backend) and the managed table, in moto in-process."""
    import boto3
    from moto import mock_aws
    from tests.support import ca as support

    from stepless import authority, aws
    from stepless.stores import managed as store

    env = {**support.env(), "STEPLESS_CONFIG_TTL": "3600", "AWS_ENDPOINT_URL": None, "AWS_PROFILE": None,
           store.MANAGED_TABLE: TABLE}
    with environ(env), mock_aws(), _no_transaction_backup():
        aws.reset()
        authority.reset()
        try:
            ca = support.initialize(support.create_resources())
            boto3.client("dynamodb").create_table(**store.table_spec(TABLE))
            yield ca
        finally:
            aws.reset()
            authority.reset()


def _seed(n: int) -> list[str]:
    """``n`` managed certificates (72 h) issued through the library; their names."""
    from stepless.managed import renewal

    names = []
    for i in range(n):
        name = f"m{i:05d}"
        renewal.issue(name=name, subject=f"{name}.example.com", sans=[f"{name}.example.com"],
                      duration=dt.timedelta(hours=72), rekey=False, prefix=PREFIX)
        names.append(name)
    return names


def _calls_per_renewal(counts: AWSCalls, renewed: int) -> tuple[float, str]:
    per = counts.per(renewed)
    total = sum(per.values())
    return total, ", ".join(f"{k} {v:.2f}" for k, v in per.items())


def _projection(counts: AWSCalls, renewed: int) -> float:
    """Seconds for one renewal against real AWS (sequential calls), from :data:`LATENCY_MS`."""
    ms = sum(LATENCY_MS.get(name.split(".", 1)[0], 20) * c for name, c in counts.counts.items()) / renewed
    return ms / 1000


def calls(n: int = 200) -> tuple[list[Row], list[str]]:
    from stepless import clock
    from stepless.managed import renewal

    with _ca(), quiet_logger():
        _seed(n)
        counts = AWSCalls().attach(("dynamodb", "kms", "secretsmanager", "events"))
        counts.reset()
        with clock.shift(dt.timedelta(hours=49)):
            out = renewal.run(None, workers=1, flush_metrics=False)
    assert out["renewed"] == n, out
    total, detail = _calls_per_renewal(counts, n)
    per_s = _projection(counts, n)
    per_run = int((LAMBDA_TIMEOUT_S - MARGIN_S) / per_s * WORKERS)
    rows = [
        Row("managed", "AWS calls per renewal", f"{total:.2f}", "", f"<= {TARGET_CALLS:g}", total <= TARGET_CALLS,
            detail),
        Row("managed", "projected renewals per run", f"{per_run:,}", "", ">= 10,000", per_run >= 10_000,
            f"{per_s * 1000:.0f} ms/renewal at {LATENCY_MS} ms, {WORKERS} workers, "
            f"{LAMBDA_TIMEOUT_S - MARGIN_S} s of a {LAMBDA_TIMEOUT_S} s timeout"),
    ]
    return rows, []


def scale(n: int | None = None, budget: float | None = None) -> tuple[list[Row], list[str]]:
    from stepless import clock
    from stepless.managed import renewal
    from stepless.stores import managed as store

    n = n or int(os.environ.get("BENCH_MANAGED_N") or 10_000)
    budget = budget or float(os.environ.get("BENCH_MANAGED_BUDGET") or 60)
    with _ca(), quiet_logger():
        t0 = time.perf_counter()
        _seed(n)
        seed_s = time.perf_counter() - t0
        counts = AWSCalls().attach(("dynamodb", "kms", "secretsmanager", "events"))
        counts.reset()
        runs: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        with clock.shift(dt.timedelta(hours=49)):
            while not runs or not runs[-1]["complete"]:
                runs.append(renewal.run(WallClock(budget), margin_ms=5000, workers=1, flush_metrics=False))
                if len(runs) > 100:
                    break
        renew_s = time.perf_counter() - t0
        renewed = sum(r["renewed"] for r in runs)
        total, detail = _calls_per_renewal(counts, max(1, renewed))
        items = store.list_all()
    once = sum(1 for i in items if i.version == 3 and i.renewed_at)  # issued v1, claimed v2, finalized v3
    ok = renewed == n == once and all(r["failed"] == r["lost_race"] == 0 for r in runs)
    rows = [
        Row("managed", f"{n:,} due: renewed exactly once", f"{once:,}/{n:,}", "", f"{n:,}", ok,
            f"{len(runs)} runs of <= {budget:g} s (moto): " + ", ".join(str(r["renewed"]) for r in runs)),
        Row("managed", "AWS calls per renewal (scale)", f"{total:.2f}", "", f"<= {TARGET_CALLS:g}",
            total <= TARGET_CALLS, detail),
        Row("managed", "moto wall per renewal", f"{renew_s / max(1, renewed) * 1000:.1f} ms", "", "", None,
            f"seeding {seed_s:.0f} s ({seed_s / n * 1000:.1f} ms/issue), renewing {renew_s:.0f} s, one worker"),
    ]
    return rows, []


def run(only: tuple[str, ...] = SECTIONS, profile: bool = False, full: bool = False, smoke: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """``full`` adds the 10,000-certificate scale run (minutes); the default is the call count;
    ``smoke``: both sections, a handful of certificates (figures mean nothing)."""
    if smoke:
        return run_sections("managed", {
            "calls": lambda: calls(n=3),
            "scale": lambda: scale(n=3, budget=30),
        }, only)
    if not full and only == SECTIONS:
        only = ("calls",)
    return run_sections("managed", {
        "calls": calls,
        "scale": scale,
    }, only)


if __name__ == "__main__":
    from bench.common import table

    result, _ = run(tuple(sys.argv[1:]) or SECTIONS)
    print(table(result))
