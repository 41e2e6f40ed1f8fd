"""Who may invoke the functions (issue 10 item 10): their resource policies admit only this stack's API
(each function only on the routes it serves) and its own schedules; the mTLS paths honour a client
certificate only on the configured mTLS custom domain.

The resource policies are what SAM generates from the functions' events: the test asks SAM's own
translator (/opt/samcli) for them rather than trusting how we think it translates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stepless.local.template import functions, load_template, routes

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = Path("/opt/samcli/bin/python")
TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    props = resource.get("Properties") or {}
    for key in ("CodeUri", "ContentUri"):
        if key in props:
            props[key] = "s3://bucket/key"  # what `sam package` puts there
out = transform(template, {}, NoManagedPolicies())
print(json.dumps({k: v for k, v in out["Resources"].items() if v["Type"] == "AWS::Lambda::Permission"}))
"""


@pytest.fixture(scope="module")
def permissions() -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        pytest.skip("SAM CLI not installed (python3 -m venv /opt/samcli && /opt/samcli/bin/pip install aws-sam-cli)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    out = subprocess.run([str(SAM_PYTHON), "-c", TRANSLATE, str(ROOT / "template.yaml")], capture_output=True,
                         text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _wild(path: str) -> str:
    """``/root/{sha}`` and SAM's ``/root/*`` alike."""
    return re.sub(r"\{[^}]+\}|\*", "*", path)


def test_every_invoke_permission_names_its_source(permissions: dict[str, Any]) -> None:
    template = load_template(ROOT / "template.yaml")
    declared = {(r.function_id, r.method, r.path) for r in routes(template)}
    schedules = {(fn, name) for fn, props in functions(template).items()
                 for name, event in props["Events"].items() if event["Type"] == "Schedule"}
    seen_routes, seen_schedules = set(), set()
    for logical_id, resource in permissions.items():
        props = resource["Properties"]
        assert props["Action"] == "lambda:InvokeFunction"
        function_id = props["FunctionName"]["Ref"]
        if props["Principal"] == "apigateway.amazonaws.com":
            text, values = props["SourceArn"]["Fn::Sub"]
            assert values["__ApiId__"] == {"Ref": "CaApi"}, logical_id  # this API, no other
            m = re.fullmatch(r"arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
                             r"\$\{__ApiId__\}/\$\{__Stage__\}/(GET|HEAD|POST)(/.*)", text)
            assert m, text
            matches = {(f, method, path) for f, method, path in declared
                       if (f, method, _wild(path)) == (function_id, m.group(1), _wild(m.group(2)))}
            assert matches, (logical_id, text)
            seen_routes |= matches
        else:
            assert props["Principal"] == "events.amazonaws.com", logical_id
            (rule, attribute) = props["SourceArn"]["Fn::GetAtt"]
            assert attribute == "Arn" and rule.startswith(function_id), logical_id
            seen_schedules.add((function_id, rule.removeprefix(function_id)))
    assert seen_routes == declared
    assert seen_schedules == schedules
    for logical_id, resource in template["Resources"].items():  # no other way in
        assert resource["Type"] not in ("AWS::Lambda::Url", "AWS::Lambda::Permission"), logical_id
        assert "FunctionUrlConfig" not in (resource.get("Properties") or {}), logical_id


def test_mtls_domain_setting_is_the_custom_domain_with_a_truststore() -> None:
    template = load_template(ROOT / "template.yaml")
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["STEPLESS_MTLS_DOMAIN"] == {"Fn::If": ["HasMtls", {"Ref": "DomainName"}, ""]}
