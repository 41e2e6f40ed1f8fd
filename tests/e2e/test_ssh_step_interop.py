"""The real step CLI (0.15) against `stepless dev` for SSH: certificates, roots, config, renew (SSHPOP), revoke.

step 0.15 wants its flags after the positional arguments, has no ``--no-agent`` (it skips the agent when
SSH_AUTH_SOCK is unset, as here unless a test starts one) and asks which provisioner unless ``--provisioner``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.sshd_support import keygen_list, start_agent

pytestmark = [pytest.mark.e2e, pytest.mark.interop]


@pytest.fixture
def step(step):
    """The e2e step runner (tests/e2e/conftest.py), where ssh-keygen exists."""
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is missing (apt-get install -y openssh-client)")
    return step


def _auth(dev_ca) -> tuple[str, ...]:
    return ("--provisioner", "admin", "--provisioner-password-file", str(dev_ca.password_file))


def _host_cert(step, dev_ca, tmp_path, name: str, host: str) -> tuple[Path, Path]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(tmp_path / name)], check=True,
                   capture_output=True)
    res = step("ssh", "certificate", host, f"{name}.pub", "--host", "--sign", *_auth(dev_ca))
    assert f"Certificate: {name}-cert.pub" in _plain(res.stderr)
    return tmp_path / name, tmp_path / f"{name}-cert.pub"


def _plain(text: str) -> str:
    """step's stderr without its ANSI colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_step_ssh_user_certificate(step, dev_ca, tmp_path):
    res = step("ssh", "certificate", "alice@example.com", "id_step", *_auth(dev_ca), "--no-password",
               "--insecure")
    err = _plain(res.stderr)
    assert "✔ Provisioner: admin (JWK)" in err and "✔ Certificate: id_step-cert.pub" in err, err
    info = keygen_list(tmp_path / "id_step-cert.pub")
    assert info["Type"] == "ecdsa-sha2-nistp256-cert-v01@openssh.com user certificate"
    assert info["Key ID"] == "alice@example.com"
    assert info["Principals"] == ["alice", "alice@example.com"]
    assert info["Extensions"] == ["permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
                                  "permit-pty", "permit-user-rc"]
    # step parses what we signed, and so does our inspect, the same way
    inspected = step("ssh", "inspect", "id_step-cert.pub").stdout
    assert f"Serial: {info['Serial']}" in inspected and "alice@example.com" in inspected
    ours = dev_ca.stepless("ssh", "inspect", "id_step-cert.pub", cwd=tmp_path).stdout
    assert ours.splitlines()[1:] == info["text"].splitlines()[1:]


def test_step_ssh_certificate_into_agent(step, dev_ca, tmp_path):
    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        pytest.skip("ssh-agent/ssh-add are missing (apt-get install -y openssh-client)")
    agent = start_agent(tmp_path / "agent.sock")
    try:
        res = step("ssh", "certificate", "alice@example.com", "id_agent", *_auth(dev_ca), "--no-password",
                   "--insecure", agent=agent.sock)
        assert "✔ SSH Agent: yes" in _plain(res.stderr)
        listed = agent.list().stdout
        assert "alice@example.com (ECDSA-CERT)" in listed, listed
        # with a certificate of ours in its agent, step's user `ssh config` works and writes our host CA
        out = step("ssh", "config", "--dry-run", agent=agent.sock).stdout
        host_ca = dev_ca.stepless("ssh", "config", "--host", "--roots", cwd=tmp_path).stdout.strip()
        assert f"@cert-authority * {host_ca}" in out, out
        assert f'Include "{tmp_path / "steppath"}/ssh/includes"' in out, out
    finally:
        agent.stop()


def test_step_ssh_config_roots(step, dev_ca, tmp_path):
    user = step("ssh", "config", "--roots").stdout
    host = step("ssh", "config", "--host", "--roots").stdout
    assert user == dev_ca.stepless("ssh", "config", "--roots", cwd=tmp_path).stdout
    assert host == dev_ca.stepless("ssh", "config", "--host", "--roots", cwd=tmp_path).stdout
    assert user.startswith("ecdsa-sha2-nistp256 ") and host.startswith("ecdsa-sha2-nistp256 ")
    assert user != host


