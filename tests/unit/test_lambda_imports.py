"""The functions never import boto3 (nor s3transfer): botocore alone is ~20 ms of import and ~70 ms of
client creation cheaper, at every cold start (see stepless.aws)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

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
