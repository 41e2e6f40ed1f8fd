"""The seed's SSH walkthrough with our CLI against `stepless dev`, proven with real OpenSSH.

A root sshd on a loopback port trusts only our user CA (TrustedUserCAKeys), presents a host certificate from
our host CA and refuses what our KRL lists (RevokedKeys); the ssh client trusts only ``@cert-authority *``
with our host CA key. ``ssh-keygen -L``/``-Q`` and ``ssh-agent``/``ssh-add`` check the rest.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from tests.e2e.sshd_support import ensure_user, keygen_list, require_openssh, ssh, start_agent, start_sshd

pytestmark = pytest.mark.e2e

USER_EXTENSIONS = ["permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty",
                   "permit-user-rc"]
BACKDATE = dt.timedelta(minutes=1)


def _keygen(path: Path, comment: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True)
    return path


def _serial(cert: Path) -> str:
    return keygen_list(cert)["Serial"]


def _assert_duration(info: dict, expected: dt.timedelta) -> None:
    """Backdated by a minute, lasting ``expected`` from issuance (a few seconds of slack)."""
    now = dt.datetime.now(dt.UTC)
    got = info["valid_before"] - info["valid_after"]
    assert expected + BACKDATE - dt.timedelta(seconds=5) <= got <= expected + BACKDATE + dt.timedelta(seconds=5), \
        info["text"]
    assert now - BACKDATE - dt.timedelta(seconds=90) <= info["valid_after"] <= now, info["text"]


class Env:
    """What the module shares: the working dir, the CA files, the running sshd and a helper for our CLI."""

    def __init__(self, dev_ca, work: Path):
        self.ca = dev_ca
        self.work = work
        self.pw = str(dev_ca.password_file)

    def stepless(self, *args: str, agent: Path | None = None, env: dict | None = None,
                 **kw) -> subprocess.CompletedProcess:
        """Our CLI in the module's dir, with no ssh-agent unless ``agent`` is given."""
        kw.setdefault("cwd", self.work)
        env = {k: v for k, v in (env or self.ca.env()).items() if k != "SSH_AUTH_SOCK"}
        if agent is not None:
            env["SSH_AUTH_SOCK"] = str(agent)
        return self.ca.stepless(*args, env=env, **kw)

    def issue_user(self, name: str, key_id: str = "alice@example.com", *extra: str) -> tuple[Path, Path]:
        self.stepless("ssh", "certificate", key_id, name, "--no-password", "--insecure", "--no-agent",
                      "--provisioner-password-file", self.pw, *extra)
        return self.work / name, self.work / f"{name}-cert.pub"

    def issue_host(self, name: str, key_id: str, *extra: str) -> tuple[Path, Path]:
        key = _keygen(self.work / name, key_id)
        self.stepless("ssh", "certificate", "--host", "--sign", key_id, f"{name}.pub",
                      "--provisioner-password-file", self.pw, *extra)
        return key, self.work / f"{name}-cert.pub"

    def refresh_krl(self) -> None:
        res = self.stepless("ssh", "krl", str(self.krl))
        assert "✔ KRL: " in res.stderr

    def login(self, user: str = "alice", **kw) -> subprocess.CompletedProcess:
        kw.setdefault("known_hosts", self.known_hosts)
        return ssh(self.sshd.port, user, **kw)


@pytest.fixture(scope="module")
def env(dev_ca, tmp_path_factory):
    require_openssh()
    ensure_user("alice")
    ensure_user("bob")
    work = tmp_path_factory.mktemp("ssh")
    e = Env(dev_ca, work)
    e.host_key, e.host_cert = e.issue_host("ssh_host_ecdsa_key", "localhost", "--principal", "localhost",
                                          "--principal", "127.0.0.1")
    e.user_ca = work / "ssh_user_key.pub"
    e.user_ca.write_text(e.stepless("ssh", "config", "--roots").stdout)
    host_ca = e.stepless("ssh", "config", "--host", "--roots").stdout.strip()
    e.host_ca_key = host_ca
    e.known_hosts = work / "known_hosts"
    e.known_hosts.write_text(f"@cert-authority * {host_ca}\n")
    e.krl = work / "revoked.krl"
    e.refresh_krl()
    e.alice_key, e.alice_cert = e.issue_user("id_ecdsa")
    e.sshd = start_sshd(work, host_key=e.host_key, host_cert=e.host_cert, trusted_user_ca=e.user_ca,
                        revoked_keys=e.krl)
    yield e
    e.sshd.stop()


