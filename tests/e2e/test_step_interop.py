"""The real step CLI (0.15) against `stepless dev`: compatibility proven, not assumed."""

from __future__ import annotations

import json

import pytest
from cryptography import x509

pytestmark = [pytest.mark.e2e, pytest.mark.interop]


def test_step_ca_certificate(step, dev_ca, tmp_path):
    res = step("ca", "certificate", "svc.example.com", "svc.crt", "svc.key", "--provisioner", "admin",
               "--provisioner-password-file", str(dev_ca.password_file))
    assert "Certificate" in res.stderr
    chain = x509.load_pem_x509_certificates((tmp_path / "svc.crt").read_bytes())
    assert chain[0].subject.rfc4514_string() == "CN=svc.example.com"
    step("certificate", "verify", "svc.crt", "--roots", str(dev_ca.root))


def test_step_token_inspect_and_sign(step, dev_ca, tmp_path):
    token = step("ca", "token", "localhost", "--provisioner", "admin", "--password-file",
                 str(dev_ca.password_file)).stdout.strip()
    inspected = json.loads(step("crypto", "jwt", "inspect", "--insecure", input=token).stdout)
    assert inspected["payload"]["sub"] == "localhost"
    step("certificate", "create", "--csr", "--no-password", "--insecure", "localhost", "lh.csr", "lh.key")
    step("ca", "sign", "lh.csr", "lh.crt", "--token", token)
    leaf = x509.load_pem_x509_certificates((tmp_path / "lh.crt").read_bytes())[0]
    assert leaf.subject.rfc4514_string() == "CN=localhost"
    again = step("ca", "sign", "lh.csr", "lh2.crt", "--token", token, check=False)
    assert again.returncode != 0


def test_step_sign_with_password(step, dev_ca, tmp_path):
    step("certificate", "create", "--csr", "--no-password", "--insecure", "foo.example.com", "foo.csr", "foo.key")
    step("ca", "sign", "foo.csr", "foo.crt", "--provisioner", "admin", "--provisioner-password-file",
         str(dev_ca.password_file))
    assert (tmp_path / "foo.crt").exists()


def test_step_lifetime_refused(step, dev_ca, tmp_path):
    res = step("ca", "certificate", "localhost", "l.crt", "l.key", "--not-before=5m", "--not-after=240h",
               "--provisioner", "admin", "--provisioner-password-file", str(dev_ca.password_file), check=False)
    assert res.returncode != 0
    assert "requested duration of 240h0m0s is more than the authorized maximum" in res.stderr
