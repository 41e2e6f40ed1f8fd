"""Deploy template.yaml's AWS resources (tables, keys, …) to a moto server with moto's CloudFormation.

moto skips ``AWS::Serverless::*`` types; the local gateway reads the functions, routes and environment
from the template instead (see :mod:`stepless.local.template`). Before ``create_stack`` the template is
adapted minimally for moto (:func:`moto_template`). Two moto gaps are filled from the declared
properties: KMS keys are created through the KMS API (moto's CloudFormation makes every key symmetric),
and TTL and point-in-time recovery are applied to the tables (moto's CloudFormation ignores both).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from stepless.admin.target import LOCAL_CREDENTIALS
from stepless.local.template import condition, function_environment, functions, load_template, parameter_defaults

__all__ = [
    "LOCAL_CREDENTIALS",
    "StackError",
    "default_template_path",
    "deploy_local_stack",
    "function_env",
    "moto_template",
]


_PSEUDO = re.compile(r"AWS::[A-Za-z]+")
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")
KMS_KEY = "AWS::KMS::Key"
_TAG_STACK = "stepless:stack-name"
_TAG_LOGICAL_ID = "stepless:logical-id"
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}


class StackError(RuntimeError):
    """The local stack could not be created, or exists with other parameters."""


# Template parameters the local stack always sets: no CloudFront in front of the CRL (the local gateway
# serves GET /crl itself).
LOCAL_PARAMETERS = {"HttpCrlDistribution": "false"}


def default_template_path() -> Path:
    """``$STEPLESS_TEMPLATE``, else the source tree's template.yaml, else ./template.yaml."""
    env = os.environ.get("STEPLESS_TEMPLATE")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[4] / "template.yaml", Path.cwd() / "template.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("template.yaml not found (set STEPLESS_TEMPLATE)")


def _references(node: Any) -> Iterator[str]:
    """Logical ids (or parameter names) a template fragment refers to."""
    if isinstance(node, list):
        for item in node:
            yield from _references(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            yield value
        elif key == "Fn::GetAtt":
            target = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
            if isinstance(target, str):
                yield target
        elif key == "Fn::Sub":
            text, local = (value, {}) if isinstance(value, str) else (value[0], value[1])
            for name in _SUB_VAR.findall(text):
                base = name.split(".", 1)[0]
                if base not in local:
                    yield base
            yield from _references(local)
        else:
            yield from _references(value)


def _depends_on(resource: Mapping[str, Any]) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def _substitute(node: Any, values: Mapping[str, Mapping[str, str]]) -> Any:
    """Replace Ref/GetAtt/Sub references to ``values``' logical ids by their literal values."""
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in values:
        return values[node["Ref"]]["Ref"]
    if set(node) == {"Fn::GetAtt"}:
        target, attr = node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else (None, None)
        if target in values:
            return values[target][attr]
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):

        def literal(m: re.Match[str]) -> str:
            base, _, attr = m.group(1).partition(".")
            return values[base][attr or "Ref"] if base in values else m.group(0)

        return {"Fn::Sub": _SUB_VAR.sub(literal, node["Fn::Sub"])}
    return {key: _substitute(value, values) for key, value in node.items()}