def _refused(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 255 and "ok" not in res.stdout, (res.stdout, res.stderr)


# --- what ssh-keygen reads in our certificates ---------------------------------------------------------------

def test_user_certificate_as_ssh_keygen_reads_it(env):
    info = keygen_list(env.alice_cert)
    assert info["Type"] == "ecdsa-sha2-nistp256-cert-v01@openssh.com user certificate"
    assert info["Key ID"] == "alice@example.com"
    assert info["Principals"] == ["alice", "alice@example.com"]
    assert info["Critical Options"] == []
    assert info["Extensions"] == USER_EXTENSIONS
    assert int(info["Serial"]) > 0
    _assert_duration(info, dt.timedelta(hours=16))
    ca = subprocess.run(["ssh-keygen", "-l", "-f", str(env.user_ca)], capture_output=True, text=True, check=True)
    assert info["Signing CA"].startswith(f"ECDSA {ca.stdout.split()[1]} "), (info["Signing CA"], ca.stdout)
    assert env.alice_key.stat().st_mode & 0o777 == 0o600


def test_host_certificate_as_ssh_keygen_reads_it(env):
    info = keygen_list(env.host_cert)
    assert info["Type"] == "ecdsa-sha2-nistp256-cert-v01@openssh.com host certificate"
    assert info["Key ID"] == "localhost"
    assert info["Principals"] == ["localhost", "127.0.0.1"]
    assert info["Critical Options"] == [] and info["Extensions"] == []
    _assert_duration(info, dt.timedelta(days=30))
    ca = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=env.host_ca_key, capture_output=True, text=True,
                        check=True)
    assert info["Signing CA"].startswith(f"ECDSA {ca.stdout.split()[1]} ")


@pytest.mark.parametrize("which", ["alice_cert", "host_cert"])
def test_inspect_has_ssh_keygen_layout(env, which):
    """`cat cert | stepless ssh inspect`: the seed's layout, the very lines ssh-keygen -L prints."""
    cert = getattr(env, which)
    out = env.stepless("ssh", "inspect", input=cert.read_text()).stdout
    for label in ("Type:", "Public key:", "Signing CA:", "Key ID:", "Serial:", "Valid:", "Principals:",
                  "Critical Options:", "Extensions:"):
        assert f"\n        {label}" in out, out
    assert out.splitlines()[1:] == keygen_list(cert)["text"].splitlines()[1:]


# --- sshd: who gets in ------------------------------------------------------------------------------------------

def test_alice_logs_in_with_her_certificate(env):
    res = env.login("alice", identity=env.alice_key, cert=env.alice_cert)
    assert res.returncode == 0, f"{res.stderr}\n--- sshd ---\n{env.sshd.log()[-3000:]}"
    assert res.stdout == "ok\n"
    assert "Warning: Permanently added" not in res.stderr  # no prompt, nothing learnt: the host CA vouched


def test_alice_certificate_does_not_let_bob_in(env):
    mark = env.sshd.mark()
    res = env.login("bob", identity=env.alice_key, cert=env.alice_cert)
    _refused(res)
    assert "Permission denied (publickey)" in res.stderr
    assert "name is not a listed principal" in env.sshd.wait_log(mark, "name is not a listed principal")


def test_plain_key_without_certificate_refused(env, tmp_path):
    bare = tmp_path / "bare_key"  # away from id_ecdsa-cert.pub, which ssh would pick up next to id_ecdsa
    bare.write_bytes(env.alice_key.read_bytes())
    bare.chmod(0o600)
    res = env.login("alice", identity=bare)
    _refused(res)
    assert "Permission denied (publickey)" in res.stderr


def test_host_signed_by_another_ca_refused(env, tmp_path):
    _keygen(tmp_path / "other_ca")
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority * {(tmp_path / 'other_ca.pub').read_text().strip()}\n")
    res = env.login("alice", identity=env.alice_key, cert=env.alice_cert, known_hosts=known)
    _refused(res)
    assert "Host key verification failed." in res.stderr


