"""template.yaml: lint, routes, least privilege, data protection, outputs, the built layer."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepless.local.template import find_route, functions, load_template, routes
from tests.support.tools import venv_tool

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
LAYER = ROOT / "layers" / "common"
SAM = Path("/opt/samcli/bin/sam")

# What each function serves (API.md); every path also at /1.0/PATH.
EXPECTED_ROUTES: dict[str, set[tuple[str, str]]] = {
    "SignFunction": {
        ("GET", "/health"),
        ("GET", "/version"),
        ("GET", "/root/{sha}"),
        ("GET", "/roots"),
        ("GET", "/roots.pem"),
        ("GET", "/federation"),
        ("GET", "/provisioners"),
        ("GET", "/provisioners/{kid}/encrypted-key"),
        ("POST", "/sign"),
        # ACME (RFC 8555, stepless.api.acme)
        *{(m, "/acme/{provisioner}/" + p) for m in ("GET", "HEAD") for p in ("directory", "new-nonce")},
        *{("POST", "/acme/{provisioner}/" + p) for p in (
            "new-account", "account/{account}", "account/{account}/orders", "key-change", "new-order",
            "order/{order}", "order/{order}/finalize", "authz/{authz}", "challenge/{authz}/{challenge}",
            "certificate/{certificate}", "certificate/{certificate}/{alternate}")},
    },
    "RenewFunction": {("POST", "/renew"), ("POST", "/rekey")},
    "RevokeFunction": {("POST", "/revoke"), ("GET", "/crl"), ("POST", "/ocsp"), ("GET", "/ocsp/{request+}"),
                       ("POST", "/acme/{provisioner}/revoke-cert")},
    "SshFunction": {
        ("POST", "/ssh/sign"),
        ("POST", "/ssh/renew"),
        ("POST", "/ssh/rekey"),
        ("POST", "/ssh/revoke"),
        ("POST", "/ssh/config"),
        ("POST", "/ssh/config/{type}"),
        ("POST", "/ssh/check-host"),
        ("GET", "/ssh/roots"),
        ("GET", "/ssh/federation"),
        ("GET", "/ssh/hosts"),
        ("GET", "/ssh/krl"),
        ("POST", "/ssh/bastion"),
        ("GET", "/ssh/get-hosts"),
    },
}
TABLES = {
    "AuthorityTable": "pk",
    "TokensTable": "id",
    "CertificatesTable": "serial",
    "RevocationsTable": "serial",
    "OcspTable": "serial",
    "AcmeTable": "pk",
}
KEYS = ("RootKey", "IntermediateKey", "SshUserKey", "SshHostKey")
# AWS supports no resource-level permissions for these: Resource "*" is required.
STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def _refs(node: Any) -> Iterator[str]:
    """Logical ids referenced by Ref, GetAtt or Sub in a fragment."""
    if isinstance(node, list):
        for item in node:
            yield from _refs(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                yield value
            elif key == "Fn::GetAtt":
                yield value[0]
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                yield from (m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
            else:
                yield from _refs(value)


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    """Policy statements, both branches of every Fn::If included."""
    if isinstance(node, list):
        for item in node:
            yield from _statements(item)
    elif isinstance(node, dict):
        if "Fn::If" in node:
            yield from _statements(node["Fn::If"][1:])
        elif "Effect" in node:
            yield node
        elif node.get("Ref") != "AWS::NoValue":
            raise AssertionError(f"unexpected policy fragment {node}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(template: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    props = template["Resources"][function_id]["Properties"]
    role = props["Role"]["Fn::GetAtt"]
    assert role[1] == "Arn"
    role_props = template["Resources"][role[0]]["Properties"]
    assert "ManagedPolicyArns" not in role_props, "managed policies are not reviewable here"
    found: list[dict[str, Any]] = []
    for policy in role_props["Policies"]:
        found.extend(_statements(policy["PolicyDocument"]["Statement"]))
    return found


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False, **kwargs)


# ---------------------------------------------------------------------------------------------- lint


def test_cfn_lint_passes() -> None:
    result = _run([venv_tool("cfn-lint"), str(TEMPLATE_PATH)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint() -> None:
    sam = str(SAM) if SAM.exists() else shutil.which("sam")
    if not sam:
        pytest.skip("SAM CLI not installed (python3 -m venv /opt/samcli && /opt/samcli/bin/pip install aws-sam-cli)")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = _run([sam, "validate", "--lint", "--template-file", str(TEMPLATE_PATH)], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------------------------------- routes


def test_every_route_at_both_prefixes(template: dict[str, Any]) -> None:
    declared: dict[str, set[tuple[str, str]]] = {}
    for route in routes(template):
        declared.setdefault(route.function_id, set()).add((route.method, route.path))
    expected = {
        fn: paths | {(method, "/1.0" + path) for method, path in paths} for fn, paths in EXPECTED_ROUTES.items()
    }
    assert declared == expected


def test_routes_unique_and_events_well_named(template: dict[str, Any]) -> None:
    all_routes = routes(template)
    keys = [r.route_key for r in all_routes]
    assert len(keys) == len(set(keys)), "a route is declared twice"
    assert len(all_routes) == 2 * sum(len(v) for v in EXPECTED_ROUTES.values())
    for function_id, props in functions(template).items():
        for name, event in props["Events"].items():
            assert re.fullmatch(r"[A-Za-z0-9]+", name), f"{function_id}.{name}"
            if event["Type"] == "HttpApi":
                assert event["Properties"]["ApiId"] == {"Ref": "CaApi"}


def test_functions_runtime_and_handler(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"].startswith("python3.")
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["Tracing"] == "Active"
    assert globals_["Layers"] == [{"Ref": "CommonLayer"}]
    env = globals_["Environment"]["Variables"]
    for var, table in [
        ("STEPLESS_AUTHORITY_TABLE", "AuthorityTable"),
        ("STEPLESS_TOKENS_TABLE", "TokensTable"),
        ("STEPLESS_CERTIFICATES_TABLE", "CertificatesTable"),
        ("STEPLESS_REVOCATIONS_TABLE", "RevocationsTable"),
    ]:
        assert env[var] == {"Ref": table}
    assert env["STEPLESS_CONFIG_TTL"] == {"Ref": "ConfigTtlSeconds"}
    assert "POWERTOOLS_SERVICE_NAME" in env
    for function_id, props in functions(template).items():
        assert props["Handler"] == "app.handler"
        assert props["CodeUri"] == f"functions/{function_id.removesuffix('Function').lower()}/"
    layer = template["Resources"]["CommonLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["CompatibleRuntimes"] == [globals_["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_renewal_schedule_has_dead_letter_queue(template: dict[str, Any]) -> None:
    events = template["Resources"]["RenewFunction"]["Properties"]["Events"]
    schedules = [e for e in events.values() if e["Type"] == "Schedule"]
    assert len(schedules) == 1
    assert schedules[0]["Properties"]["Schedule"] == {"Ref": "RenewalSchedule"}
    assert "Arn" in schedules[0]["Properties"]["DeadLetterConfig"]


def test_api_throttled_and_logged(template: dict[str, Any]) -> None:
    api = template["Resources"]["CaApi"]["Properties"]
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fmt = api["AccessLogSettings"]["Format"]
    assert "body" not in fmt.lower() and "authorization" not in fmt.lower()


# ---------------------------------------------------------------------------------- least privilege


def test_functions_have_own_roles_without_wildcards(template: dict[str, Any]) -> None:
    roles = set()
    for function_id, props in functions(template).items():
        assert "Policies" not in props, f"{function_id}: permissions belong in its role"
        roles.add(props["Role"]["Fn::GetAtt"][0])
        for statement in _role_statements(template, function_id):
            assert statement["Effect"] == "Allow"
            actions = _as_list(statement["Action"])
            assert not any("*" in action for action in actions), (function_id, actions)
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= STAR_RESOURCE_ACTIONS, (function_id, statement)
    assert len(roles) == len(functions(template))


def test_nobody_uses_the_root_key(template: dict[str, Any]) -> None:
    for function_id in functions(template):
        for statement in _role_statements(template, function_id):
            assert "RootKey" not in set(_refs(statement)), function_id
            assert "root-key" not in json.dumps(statement), function_id


def _users(template: dict[str, Any], needle: str) -> set[str]:
    return {
        fn
        for fn in functions(template)
        for statement in _role_statements(template, fn)
        if needle in set(_refs(statement)) or needle in json.dumps(statement)
    }


def test_ca_keys_only_where_needed(template: dict[str, Any]) -> None:
    x509 = {"SignFunction", "RenewFunction", "RevokeFunction"}
    assert _users(template, "IntermediateKey") == x509
    assert _users(template, "/intermediate-key-") == x509
    assert _users(template, "SshUserKey") == {"SshFunction"}
    assert _users(template, "SshHostKey") == {"SshFunction"}
    assert _users(template, "/ssh-user-key-") == {"SshFunction"}
    assert _users(template, "/ssh-host-key-") == {"SshFunction"}
    for statement in (s for fn in functions(template) for s in _role_statements(template, fn)):
        if any(a.startswith("kms:") for a in _as_list(statement["Action"])):
            assert set(_as_list(statement["Action"])) <= {"kms:Sign", "kms:GetPublicKey"}


def test_table_writes(template: dict[str, Any]) -> None:
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}

    def writers(table: str) -> set[str]:
        return {
            fn
            for fn in functions(template)
            for s in _role_statements(template, fn)
            if table in set(_refs(s)) and writes & set(_as_list(s["Action"]))
        }

    # the config is written by administrators only; the revoke function bumps the CRL number item (pk "crl")
    assert writers("AuthorityTable") == {"RevokeFunction"}
    assert writers("RevocationsTable") == {"RevokeFunction", "SshFunction"}
    assert "SignFunction" not in writers("RevocationsTable")
    assert writers("ManagedTable") == {"RenewFunction"}  # the scheduled run; admins create and remove items
    for fn in functions(template):
        for s in _role_statements(template, fn):
            assert "dynamodb:DeleteItem" not in _as_list(s["Action"]), fn


# What each function may do to each table: exactly the calls its code makes (grep stores/ and managed/ for
# get_item, batch_get_item, put_item, update_item, scan, query and transact_write_items' Put/Update/
# ConditionCheck). Of the authority table each function reads only the configuration item and the revoke
# function writes only the CRL counter: dynamodb:LeadingKeys says so (AUTHORITY_ITEMS).
TABLE_ACTIONS: dict[str, dict[str, set[str]]] = {
    "SignFunction": {
        "AuthorityTable": {"dynamodb:GetItem"},
        "TokensTable": {"dynamodb:PutItem"},
        "CertificatesTable": {"dynamodb:PutItem", "dynamodb:GetItem"},  # GetItem: ACME certificate download
        "AcmeTable": {"dynamodb:GetItem", "dynamodb:PutItem"},  # a used nonce: a conditional PutItem
    },
    "RenewFunction": {
        "AuthorityTable": {"dynamodb:GetItem"},
        "TokensTable": {"dynamodb:PutItem"},
        "CertificatesTable": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"},
        "RevocationsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"},
        "ManagedTable": {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem"},
    },
    "RevokeFunction": {
        "AuthorityTable": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "TokensTable": {"dynamodb:PutItem"},
        "CertificatesTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
        "RevocationsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:Scan"},
        "OcspTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},  # pre-produced responses
        "AcmeTable": {"dynamodb:GetItem", "dynamodb:PutItem"},  # ACME revokeCert
    },
    "SshFunction": {
        "AuthorityTable": {"dynamodb:GetItem"},
        "TokensTable": {"dynamodb:PutItem"},
        "CertificatesTable": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
        # UpdateItem of the revoked-SSH-set item only (test_unauthenticated_reads_need_no_scan)
        "RevocationsTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem",
                             "dynamodb:UpdateItem"},
        "HostsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},  # the host index
    },
}
# Authority table items (pk) each function may touch, by action.
AUTHORITY_ITEMS = {"dynamodb:GetItem": ["authority"], "dynamodb:UpdateItem": ["crl"]}
TABLE_IDS = {*TABLES, "ManagedTable", "HostsTable"}


def _table_grants(template: dict[str, Any], function_id: str) -> dict[str, list[dict[str, Any]]]:
    """Table logical id → the role's statements that name it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for statement in _role_statements(template, function_id):
        for table in TABLE_IDS & set(_refs(statement["Resource"])):
            out.setdefault(table, []).append(statement)
    return out


