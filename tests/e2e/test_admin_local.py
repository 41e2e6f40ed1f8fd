"""Administration right after `stepless dev`, with a clean environment: no dev.env to source, no --stack, the
caller's (fake) AWS credentials present but never needed; changes applied at the CA's next request."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest
from cryptography import x509

from tests.e2e.conftest import CLI

pytestmark = pytest.mark.e2e


def clean_env(dev_ca, **extra: str) -> dict[str, str]:
    """The user's shell after `stepless dev`: nothing sourced; real-looking AWS credentials of another account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPLESS_"))}
    return {**env, "STEPLESS_HOME": str(dev_ca.home), "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", **extra}


def lifetime_hours(path) -> float:
    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    return (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() / 3600


@pytest.fixture
def admin(dev_ca, tmp_path):
    """Run our CLI in a clean environment; whatever a test adds to the shared CA is removed after it."""
    env = clean_env(dev_ca)

    def run(*args: str, check: bool = True, **kw):
        return dev_ca.stepless(*args, cwd=tmp_path, env=kw.pop("env", env), check=check, **kw)

    yield run
    listed = json.loads(run("ca", "provisioner", "list").stdout)
    for p in listed:
        if p["name"] in ("ops", "ops2"):
            run("ca", "provisioner", "remove", p["name"])
    run("ca", "claims", "--x509-max-dur", "", "--x509-default-dur", "", check=False)


def test_admin_commands_after_stepless_dev_with_no_environment(dev_ca, admin, tmp_path):
    pw = str(dev_ca.password_file)
    names = lambda res: [p["name"] for p in json.loads(res.stdout)]  # noqa: E731

    # add: the local CA applies it to its very next request (no TTL wait, no retry loop)
    res = admin("ca", "provisioner", "add", "ops", "--type", "JWK", "--create", "--password-file", pw)
    assert "The local CA applies the change to its next request." in res.stderr
    assert "ops" in names(admin("ca", "provisioner", "list"))  # public GET /provisioners
    admin("ca", "certificate", "ops.example.com", "ops.crt", "ops.key", "--provisioner", "ops",
          "--provisioner-password-file", pw)

    # update: immediately bounds issuance
    admin("ca", "provisioner", "update", "ops", "--x509-max-dur", "72h")
    admin("ca", "certificate", "ops.example.com", "ops.crt", "ops.key", "--provisioner", "ops",
          "--provisioner-password-file", pw, "--not-after", "48h", "--force")
    assert lifetime_hours(tmp_path / "ops.crt") == pytest.approx(48 + 1 / 60)

    # the same target named explicitly: --stack and STEPLESS_STACK, from the stack's configuration
    by_flag = json.loads(admin("ca", "provisioner", "list", "--stack", "stepless-dev").stdout)
    assert next(p for p in by_flag if p["name"] == "ops")["claims"] == {"maxTLSCertDuration": "72h"}
    by_env = admin("ca", "provisioner", "list", env=clean_env(dev_ca, STEPLESS_STACK="stepless-dev"))
    assert names(by_env) == [p["name"] for p in by_flag]

    # the seed's case: raise the CA-wide maximum to 48h → 36h issued, 240h still refused
    res = admin("ca", "claims", "--x509-max-dur", "48h")
    assert json.loads(res.stdout)["effective"]["maxTLSCertDuration"] == "48h0m0s"
    admin("ca", "certificate", "long.example.com", "long.crt", "long.key", "--provisioner", "admin",
          "--provisioner-password-file", pw, "--not-after", "36h")
    assert lifetime_hours(tmp_path / "long.crt") == pytest.approx(36 + 1 / 60)
    res = admin("ca", "certificate", "long.example.com", "too.crt", "too.key", "--provisioner", "admin",
                "--provisioner-password-file", pw, "--not-after", "240h", check=False)
    assert res.returncode == 1 and "maximum" in res.stderr and not (tmp_path / "too.crt").exists()

    # managed certificates: issue (ca certificate --managed), list, show, renew, remove
    res = admin("ca", "certificate", "api.internal", "--managed", "api-local", "--not-after", "2h")
    arn = res.stdout.strip()
    assert ":secret:stepless-dev/managed/api-local" in arn  # the local CA keeps it in its own store
    assert "api-local" in admin("ca", "managed", "list").stdout
    shown = json.loads(admin("ca", "managed", "show", "api-local").stdout)
    assert shown["subject"] == "api.internal" and shown["status"] == "active"
    serial = admin("ca", "managed", "renew", "api-local").stdout.strip()
    assert serial != shown["serial"]
    admin("ca", "managed", "remove", "api-local", "--delete-secret")
    admin("ca", "upgrade")
    res = admin("ca", "init", "--dns", "ca.example.com", check=False)
    assert res.returncode == 1 and "`stepless dev` initializes the local CA itself" in res.stderr

    # remove: gone at once
    admin("ca", "provisioner", "remove", "ops")
    assert "ops" not in names(admin("ca", "provisioner", "list"))


def test_provisioner_list_matches_the_step_cli(dev_ca, step, admin):
    ours = admin("ca", "provisioner", "list").stdout
    theirs = step("ca", "provisioner", "list").stdout
    assert ours == theirs  # same entries, same field order, same 3-space indentation


def test_which_provisioner_asked_in_a_terminal_refused_with_names_otherwise(dev_ca, admin, tmp_path):
    pw = str(dev_ca.password_file)
    admin("ca", "provisioner", "add", "ops", "--create", "--password-file", pw)
    res = admin("ca", "token", "x.example.com", "--provisioner-password-file", pw, check=False, input="")
    assert res.returncode == 1
    assert res.stderr.strip() == "error: more than one provisioner (admin, ops): choose one with --provisioner"

    master, slave = pty.openpty()  # a terminal on stdin and stderr, as a user at a prompt has
    proc = subprocess.Popen([*CLI, "ca", "token", "x.example.com", "--provisioner-password-file", pw],
                            cwd=tmp_path, env=clean_env(dev_ca), stdin=slave, stderr=slave,
                            stdout=subprocess.PIPE, text=True)
    os.close(slave)
    seen = _read_until(master, b"Choose 1-2")
    assert b"What provisioner key do you want to use?" in seen and b"2) ops (JWK)" in seen
    os.write(master, b"2\n")
    out, _ = proc.communicate(timeout=60)
    seen += _read_until(master, b"", timeout=1)
    os.close(master)
    assert proc.returncode == 0 and out.count(".") == 2  # a JWT on stdout
    assert b"Provisioner: ops (JWK)" in seen


def _read_until(fd: int, marker: bytes, timeout: float = 60) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not marker or marker not in data):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_dev_output_is_json_when_not_a_terminal(dev_ca):
    """The session's `stepless dev` writes to a file: the functions' JSON lines and EMF metrics, as before."""
    lines = [line for line in (dev_ca.home / "dev.log").read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any(r.get("message") == "certificate issued" for r in records)
    assert any("_aws" in r for r in records)  # EMF metric lines


def test_path_and_bootstrap_keep_the_local_ca(dev_ca, admin):
    assert admin("path").stdout.strip() == str(dev_ca.home)
    assert admin("path", "--base").stdout.strip() == str(dev_ca.home)
    before = json.loads((dev_ca.home / "config" / "defaults.json").read_text())
    admin("ca", "bootstrap", "--ca-url", dev_ca.url, "--fingerprint", dev_ca.fingerprint)
    after = json.loads((dev_ca.home / "config" / "defaults.json").read_text())
    assert after == before  # bootstrapping stepless dev's own CA keeps its local record
    assert json.loads(admin("ca", "claims").stdout)["effective"]["maxTLSCertDuration"] == "24h0m0s"


def test_managed_certificate_in_acm_on_the_local_ca(dev_ca_aws, tmp_path):
    """`--acm` imports into the local stack's ACM (moto: `stepless dev --aws-emulation`); `managed renew`
    re-imports into the same ARN."""
    import boto3

    dev_ca = dev_ca_aws

    def admin(*args: str):
        return dev_ca.stepless(*args, cwd=tmp_path, env=clean_env(dev_ca))

    admin("ca", "managed", "issue", "lb.internal", "lb", "--acm", "--not-after", "2h")
    first = json.loads(admin("ca", "managed", "show", "lb").stdout)
    local = json.loads((dev_ca.home / "config" / "defaults.json").read_text())["local"]
    acm = boto3.client("acm", endpoint_url=local["endpoint"], region_name=local["region"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")

    def serial_in_acm() -> str:
        pem = acm.get_certificate(CertificateArn=first["acmArn"])["Certificate"]
        return str(x509.load_pem_x509_certificate(pem.encode()).serial_number)

    try:
        assert first["acmArn"].startswith("arn:aws:acm:") and serial_in_acm() == first["serial"]
        renewed = admin("ca", "managed", "renew", "lb").stdout.strip()
        assert renewed != first["serial"] and serial_in_acm() == renewed
        assert json.loads(admin("ca", "managed", "show", "lb").stdout)["acmArn"] == first["acmArn"]
    finally:
        admin("ca", "managed", "remove", "lb", "--delete-secret")
