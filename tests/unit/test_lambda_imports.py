"""The functions never import boto3 (nor s3transfer): botocore alone is ~20 ms of import and ~70 ms of
client creation cheaper, at every cold start (see stepless.aws). And a cold start (import app.py + the first
request) loads only what that request needs: no ACME, SSH or administration modules where they are not
used (issue 14, ``python -m bench real --only init``)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from tests.support.ca import env, event

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPS = sorted(ROOT.glob("functions/*/app.py"))
FORBIDDEN = ("boto3", "s3transfer")

# Import the app by path as the Lambda runtime does, create the clients the functions use (no request is
# sent), answer GET /health, then list what was imported.
_CODE = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", {path!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
imported = {{"import": sorted(sys.modules)}}
from stepless import aws
for service in ("dynamodb", "kms", "secretsmanager", "s3", "sts", "events"):
    aws.client(service)
imported["clients"] = sorted(sys.modules)
if {health!r}:
    app.handler({event!r}, None)
    imported["health"] = sorted(sys.modules)
print(json.dumps(imported))
"""


def _child_env() -> dict[str, str]:
    """The functions' environment variables, and nothing AWS-related from ours."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "STEPLESS_", "POWERTOOLS_", "_X_AMZN")) and k != "PYTHONPATH"}
    return keep | env() | {"PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


def test_every_function_is_checked() -> None:
    assert {p.parent.name for p in APPS} >= {"sign", "renew", "revoke", "ssh"}


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.parent.name)
def test_function_does_not_import_boto3(app: pathlib.Path) -> None:
    code = _CODE.format(path=str(app), health=app.parent.name == "sign", event=event("GET", "/health"))
    proc = subprocess.run([sys.executable, "-c", code], env=_child_env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = json.loads(proc.stdout.splitlines()[-1])
    for stage, modules in stages.items():
        found = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
        assert not found, f"{app.parent.name}: after {stage}, imported {found[:10]}"
    assert "botocore.session" in stages["clients"]


def test_provisioner_types_not_configured_are_not_imported():
    """A configuration with only a JWK provisioner builds it without importing the OIDC, X5C, ACME or SSHPOP
    modules (cold start); a configured type is imported when built, and an unknown one is refused."""
    code = """\
import json, sys
from stepless import provisioners
from stepless.errors import ConfigError
kinds = lambda: sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("stepless.provisioners.")
                       and m.rsplit(".", 1)[1] in ("jwk", "oidc", "x5c", "acme", "sshpop"))
before = kinds()
assert provisioners._load_type("JWK").type == "JWK"
after_jwk = kinds()
assert provisioners._load_type("SSHPOP").type == "SSHPOP"
try:
    provisioners.build({"type": "NOPE", "name": "x"}, None)
    refused = False
except ConfigError:
    refused = True