@pytest.mark.parametrize("function_id", sorted(TABLE_ACTIONS))
def test_least_privilege_per_function_and_table(template: dict[str, Any], function_id: str) -> None:
    grants = _table_grants(template, function_id)
    actions = {table: {a for s in statements for a in _as_list(s["Action"])} for table, statements in grants.items()}
    assert actions == TABLE_ACTIONS[function_id]
    for statement in grants["AuthorityTable"]:
        granted = _as_list(statement["Action"])
        assert len(granted) == 1, f"{function_id}: one item set per authority-table action"
        keys = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        assert keys == AUTHORITY_ITEMS[granted[0]], (function_id, granted, keys)
        assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": ["AuthorityTable", "Arn"]}]


def test_only_the_revoke_function_writes_the_authority_table_and_only_the_crl_counter(template: dict[str, Any]) -> None:
    """A compromised function cannot rewrite the CA configuration (issue 10 item 6)."""
    for function_id in TABLE_ACTIONS:
        for statement in _table_grants(template, function_id).get("AuthorityTable", []):
            if set(_as_list(statement["Action"])) - {"dynamodb:GetItem"}:
                assert function_id == "RevokeFunction"
                assert statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] == ["crl"]
    from stepless.stores.dynamodb import objects as crl_store

    assert crl_store.NUMBER_KEY == {"pk": {"S": "crl"}}  # the item the condition names


