"""`stepless dev` on its SQLite engine survives a restart, refuses a second start on its home, and
`--reset` starts over — driven with the real step CLI.

Restart: a client bootstrapped before still renews (same root, same records); a certificate revoked before
still cannot renew; a token used before is still refused.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from stepless.local.devstack import free_port
from tests.support.dev import Dev

pytestmark = pytest.mark.e2e


@pytest.fixture
def dev(tmp_path):
    d = Dev(tmp_path / "home", free_port())
    yield d
    d.stop()


def digest(home: Path) -> dict[str, str]:
    """The home's files and their SHA-256 (the lock file aside)."""
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_restart_keeps_the_ca_and_its_records(dev, step_bin, tmp_path):
    first = dev.start()
    base = {"STEPPATH": str(tmp_path / "steppath"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pw = str(dev.home / "secrets" / "password")

    def step(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([step_bin, *args], cwd=tmp_path, env=base, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            pytest.fail(f"step {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    step("ca", "bootstrap", "--ca-url", first["ca-url"], "--fingerprint", first["fingerprint"])
    step("ca", "certificate", "kept.example.com", "kept.crt", "kept.key", "--provisioner", "admin",
         "--provisioner-password-file", pw)
    step("ca", "certificate", "gone.example.com", "gone.crt", "gone.key", "--provisioner", "admin",
         "--provisioner-password-file", pw)
    step("ca", "revoke", "--cert", "gone.crt", "--key", "gone.key")
    used = step("ca", "token", "once.example.com", "--provisioner", "admin", "--password-file", pw).stdout.strip()
    step("ca", "certificate", "once.example.com", "once.crt", "once.key", "--token", used)

    # a second start on the same home says so and changes nothing
    before = digest(dev.home)
    refused = dev.run()
    assert refused.returncode != 0 and "in use by a running stepless dev" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert digest(dev.home) == before

    dev.stop()
    again = dev.start()
    assert again["fingerprint"] == first["fingerprint"]
    old = x509.load_pem_x509_certificates((tmp_path / "kept.crt").read_bytes())[0]
    step("ca", "renew", "kept.crt", "kept.key", "--force")  # mTLS, with the root bootstrapped before
    new = x509.load_pem_x509_certificates((tmp_path / "kept.crt").read_bytes())[0]
    assert new.serial_number != old.serial_number and new.subject == old.subject
    res = step("ca", "renew", "gone.crt", "gone.key", "--force", check=False)
    assert res.returncode != 0 and "revoked" in res.stderr
    res = step("ca", "certificate", "once.example.com", "twice.crt", "twice.key", "--token", used, check=False)
    assert res.returncode != 0 and "token already used" in res.stderr
    assert not (tmp_path / "twice.crt").exists()

    dev.stop()
    fresh = dev.start("--reset")
    assert fresh["fingerprint"] != first["fingerprint"]


def test_taken_address_is_refused_before_anything_is_written(dev, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", dev.port))
        s.listen()
        res = dev.run()
    assert res.returncode != 0 and f"cannot listen on 127.0.0.1:{dev.port}" in res.stderr
    assert "Traceback" not in res.stderr
    assert digest(dev.home) == {}  # only the lock file was created
