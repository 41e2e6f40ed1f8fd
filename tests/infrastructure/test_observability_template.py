"""template.yaml's observability: the alarm topic, every alarm's actions, the alarms, the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stepless import observability
from stepless.errors import Throttled
from stepless.local.template import functions, load_template

ROOT = Path(__file__).resolve().parents[2]
ALARM = "AWS::CloudWatch::Alarm"
TOPIC = {"Ref": "AlarmTopic"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == ALARM}


def _watched(props: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(namespace, metric, dimensions) of a single-metric alarm, in either form (metric or query)."""
    if "MetricName" in props:
        return props["Namespace"], props["MetricName"], {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
    (query,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    metric = query["MetricStat"]["Metric"]
    return metric["Namespace"], metric["MetricName"], {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def _env(template: dict[str, Any]) -> dict[str, Any]:
    return template["Globals"]["Function"]["Environment"]["Variables"]


def test_metric_names_match_the_library(template: dict[str, Any]) -> None:
    env = _env(template)
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "stepless" == observability.namespace()
    assert env["POWERTOOLS_SERVICE_NAME"] == "stepless" == observability.SERVICE
    assert template["Globals"]["Function"]["Tracing"] == "Active"


def test_alarm_topic(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    topic = resources["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    # Not alias/aws/sns: CloudWatch alarms cannot use the AWS managed key to publish.
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::If": ["UseKms", {"Ref": "AlarmTopicKey"},
                                                                {"Ref": "AWS::NoValue"}]}
    key = resources["AlarmTopicKey"]
    assert key["Condition"] == "UseKms" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": TOPIC, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    outputs = template["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == TOPIC
    assert "${Dashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


def test_every_alarm_notifies_the_topic(template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    assert {"RenewalFailuresAlarm", "ApiServerErrorsAlarm", "ServerErrorsAlarm"} <= set(alarms)
    for name, props in alarms.items():
        assert TOPIC in props.get("AlarmActions", []), f"{name} has no AlarmActions to AlarmTopic"
        assert props.get("TreatMissingData") == "notBreaching", name


def test_api_5xx_alarm(template: dict[str, Any]) -> None:
    watched = {_watched(p)[:2]: _watched(p)[2] for p in _alarms(template).values()}
    assert watched[("AWS/ApiGateway", "5xx")] == {"ApiId": {"Ref": "CaApi"}}


def test_throttle_alarm_for_every_function(template: dict[str, Any]) -> None:
    throttled = {_watched(p)[2]["FunctionName"]["Ref"] for p in _alarms(template).values()
                 if _watched(p)[:2] == ("AWS/Lambda", "Throttles")}
    assert throttled == set(functions(template))


def test_alarms_on_the_ca_metrics(template: dict[str, Any]) -> None:
    service = {"service": _env(template)["POWERTOOLS_SERVICE_NAME"]}
    watched = [_watched(p) for p in _alarms(template).values()]
    assert ("stepless", observability.SERVER_ERRORS, service) in watched  # emitted with exactly this dimension
    throttling = ("stepless", observability.REJECTED, {**service, "reason": "throttled"})
    assert throttling in watched and "throttled" in observability.REASONS
    assert observability.reason_code(Throttled("kms is throttling requests")) == "throttled"
    # the CA expiry metric (emitted by the scheduled renewal run), harmless if never emitted
    assert ("stepless", "CAExpiringSoon", service) in watched


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    names = set(template["Resources"]) | {"AWS::Region", "AWS::StackName"}
    for var in re.findall(r"\$\{([^}]+)\}", body):
        assert var.split(".")[0] in names, f"dashboard refers to unknown {var}"
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: f"x-{m.group(1)}", body))


def test_dashboard(template: dict[str, Any]) -> None:
    assert template["Resources"]["Dashboard"]["Type"] == "AWS::CloudWatch::Dashboard"
    body = _dashboard(template)
    metrics: set[str] = set()
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    metrics |= set(re.findall(r'MetricName=\\?"(\w+)\\?"', item["expression"]))
            if len(row) > 1 and isinstance(row[1], str):
                metrics.add(row[1])
    o = observability
    assert {o.ISSUED, o.RENEWED, o.REVOKED, o.REJECTED, o.LATENCY, o.SERVER_ERRORS, "5xx", "Throttles"} <= metrics
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert set(alarm_widget["properties"]["alarms"]) == {f"x-{name}.Arn" for name in _alarms(template)}


def test_dashboard_searches_match_emitted_dimensions(template: dict[str, Any]) -> None:
    """Each SEARCH names the exact dimension set the library emits (CloudWatch matches it exactly)."""
    expected = {"Issued": {"kind", "provisioner_type", "service"}, "Renewed": {"kind", "provisioner_type", "service"},
                "Revoked": {"kind", "service"}, "Rejected": {"reason", "service"}, "Latency": {"route", "service"}}
    found = {}
    for widget in _dashboard(template)["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    m = re.search(r"\{stepless,([\w,]+)\} MetricName=\\?\"(\w+)", item["expression"])
                    assert m, item
                    found[m.group(2)] = set(m.group(1).split(","))
    assert found == expected
    # and the library emits exactly those (service is added by Powertools)
    observability.metrics.begin()
    observability.metrics.issued("x509", "JWK")
    observability.metrics.renewed("ssh", "SSHPOP")
    observability.metrics.revoked("x509")
    observability.metrics.rejected("token_expired")
    observability.metrics.latency("POST /sign", 1.0)
    import io

    for obj in observability.metrics.flush(stream=io.StringIO()):
        (directive,) = obj["_aws"]["CloudWatchMetrics"]
        (metric,) = directive["Metrics"]
        assert set(directive["Dimensions"][0]) == expected[metric["Name"]]