def test_revoke_role_can_tell_a_missing_crl_from_a_denied_one(template: dict[str, Any]) -> None:
    """Without s3:ListBucket S3 answers a missing key with 403, so a new stack's GET /crl failed (item 12)."""
    statements = _role_statements(template, "RevokeFunction")
    listing = [s for s in statements if "s3:ListBucket" in _as_list(s["Action"])]
    assert listing and listing[0]["Resource"] == {"Fn::GetAtt": ["CrlBucket", "Arn"]}
    assert _as_list(listing[0]["Action"]) == ["s3:ListBucket"]


# ------------------------------------------------------------------------------------------ storage


def test_tables_protected(template: dict[str, Any]) -> None:
    for logical_id, key in TABLES.items():
        resource = template["Resources"][logical_id]
        props = resource["Properties"]
        assert resource["Type"] == "AWS::DynamoDB::Table"
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["DeletionProtectionEnabled"] is True
        assert props["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
        assert props["AttributeDefinitions"] == [{"AttributeName": key, "AttributeType": "S"}]
    ttl = template["Resources"]["TokensTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires", "Enabled": True}
    from stepless.stores import revocations

    ttl = template["Resources"]["RevocationsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": revocations.EXPIRES, "Enabled": True}  # pruned (issue 10 item 16)
    ttl = template["Resources"]["OcspTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires", "Enabled": True}


def test_host_index_table(template: dict[str, Any]) -> None:
    """The SSH host index: partitions ("host" forever, "live" listings) sorted by principal, so /ssh/hosts
    is a Query."""
    resource = template["Resources"]["HostsTable"]
    props = resource["Properties"]
    assert resource["DeletionPolicy"] == "Retain" and props["DeletionProtectionEnabled"] is True
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "principal", "KeyType": "RANGE"}]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # expired listings (pk = "live") are pruned by TTL on `expires`, which the DynamoDB backend writes
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}


