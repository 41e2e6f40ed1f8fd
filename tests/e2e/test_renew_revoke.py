"""Renew and revoke against `stepless dev` with our CLI and the real step CLI; CRL and OCSP with OpenSSL."""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509

pytestmark = pytest.mark.e2e


def issue(dev_ca, tmp_path, name, *extra):
    dev_ca.stepless("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--provisioner-password-file",
                    str(dev_ca.password_file), *extra, cwd=tmp_path)
    return x509.load_pem_x509_certificates((tmp_path / f"{name}.crt").read_bytes())[0]


@pytest.mark.parametrize("mode", ["--mtls", "--token-auth"])
def test_renew_then_revoke_then_refused(dev_ca, tmp_path, mode):
    old = issue(dev_ca, tmp_path, "svc.example.com")
    res = dev_ca.stepless("ca", "renew", "svc.example.com.crt", "svc.example.com.key", mode, "--force", cwd=tmp_path)
    assert "Your certificate has been saved in svc.example.com.crt." in res.stderr
    new = x509.load_pem_x509_certificates((tmp_path / "svc.example.com.crt").read_bytes())[0]
    assert new.serial_number != old.serial_number and new.subject == old.subject
    assert new.not_valid_after_utc - new.not_valid_before_utc == old.not_valid_after_utc - old.not_valid_before_utc
    res = dev_ca.stepless("ca", "revoke", "--cert", "svc.example.com.crt", "--key", "svc.example.com.key",
                          cwd=tmp_path)
    assert res.stdout.strip() == f"Certificate with Serial Number {new.serial_number} has been revoked."
    before = (tmp_path / "svc.example.com.crt").read_bytes()
    res = dev_ca.stepless("ca", "renew", "svc.example.com.crt", "svc.example.com.key", mode, "--force",
                          cwd=tmp_path, check=False)
    assert res.returncode == 1 and "revoked" in res.stderr.strip().splitlines()[-1]
    assert (tmp_path / "svc.example.com.crt").read_bytes() == before  # nothing half-written


def test_revoke_by_serial_with_token_and_lineage(dev_ca, tmp_path):
    first = issue(dev_ca, tmp_path, "lin.example.com")
    dev_ca.stepless("ca", "renew", "lin.example.com.crt", "lin.example.com.key", "--force", cwd=tmp_path)
    renewed = x509.load_pem_x509_certificates((tmp_path / "lin.example.com.crt").read_bytes())[0]
    pw = str(dev_ca.password_file)
    token = dev_ca.stepless("ca", "token", str(first.serial_number), "--revoke", "--provisioner-password-file", pw,
                            cwd=tmp_path).stdout.strip()
    res = dev_ca.stepless("ca", "revoke", str(first.serial_number), "--token", token, "--reason", "key compromise",
                          "--reasonCode", "1", "--lineage", cwd=tmp_path)
    assert f"{first.serial_number} has been revoked" in res.stdout
    # the renewal of the revoked certificate was revoked with it: it cannot renew either
    res = dev_ca.stepless("ca", "renew", "lin.example.com.crt", "lin.example.com.key", "--force", cwd=tmp_path,
                          check=False)
    assert res.returncode == 1 and "revoked" in res.stderr
    # OCSP says revoked for the renewal, checked by OpenSSL
    inter = tmp_path / "inter.pem"
    inter.write_bytes(b"".join(c for c in [(dev_ca.home / "certs" / "intermediate_ca.crt").read_bytes()]))
    leaf = tmp_path / "leaf.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf.write_bytes(renewed.public_bytes(Encoding.PEM))
    out = subprocess.run(["openssl", "ocsp", "-issuer", str(inter), "-cert", str(leaf), "-url", dev_ca.url + "/ocsp",
                          "-CAfile", str(dev_ca.root), "-VAfile", str(inter), "-no_nonce"],
                         capture_output=True, text=True, timeout=30)
    assert f"{leaf}: revoked" in out.stdout, out.stdout + out.stderr


def test_crl_verifies_with_openssl(dev_ca, tmp_path):
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(dev_ca.root))
    der = urllib.request.urlopen(dev_ca.url + "/crl", context=ctx, timeout=30).read()
    (tmp_path / "ca.crl").write_bytes(der)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(dev_ca.root.read_bytes() + (dev_ca.home / "certs" / "intermediate_ca.crt").read_bytes())
    out = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", "ca.crl", "-CAfile", str(chain), "-noout"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and "verify OK" in (out.stdout + out.stderr), out.stdout + out.stderr


def test_step_cli_renew_and_revoke(step, dev_ca, tmp_path):
    pw = str(dev_ca.password_file)
    step("ca", "certificate", "a.example.com", "a.crt", "a.key", "--provisioner", "admin",
         "--provisioner-password-file", pw)
    old = x509.load_pem_x509_certificates((tmp_path / "a.crt").read_bytes())[0]
    step("ca", "renew", "a.crt", "a.key", "--force")  # mTLS
    new = x509.load_pem_x509_certificates((tmp_path / "a.crt").read_bytes())[0]
    assert new.serial_number != old.serial_number
    res = step("ca", "revoke", "--cert", "a.crt", "--key", "a.key")
    assert f"{new.serial_number} has been revoked" in res.stderr + res.stdout
    assert step("ca", "renew", "a.crt", "a.key", "--force", check=False).returncode != 0
    step("ca", "certificate", "b.example.com", "b.crt", "b.key", "--provisioner", "admin",
         "--provisioner-password-file", pw)
    serial = str(x509.load_pem_x509_certificates((tmp_path / "b.crt").read_bytes())[0].serial_number)
    token = step("ca", "token", serial, "--revoke", "--provisioner", "admin", "--password-file", pw).stdout.strip()
    res = step("ca", "revoke", serial, "--token", token)
    assert f"{serial} has been revoked" in res.stderr + res.stdout
