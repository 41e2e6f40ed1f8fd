"""step's whole SSH client flow against `stepless dev`, ending in a real ``ssh`` through step's own configuration.

``step ssh login`` (certificate into an ssh-agent) → ``step ssh config`` (writes ``~/.ssh/config`` and
``$STEPPATH/ssh/{includes,config,known_hosts}``) → ``ssh -F ~/.ssh/config`` to a root sshd on loopback. The
generated configuration does the rest: ``Match exec "step ssh check-host %h"`` (POST /ssh/check-host),
``UserKnownHostsFile`` with the ``@cert-authority`` line of our host CA (no other known_hosts, strict checking,
BatchMode: no prompt), ``ProxyCommand step ssh proxycommand %r %h %p`` (POST /ssh/bastion, then a direct TCP
connection or ``ssh [-l U] [-p P] [FLAGS] BASTION nc HOST PORT``).

With a bastion set by ``stepless ca ssh-bastion set``, a second sshd is the bastion: the target is reached as
``localhost`` through it, and the bastion itself (``127.0.0.1``) directly — step-ca gives no bastion for the
bastion host. ``step ssh hosts`` lists the hosts.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.sshd_support import Sshd, ensure_user, require_openssh, start_agent, start_sshd
from tests.e2e.test_admin_x5c import admin_env

pytestmark = [pytest.mark.e2e, pytest.mark.interop]

USER = "alice"


@pytest.fixture
def flow(step, step_bin, dev_ca, tmp_path):
    """An ssh-agent holding the certificate of ``step ssh login alice`` and step's generated client config."""
    require_openssh()
    ensure_user(USER)
    agent = start_agent(tmp_path / "agent.sock")
    try:
        res = step("ssh", "login", USER, "--provisioner", "admin", "--provisioner-password-file",
                   str(dev_ca.password_file), agent=agent.sock)
        assert "✔ SSH Agent: yes" in _plain(res.stderr), res.stderr
        listed = agent.list().stdout
        assert f"{USER} (ECDSA-CERT)" in listed, listed
        res = step("ssh", "config", agent=agent.sock)
        steppath = tmp_path / "steppath"
        config = tmp_path / ".ssh" / "config"
        assert f'Include "{steppath}/ssh/includes"' in config.read_text()
        step_config = (steppath / "ssh" / "config").read_text()
        assert "\tProxyCommand step ssh proxycommand %r %h %p\n" in step_config, step_config
        host_ca = step("ssh", "config", "--host", "--roots").stdout.strip()
        assert (steppath / "ssh" / "known_hosts").read_text() == f"@cert-authority * {host_ca}\n"
        yield Flow(step, dev_ca, tmp_path, config, agent.sock, str(Path(step_bin).parent))
    finally:
        agent.stop()