def test_not_yet_valid_certificate_refused(env):
    key, cert = env.issue_user("id_future", "alice@example.com", "--not-before", "1h")
    info = keygen_list(cert)
    assert info["valid_after"] > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=55)
    mark = env.sshd.mark()
    res = env.login("alice", identity=key, cert=cert)
    _refused(res)
    assert "not yet valid" in env.sshd.wait_log(mark, "not yet valid")


def test_past_not_after_refused_by_the_ca(env):
    res = env.stepless("ssh", "certificate", "alice@example.com", "id_past", "--not-after", "-1m", "--no-password",
                       "--insecure", "--no-agent", "--provisioner-password-file", env.pw, check=False)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (env.work / "id_past-cert.pub").exists() and not (env.work / "id_past").exists()


def test_revoked_certificate_refused_through_the_krl(env):
    key, cert = env.issue_user("id_revoked")
    serial = _serial(cert)
    assert env.login("alice", identity=key, cert=cert).returncode == 0
    res = env.stepless("ssh", "revoke", serial, "--provisioner-password-file", env.pw)
    assert res.stdout.strip() == f"SSH Certificate with Serial Number {serial} has been revoked."
    env.refresh_krl()
    query = subprocess.run(["ssh-keygen", "-Q", "-f", str(env.krl), str(cert), str(env.alice_cert)],
                           capture_output=True, text=True)
    assert query.returncode == 1
    assert f"{cert} (alice@example.com): REVOKED" in query.stdout
    assert f"{env.alice_cert} (alice@example.com): ok" in query.stdout
    # no restart, no HUP: sshd reads RevokedKeys on every authentication
    mark = env.sshd.mark()
    res = env.login("alice", identity=key, cert=cert)
    _refused(res)
    assert "revoked by file" in env.sshd.wait_log(mark, "revoked by file")
    assert env.login("alice", identity=env.alice_key, cert=env.alice_cert).returncode == 0


# --- ssh-agent ----------------------------------------------------------------------------------------------

def test_agent_gets_key_and_certificate(env, tmp_path):
    agent = start_agent(tmp_path / "agent.sock")
    try:
        res = env.stepless("ssh", "certificate", "alice@example.com", "id2", "--no-password", "--insecure",
                           "--provisioner-password-file", env.pw, agent=agent.sock)
        assert "✔ SSH Agent: yes" in res.stderr
        listed = agent.list()
        assert listed.returncode == 0, listed.stderr
        fp = subprocess.run(["ssh-keygen", "-l", "-f", str(env.work / "id2.pub")], capture_output=True, text=True,
                            check=True).stdout.split()[1]
        assert listed.stdout.splitlines() == [f"256 {fp} alice@example.com (ECDSA-CERT)"], listed.stdout
        login = env.login("alice", agent_sock=agent.sock)
        assert login.returncode == 0 and login.stdout == "ok\n", login.stderr
    finally:
        agent.stop()


def test_no_agent_flag_leaves_agent_alone(env, tmp_path):
    agent = start_agent(tmp_path / "agent.sock")
    try:
        res = env.stepless("ssh", "certificate", "alice@example.com", "id3", "--no-password", "--insecure",
                           "--no-agent", "--provisioner-password-file", env.pw, agent=agent.sock)
        assert "SSH Agent" not in res.stderr
        assert agent.list().returncode == 1  # "The agent has no identities."
    finally:
        agent.stop()


# --- host certificates: renew (SSHPOP) and revoke -------------------------------------------------------------

def test_host_renew_then_revoke(env):
    key, cert = env.issue_host("renew_host_key", "renew.example.com")
    before = keygen_list(cert)
    res = env.stepless("ssh", "renew", str(cert), str(key), "--force")
    assert f"Your certificate has been saved in {cert}." in res.stderr
    after = keygen_list(cert)
    assert after["Serial"] != before["Serial"]
    assert after["Key ID"] == before["Key ID"] == "renew.example.com"
    assert after["Principals"] == before["Principals"] == ["renew.example.com"]
    assert after["Public key"] == before["Public key"]
    assert after["Type"].endswith(" host certificate") and after["Extensions"] == []
    _assert_duration(after, dt.timedelta(days=30))

    env.stepless("ssh", "revoke", after["Serial"], "--provisioner-password-file", env.pw)
    res = env.stepless("ssh", "renew", str(cert), str(key), "--force", check=False)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "revoked" in lines[0], res.stderr
    assert keygen_list(cert)["Serial"] == after["Serial"]  # nothing written


