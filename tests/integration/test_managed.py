"""Managed certificates against moto: issuing, the scheduled renewal run, races, failures, revocation,
events, metrics, and a run that hands the rest to the next one (controllable clock, no sleeps)."""

from __future__ import annotations

import datetime as dt
import json
import threading

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless import clock
from stepless.api import renew as renew_api
from stepless.managed import events, renewal, secret
from stepless.stores import certificates, revocations
from stepless.stores import managed as store
from stepless.stores.revocations import RevocationRecord

TABLE = "test-managed"
PREFIX = "stepless-test"
HOURS_72 = dt.timedelta(hours=72)


class Budget:
    """A Lambda context whose remaining time runs out after ``checks`` deadline checks."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    def get_remaining_time_in_millis(self) -> int:
        self.checks -= 1
        return 600_000 if self.checks >= 0 else 0


@pytest.fixture
def managed(test_ca, monkeypatch):
    """The registry table (with its GSI) next to the test CA."""
    monkeypatch.setenv(store.MANAGED_TABLE, TABLE)
    boto3.client("dynamodb").create_table(**store.table_spec(TABLE))


@pytest.fixture
def bus(managed):
    """An SQS queue subscribed (rule on the default bus) to the renewed events; its URL."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="renewed")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    eb = boto3.client("events")
    eb.put_rule(Name="renewed", EventPattern=json.dumps({"source": [events.SOURCE],
                                                         "detail-type": [events.RENEWED]}))
    eb.put_targets(Rule="renewed", Targets=[{"Id": "q", "Arn": arn}])
    return url


def issue(name="api", subject="api.internal.example.com", sans=None, duration=HOURS_72, rekey=False, **kw):
    return renewal.issue(name=name, subject=subject, sans=sans or [subject, "10.0.0.7"], duration=duration,
                         rekey=rekey, prefix=PREFIX, **kw)


def current(item) -> tuple[x509.Certificate, object, dict]:
    value = secret.read(item.secret_arn)
    cert, key = secret.parse(value)
    return cert, key, json.loads(value)


def stages(item) -> dict[str, list[str]]:
    return secret.versions(item.secret_arn)


def version_with(item, stage: str) -> str:
    return next(v for v, s in stages(item).items() if stage in s)


def run(context=None, **kw):
    kw.setdefault("workers", 1)
    return renewal.run(context, **kw)


def received(queue_url) -> list[dict]:
    out = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def spki(key) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


# ------------------------------------------------------------------------------------------------ issue


