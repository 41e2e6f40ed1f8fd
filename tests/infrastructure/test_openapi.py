"""docs/openapi.yaml is valid OpenAPI 3.1 and tells the truth about the routes.

Three sources must agree on the set of (method, path): the spec, template.yaml's HttpApi events, and the
routes the handlers' ``App`` objects register (read from ``app._routes``, the compiled patterns turned
back into ``/path/{param}``). Per function, the template's routes must be exactly those of the App its
``Handler`` serves.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepless.local.template import functions, load_template, routes

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
TEMPLATE_PATH = ROOT / "template.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Route = tuple[str, str]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    with open(SPEC_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow local ``$ref``s (``#/a/b``) until a node without one."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are expected, got {ref}"
        assert ref not in seen, f"reference cycle at {ref}"
        seen.add(ref)
        node = spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _operations(spec: dict[str, Any]) -> dict[Route, dict[str, Any]]:
    out = {}
    for path, item in spec["paths"].items():
        item = _resolve(spec, item)
        for method in METHODS:
            if method in item:
                out[(method.upper(), path)] = item[method]
    return out


def _spec_routes(spec: dict[str, Any]) -> set[Route]:
    return set(_operations(spec))


def _template_routes(template: dict[str, Any]) -> set[Route]:
    """API Gateway's route keys; a greedy ``{name+}`` is ``{name}`` in OpenAPI (which has no greedy form)."""
    return {(r.method, _openapi_path(r.path)) for r in routes(template)}


def _openapi_path(path: str) -> str:
    return re.sub(r"\{(\w+)\+\}", r"{\1}", path)


_SEGMENT = r"\(\?P<(\w+)>\[\^/\]\+\)"  # (?P<name>[^/]+): one path segment, API Gateway's {name}
_GREEDY = r"\(\?P<(\w+)>\.\+\)"  # (?P<name>.+): the rest of the path, API Gateway's {name+}


def _normalize(pattern: str) -> str:
    """A route regex in API Gateway's path syntax: ``^/1\\.0/ocsp/(?P<request>.+)$`` → ``/1.0/ocsp/{request+}``."""
    text = pattern.removeprefix("^").removesuffix("$")
    text = re.sub(_SEGMENT, r"{\1}", text)
    text = re.sub(_GREEDY, r"{\1+}", text)
    text = re.sub(r"\\(.)", r"\1", text)
    assert not re.search(r"[()\[\]*?|^$]|\+(?!\})", text), f"cannot normalize route pattern {pattern!r}"
    return text


def _app_routes(app: Any) -> set[Route]:
    """(method, path) as template.yaml writes it, greedy parameters included."""
    return {(method, _normalize(pattern.pattern)) for method, pattern, _fn in app._routes}


def _load_app(code_uri: str, handler: str) -> Any:
    """The App behind a function's ``Handler`` (``app.handler`` is a bound method of it)."""
    module_name, _, attr = handler.rpartition(".")
    path = ROOT / code_uri / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"openapi_test_{code_uri.strip('/').replace('/', '_')}", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = getattr(module, attr)
    app = getattr(entry, "__self__", None)
    assert app is not None and hasattr(app, "_routes"), f"{path}:{attr} is not an App's handler"
    return app


# ----------------------------------------------------------------------------------- validity