def test_host_revoke_with_sshpop_lands_in_krl(env):
    key, cert = env.issue_host("pop_host_key", "pop.example.com")
    serial = _serial(cert)
    res = env.stepless("ssh", "revoke", serial, "--sshpop-cert", str(cert), "--sshpop-key", str(key))
    assert res.stdout.strip() == f"SSH Certificate with Serial Number {serial} has been revoked."
    env.refresh_krl()
    query = subprocess.run(["ssh-keygen", "-Q", "-f", str(env.krl), str(cert)], capture_output=True, text=True)
    assert query.returncode == 1 and "REVOKED" in query.stdout, query.stdout + query.stderr
    res = env.stepless("ssh", "renew", str(cert), str(key), "--force", check=False)
    assert res.returncode == 1 and "revoked" in res.stderr


def test_renewed_host_certificate_served_by_sshd(env, tmp_path):
    """Renew the host certificate sshd presents, restart sshd on it: clients still connect with no prompt."""
    key, cert = env.issue_host("swap_host_key", "localhost", "--principal", "127.0.0.1")
    env.stepless("ssh", "renew", str(cert), str(key), "--force")
    server = start_sshd(tmp_path, host_key=key, host_cert=cert, trusted_user_ca=env.user_ca,
                        revoked_keys=env.krl)
    try:
        res = ssh(server.port, "alice", known_hosts=env.known_hosts, identity=env.alice_key, cert=env.alice_cert)
        assert res.returncode == 0 and res.stdout == "ok\n", f"{res.stderr}\n{server.log()[-2000:]}"
    finally:
        server.stop()


# --- ssh config -------------------------------------------------------------------------------------------------

def test_config_dry_run_client(env):
    out = env.stepless("ssh", "config", "--dry-run").stdout
    assert f"known_hosts.tpl:\n@cert-authority * {env.host_ca_key}\n" in out
    assert "config.tpl:\nHost *\n\tInclude " in out
    assert 'Match exec "step ssh check-host %h"' in out


def test_config_dry_run_client_paths_in_stepless_home(env):
    out = env.stepless("ssh", "config", "--dry-run").stdout
    assert 'Include "/ssh/' not in out and 'UserKnownHostsFile "/ssh/' not in out, out
    assert f'Include "{env.ca.home}/ssh/includes"' in out, out


def test_config_dry_run_host(env):
    out = env.stepless("ssh", "config", "--host", "--dry-run", "--set", "Certificate=ssh_host_ecdsa_key-cert.pub",
                       "--set", "Key=ssh_host_ecdsa_key").stdout
    assert ("sshd_config.tpl:\nMatch all\n\tTrustedUserCAKeys /etc/ssh/ca.pub\n"
            "\tHostCertificate /etc/ssh/ssh_host_ecdsa_key-cert.pub\n\tHostKey /etc/ssh/ssh_host_ecdsa_key\n") in out
    assert f"ca.tpl:\n{env.user_ca.read_text().strip()}\n" in out


def test_config_host_needs_certificate_and_key(env):
    res = env.stepless("ssh", "config", "--host", "--dry-run", check=False)
    assert res.returncode != 0
    assert "required variable 'Certificate' is missing" in res.stderr


def test_config_writes_keep_existing_ssh_config(env, tmp_path):
    home, cwd, steplesshome = tmp_path / "home", tmp_path / "cwd", tmp_path / "stepless"
    (home / ".ssh").mkdir(parents=True)
    cwd.mkdir()
    (steplesshome / "config").mkdir(parents=True)
    (steplesshome / "config" / "defaults.json").write_text((env.ca.home / "config" / "defaults.json").read_text())
    (home / ".ssh" / "config").write_text("Host foo\n  User bar\n")
    env.stepless("ssh", "config", cwd=cwd, env=env.ca.env(HOME=str(home), STEPLESS_HOME=str(steplesshome)))
    ssh_config = (home / ".ssh" / "config").read_text()
    assert "Host foo\n  User bar\n" in ssh_config, ssh_config
    assert "Include " in ssh_config
    assert not (cwd / "ssh").exists()
    assert (steplesshome / "ssh" / "known_hosts").read_text() == f"@cert-authority * {env.host_ca_key}\n"
