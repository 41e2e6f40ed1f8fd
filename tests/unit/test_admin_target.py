"""stepless.admin.target: which CA an administrator command talks to, and with which credentials."""

from __future__ import annotations

import json
import os

import pytest

from stepless import aws, awssession
from stepless.admin import target
from stepless.errors import CLIError

LOCAL = {"engine": "moto", "stack": "stepless-dev", "endpoint": "http://127.0.0.1:1", "region": "eu-west-1"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    saved = dict(os.environ)  # point_at_local sets variables itself: restore them all afterwards
    for var in list(os.environ):
        if var.startswith(("AWS_", "STEPLESS_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("STEPLESS_HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setattr("botocore.credentials.InstanceMetadataProvider.load", lambda self: None)
    monkeypatch.setattr("botocore.credentials.ContainerProvider.load", lambda self: None)
    aws.reset()
    yield
    os.environ.clear()
    os.environ.update(saved)
    aws.reset()


def record_local(tmp_path, record=LOCAL):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "defaults.json").write_text(json.dumps({"ca-url": "https://localhost:8443",
                                                                   "local": record}))


def test_rules_in_order(tmp_path, monkeypatch):
    assert target.resolve(None) == ("stepless", None)  # nothing known: the default stack on AWS
    record_local(tmp_path)
    assert target.resolve(None) == ("stepless-dev", LOCAL)  # after `stepless dev`: its local CA
    assert target.resolve("stepless-dev") == ("stepless-dev", LOCAL)  # naming it is the same
    assert target.resolve("prod") == ("prod", None)  # --stack names a deployed stack
    monkeypatch.setenv("STEPLESS_STACK", "staging")
    assert target.resolve(None) == ("staging", None)  # STEPLESS_STACK as --stack
    assert target.resolve("prod") == ("prod", None)  # the flag wins
    monkeypatch.delenv("STEPLESS_STACK")
    monkeypatch.setenv("STEPLESS_AUTHORITY_TABLE", "t")
    assert target.resolve(None) == ("", None)  # tables already in the environment (functions, tests)
    assert target.administrator(None) and target.administrator("x")
    monkeypatch.delenv("STEPLESS_AUTHORITY_TABLE")
    assert not target.administrator(None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", LOCAL["endpoint"])  # dev.env sourced: still the local CA
    assert target.resolve("stepless-dev") == ("stepless-dev", LOCAL)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere")  # another endpoint: the caller's choice
    assert target.resolve("stepless-dev") == ("stepless-dev", None)


def test_the_local_ca_never_gets_the_callers_credentials(tmp_path, monkeypatch):
    record_local(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALREALREAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-session")
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://somewhere-else")
    target.point_at_local(LOCAL)
    creds = awssession.session().get_credentials().get_frozen_credentials()
    assert (creds.access_key, creds.secret_key, creds.token) == ("testing", "testing", None)
    assert os.environ["AWS_ENDPOINT_URL"] == LOCAL["endpoint"] and "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ
    assert "AWS_PROFILE" not in os.environ and os.environ["AWS_REGION"] == "eu-west-1"
    assert aws.client("dynamodb").meta.endpoint_url == LOCAL["endpoint"]


def test_errors_say_what_to_do_in_one_line(tmp_path):
    with pytest.raises(CLIError) as e:
        target.use(None)
    text = str(e.value)
    assert "no AWS credentials" in text and "stepless dev" in text and "\n" not in text
    record_local(tmp_path)  # a local CA that is not running any more
    with pytest.raises(CLIError) as e:
        target.use(None)
    assert "is not running: start `stepless dev`" in str(e.value) and "\n" not in str(e.value)
    record_local(tmp_path, {**LOCAL, "engine": "postgres"})
    with pytest.raises(CLIError, match="engine 'postgres'"):
        target.use(None)
    record_local(tmp_path, {**LOCAL, "engine": "sqlite"})  # a record without its store
    with pytest.raises(CLIError, match="no store: restart `stepless dev`"):
        target.use(None)


def test_propagation_is_said_truthfully():
    assert "next request" in target.Target("stepless-dev", {}, LOCAL).propagation()
    assert "30 s by default" in target.Target("prod", {}).propagation()
    assert "within 120 s (the stack's ConfigTtlSeconds)" in target.Target(
        "prod", {"ConfigTtlSeconds": "120"}).propagation()


def test_a_stacks_config_ttl_is_read_from_its_parameters(monkeypatch):
    from moto import mock_aws

    from stepless.admin import stack

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    body = {"Parameters": {"ConfigTtlSeconds": {"Type": "Number", "Default": 30}},
            "Resources": {"T": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {"AuthorityTableName": {"Value": "auth"}}}
    with mock_aws():
        aws.reset()
        import boto3

        boto3.client("cloudformation").create_stack(
            StackName="prod", TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": "ConfigTtlSeconds", "ParameterValue": "120"}])
        outs = stack.outputs("prod")
    assert outs == {"AuthorityTableName": "auth", "ConfigTtlSeconds": "120"}
    assert "within 120 s" in target.Target("prod", outs).propagation()


def test_the_local_ca_on_its_sqlite_engine_is_its_store(tmp_path, monkeypatch):
    """`stepless dev`'s default engine: the command opens the CA's SQLite store and key files, and sends nothing
    to AWS (the caller's credentials and endpoints are dropped)."""
    from stepless.stores import backend

    store = f"sqlite:{tmp_path / 'db' / 'ca.db'}"
    password = str(tmp_path / "secrets" / "key-password")
    record_local(tmp_path, {"engine": "sqlite", "stack": "stepless-dev", "STEPLESS_STORE": store,
                            "STEPLESS_KEY_PASSWORD_FILE": password, "config-stamp": str(tmp_path / "stamp")})
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.example")
    try:
        for name in (None, "stepless-dev"):
            where = target.use(name)
            assert where.is_local and where.stack == "stepless-dev"
            assert where.outputs == {"KeyDirectory": str(tmp_path / "secrets")}
            assert os.environ["STEPLESS_STORE"] == store and os.environ["STEPLESS_KEY_PASSWORD_FILE"] == password
            assert "AWS_PROFILE" not in os.environ and "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ
            assert backend.current().name == "sqlite"
        assert target.resolve(None) == ("", None)  # now in the environment: its store, as dev.env would set it
    finally:
        backend.reset()