def test_unauthenticated_reads_need_no_scan(template: dict[str, Any]) -> None:
    """Issue 10 item 2: the ssh function (check-host, hosts, KRL) scans nothing; it may update only the
    revoked-SSH-set item of the revocations table."""
    statements = _role_statements(template, "SshFunction")
    assert not [s for s in statements if "dynamodb:Scan" in _as_list(s["Action"])]
    updates = [s for s in statements if "dynamodb:UpdateItem" in _as_list(s["Action"])
               and s["Resource"] == {"Fn::GetAtt": ["RevocationsTable", "Arn"]}]
    assert updates and all(s["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["krl:ssh"]}}
                           for s in updates)


def test_ocsp_routes_have_their_own_throttle(template: dict[str, Any]) -> None:
    events = template["Resources"]["RevokeFunction"]["Properties"]["Events"]
    ocsp = [e for e in events.values() if e["Type"] == "HttpApi" and "/ocsp" in e["Properties"]["Path"]]
    assert len(ocsp) == 4
    for e in ocsp:
        settings = e["Properties"]["RouteSettings"]
        assert settings["ThrottlingRateLimit"] == {"Ref": "OcspThrottlingRateLimit"}
        assert settings["ThrottlingBurstLimit"] == {"Ref": "OcspThrottlingBurstLimit"}


def test_acme_routes_have_their_own_throttle(template: dict[str, Any]) -> None:
    """Every ACME POST records its nonce (a DynamoDB write) before its signature is checked: each ACME route
    has the ACME throttle, not the shared default."""
    acme = [e for f in ("SignFunction", "RevokeFunction")
            for e in template["Resources"][f]["Properties"]["Events"].values()
            if e["Type"] == "HttpApi" and "/acme/" in e["Properties"]["Path"]]
    assert {e["Properties"]["Path"].removeprefix("/1.0") for e in acme} >= {
        "/acme/{provisioner}/new-nonce", "/acme/{provisioner}/directory", "/acme/{provisioner}/new-account",
        "/acme/{provisioner}/revoke-cert"}
    for e in acme:
        settings = e["Properties"]["RouteSettings"]
        assert settings["ThrottlingRateLimit"] == {"Ref": "AcmeThrottlingRateLimit"}
        assert settings["ThrottlingBurstLimit"] == {"Ref": "AcmeThrottlingBurstLimit"}


def test_keys(template: dict[str, Any]) -> None:
    for logical_id in KEYS:
        resource = template["Resources"][logical_id]
        props = resource["Properties"]
        assert resource["Condition"] == "UseKms"
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"
        assert (props["KeySpec"], props["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
        allows = [s for s in props["KeyPolicy"]["Statement"] if s.get("Effect") == "Allow"]
        principals = [s["Principal"]["AWS"] for s in allows]
        assert principals == [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]
        denies = [s for s in props["KeyPolicy"]["Statement"] if "Fn::If" in s]
        assert bool(denies) == (logical_id == "RootKey"), logical_id


def test_root_key_signs_only_for_the_ca_administrator(template: dict[str, Any]) -> None:
    """Root key custody (issue 10 item 11): AdministratorAccess alone must not sign with the root."""
    params = template["Parameters"]["CaAdministratorRoleArn"]
    assert params["Default"] == "" and re.fullmatch(params["AllowedPattern"], "arn:aws:iam::123456789012:role/ca-admin")
    assert not re.fullmatch(params["AllowedPattern"], "arn:aws:iam::123456789012:user/alice")
    assert template["Conditions"]["HasCaAdministrator"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "CaAdministratorRoleArn"}, ""]}]}
    (when,) = [s["Fn::If"] for s in template["Resources"]["RootKey"]["Properties"]["KeyPolicy"]["Statement"]
               if "Fn::If" in s]
    condition, deny, otherwise = when
    assert condition == "HasCaAdministrator" and otherwise == {"Ref": "AWS::NoValue"}
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "kms:Sign"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Ref": "CaAdministratorRoleArn"}}}


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": "https://${CaApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    for name in ("AuthorityTableName", "TokensTableName", "CertificatesTableName", "RevocationsTableName",
                 "ManagedTableName"):
        assert outputs[name]["Value"] == {"Ref": name.removesuffix("Name")}
    assert outputs["KeyBackend"]["Value"] == {"Ref": "KeyBackend"}
    assert outputs["SecretsPrefix"]["Value"] == {"Ref": "AWS::StackName"}
    for key in KEYS:
        assert outputs[f"{key}Id"] == {"Condition": "UseKms", "Value": {"Ref": key}}


