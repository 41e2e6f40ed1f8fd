"""``stepless ca managed issue|list|show|renew|remove`` in-process (click's runner) against moto."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from click.testing import CliRunner

from stepless import clock
from stepless.cli import main as cli_main
from stepless.managed import secret
from stepless.stores import managed as store

TABLE = "test-managed-cli"


@pytest.fixture
def run(test_ca, monkeypatch):
    """``stepless ca managed ARGS`` against the test CA (tables from the environment: no --stack)."""
    monkeypatch.setenv(store.MANAGED_TABLE, TABLE)
    monkeypatch.setenv("STEPLESS_SECRETS_PREFIX", "cli-test")
    boto3.client("dynamodb").create_table(**store.table_spec(TABLE))
    cli_main._register()
    import stepless.cli.managed  # noqa: F401 - until cli.main._register lists "managed"

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli_main.cli, ["ca", "managed", *args], catch_exceptions=True)

    return invoke


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_issue_list_show_renew_remove(run):
    out = ok(run("issue", "api.internal.example.com", "api-tls", "--san", "api.internal.example.com",
                 "--san", "10.1.2.3", "--not-after", "72h", "--rekey"))
    arn = out.stdout.strip().splitlines()[-1]
    assert ":secret:cli-test/managed/api-tls-" in arn
    assert "Managed certificate: api-tls" in out.output
    data = json.loads(secret.read(arn))
    assert {"certificate", "chain", "privateKey", "serial", "notAfter"} <= set(data)

    listing = ok(run("list")).stdout
    assert listing.splitlines()[0].split()[:3] == ["NAME", "SUBJECT", "STATUS"]
    assert "api-tls" in listing and "api.internal.example.com" in listing and "active" in listing
    (entry,) = json.loads(ok(run("list", "--json")).stdout)
    assert entry["name"] == "api-tls" and entry["rekey"] is True and entry["duration"] == "72h0m0s"

    shown = json.loads(ok(run("show", "api-tls")).stdout)
    assert shown["serial"] == data["serial"] and shown["sans"] == ["api.internal.example.com", "10.1.2.3"]
    assert shown["secretArn"] == arn and shown["status"] == "active"

    renewed = ok(run("renew", "api-tls")).stdout.strip()
    assert renewed != data["serial"] and json.loads(secret.read(arn))["serial"] == renewed
    assert json.loads(secret.read(arn))["privateKey"] != data["privateKey"]  # --rekey

    ok(run("remove", "api-tls"))
    assert store.get("api-tls") is None
    assert "DeletedDate" not in boto3.client("secretsmanager").describe_secret(SecretId=arn)
    assert "api-tls" not in ok(run("list")).stdout


def test_remove_delete_secret(run):
    arn = ok(run("issue", "db.example.com", "db")).stdout.strip().splitlines()[-1]
    ok(run("remove", "db", "--delete-secret"))
    assert "DeletedDate" in boto3.client("secretsmanager").describe_secret(SecretId=arn)


def test_errors_are_one_line(run):
    res = run("show", "nope")
    assert res.exit_code != 0 and "no managed certificate named 'nope'" in str(res.exception)
    res = run("issue", "x.example.com", "bad/name")
    assert res.exit_code != 0 and "invalid managed certificate name" in str(res.exception)
    res = run("issue", "x.example.com", "x", "--not-after", "2030-01-01T00:00:00Z")
    assert res.exit_code != 0 and "duration" in str(res.exception)
    ok(run("issue", "x.example.com", "x"))
    res = run("issue", "x.example.com", "x")
    assert res.exit_code != 0 and "exists" in str(res.exception)
    ok(run("issue", "x.example.com", "x", "--force"))


def test_default_duration_and_due_by_schedule(run):
    ok(run("issue", "w.example.com", "w"))
    item = store.get("w")
    assert item.duration == 24 * 3600 and item.rekey is False
    from stepless.managed import renewal

    with clock.shift(dt.timedelta(hours=17)):
        assert renewal.run(workers=1, flush_metrics=False)["renewed"] == 1


def test_stack_flag_needs_a_stack(run):
    res = run("list", "--stack", "no-such-stack")
    assert res.exit_code != 0 and "cannot read stack no-such-stack" in str(res.exception)
