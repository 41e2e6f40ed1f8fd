"""`stepless ca rotate-intermediate` against `stepless dev`, then the real step CLI across the rotation."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from cryptography import x509

from tests.e2e.test_admin_x5c import admin_env

pytestmark = pytest.mark.e2e


def test_step_cli_across_an_intermediate_rotation(step, dev_ca, tmp_path):
    pw = str(dev_ca.password_file)

    def chain(name: str) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates((tmp_path / name).read_bytes())

    step("ca", "certificate", "before.example.com", "before.crt", "before.key", "--provisioner", "admin",
         "--provisioner-password-file", pw)
    old_leaf, old_inter = chain("before.crt")

    res = dev_ca.stepless("ca", "rotate-intermediate", "--stack", "stepless-dev", cwd=tmp_path, env=admin_env(dev_ca))
    new_serial = int(re.search(r"Intermediate: serial (\d+)", res.stderr + res.stdout)[1])
    assert new_serial != old_inter.serial_number

    deadline = time.monotonic() + 30  # the functions reload the configuration within its TTL
    while True:
        step("ca", "certificate", "after.example.com", "after.crt", "after.key", "--provisioner", "admin",
             "--provisioner-password-file", pw, "--force")
        if chain("after.crt")[1].serial_number == new_serial or time.monotonic() > deadline:
            break
        time.sleep(1)
    new_leaf, new_inter = chain("after.crt")
    assert new_inter.serial_number == new_serial and new_inter.subject == old_inter.subject

    # a certificate of the replaced intermediate renews over mTLS with step, into the new intermediate
    step("ca", "renew", "before.crt", "before.key", "--force")
    renewed, renewed_inter = chain("before.crt")
    assert renewed.serial_number != old_leaf.serial_number and renewed_inter.serial_number == new_serial
    out = subprocess.run(["openssl", "verify", "-CAfile", str(dev_ca.root), "-untrusted", "before.crt", "before.crt"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr
    res = step("ca", "revoke", "--cert", "before.crt", "--key", "before.key")
    assert f"{renewed.serial_number} has been revoked" in res.stderr + res.stdout
