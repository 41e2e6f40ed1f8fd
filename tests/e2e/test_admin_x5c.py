"""Administration against `stepless dev` (moto): add an X5C provisioner with the CLI, then get a certificate
with a token signed by a device certificate — no password, the device's certificate is the credential."""

from __future__ import annotations

import json
import time

import pytest
from cryptography import x509

from stepless.x509 import extensions

pytestmark = pytest.mark.e2e


def admin_env(dev_ca) -> dict[str, str]:
    values = dict(line.split("=", 1) for line in (dev_ca.home / "config" / "dev.env").read_text().splitlines())
    return dev_ca.env(**values)


def test_add_x5c_provisioner_and_issue(dev_ca, tmp_path):
    env = admin_env(dev_ca)
    run = dev_ca.stepless
    listed = json.loads(run("ca", "provisioner", "list", cwd=tmp_path, env=env).stdout)
    assert "admin" in {p["name"] for p in listed}
    run("certificate", "create", "Devices Root", "root.crt", "root.key", "--profile", "root-ca",
        "--no-password", "--insecure", cwd=tmp_path)
    run("certificate", "create", "device1.example.com", "leaf.crt", "leaf.key", "--profile", "leaf",
        "--ca", "root.crt", "--ca-key", "root.key", "--no-password", "--insecure", "--not-after", "2h",
        cwd=tmp_path)
    run("ca", "provisioner", "add", "devices", "--type", "X5C", "--x5c-root", "root.crt", cwd=tmp_path, env=env)
    deadline = time.monotonic() + 30  # warm functions see the change within the config TTL
    while time.monotonic() < deadline:
        res = run("ca", "certificate", "device1.example.com", "d.crt", "d.key", "--provisioner", "devices",
                  "--x5c-cert", "leaf.crt", "--x5c-key", "leaf.key", "--force", cwd=tmp_path, check=False)
        if res.returncode == 0:
            break
        time.sleep(1)
    assert res.returncode == 0, res.stderr
    leaf = x509.load_pem_x509_certificates((tmp_path / "d.crt").read_bytes())[0]
    assert extensions.of(leaf) == (7, "devices", "")
    device = x509.load_pem_x509_certificate((tmp_path / "leaf.crt").read_bytes())
    assert leaf.not_valid_after_utc <= device.not_valid_after_utc  # never outlives the credential
    # a name the device certificate does not carry is refused
    res = run("ca", "certificate", "other.example.com", "o.crt", "o.key", "--provisioner", "devices",
              "--x5c-cert", "leaf.crt", "--x5c-key", "leaf.key", cwd=tmp_path, check=False)
    assert res.returncode == 1 and not (tmp_path / "o.crt").exists()
    assert len(res.stderr.strip().splitlines()[-1:]) == 1 and res.stderr.strip().splitlines()[-1].startswith("error:")