def test_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["KeyBackend"]["AllowedValues"] == ["kms", "secrets"]
    assert params["KeyBackend"]["Default"] == "kms"
    assert params["ConfigTtlSeconds"]["Default"] == 30
    assert params["RenewalSchedule"]["Default"] == "rate(15 minutes)"
    assert params["CrlDistributionPoint"]["Default"] == ""
    assert {"ThrottlingBurstLimit", "ThrottlingRateLimit", "LogLevel"} <= set(params)


def test_managed_table_and_renew_at_index(template: dict[str, Any]) -> None:
    from stepless.stores import managed as store

    resource = template["Resources"]["ManagedTable"]
    props = resource["Properties"]
    assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True and props["DeletionProtectionEnabled"] is True
    spec = store.table_spec("x")  # what the library (and the moto tests) assume
    for key in ("BillingMode", "KeySchema", "GlobalSecondaryIndexes"):
        assert props[key] == spec[key], key
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(spec["AttributeDefinitions"], key=str)
    env = template["Resources"]["RenewFunction"]["Properties"]["Environment"]["Variables"]
    assert env[store.MANAGED_TABLE] == {"Ref": "ManagedTable"}
    assert _users(template, "ManagedTable") == {"RenewFunction"}
    assert template["Resources"]["RenewFunction"]["Properties"]["Timeout"] >= 60