def test_spec_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason="pip install openapi-spec-validator")
    from openapi_spec_validator.readers import read_from_filename

    data, base_uri = read_from_filename(str(SPEC_PATH))
    assert str(data["openapi"]).startswith("3.1.")
    validator.validate(data, base_uri=base_uri)


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(spec, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


# ----------------------------------------------------------------------------------- the routes


def test_spec_routes_equal_template_routes(spec: dict[str, Any], template: dict[str, Any]) -> None:
    documented, deployed = _spec_routes(spec), _template_routes(template)
    assert documented - deployed == set(), "documented but not in template.yaml"
    assert deployed - documented == set(), "in template.yaml but not documented"


def test_spec_routes_equal_handler_routes(spec: dict[str, Any]) -> None:
    from stepless.api import renew, revoke, sign, ssh

    served: set[Route] = set()
    for module in (sign, renew, revoke, ssh):
        served |= {(method, _openapi_path(path)) for method, path in _app_routes(module.app)}
    documented = _spec_routes(spec)
    assert documented - served == set(), "documented but no handler registers it"
    assert served - documented == set(), "a handler registers it but it is not documented"


def test_each_function_serves_exactly_its_template_routes(template: dict[str, Any]) -> None:
    """Exact, greedy ``{name+}`` included: a one-segment App pattern behind a greedy route (or the reverse)
    would refuse what API Gateway passes on."""
    by_function: dict[str, set[Route]] = {}
    for r in routes(template):
        by_function.setdefault(r.function_id, set()).add((r.method, r.path))
    props = functions(template)
    assert by_function, "template.yaml has no HttpApi routes"
    for function_id, expected in by_function.items():
        app = _load_app(props[function_id]["CodeUri"], props[function_id]["Handler"])
        assert _app_routes(app) == expected, function_id


def test_every_path_is_served_at_both_prefixes(spec: dict[str, Any]) -> None:
    paths = set(spec["paths"])
    for path in paths:
        twin = path.removeprefix("/1.0") if path.startswith("/1.0/") else "/1.0" + path
        assert twin in paths, f"{path} has no {twin}"
        assert _resolve(spec, spec["paths"][path]) == _resolve(spec, spec["paths"][twin]), path


# ----------------------------------------------------------------------------------- the contents


def test_path_parameters_are_declared(spec: dict[str, Any]) -> None:
    for (method, path), op in _operations(spec).items():
        params = [_resolve(spec, p) for p in op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), f"{method} {path}"


def test_responses_are_documented_with_schemas(spec: dict[str, Any]) -> None:
    for (method, path), op in _operations(spec).items():
        responses = op["responses"]
        assert "default" not in responses, f"{method} {path}: list the status codes, no default"
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, f"{method} {path}: one success status"
        assert "500" in responses, f"{method} {path}: every route can fail with 500"
        for code, response in responses.items():
            response = _resolve(spec, response)
            content = response.get("content")
            if "/acme/" in path and not code.startswith("2"):  # RFC 8555 problem documents
                schema = _resolve(spec, content["application/problem+json"]["schema"])
                assert {"type", "detail"} <= set(schema["required"]), f"{method} {path} {code}"
                continue
            assert content, f"{method} {path} {code}: no content"
            for media_type, media in content.items():
                assert "schema" in media, f"{method} {path} {code} {media_type}: no schema"
            if not code.startswith("2"):
                schema = _resolve(spec, content["application/json"]["schema"])
                alternatives = [_resolve(spec, s) for s in schema.get("anyOf", [schema])]
                assert all("message" in alt.get("required", []) for alt in alternatives), \
                    f"{method} {path} {code}: not an error body"


def test_post_bodies_and_their_error_statuses(spec: dict[str, Any]) -> None:
    for (method, path), op in _operations(spec).items():
        if method != "POST":
            continue
        assert "413" in op["responses"], f"{method} {path}: bodies over 64 KiB are refused"
        if path.endswith("/renew") and not path.startswith(("/ssh", "/1.0/ssh")):
            assert "requestBody" not in op, "POST /renew takes no body"
            continue
        body = _resolve(spec, op["requestBody"])
        assert body["required"] is True
        (media_type,) = body["content"]
        if "/acme/" in path:  # RFC 8555 §6.2: every ACME POST is a JWS
            assert media_type == "application/jose+json"
            assert "400" in op["responses"], f"{method} {path}: a malformed JWS is a 400"
            continue
        if path.endswith("/ocsp"):
            assert media_type == "application/ocsp-request"
            continue
        assert media_type == "application/json"
        assert _resolve(spec, body["content"][media_type]["schema"])["type"] == "object"
        assert "400" in op["responses"], f"{method} {path}: a malformed JSON body is a 400"


@pytest.mark.parametrize(("path", "media_type"), [
    ("/crl", "application/pkix-crl"),
    ("/ocsp", "application/ocsp-response"),
    ("/ocsp/{request}", "application/ocsp-response"),
    ("/ssh/krl", "application/octet-stream"),
    ("/roots.pem", "application/x-pem-file"),
])
def test_binary_and_pem_responses(spec: dict[str, Any], path: str, media_type: str) -> None:
    for prefix in ("", "/1.0"):
        item = _resolve(spec, spec["paths"][prefix + path])
        (op,) = (item[m] for m in METHODS if m in item)
        ok = _resolve(spec, op["responses"]["200"])
        assert media_type in ok["content"], f"{prefix}{path}"


@pytest.mark.parametrize(("name", "required"), [
    ("SignRequest", {"csr", "ott"}),
    ("SignResponse", {"crt", "ca", "certChain"}),
    ("RevokeRequest", {"serial"}),
    ("SSHSignRequest", {"publicKey", "ott"}),
    ("SSHSignResponse", {"crt"}),
    ("RootsResponse", {"crts"}),
    ("ProvisionersResponse", {"provisioners", "nextCursor"}),
    ("Error", {"status", "message"}),
])
def test_contract_schemas(spec: dict[str, Any], name: str, required: set[str]) -> None:
    schema = spec["components"]["schemas"][name]
    assert set(schema["required"]) == required
    assert required <= set(schema["properties"])