def test_step_ssh_config_host_dry_run(step, dev_ca, tmp_path):
    out = step("ssh", "config", "--host", "--dry-run", "--set", "Certificate=ssh_host_ecdsa_key-cert.pub",
               "--set", "Key=ssh_host_ecdsa_key").stdout
    assert ("Match all\n\tTrustedUserCAKeys /etc/ssh/ca.pub\n\tHostCertificate /etc/ssh/ssh_host_ecdsa_key-cert.pub\n"
            "\tHostKey /etc/ssh/ssh_host_ecdsa_key\n") in out, out
    assert dev_ca.stepless("ssh", "config", "--roots", cwd=tmp_path).stdout.strip() in out


def test_step_ssh_host_sign_and_renew(step, dev_ca, tmp_path):
    key, cert = _host_cert(step, dev_ca, tmp_path, "ssh_host_key", "internal.example.com")
    before = keygen_list(cert)
    assert before["Type"].endswith(" host certificate")
    assert before["Key ID"] == "internal.example.com" and before["Principals"] == ["internal.example.com"]
    res = step("ssh", "renew", cert.name, key.name, "--force")
    assert "✔ Provisioner: sshpop (SSHPOP)" in _plain(res.stderr)
    after = keygen_list(cert)
    assert after["Serial"] != before["Serial"]
    assert (after["Key ID"], after["Principals"], after["Public key"]) == (
        before["Key ID"], before["Principals"], before["Public key"])
    assert after["valid_before"] - after["valid_after"] == before["valid_before"] - before["valid_after"]


def test_step_ssh_revoke_blocks_renew_and_lands_in_krl(step, dev_ca, tmp_path):
    key, cert = _host_cert(step, dev_ca, tmp_path, "revoked_host_key", "gone.example.com")
    serial = keygen_list(cert)["Serial"]
    res = step("ssh", "revoke", serial, *_auth(dev_ca))
    assert f"SSH Certificate with Serial Number {serial} has been revoked." in res.stdout + res.stderr
    res = step("ssh", "renew", cert.name, key.name, "--force", check=False)
    assert res.returncode != 0
    assert "certificate has been revoked" in _plain(res.stderr), res.stderr
    dev_ca.stepless("ssh", "krl", "krl", cwd=tmp_path)
    query = subprocess.run(["ssh-keygen", "-Q", "-f", "krl", cert.name], cwd=tmp_path, capture_output=True,
                           text=True)
    assert query.returncode == 1 and f"{cert.name} (gone.example.com): REVOKED" in query.stdout, query.stdout


def test_step_ssh_revoke_with_sshpop(step, dev_ca, tmp_path):
    key, cert = _host_cert(step, dev_ca, tmp_path, "pop_host_key", "pop.example.com")
    serial = keygen_list(cert)["Serial"]
    res = step("ssh", "revoke", serial, "--sshpop-cert", cert.name, "--sshpop-key", key.name)
    assert "✔ Provisioner: sshpop (SSHPOP)" in _plain(res.stderr)
    assert f"SSH Certificate with Serial Number {serial} has been revoked." in res.stdout + res.stderr
    res = dev_ca.stepless("ssh", "renew", cert.name, key.name, "--force", cwd=tmp_path, check=False)
    assert res.returncode == 1 and "revoked" in res.stderr


def test_stepless_host_certificate_renewed_by_step(step, dev_ca, tmp_path):
    """A host certificate from our CLI, renewed by step's SSHPOP (and the reverse)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "h")], check=True,
                   capture_output=True)
    dev_ca.stepless("ssh", "certificate", "--host", "--sign", "mixed.example.com", "h.pub",
                    "--provisioner-password-file", str(dev_ca.password_file), cwd=tmp_path)
    first = keygen_list(tmp_path / "h-cert.pub")["Serial"]
    step("ssh", "renew", "h-cert.pub", "h", "--force")
    second = keygen_list(tmp_path / "h-cert.pub")
    assert second["Serial"] != first and second["Type"].startswith("ssh-ed25519-cert-v01@openssh.com host")
    dev_ca.stepless("ssh", "renew", "h-cert.pub", "h", "--force", cwd=tmp_path)
    assert keygen_list(tmp_path / "h-cert.pub")["Serial"] not in (first, second["Serial"])