class Flow:
    """What a test needs: step, the CA, the working dir, the generated config, the agent, where step lives."""

    def __init__(self, step, dev_ca, work: Path, config: Path, agent: Path, step_dir: str):
        self.step, self.ca, self.work, self.config, self.agent, self.step_dir = step, dev_ca, work, config, agent, \
            step_dir

    def sshd(self, name: str, principal: str) -> Sshd:
        """A root sshd on 127.0.0.1 with a host certificate for ``principal`` that step got from the CA."""
        work = self.work / name
        work.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(work / "host")], check=True,
                       capture_output=True)
        self.step("ssh", "certificate", principal, f"{name}/host.pub", "--host", "--sign", "--provisioner",
                  "admin", "--provisioner-password-file", str(self.ca.password_file))
        (work / "user_ca.pub").write_text(self.step("ssh", "config", "--roots").stdout)
        self.ca.stepless("ssh", "krl", str(work / "revoked.krl"), cwd=work)
        return start_sshd(work, host_key=work / "host", host_cert=work / "host-cert.pub",
                          trusted_user_ca=work / "user_ca.pub", revoked_keys=work / "revoked.krl")

    def ssh(self, host: str, port: int, command: str) -> subprocess.CompletedProcess:
        """``ssh -F ~/.ssh/config`` as step wrote it; only BatchMode, strict host checking and no global
        known_hosts are added, so the host is trusted by step's ``@cert-authority`` line or not at all."""
        env = {"HOME": str(self.work), "STEPPATH": str(self.work / "steppath"), "SSH_AUTH_SOCK": str(self.agent),
               "PATH": f"{self.step_dir}:/usr/bin:/bin"}
        args = ["ssh", "-v", "-F", str(self.config), "-p", str(port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=20", f"{USER}@{host}", command]
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, cwd=self.work)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _get(dev_ca, path: str, body: dict | None = None) -> dict:
    """GET ``path`` (POST with a JSON ``body``) on the dev CA, trusting only its root."""
    ctx = ssl.create_default_context(cafile=str(dev_ca.root))
    req = urllib.request.Request(f"{dev_ca.url}{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as res:
        return json.loads(res.read())


def _bastion_answer(dev_ca, hostname: str) -> dict:
    """POST /ssh/bastion as step sends it."""
    return _get(dev_ca, "/ssh/bastion", {"user": USER, "hostname": hostname})


def _wait_for_bastion(dev_ca, hostname: str, expected: dict) -> None:
    """The functions reload the configuration within its TTL."""
    deadline = time.monotonic() + 45
    while (got := _bastion_answer(dev_ca, hostname)) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert got == expected


def test_ssh_through_steps_generated_config(flow):
    assert _bastion_answer(flow.ca, "127.0.0.1") == {"hostname": "127.0.0.1"}  # no bastion: direct
    sshd = flow.sshd("direct", "127.0.0.1")
    try:
        # `step ssh hosts` (GET /ssh/hosts) lists the host step just certified
        listed = flow.step("ssh", "hosts").stdout.splitlines()
        assert listed[0].split() == ["HOSTNAME", "ID", "TAGS"] and "127.0.0.1" in [h.strip() for h in listed[1:]]
        # and the legacy alias step-ca still serves answers the same through the gateway
        assert _get(flow.ca, "/1.0/ssh/get-hosts") == _get(flow.ca, "/ssh/hosts")
        mark = sshd.mark()
        res = flow.ssh("127.0.0.1", sshd.port, "echo hello from $(id -un)")
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout == f"hello from {USER}\n"
        assert f"Executing proxy command: exec step ssh proxycommand {USER} 127.0.0.1 {sshd.port}" in res.stderr
        assert "Server host certificate: ecdsa-sha2-nistp256-cert-v01@openssh.com" in res.stderr
        assert "Host '[127.0.0.1]:" in res.stderr and "is known and matches the ECDSA-CERT host certificate" \
            in res.stderr, res.stderr[-3000:]
        log = sshd.wait_log(mark, f"Accepted publickey for {USER}")
        assert f'Accepted certificate ID "{USER}"' in log and f"Accepted publickey for {USER}" in log, log
    finally:
        sshd.stop()


def test_host_of_another_ca_is_refused_without_a_prompt(flow):
    """The same config to an sshd whose host certificate another CA signed: refused, nothing is asked."""
    work = flow.work / "other"
    work.mkdir()
    for name in ("other_ca", "host"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(work / name)], check=True,
                       capture_output=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(work / "other_ca"), "-h", "-I", "127.0.0.1", "-n", "127.0.0.1",
                    str(work / "host.pub")], check=True, capture_output=True)
    (work / "user_ca.pub").write_text(flow.step("ssh", "config", "--roots").stdout)
    flow.ca.stepless("ssh", "krl", str(work / "revoked.krl"), cwd=work)
    sshd = start_sshd(work, host_key=work / "host", host_cert=work / "host-cert.pub",
                      trusted_user_ca=work / "user_ca.pub", revoked_keys=work / "revoked.krl")
    try:
        res = flow.ssh("127.0.0.1", sshd.port, "echo should-not-run")
        assert res.returncode == 255 and "should-not-run" not in res.stdout
        assert f"Executing proxy command: exec step ssh proxycommand {USER} 127.0.0.1 {sshd.port}" in res.stderr
        assert "Host key verification failed." in res.stderr, res.stderr[-3000:]
    finally:
        sshd.stop()


def test_ssh_through_a_bastion(flow):
    if not shutil.which("nc"):
        pytest.skip("nc is missing (apt-get install -y netcat-openbsd): step's bastion command is `nc HOST PORT`")
    bastion = flow.sshd("bastion", "127.0.0.1")
    target = flow.sshd("target", "localhost")
    env = admin_env(flow.ca)
    # no -F: a bastion's flags may not make every client read a config file (refused since the review); the
    # bastion hop trusts the host CA through step's own known_hosts (its @cert-authority line)
    known_hosts = flow.work / "steppath" / "ssh" / "known_hosts"
    flags = (f"-o UserKnownHostsFile={known_hosts} -o BatchMode=yes -o StrictHostKeyChecking=yes "
             "-o GlobalKnownHostsFile=/dev/null")
    try:
        flow.ca.stepless("ca", "ssh-bastion", "set", "--hostname", "127.0.0.1", "--user", USER, "--port",
                         str(bastion.port), f"--flags={flags}", cwd=flow.work, env=env)
        expected = {"hostname": "127.0.0.1", "user": USER, "port": str(bastion.port), "flags": flags}
        _wait_for_bastion(flow.ca, "localhost", {"hostname": "localhost", "bastion": expected})
        # the bastion itself is reached directly (and that is how step's inner `ssh ... 127.0.0.1` gets there)
        assert _bastion_answer(flow.ca, "127.0.0.1") == {"hostname": "127.0.0.1"}

        b_mark, t_mark = bastion.mark(), target.mark()
        res = flow.ssh("localhost", target.port, "echo via bastion as $(id -un)")
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout == f"via bastion as {USER}\n"
        assert f"Executing proxy command: exec step ssh proxycommand {USER} localhost {target.port}" in res.stderr
        assert "Host '[localhost]:" in res.stderr and "ECDSA-CERT host certificate" in res.stderr
        # step ran `ssh -l alice -p BPORT FLAGS 127.0.0.1 nc localhost TPORT`: alice logged in on the bastion,
        # and the target saw alice's certificate arrive from the bastion's nc (over loopback)
        b_log = bastion.wait_log(b_mark, f"Accepted publickey for {USER}")
        assert f'Accepted certificate ID "{USER}"' in b_log, b_log
        t_log = target.wait_log(t_mark, f"Accepted publickey for {USER}")
        assert f'Accepted certificate ID "{USER}"' in t_log, t_log
    finally:
        flow.ca.stepless("ca", "ssh-bastion", "remove", cwd=flow.work, env=env, check=False)
        bastion.stop()
        target.stop()
    _wait_for_bastion(flow.ca, "localhost", {"hostname": "localhost"})
