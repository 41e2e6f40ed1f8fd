"""What a renewal run tells the world: ``stepless.CertificateRenewed`` events on the default event bus,
and metrics.

Metrics are CloudWatch Embedded Metric Format log lines (Powertools Metrics): no API call, no IAM, no
latency, and nothing to lose to throttling; CloudWatch extracts them from the function's log group.
Namespace ``stepless`` (``POWERTOOLS_METRICS_NAMESPACE``), one dimension ``service`` =
``POWERTOOLS_SERVICE_NAME`` (template.yaml's alarms name exactly that dimension). Every run flushes
every metric below, zeros included, once (so an alarm always has data points).

Events are buffered and sent ten per ``PutEvents`` call (the API's maximum), after the registry
records each renewal; entries EventBridge rejects are retried once, then logged and counted.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import threading
from typing import Any

from stepless import aws
from stepless.observability import logger
from stepless.stores import backend

SOURCE = "stepless"
RENEWED = "stepless.CertificateRenewed"

# metric names
MANAGED_RENEWED = "ManagedRenewed"
MANAGED_RENEWAL_FAILED = "ManagedRenewalFailed"
MANAGED_REVOKED_SKIPPED = "ManagedRevokedSkipped"
MANAGED_EXPIRING_SOON = "ManagedExpiringSoon"
MANAGED_DEFERRED = "ManagedDeferred"  # due but left to the next run (deadline)
MANAGED_EVENT_FAILED = "ManagedEventFailed"
CA_EXPIRING_SOON = "CAExpiringSoon"
ALL = (MANAGED_RENEWED, MANAGED_RENEWAL_FAILED, MANAGED_REVOKED_SKIPPED, MANAGED_EXPIRING_SOON,
       MANAGED_DEFERRED, MANAGED_EVENT_FAILED, CA_EXPIRING_SOON)


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "stepless"


def service() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or "stepless"


class Recorder:
    """Thread-safe counters of one run, flushed as one EMF line."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter({name: 0 for name in ALL})
        self._lock = threading.Lock()

    def add(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counts[name] += value

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def flush(self) -> dict[str, int]:
        """Emit the EMF line; returns the counts."""
        from aws_lambda_powertools import Metrics
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            counts = dict(self.counts)
        metrics = Metrics(namespace=namespace(), service=service())
        for name, value in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()
        return counts


def renewed_entry(*, name: str, serial: str, not_after: dt.datetime, secret_arn: str) -> dict[str, Any]:
    """The PutEvents entry announcing a renewal (consumers reload ``secretArn``)."""
    return {
        "Source": SOURCE,
        "DetailType": RENEWED,
        "Detail": json.dumps({"name": name, "serial": serial,
                              "notAfter": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "secretArn": secret_arn}),
        "Resources": [secret_arn],
    }


class EventBuffer:
    """PutEvents in batches of ten (thread-safe); :meth:`flush` at the end of each page and of the run."""

    BATCH = 10

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.sent = 0

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(entry)
            ready = len(self._pending) >= self.BATCH
        if ready:
            self.flush()

    def flush(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[:self.BATCH], self._pending[self.BATCH:]
            if not batch:
                return
            self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        if backend.current().name == "sqlite":  # the local CA has no event bus: the log line is the event
            logger.info("CertificateRenewed (local CA: no event bus)",
                        extra={"names": [json.loads(e["Detail"])["name"] for e in batch]})
            with self._lock:
                self.sent += len(batch)
            return
        client = aws.client("events")
        for attempt in (1, 2):
            try:
                out = client.put_events(Entries=batch)
            except Exception as e:  # noqa: BLE001 - an event is a notification: never fail the renewal
                failed, reason = batch, aws.error_code(e) or str(e)
            else:
                failed = [entry for entry, res in zip(batch, out.get("Entries", []), strict=False)
                          if res.get("ErrorCode")]
                reason = ", ".join(sorted({str(r.get("ErrorCode")) for r in out.get("Entries", [])
                                           if r.get("ErrorCode")}))
            with self._lock:
                self.sent += len(batch) - len(failed)
            if not failed:
                return
            batch = failed
            if attempt == 2:
                self.recorder.add(MANAGED_EVENT_FAILED, len(failed))
                logger.error("CertificateRenewed events not delivered",
                             extra={"count": len(failed), "reason": reason,
                                    "names": [json.loads(e["Detail"])["name"] for e in failed]})