def test_issue_writes_secret_registry_and_record(managed):
    item = issue()
    cert, key, data = current(item)
    assert item.secret_arn.split(":secret:")[1].startswith(f"{PREFIX}/managed/api-")
    assert data["serial"] == str(cert.serial_number) == item.serial
    assert data["chain"][0] == data["certificate"] and "BEGIN CERTIFICATE" in data["chain"][1]
    assert data["notAfter"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert spki(key) == cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    rec = certificates.get(item.serial)
    assert rec.provisioner == "managed" and rec.parent_serial is None
    assert cert.subject.rfc4514_string() == "CN=api.internal.example.com"
    got = store.get("api")
    assert got == item and got.status == "active" and got.due == "due" and got.duration == 72 * 3600
    lifetime = item.not_after - item.not_before
    assert item.not_before + lifetime * 0.6166 <= item.renew_at <= item.not_before + lifetime * 2 / 3
    with pytest.raises(Exception, match="exists"):
        issue()


def test_force_replaces_with_a_new_secret_version(managed):
    first = issue()
    again = issue(replace=True)
    assert again.serial != first.serial and again.secret_arn == first.secret_arn and again.version == 2
    assert stages(again)[version_with(again, "AWSPREVIOUS")] == ["AWSPREVIOUS"]


# ------------------------------------------------------------------------------------------ the run


def test_due_certificate_is_renewed_and_secret_rotates(managed):
    item = issue()
    old_cert, old_key, _ = current(item)
    old_version = version_with(item, "AWSCURRENT")
    with clock.shift(dt.timedelta(hours=49)):
        out = run()
    assert out["renewed"] == 1 and out["complete"] and out["metrics"][events.MANAGED_RENEWED] == 1
    new_cert, new_key, data = current(item)
    assert version_with(item, "AWSCURRENT") != old_version
    assert version_with(item, "AWSPREVIOUS") == old_version
    previous = boto3.client("secretsmanager").get_secret_value(SecretId=item.secret_arn, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"])["serial"] == item.serial
    # same names, duration and key; lineage recorded
    assert new_cert.subject == old_cert.subject
    san = x509.SubjectAlternativeName
    assert new_cert.extensions.get_extension_for_class(san) == old_cert.extensions.get_extension_for_class(san)
    assert (new_cert.not_valid_after_utc - new_cert.not_valid_before_utc) == \
        (old_cert.not_valid_after_utc - old_cert.not_valid_before_utc)
    assert spki(new_key) == spki(old_key)
    assert certificates.get(str(new_cert.serial_number)).parent_serial == item.serial
    after = store.get("api")
    assert after.serial == data["serial"] == str(new_cert.serial_number)
    assert after.renew_at > item.renew_at and after.version == item.version + 2 and after.lease_until is None
    assert after.renewed_at is not None and after.status == "active"


def test_rekey_gives_a_new_key(managed):
    item = issue(rekey=True)
    _, old_key, _ = current(item)
    with clock.shift(dt.timedelta(hours=49)):
        assert run()["renewed"] == 1
    new_cert, new_key, _ = current(item)
    assert spki(new_key) != spki(old_key)
    assert new_cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki(new_key)


def test_not_yet_due_is_left_alone(managed):
    item = issue()
    with clock.shift(dt.timedelta(hours=40)):  # renew_at is between 44.4h and 48h
        out = run()
    assert out["due"] == 0 and out["renewed"] == 0
    assert len(stages(item)) == 1 and store.get("api").serial == item.serial


def test_renewed_again_at_the_next_two_thirds(managed):
    issue()
    with clock.shift(dt.timedelta(hours=49)):
        assert run()["renewed"] == 1
        assert run()["renewed"] == 0
    with clock.shift(dt.timedelta(hours=49 + 49)):
        assert run()["renewed"] == 1


def test_event_on_the_default_bus(bus):
    item = issue()
    with clock.shift(dt.timedelta(hours=49)):
        out = run()
    assert out["events"] == 1
    (msg,) = received(bus)
    after = store.get("api")
    assert msg["source"] == "stepless" and msg["detail-type"] == "stepless.CertificateRenewed"
    assert msg["detail"] == {"name": "api", "serial": after.serial, "secretArn": item.secret_arn,
                             "notAfter": dt.datetime.fromtimestamp(after.not_after, dt.UTC).strftime(
                                 "%Y-%m-%dT%H:%M:%SZ")}


def test_events_are_batched_by_ten(managed, monkeypatch):
    for i in range(23):
        issue(name=f"svc-{i}", subject=f"svc{i}.example.com")
    calls = []
    real = events.aws.client("events").put_events
    monkeypatch.setattr(events.aws.client("events"), "put_events",
                        lambda **kw: calls.append(len(kw["Entries"])) or real(**kw))
    with clock.shift(dt.timedelta(hours=49)):
        out = run(page_size=100)
    assert out["renewed"] == 23 and out["events"] == 23 and sorted(calls) == [3, 10, 10]


# ------------------------------------------------------------------------------------------ races


def test_overlapping_runs_renew_each_once(managed, monkeypatch):
    """Run B starts while run A holds its first claim: each certificate is renewed exactly once."""
    items = [issue(name=f"c{i}", subject=f"c{i}.example.com") for i in range(6)]
    real_read, inner, started = secret.read, [], []

    def read_then_overlap(arn):
        if not started:
            started.append(arn)
            inner.append(run(flush_metrics=False))  # run B, inside run A's first renewal
        return real_read(arn)

    monkeypatch.setattr(secret, "read", read_then_overlap)
    with clock.shift(dt.timedelta(hours=49)):
        outer = run(flush_metrics=False)
    (b,) = inner
    assert b["leased"] == 1 and b["renewed"] == 5
    assert outer["renewed"] == 1 and outer["lost_race"] + outer["not_due"] == 5
    for item in items:
        assert len(stages(item)) == 2, item.name  # exactly one new version each


def test_overlapping_runs_in_threads_renew_each_once(managed):
    items = [issue(name=f"t{i}", subject=f"t{i}.example.com") for i in range(8)]
    results = []
    with clock.shift(dt.timedelta(hours=49)):
        threads = [threading.Thread(target=lambda: results.append(run(flush_metrics=False))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(3):  # moto in-process is not thread-safe: what it failed stays due and is retried
            if run(flush_metrics=False)["due"] == 0:
                break
    assert sum(r["renewed"] + r["adopted"] for r in results) >= 1
    for item in items:
        assert len(stages(item)) == 2, item.name


def test_a_run_holding_a_stale_copy_does_nothing(managed):
    item = issue()
    with clock.shift(dt.timedelta(hours=49)):
        stale, _ = store.due_page(int(clock.now().timestamp()))
        assert run()["renewed"] == 1
        rec = events.Recorder()
        p = renewal.Pass(test_authority(), rec, events.EventBuffer(rec))
        assert renewal.process(stale[0], p) == renewal.LOST
    assert len(stages(item)) == 2


def test_a_live_lease_is_respected_and_a_dead_one_taken_over(managed):
    item = issue()
    with clock.shift(dt.timedelta(hours=49)):
        store.claim(item, int(clock.now().timestamp()), renewal.LEASE_SECONDS)  # a run that then died
        out = run()
        assert (out["leased"], out["renewed"]) == (1, 0)
    with clock.shift(dt.timedelta(hours=49, minutes=16)):
        assert run()["renewed"] == 1
    assert len(stages(item)) == 2


def test_crash_after_the_secret_write_is_adopted_not_reissued(managed, monkeypatch):
    item = issue()
    real = store.finalize
    monkeypatch.setattr(store, "finalize", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with clock.shift(dt.timedelta(hours=49)):
        assert run()["failed"] == 1
        written = current(item)[2]["serial"]
        assert written != item.serial and store.get("api").serial == item.serial
        monkeypatch.setattr(store, "finalize", real)
        out = run()
    assert out["adopted"] == 1 and store.get("api").serial == written
    assert len(stages(item)) == 2  # no second certificate


# --------------------------------------------------------------------------------- failure, revocation


def test_failed_renewal_keeps_the_old_version_and_retries(managed, monkeypatch):
    item = issue()
    old_version = version_with(item, "AWSCURRENT")

    def broken(*a, **k):
        raise RuntimeError("signer unavailable")

    with clock.shift(dt.timedelta(hours=49)):
        with monkeypatch.context() as m:
            m.setattr(renewal.profile, "renewal", broken)
            out = run()
            assert out["failed"] == 1 and out["metrics"][events.MANAGED_RENEWAL_FAILED] == 1
            assert out["metrics"][events.MANAGED_EXPIRING_SOON] == 0
            assert stages(item) == {old_version: ["AWSCURRENT"]}
            failing = store.get("api")
            assert failing.failures == 1 and "signer unavailable" in failing.last_error
            assert item.renew_at <= failing.renew_at <= clock.now().timestamp()  # due, at the back of the queue
            assert failing.status == "active" and failing.lease_until is None
            assert run()["failed"] == 1 and store.get("api").failures == 2  # still due: retried
        assert run()["renewed"] == 1
    healed = store.get("api")
    assert healed.failures == 0 and healed.last_error is None
    assert version_with(item, "AWSPREVIOUS") == old_version


def test_a_failing_certificate_goes_to_the_back_of_the_queue(managed, monkeypatch):
    for i in range(3):
        issue(name=f"q{i}", subject=f"q{i}.example.com")
    with clock.shift(dt.timedelta(hours=49)):
        first = store.due_page(int(clock.now().timestamp()))[0][0].name
        with monkeypatch.context() as m:
            m.setattr(renewal.profile, "renewal", lambda *a, **k: 1 / 0)
            assert run(Budget(2), margin_ms=1000)["failed"] == 1  # one item fits: the oldest due fails
        assert store.get(first).failures == 1
        run(Budget(2), margin_ms=1000)  # the next run takes another one, not the failing one again
        assert store.get(first).failures == 1 and store.get(first).renewed_at is None
        assert sum(store.get(f"q{i}").renewed_at is not None for i in range(3)) == 1
        assert run()["renewed"] == 2  # and everything, the failed one included, once there is time


def test_failing_near_expiry_fires_expiring_soon(managed, monkeypatch):
    issue()
    monkeypatch.setattr(renewal.profile, "renewal", lambda *a, **k: 1 / 0)
    with clock.shift(dt.timedelta(hours=66)):  # 6h left of 72h: within 1/10
        out = run()
    assert out["failed"] == 1 and out["metrics"][events.MANAGED_EXPIRING_SOON] == 1


def test_revoked_is_skipped_and_leaves_the_index(managed):
    item = issue()
    revocations.put(RevocationRecord(serial=item.serial, reason_code=1, revoked_at=int(clock.now().timestamp())))
    with clock.shift(dt.timedelta(hours=49)):
        out = run()
        assert out["revoked"] == 1 and out["renewed"] == 0
        assert out["metrics"][events.MANAGED_REVOKED_SKIPPED] == 1
        assert run()["due"] == 0
    after = store.get("api")
    assert after.status == "revoked" and after.due is None and "revoked" in after.last_error
    assert len(stages(item)) == 1


def test_revocation_racing_the_renewal_wins(managed, monkeypatch):
    item = issue()
    monkeypatch.setattr(renewal, "revoked_serials", lambda serials: set())  # revoked after the check
    revocations.put(RevocationRecord(serial=item.serial, reason_code=1, revoked_at=int(clock.now().timestamp())))
    with clock.shift(dt.timedelta(hours=49)):
        out = run()
    assert out["revoked"] == 1 and store.get("api").status == "revoked" and len(stages(item)) == 1


# ----------------------------------------------------------------------------------------- CA expiry


def test_ca_expiring_soon_metric(managed, capsys):
    inter = test_authority().intermediate
    with clock.freeze(inter.not_valid_after_utc - dt.timedelta(days=30)):
        out = run()
    assert out["metrics"][events.CA_EXPIRING_SOON] >= 1 and "intermediate" in out["caExpiringSoon"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["CAExpiringSoon"] == [float(out["metrics"][events.CA_EXPIRING_SOON])]
    assert emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "stepless"
    assert emf[-1]["service"] == "stepless"
    with clock.freeze(inter.not_valid_after_utc - dt.timedelta(days=91)):
        assert run()["metrics"][events.CA_EXPIRING_SOON] == 0


# -------------------------------------------------------------------------------------- deadline, scale


def test_a_run_stops_at_the_deadline_and_the_next_continues(managed):
    n = 300
    items = [issue(name=f"fleet-{i:03d}", subject=f"f{i}.example.com", sans=[f"f{i}.example.com"])
             for i in range(n)]
    runs = []
    with clock.shift(dt.timedelta(hours=49)):
        while not runs or not runs[-1]["complete"]:
            runs.append(run(Budget(120), margin_ms=1000, page_size=50, flush_metrics=False))
            assert len(runs) < 10
    first = runs[0]
    assert not first["complete"] and first["deferred"] > 0
    assert first["metrics"][events.MANAGED_DEFERRED] == first["deferred"]
    assert 0 < first["renewed"] < n and len(runs) >= 3
    assert sum(r["renewed"] for r in runs) == n  # none lost, none twice
    assert all(r["failed"] == r["lost_race"] == 0 for r in runs)
    assert store.due_page(int((clock.now() + dt.timedelta(hours=49)).timestamp()))[0] == []
    for item in items[::37]:
        assert len(stages(item)) == 2


# ------------------------------------------------------------------------------------------ handler


def test_scheduled_event_runs_the_pass_through_the_renew_handler(managed):
    issue()
    event = json.loads((renewal_root() / "events" / "schedule.json").read_text())
    with clock.shift(dt.timedelta(hours=49)):
        out = renew_api.app.handler(event, Budget(1000))
    assert out["renewed"] == 1 and out["complete"]
    http = renew_api.app.handler({"version": "2.0", "rawPath": "/renew", "headers": {},
                                  "requestContext": {"http": {"method": "POST", "path": "/renew"}}}, None)
    assert http["statusCode"] == 400  # the routes still answer


def test_renew_now_and_remove(managed):
    item = issue()
    outcome, after = renewal.renew_now("api")  # not due: forced
    assert outcome == renewal.RENEWED and after.serial != item.serial and len(stages(item)) == 2
    removed = renewal.remove("api")
    assert removed.name == "api" and store.get("api") is None
    assert boto3.client("secretsmanager").describe_secret(SecretId=item.secret_arn).get("DeletedDate") is None
    with clock.shift(dt.timedelta(hours=200)):
        assert run()["due"] == 0


# ------------------------------------------------------------------------------------------ helpers


def test_authority():
    from stepless import authority

    return authority.get()


test_authority.__test__ = False  # type: ignore[attr-defined]


def renewal_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
