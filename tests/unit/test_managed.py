"""Managed certificates without AWS: renewal time and jitter, deadline, scheduled-event detection,
event batching, the EMF metrics line, registry items."""

from __future__ import annotations

import datetime as dt
import json
import statistics

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stepless.api import schedule
from stepless.errors import BadRequest
from stepless.managed import events, renewal
from stepless.stores import managed as store

NB = 1_800_000_000
LIFE = 72 * 3600


def test_renew_at_is_two_thirds_minus_jitter_up_to_a_twentieth():
    for i in range(500):
        at = store.renew_at(f"svc-{i}", "1234", NB, NB + LIFE)
        assert NB + 2 * LIFE // 3 - LIFE // 20 <= at <= NB + 2 * LIFE // 3


def test_jitter_spreads_a_fleet_and_is_deterministic():
    times = [store.renew_at(f"svc-{i}", "42", NB, NB + LIFE) for i in range(300)]
    assert len(set(times)) > 290  # a fleet issued together does not renew at once
    assert max(times) - min(times) > 0.9 * LIFE / 20
    assert statistics.pstdev(times) > LIFE / 20 / 4  # ≈ uniform over the window (σ = w/√12)
    assert store.renew_at("svc-1", "42", NB, NB + LIFE) == times[1]
    assert store.renew_at("svc-1", "43", NB, NB + LIFE) != times[1]  # a new serial, a new draw


def test_names():
    for good in ("api-tls", "a", "db.prod_1"):
        assert store.check_name(good) == good
    for bad in ("", "-x", "a/b", "a b", "x" * 129, "é"):
        with pytest.raises(BadRequest):
            store.check_name(bad)


def test_item_round_trip():
    item = store.Managed(name="a", subject="a.example.com", sans=["a.example.com"], duration=LIFE, rekey=True,
                         serial="7", not_before=NB, not_after=NB + LIFE, renew_at=NB + 1, secret_arn="arn:x")
    from stepless.stores.dynamo import from_item, to_item

    again = store.Managed.from_record(from_item(to_item(item.to_json())))
    assert again == item and again.lifetime == LIFE
    assert "last_error" not in to_item(item.to_json())  # None attributes are not written


def test_table_spec_is_a_sparse_renew_at_index():
    spec = store.table_spec("t")
    (gsi,) = spec["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == store.INDEX
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["due", "renew_at"]


def test_scheduled_event_detection():
    assert schedule.is_scheduled({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert schedule.is_scheduled({"detail-type": "Scheduled Event"})
    assert not schedule.is_scheduled({"version": "2.0", "rawPath": "/renew"})
    assert not schedule.is_scheduled(None)


class Ctx:
    def __init__(self, ms):
        self.ms = ms

    def get_remaining_time_in_millis(self):
        return self.ms


def test_deadline_margin():
    assert not renewal.Deadline.of(None).passed()
    d = renewal.Deadline.of(Ctx(300_000))
    assert d.margin_ms == 30_000 and not d.passed()
    d.context.ms = 29_999
    assert d.passed()
    assert renewal.Deadline.of(Ctx(15_000)).margin_ms == 3_000  # 1/5 of a short budget
    assert renewal.Deadline.of(Ctx(1_000)).margin_ms == 2_000
    assert renewal.Deadline.of(Ctx(1_000), 10).margin_ms == 10


def test_deadline_margin_from_environment(monkeypatch):
    monkeypatch.setenv(renewal.MARGIN_ENV, "1234")
    assert renewal.Deadline.of(Ctx(300_000)).margin_ms == 1234


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048),
                                 ed25519.Ed25519PrivateKey.generate()])
def test_rekey_keeps_the_key_type(key):
    new = renewal.new_key_like(key)
    for kind in (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey):
        assert isinstance(new, kind) == isinstance(key, kind)
    assert getattr(new, "key_size", None) == getattr(key, "key_size", None)
    assert new.public_key() != key.public_key()


def test_renewed_event_entry():
    entry = events.renewed_entry(name="api", serial="12", not_after=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                                 secret_arn="arn:aws:secretsmanager:r:1:secret:p/managed/api-abc")
    assert entry["Source"] == "stepless" and entry["DetailType"] == "stepless.CertificateRenewed"
    assert json.loads(entry["Detail"]) == {"name": "api", "serial": "12", "notAfter": "2030-01-02T03:04:05Z",
                                           "secretArn": "arn:aws:secretsmanager:r:1:secret:p/managed/api-abc"}


class FakeEvents:
    def __init__(self, fail_first=0):
        self.calls = []
        self.fail_first = fail_first

    def put_events(self, Entries):  # noqa: N803 - boto3's spelling
        self.calls.append(len(Entries))
        results = []
        for i, _ in enumerate(Entries):
            if self.fail_first:
                self.fail_first -= 1
                results.append({"ErrorCode": "InternalFailure"})
            else:
                results.append({"EventId": str(i)})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def _entry(i):
    return events.renewed_entry(name=f"n{i}", serial=str(i), not_after=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                                secret_arn="arn")


def test_events_are_sent_ten_at_a_time(monkeypatch):
    fake = FakeEvents()
    monkeypatch.setattr(events.aws, "client", lambda service: fake)
    buf = events.EventBuffer(events.Recorder())
    for i in range(25):
        buf.add(_entry(i))
    assert fake.calls == [10, 10]
    buf.flush()
    assert fake.calls == [10, 10, 5] and buf.sent == 25


def test_rejected_events_are_retried_once_then_counted(monkeypatch):
    fake = FakeEvents(fail_first=2)
    monkeypatch.setattr(events.aws, "client", lambda service: fake)
    rec = events.Recorder()
    buf = events.EventBuffer(rec)
    for i in range(3):
        buf.add(_entry(i))
    buf.flush()
    assert fake.calls == [3, 2] and buf.sent == 3 and rec[events.MANAGED_EVENT_FAILED] == 0
    fake.fail_first = 10
    buf.add(_entry(9))
    buf.flush()
    assert rec[events.MANAGED_EVENT_FAILED] == 1


def test_metrics_are_one_emf_line_with_every_metric(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stepless")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    rec = events.Recorder()
    rec.add(events.MANAGED_RENEWED, 3)
    rec.add(events.CA_EXPIRING_SOON)
    counts = rec.flush()
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    cw = line["_aws"]["CloudWatchMetrics"][0]
    assert cw["Namespace"] == "stepless" and cw["Dimensions"] == [["service"]] and line["service"] == "stepless"
    assert {m["Name"] for m in cw["Metrics"]} == set(events.ALL)
    assert line[events.MANAGED_RENEWED] == [3.0] and line[events.CA_EXPIRING_SOON] == [1.0]
    assert line[events.MANAGED_EXPIRING_SOON] == [0.0] and counts[events.MANAGED_RENEWED] == 3