def moto_template(
    template: Mapping[str, Any], created: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """The template as moto's CloudFormation can create it.

    - no ``Transform`` and no ``Globals`` (SAM-only);
    - no ``AWS::Serverless::*`` resources, nor resources and outputs referring to them or to the
      resources SAM would generate from them (transitively);
    - no ``AWS::KMS::Key``: moto's CloudFormation ignores KeySpec/KeyUsage (always a symmetric key)
      and stores a KeyPolicy mapping unserialized, so :func:`deploy_local_stack` creates the keys
      through the KMS API; references to them become the literal values in ``created``
      (logical id → {"Ref": key id, "Arn": key ARN}), or "" for keys not created (false Condition).
    """
    result = copy.deepcopy(dict(template))
    result.pop("Transform", None)
    result.pop("Globals", None)
    resources: dict[str, Any] = result["Resources"]
    parameters = set(result.get("Parameters") or {})
    keys = [k for k, v in resources.items() if v.get("Type") == KMS_KEY]
    values = {k: {"Ref": "", "Arn": ""} for k in keys} | dict(created or {})
    dropped = [k for k, v in resources.items() if str(v.get("Type", "")).startswith("AWS::Serverless::")]
    for logical_id in [*dropped, *keys]:
        del resources[logical_id]
    for logical_id, resource in resources.items():
        resources[logical_id] = _substitute(resource, values)
    outputs = result.get("Outputs") or {}
    for key, output in outputs.items():
        outputs[key] = _substitute(output, values)

    def dangling(fragment: Any, extra: Iterable[str] = ()) -> bool:
        names = [*_references(fragment), *extra]
        return any(not _PSEUDO.fullmatch(n) and n not in resources and n not in parameters for n in names)

    changed = True
    while changed:
        changed = False
        for logical_id, resource in list(resources.items()):
            if dangling(resource.get("Properties"), _depends_on(resource)):
                del resources[logical_id]
                changed = True
    for key in [k for k, v in outputs.items() if dangling(v.get("Value"))]:
        del outputs[key]
    return result


_NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


def _resolve(node: Any, names: Mapping[str, str], condition: Callable[[str], bool] | None = None) -> Any:
    """Resolve Ref, string Fn::Sub (against ``names``: parameters and pseudo parameters) and, given
    ``condition`` (a Condition's name → its truth), Fn::If with AWS::NoValue."""
    if isinstance(node, list):
        return [v for v in (_resolve(item, names, condition) for item in node) if v is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return _NO_VALUE if node["Ref"] == "AWS::NoValue" else names[node["Ref"]]
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        return _SUB_VAR.sub(lambda m: names[m.group(1)], node["Fn::Sub"])
    if set(node) == {"Fn::If"} and condition is not None:
        name, when_true, when_false = node["Fn::If"]
        return _resolve(when_true if condition(name) else when_false, names, condition)
    resolved = ((key, _resolve(value, names, condition)) for key, value in node.items())
    return {key: value for key, value in resolved if value is not _NO_VALUE}


def _stack_keys(kms: Any, stack_name: str) -> dict[str, dict[str, str]]:
    """Keys created for ``stack_name`` (found by their tags): logical id → {"Ref": id, "Arn": arn}."""
    found: dict[str, dict[str, str]] = {}
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
            if tags.get(_TAG_STACK) == stack_name and _TAG_LOGICAL_ID in tags:
                found[tags[_TAG_LOGICAL_ID]] = {"Ref": key["KeyId"], "Arn": key["KeyArn"]}
    return found


def _create_keys(
    kms: Any, template: Mapping[str, Any], parameters: Mapping[str, str], names: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Create the template's KMS keys whose Condition holds, with the declared properties."""
    created: dict[str, dict[str, str]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != KMS_KEY:
            continue
        if "Condition" in resource and not condition(template, resource["Condition"], parameters):
            continue
        props = _resolve(resource.get("Properties") or {}, names,
                         lambda name: condition(template, name, parameters))
        args: dict[str, Any] = {
            "KeySpec": props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            "KeyUsage": props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "Description": props.get("Description", ""),
            "Tags": [
                *props.get("Tags", []),
                {"TagKey": _TAG_STACK, "TagValue": names["AWS::StackName"]},
                {"TagKey": _TAG_LOGICAL_ID, "TagValue": logical_id},
            ],
        }
        if "KeyPolicy" in props:
            policy = props["KeyPolicy"]
            args["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        meta = kms.create_key(**args)["KeyMetadata"]
        created[logical_id] = {"Ref": meta["KeyId"], "Arn": meta["Arn"]}
    return created


def _reconcile_tables(ddb: Any, template: Mapping[str, Any], physical: Mapping[str, str]) -> None:
    """Apply TTL and PITR as declared (moto's CloudFormation ignores both properties)."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::DynamoDB::Table" or logical_id not in physical:
            continue
        props, table = resource.get("Properties") or {}, physical[logical_id]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            status = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                spec = {"Enabled": True, "AttributeName": ttl["AttributeName"]}
                ddb.update_time_to_live(TableName=table, TimeToLiveSpecification=spec)
        pitr = props.get("PointInTimeRecoverySpecification") or {}
        if pitr.get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def _describe(cf: Any, stack_name: str) -> dict[str, Any] | None:
    try:
        stacks = cf.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def deploy_local_stack(
    endpoint_url: str,
    *,
    stack_name: str = "stepless-dev",
    key_backend: str = "kms",
    region: str = "us-east-1",
    template_path: str | Path | None = None,
) -> dict[str, str]:
    """Create (once) the template's stack on the moto server at ``endpoint_url``.

    Returns the stack outputs (``AuthorityTableName``, ``RootKeyId``, …), every created resource's
    physical id by logical id (``AuthorityTable`` → table name, ``IntermediateKey`` → key id, …) and
    ``AWS::StackName``/``AWS::Region``/``AWS::AccountId``. If the stack exists it is returned as is
    (a different ``KeyBackend`` is an error).
    """
    if key_backend not in ("kms", "secrets"):
        raise ValueError(f"key_backend must be kms or secrets, not {key_backend!r}")
    template = load_template(template_path or default_template_path())
    cf = _client("cloudformation", endpoint_url, region)
    kms = _client("kms", endpoint_url, region)
    stack = _describe(cf, stack_name)
    if stack is None:
        parameters = parameter_defaults(template) | LOCAL_PARAMETERS | {"KeyBackend": key_backend}
        account = _client("sts", endpoint_url, region).get_caller_identity()["Account"]
        names = parameters | {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        created = _create_keys(kms, template, parameters, names)
        cf.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(moto_template(template, created)),
            Parameters=[{"ParameterKey": k, "ParameterValue": v}
                        for k, v in (LOCAL_PARAMETERS | {"KeyBackend": key_backend}).items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        cf.get_waiter("stack_create_complete").wait(StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        stack = _describe(cf, stack_name)
    if stack is None or stack.get("StackStatus") not in _DONE:
        status = None if stack is None else stack.get("StackStatus")
        raise StackError(f"local stack {stack_name}: {status}")
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    if params.get("KeyBackend", key_backend) != key_backend:
        raise StackError(f"local stack {stack_name} exists with KeyBackend={params['KeyBackend']}, not {key_backend}")

    result: dict[str, str] = {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": stack["StackId"].split(":")[4],
    }
    for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            logical, physical = summary.get("LogicalResourceId"), summary.get("PhysicalResourceId")
            if logical and physical:
                result[logical] = physical
    result |= {logical_id: key["Ref"] for logical_id, key in _stack_keys(kms, stack_name).items()}
    _reconcile_tables(_client("dynamodb", endpoint_url, region), template, result)
    for output in stack.get("Outputs", []):
        result[output["OutputKey"]] = output["OutputValue"]
    return result


def function_env(
    resources: Mapping[str, str],
    *,
    endpoint_url: str | None = None,
    template_path: str | Path | None = None,
) -> dict[str, dict[str, str]]:
    """Function logical id → the environment it gets locally, from :func:`deploy_local_stack`'s result.

    Like Lambda, it includes ``AWS_REGION``/``AWS_DEFAULT_REGION``; with ``endpoint_url`` also
    ``AWS_ENDPOINT_URL`` and the placeholder credentials moto accepts.
    """
    template = load_template(template_path or default_template_path())
    parameters = LOCAL_PARAMETERS | ({"KeyBackend": resources["KeyBackend"]} if "KeyBackend" in resources else {})
    region = resources.get("AWS::Region", "us-east-1")
    extra = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if endpoint_url:
        extra |= {"AWS_ENDPOINT_URL": endpoint_url, **LOCAL_CREDENTIALS}
    return {
        function_id: {**function_environment(template, function_id, resources, parameters), **extra}
        for function_id in functions(template)
    }
