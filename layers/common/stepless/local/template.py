"""Read template.yaml: CloudFormation short-form tags, HttpApi routes, function environments.

The local stack uses the SAM template as its one source of truth: which function serves which route,
with which handler and environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Route",
    "TemplateError",
    "condition",
    "find_route",
    "function_environment",
    "functions",
    "load_template",
    "parameter_defaults",
    "routes",
]

SERVERLESS_FUNCTION = "AWS::Serverless::Function"

# Short-form tag → long-form key. !GetAtt and !Ref are special-cased below.
_TAGS = {
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "Condition": "Condition",
    "And": "Fn::And",
    "Equals": "Fn::Equals",
    "FindInMap": "Fn::FindInMap",
    "GetAtt": "Fn::GetAtt",
    "GetAZs": "Fn::GetAZs",
    "If": "Fn::If",
    "ImportValue": "Fn::ImportValue",
    "Join": "Fn::Join",
    "Not": "Fn::Not",
    "Or": "Fn::Or",
    "Ref": "Ref",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "Sub": "Fn::Sub",
    "Transform": "Fn::Transform",
    "Length": "Fn::Length",
    "ToJsonString": "Fn::ToJsonString",
}


class TemplateError(ValueError):
    """The template lacks something the local stack needs, or uses what it cannot resolve."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads CloudFormation's short-form intrinsic functions."""


def _construct(tag: str) -> Any:
    key = _TAGS[tag]

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # pragma: no cover - yaml has no other node kinds
            raise TemplateError(f"unsupported node for !{tag}")
        return {key: value}

    return construct


for _tag in _TAGS:
    _Loader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, short-form tags turned into long-form dicts."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_Loader)
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return data


@dataclass(frozen=True)
class Route:
    """One HttpApi event: METHOD PATH served by a function's handler."""

    function_id: str
    method: str
    path: str
    code_uri: str
    handler: str

    @property
    def route_key(self) -> str:
        """API Gateway's routeKey, e.g. ``GET /roots``."""
        return f"{self.method} {self.path}"

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters if ``path`` matches this route's path (method not considered), else None."""
        return _compile(self.path)(path)


def _compile(template_path: str) -> Any:
    parts = template_path.strip("/").split("/")
    pattern = ""
    names: list[str] = []
    for part in parts:
        m = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", part)
        if m:
            names.append(m.group(1))
            pattern += "/(.+)" if m.group(2) else "/([^/]+)"
        else:
            pattern += "/" + re.escape(part)
    regex = re.compile(pattern if template_path != "/" else "/")

    def match(path: str) -> dict[str, str] | None:
        found = regex.fullmatch(path)
        return None if found is None else dict(zip(names, found.groups(), strict=True))

    return match


def functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id → Properties of each ``AWS::Serverless::Function``, Globals merged in (shallowly)."""
    globals_ = dict(template.get("Globals", {}).get("Function", {}) or {})
    result: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != SERVERLESS_FUNCTION:
            continue
        props = {**globals_, **(resource.get("Properties") or {})}
        result[logical_id] = props
    return result


def routes(template: Mapping[str, Any]) -> list[Route]:
    """Every HttpApi event of every function, in template order."""
    found: list[Route] = []
    for function_id, props in functions(template).items():
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            ep = event.get("Properties") or {}
            method, path = ep.get("Method"), ep.get("Path")
            if not isinstance(method, str) or not isinstance(path, str):
                raise TemplateError(f"{function_id}.{event_name}: HttpApi event needs Method and Path")
            code_uri, handler = props.get("CodeUri"), props.get("Handler")
            if not isinstance(code_uri, str) or not isinstance(handler, str):
                raise TemplateError(f"{function_id}: CodeUri and Handler must be plain strings")
            found.append(Route(function_id, method.upper(), path, code_uri, handler))
    return found


def find_route(all_routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving ``method path`` and its path parameters; literal paths win over ``{param}``."""
    candidates: list[tuple[int, Route, dict[str, str]]] = []
    for route in all_routes:
        if route.method not in (method.upper(), "ANY"):
            continue
        params = route.match(path)
        if params is not None:
            candidates.append((len(params), route, params))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1].method == "ANY"))
    return candidates[0][1], candidates[0][2]


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter's default as a string (parameters without one are left out)."""
    return {
        name: _scalar(spec["Default"]) for name, spec in (template.get("Parameters") or {}).items() if "Default" in spec
    }


def condition(template: Mapping[str, Any], name: str, parameters: Mapping[str, str]) -> bool:
    """Evaluate one of the template's Conditions (Equals/Not/And/Or/Condition over parameters)."""

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return parameters[node["Ref"]]
        return node

    def truth(node: Any) -> bool:
        (fn, args), *_ = node.items()
        if fn == "Condition":
            return truth(template["Conditions"][args])
        if fn == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if fn == "Fn::Not":
            return not truth(args[0])
        if fn == "Fn::And":
            return all(truth(a) for a in args)
        if fn == "Fn::Or":
            return any(truth(a) for a in args)
        raise TemplateError(f"condition {name}: unsupported {fn}")

    return truth(template["Conditions"][name])


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar(v) for v in value)
    return str(value)


def function_environment(
    template: Mapping[str, Any],
    function_id: str,
    outputs: Mapping[str, str],
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment variables of ``function_id`` (Globals + its own), references resolved.

    ``{"Ref": X}`` resolves to ``outputs[X]`` (physical names by logical id, or pseudo parameters such
    as ``AWS::Region``), else ``parameters[X]``, else the parameter's default; ``Fn::Sub`` strings
    resolve the same way.
    """
    props = functions(template).get(function_id)
    if props is None:
        raise TemplateError(f"no function {function_id} in the template")
    resource_props = template["Resources"][function_id].get("Properties") or {}
    global_vars = ((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {})
    own_vars = (resource_props.get("Environment") or {}).get("Variables", {})
    values = {**parameter_defaults(template), **(parameters or {})}

    def ref(name: str) -> str:
        if name in outputs:
            return outputs[name]
        if name in values:
            return values[name]
        raise TemplateError(f"{function_id}: cannot resolve Ref {name}")

    def resolve(name: str, value: Any) -> str:
        if isinstance(value, str | int | float | bool):
            return _scalar(value)
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            cond, when_true, when_false = value["Fn::If"]
            return resolve(name, when_true if condition(template, cond, values) else when_false)
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return ref(str(value["Ref"]))
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: ref(m.group(1)), value["Fn::Sub"])
        raise TemplateError(f"{function_id}: cannot resolve environment variable {name}: {value!r}")

    merged = {**global_vars, **own_vars}
    return {name: resolve(name, value) for name, value in merged.items()}
