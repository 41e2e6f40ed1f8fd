"""The local stack: template.yaml deployed to a real moto server; template helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from stepless.local.stack import StackError, deploy_local_stack, function_env, moto_template
from stepless.local.template import (
    Route,
    find_route,
    function_environment,
    load_template,
    parameter_defaults,
    routes,
)
from tests.infrastructure.test_template import KEYS, TABLES, TEMPLATE_PATH

pytest.importorskip("moto.server", reason="moto[server] is a dev dependency (pip install -e .[dev])")
from moto.server import ThreadedMotoServer  # noqa: E402

# moto's CloudFormation skips (with this warning) the alarm on the renewal dead-letter queue.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..CloudWatch..Alarm:UserWarning")

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def stack(endpoint: str) -> dict[str, str]:
    return deploy_local_stack(endpoint, stack_name="infra-kms", template_path=TEMPLATE_PATH)


def test_tables_created_as_declared(endpoint: str, stack: dict[str, str]) -> None:
    ddb = _client("dynamodb", endpoint)
    for logical_id, key in TABLES.items():
        name = stack[logical_id]
        assert stack[f"{logical_id}Name"] == name
        table = ddb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
        assert table["AttributeDefinitions"] == [{"AttributeName": key, "AttributeType": "S"}]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionProtectionEnabled"] is True
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if logical_id in ("TokensTable", "RevocationsTable", "OcspTable", "AcmeTable"):
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_kms_keys_sign(endpoint: str, stack: dict[str, str]) -> None:
    kms = _client("kms", endpoint)
    for logical_id in KEYS:
        key_id = stack[logical_id]
        assert stack[f"{logical_id}Id"] == key_id
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert (meta["KeySpec"], meta["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
        assert meta["KeyState"] == "Enabled"
        signature = kms.sign(KeyId=key_id, Message=b"\x00" * 32, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")[
            "Signature"
        ]
        assert signature[0] == 0x30  # DER SEQUENCE
    assert len({stack[k] for k in KEYS}) == len(KEYS)


def test_outputs_and_metadata(stack: dict[str, str]) -> None:
    assert stack["KeyBackend"] == "kms"
    assert stack["SecretsPrefix"] == stack["AWS::StackName"] == "infra-kms"
    assert stack["AWS::Region"] == REGION
    assert "ApiUrl" not in stack, "the HTTP API is served by the local gateway, not moto"


def test_deploy_is_idempotent(endpoint: str, stack: dict[str, str]) -> None:
    assert deploy_local_stack(endpoint, stack_name="infra-kms", template_path=TEMPLATE_PATH) == stack


def test_other_key_backend_for_existing_stack_refused(endpoint: str, stack: dict[str, str]) -> None:
    with pytest.raises(StackError, match="KeyBackend=kms"):
        deploy_local_stack(endpoint, stack_name="infra-kms", key_backend="secrets", template_path=TEMPLATE_PATH)


def test_secrets_backend_creates_no_keys(endpoint: str) -> None:
    kms = _client("kms", endpoint)
    before = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    stack = deploy_local_stack(endpoint, stack_name="infra-secrets", key_backend="secrets", template_path=TEMPLATE_PATH)
    assert stack["KeyBackend"] == "secrets"
    assert not any(k in stack or f"{k}Id" in stack for k in KEYS)
    assert {k["KeyId"] for k in kms.list_keys()["Keys"]} == before
    ddb = _client("dynamodb", endpoint)
    for logical_id in TABLES:
        assert ddb.describe_table(TableName=stack[logical_id])["Table"]["TableStatus"] == "ACTIVE"


def test_function_env(endpoint: str, stack: dict[str, str]) -> None:
    envs = function_env(stack, endpoint_url=endpoint, template_path=TEMPLATE_PATH)
    assert set(envs) == {"SignFunction", "RenewFunction", "RevokeFunction", "SshFunction"}
    env = envs["SignFunction"]
    assert env["STEPLESS_AUTHORITY_TABLE"] == stack["AuthorityTable"]
    assert env["STEPLESS_TOKENS_TABLE"] == stack["TokensTable"]
    assert env["STEPLESS_CERTIFICATES_TABLE"] == stack["CertificatesTable"]
    assert env["STEPLESS_REVOCATIONS_TABLE"] == stack["RevocationsTable"]
    assert env["STEPLESS_CONFIG_TTL"] == "30"
    assert env["STEPLESS_KEY_BACKEND"] == "kms"
    assert env["AWS_ENDPOINT_URL"] == endpoint
    assert env["AWS_REGION"] == REGION
    assert all(isinstance(v, str) for e in envs.values() for v in e.values())
    assert envs["SshFunction"]["STEPLESS_HOSTS_TABLE"] == stack["HostsTable"]
    assert envs["RevokeFunction"]["STEPLESS_OCSP_TABLE"] == stack["OcspTable"]


# ------------------------------------------------------------------------------ template helpers


def test_moto_template_drops_only_serverless_parts() -> None:
    template = load_template(TEMPLATE_PATH)
    adapted = moto_template(template)
    assert "Transform" not in adapted and "Globals" not in adapted
    types = {r["Type"] for r in adapted["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert "AWS::KMS::Key" not in types  # created through the KMS API (moto's CFN ignores KeySpec)
    for table in TABLES:
        assert adapted["Resources"][table] == template["Resources"][table]
    assert "ApiUrl" not in adapted["Outputs"]
    assert "RenewalDeadLetterQueuePolicy" not in adapted["Resources"]  # refers to SAM's generated rule
    assert template["Transform"] == "AWS::Serverless-2016-10-31", "the input is left unchanged"


def test_short_form_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      R: !Ref B\n"
        "      G: !GetAtt B.Arn\n"
        "      G2: !GetAtt [B, Arn]\n"
        "      S: !Sub '${AWS::Region}-x'\n"
        "      I: !If [C, !Equals [a, b], !Not [!Condition D]]\n"
        "      J: !Join ['', [!Select [0, !Split [',', 'a,b']]]]\n"
    )
    props = load_template(path)["Resources"]["A"]["Properties"]
    assert props["R"] == {"Ref": "B"}
    assert props["G"] == props["G2"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["S"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert props["I"] == {"Fn::If": ["C", {"Fn::Equals": ["a", "b"]}, {"Fn::Not": [{"Condition": "D"}]}]}
    assert props["J"] == {"Fn::Join": ["", [{"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}]]}


def test_routes_and_find_route() -> None:
    template = load_template(TEMPLATE_PATH)
    all_routes = routes(template)
    assert Route("SignFunction", "POST", "/1.0/sign", "functions/sign/", "app.handler") in all_routes
    found = find_route(all_routes, "get", "/1.0/root/AB-cd")
    assert found is not None and found[0].function_id == "SignFunction" and found[1] == {"sha": "AB-cd"}
    found = find_route(all_routes, "POST", "/ssh/config/host")
    assert found is not None and found[1] == {"type": "host"}
    found = find_route(all_routes, "POST", "/ssh/config")
    assert found is not None and found[1] == {}
    found = find_route(all_routes, "GET", "/provisioners/k1/encrypted-key")
    assert found is not None and found[1] == {"kid": "k1"}
    assert find_route(all_routes, "GET", "/sign") is None
    assert find_route(all_routes, "GET", "/nope") is None


def test_function_environment_resolves_refs() -> None:
    template = load_template(TEMPLATE_PATH)
    outputs = {t: f"table-{t}" for t in TABLES} | {"CrlBucket": "crl-bucket", "HostsTable": "table-HostsTable"}
    no_cdn = {"HttpCrlDistribution": "false"}
    env = function_environment(template, "RevokeFunction", outputs, {"ConfigTtlSeconds": "5", **no_cdn})
    assert env["STEPLESS_CRL_BUCKET"] == "crl-bucket"
    assert env["STEPLESS_REVOCATIONS_TABLE"] == "table-RevocationsTable"
    assert env["STEPLESS_CONFIG_TTL"] == "5"
    assert env["POWERTOOLS_LOG_LEVEL"] == parameter_defaults(template)["LogLevel"]
    assert env["STEPLESS_MTLS_DOMAIN"] == ""  # no custom domain with a truststore
    outputs["CrlDistribution.DomainName"] = "d111.cloudfront.net"
    cdp = "STEPLESS_CRL_DISTRIBUTION_POINT"
    assert function_environment(template, "SignFunction", outputs)[cdp] == "http://d111.cloudfront.net/intermediate.crl"
    assert function_environment(template, "SignFunction", outputs, no_cdn)[cdp] == ""
    assert function_environment(template, "SignFunction", outputs, {"CrlDistributionPoint": "http://x/c.crl"})[
        cdp] == "http://x/c.crl"
    mtls = {"DomainName": "ca.example.com", "TruststoreUri": "s3://b/t.pem"}
    assert function_environment(template, "SignFunction", outputs, mtls)["STEPLESS_MTLS_DOMAIN"] == "ca.example.com"
    with pytest.raises(ValueError, match="AuthorityTable"):
        function_environment(template, "RevokeFunction", {}, no_cdn)


def test_key_properties_resolve_conditions_and_no_value() -> None:
    """The root key's conditional Deny (CaAdministratorRoleArn) reaches the local key policy as on AWS."""
    from stepless.local.stack import _resolve

    statement = {"Fn::If": ["HasAdmin", {"Effect": "Deny", "Principal": {"Ref": "Admin"}}, {"Ref": "AWS::NoValue"}]}
    policy = {"Statement": [{"Effect": "Allow"}, statement], "Extra": {"Ref": "AWS::NoValue"}}
    assert _resolve(policy, {"Admin": "arn:x"}, lambda name: False) == {"Statement": [{"Effect": "Allow"}]}
    assert _resolve(policy, {"Admin": "arn:x"}, lambda name: name == "HasAdmin") == {
        "Statement": [{"Effect": "Allow"}, {"Effect": "Deny", "Principal": "arn:x"}]}