def test_managed_renewal_permissions(template: dict[str, Any]) -> None:
    statements = _role_statements(template, "RenewFunction")
    index = [s for s in statements if "dynamodb:Query" in _as_list(s["Action"]) and "ManagedTable" in set(_refs(s))]
    assert index and {"Fn::Sub": "${ManagedTable.Arn}/index/RenewAt"} in _as_list(index[0]["Resource"])
    assert _users(template, "/managed/*") == {"RenewFunction"}
    (secrets,) = [s for s in statements if "/managed/*" in json.dumps(s)]
    assert set(_as_list(secrets["Action"])) == {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"}
    (put_events,) = [s for s in statements if "events:PutEvents" in _as_list(s["Action"])]
    assert "event-bus/default" in json.dumps(put_events["Resource"])
    assert put_events["Condition"] == {"StringEquals": {"events:source": "stepless"}}
    assert _users(template, "events:PutEvents") == {"RenewFunction"}


def test_managed_alarms_watch_emitted_metrics(template: dict[str, Any]) -> None:
    from stepless.managed import events

    alarms = {r["Properties"]["MetricName"]: r["Properties"] for r in template["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "stepless"}
    assert set(alarms) == {events.MANAGED_EXPIRING_SOON, events.CA_EXPIRING_SOON}
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    for props in alarms.values():
        assert props["Dimensions"] == [{"Name": "service", "Value": service}]
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "stepless"


# -------------------------------------------------------------------------------------------- layer


def test_layer_build_matches_template(template: dict[str, Any]) -> None:
    runtime = template["Globals"]["Function"]["Runtime"]
    makefile = (LAYER / "Makefile").read_text()
    assert "build-CommonLayer:" in makefile
    assert f"PYTHON_VERSION ?= {runtime.removeprefix('python')}" in makefile
    assert "aarch64" in makefile and "--only-binary=:all:" in makefile
    requirements = (LAYER / "requirements.txt").read_text().lower()
    for name in ("cryptography", "pyjwt", "aws-lambda-powertools"):
        assert re.search(rf"^{name}\b", requirements, re.M), name
    for name in ("click", "moto", "pyyaml", "jwcrypto"):
        assert not re.search(rf"^{name}\b", requirements, re.M), name


# Top-level modules the layer's requirements.txt provides (the import names, not the distributions).
LAYER_MODULES = {
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "botocore",
    "cryptography",
    "jwt",
}


def test_lambda_code_imports_only_layer_packages() -> None:
    """Everything but stepless.cli/stepless.local runs in Lambda: no click, moto or yaml there."""
    package = LAYER / "stepless"
    allowed = set(sys.stdlib_module_names) | LAYER_MODULES | {"stepless"}
    for path in package.rglob("*.py"):
        if path.relative_to(package).parts[0] in ("cli", "local"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try)  # try: import x / except ImportError
                    and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in t.handlers)
                    for s in t.body for n in ast.walk(s)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path}: imports {name}, not in the layer"
                assert not name.startswith(("stepless.cli", "stepless.local")), f"{path}: imports {name}"


def _built_layer() -> Path:
    base = Path(os.environ.get("STEPLESS_SAM_BUILD_DIR", ROOT / ".aws-sam" / "build"))
    return base / "CommonLayer" / "python"


def test_built_layer_wheels_match_runtime(template: dict[str, Any]) -> None:
    built = _built_layer()
    if not built.is_dir():
        pytest.skip(f"layer not built ({built} missing): run `sam build` to check its compiled wheels")
    version = template["Globals"]["Function"]["Runtime"].removeprefix("python")
    major, minor = (int(x) for x in version.split("."))
    shared = list(built.rglob("*.so"))
    assert shared, "no compiled extension in the layer (cryptography has one)"
    for so in shared:
        header = so.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", so
        byteorder = "little" if header[5] == 1 else "big"
        assert int.from_bytes(header[18:20], byteorder) == 183, f"{so}: not aarch64 (EM_AARCH64=183)"
        tag = re.search(r"\.(cpython-(\d)(\d+)-[^.]+|abi3)\.so$", so.name)
        if tag and tag.group(2):
            assert (int(tag.group(2)), int(tag.group(3))) == (major, minor), f"{so}: built for another Python"
    for wheel in built.glob("*.dist-info/WHEEL"):
        for line in wheel.read_text().splitlines():
            if not line.startswith("Tag: "):
                continue
            python, abi, platform = line.removeprefix("Tag: ").split("-")
            assert platform == "any" or platform.endswith("aarch64"), f"{wheel}: {line}"
            if abi == "abi3":
                assert int(python.removeprefix("cp3")) <= minor, f"{wheel}: {line}"
            elif abi.startswith("cp"):
                assert abi == f"cp{major}{minor}", f"{wheel}: {line}"


# ------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize("name", ["sign", "health", "roots"])
def test_api_event_fixtures_route(template: dict[str, Any], name: str) -> None:
    event = json.loads((ROOT / "events" / f"{name}.json").read_text())
    assert event["version"] == "2.0"
    http = event["requestContext"]["http"]
    assert event["rawPath"] == http["path"]
    found = find_route(routes(template), http["method"], http["path"])
    assert found is not None
    assert found[0].route_key == event["routeKey"] == event["requestContext"]["routeKey"]


def test_schedule_event_fixture() -> None:
    event = json.loads((ROOT / "events" / "schedule.json").read_text())
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"


def test_plain_http_crl_distribution_point(template: dict[str, Any]) -> None:
    """Issue 10 item 13: CloudFront with origin access control in front of the bucket's crl/ objects, its
    http:// URL in issued certificates unless CrlDistributionPoint names another."""
    from stepless.stores.dynamodb import objects as crl_store

    res = template["Resources"]
    dist = res["CrlDistribution"]
    assert dist["Condition"] == "HasHttpCrl" and template["Parameters"]["HttpCrlDistribution"]["Default"] == "true"
    config = dist["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["CrlBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["CrlOriginAccessControl", "Id"]}
    prefix, name = crl_store.KEY.split("/")
    assert origin["OriginPath"] == f"/{prefix}"
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "allow-all" and behavior["AllowedMethods"] == ["GET", "HEAD"]
    oac = res["CrlOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    (statement,) = res["CrlBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"} and statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == {"Fn::Sub": "${CrlBucket.Arn}/" + prefix + "/*"}
    assert "${CrlDistribution}" in statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    url = {"Fn::Sub": "http://${CrlDistribution.DomainName}/" + name}
    cdp = template["Globals"]["Function"]["Environment"]["Variables"]["STEPLESS_CRL_DISTRIBUTION_POINT"]
    assert cdp == {"Fn::If": ["HasCrlDistributionPoint", {"Ref": "CrlDistributionPoint"},
                              {"Fn::If": ["HasHttpCrl", url, ""]}]}
    assert template["Outputs"]["CrlUrl"] == {"Condition": "HasHttpCrl", "Description": template["Outputs"]["CrlUrl"][
        "Description"], "Value": url}
    assert res["CrlBucket"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