print(json.dumps({"before": before, "jwk": after_jwk, "sshpop": kinds(), "refused": refused}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen == {"before": [], "jwk": ["jwk"], "sshpop": ["jwk", "sshpop"], "refused": True}, seen


# --- what a cold start loads: import app.py, then the function's first request ---------------------------
# Each function's INIT is measured by ``python -m bench real --only init``; this pins what it must not load
# (a prefix names a module and its submodules). The CA (KMS backend, JWK + SSHPOP provisioners, no ACME
# provisioner) lives in a moto server process, so the child's module set is the function's own.

# The AWS SDK modules no function imports; the AWS client's rewrite (stepless.awsclient) decides whether
# ``botocore`` joins them.
# boto3, and botocore's client machinery and urllib3: the lean AWS path (stepless.awsclient) answers a first
# request's calls with only botocore's exception classes imported (botocore.session is made on first need).
AWS_SDK_FORBIDDEN: tuple[str, ...] = ("boto3", "s3transfer", "urllib3", "botocore.session", "botocore.client",
                                      "botocore.endpoint", "botocore.compat", "botocore.auth", "botocore.awsrequest",
                                      "stepless.awssession")
NEVER_AT_INIT = (*AWS_SDK_FORBIDDEN, "moto", "aws_xray_sdk", "stepless.cli", "stepless.admin", "stepless.local",
                 "stepless.managed", "stepless.stores.sqlite", "stepless.signers.secrets", "stepless.signers.files",
                 "stepless.oidc_discovery", "stepless.provisioners.oidc", "stepless.provisioners.acme",
                 "stepless.acme", "stepless.stores.acme", "stepless.stores.dynamodb.acme",
                 "stepless.stores.dynamodb.managed", "stepless.stores.dynamodb.secrets")
# The SSH modules, which only the ssh function's routes need (the host index, stores.hosts, is part of every
# certificate recording's transaction).
SSH_ONLY = ("stepless.ssh", "stepless.services.ssh", "stepless.services.ssh_ca", "stepless.services.ssh_issuance",
            "stepless.stores.ssh_revoked", "stepless.stores.dynamodb.ssh_revoked")
FIRST_REQUEST_FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sign": (*NEVER_AT_INIT, *SSH_ONLY, "stepless.services.revoke", "stepless.services.crl",
             "stepless.services.ocsp", "stepless.stores.dynamodb.ocsp_responses", "stepless.stores.dynamodb.objects"),
    "renew": (*NEVER_AT_INIT, *SSH_ONLY, "stepless.services.revoke", "stepless.services.crl",
              "stepless.services.ocsp", "stepless.stores.dynamodb.ocsp_responses",
              "stepless.stores.dynamodb.objects"),
    "revoke": (*NEVER_AT_INIT, *SSH_ONLY),
    # POST /ssh/sign: none of the other SSH routes' services
    "ssh": (*NEVER_AT_INIT, "stepless.services.ssh_info", "stepless.services.ssh_bastion",
            "stepless.services.ssh_renew", "stepless.services.ssh_revoke", "stepless.ssh.templates",
            "stepless.stores.dynamodb.ocsp_responses", "stepless.services.crl", "stepless.services.ocsp",
            "stepless.x509.profile"),
}

_FIRST_REQUEST = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", {path!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
imported = {{"import": sorted(sys.modules)}}
res = app.handler({event!r}, None)
assert res["statusCode"] == {status}, res
imported["first request"] = sorted(sys.modules)
print(json.dumps(imported))
"""


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture(scope="module")
def first_requests() -> Any:
    """A CA in a moto server process and each function's first request (its hot route), made beforehand."""
    from bench import real
    from bench.common import quiet_logger

    with real._stack("kms") as ca, quiet_logger():
        yield real._init_events(ca), os.environ["AWS_ENDPOINT_URL"]


@pytest.mark.parametrize("fn", sorted(FIRST_REQUEST_FORBIDDEN))
def test_cold_start_loads_only_what_the_first_request_needs(fn: str, first_requests: Any) -> None:
    events, endpoint = first_requests
    ev, status = events[fn]
    code = _FIRST_REQUEST.format(path=str(ROOT / "functions" / fn / "app.py"), event=ev, status=status)
    proc = subprocess.run([sys.executable, "-c", code], env=_child_env() | {"AWS_ENDPOINT_URL": endpoint}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = json.loads(proc.stdout.splitlines()[-1])
    for stage, modules in stages.items():
        found = _loaded(modules, FIRST_REQUEST_FORBIDDEN[fn])
        assert not found, f"{fn}: after {stage}, imported {found[:12]}"
    assert "stepless.signers.kms" in stages["first request"]  # the request did sign


def test_every_function_has_a_first_request_budget() -> None:
    assert {p.parent.name for p in APPS} == set(FIRST_REQUEST_FORBIDDEN)


def test_acme_routes_name_existing_use_cases() -> None:
    """The ACME use cases are imported on the first ACME request, by name: every name resolves."""
    from stepless.api import acme

    for _path, name, _params in acme.POSTS:
        assert callable(acme.use_case(name)), name
    assert callable(acme.use_case("issuance.revoke_cert"))
