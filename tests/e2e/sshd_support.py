"""A throwaway OpenSSH server for the SSH end-to-end tests: root, loopback, its own config, no PAM.

Also the helpers around it: local users, ``ssh`` with an isolated client configuration, ``ssh-keygen -L``
parsed into a dict, and an ``ssh-agent`` on its own socket.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stepless.local.devstack import free_port
from tests.support import procs

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")


def require_openssh() -> None:
    """Skip (saying why) unless sshd and the OpenSSH client tools are here and we are root."""
    if not SSHD.exists():
        pytest.skip("/usr/sbin/sshd is missing (apt-get install -y openssh-server)")
    for tool in ("ssh", "ssh-keygen", "ssh-agent", "ssh-add"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing (apt-get install -y openssh-client)")
    if os.geteuid() != 0:
        pytest.skip("the sshd tests run sshd and create local users: they need root")


def ensure_user(name: str) -> None:
    """A local user that sshd lets in with a certificate (created if absent; not locked, no password)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    # useradd leaves the password field at "!", which sshd (UsePAM no) treats as a locked account
    # ("User alice not allowed because account is locked"); "*" means no password, but not locked.
    shadow = Path("/etc/shadow").read_text().splitlines()
    field = next((line.split(":")[1] for line in shadow if line.startswith(f"{name}:")), "")
    if field.startswith("!"):
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)


@dataclasses.dataclass
class Sshd:
    port: int
    config: Path
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """The log's current length: pass it to ``wait_log`` to look only at what comes after."""
        return len(self.log())

    def wait_log(self, mark: int, needle: str, timeout: float = 5) -> str:
        """The log after ``mark`` once it contains ``needle`` (sshd's children log a little after ssh exits)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()[mark:]
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_sshd(workdir: Path, *, host_key: Path, host_cert: Path, trusted_user_ca: Path,
               revoked_keys: Path) -> Sshd:
    """sshd -D -e on a free 127.0.0.1 port with only certificate logins (fails the test if it won't start)."""
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    last = ""
    for attempt in range(5):
        port = free_port()
        config = workdir / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key.resolve()}",
            f"HostCertificate {host_cert.resolve()}",
            f"TrustedUserCAKeys {trusted_user_ca.resolve()}",
            f"RevokedKeys {revoked_keys.resolve()}",
            "AuthorizedKeysFile none",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            f"PidFile {(workdir / 'sshd.pid').resolve()}",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "LogLevel VERBOSE",
            "",
        ]))
        checked = subprocess.run([str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            pytest.fail(f"sshd -t rejected our sshd_config: {checked.stderr}")
        log_path = workdir / f"sshd-{attempt}.log"
        log = open(log_path, "w")  # noqa: SIM115 - sshd writes to it for its whole life
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        server = Sshd(port, config, log_path, proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if f"Server listening on 127.0.0.1 port {port}" in server.log():
                return server
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        server.stop()
        last = server.log()
        if "Address already in use" not in last:
            break
    pytest.fail(f"sshd did not start: {last[-2000:]}")


def ssh(port: int, user: str, *, known_hosts: Path, identity: Path | None = None, cert: Path | None = None,
        agent_sock: Path | None = None, command: str = "echo ok") -> subprocess.CompletedProcess:
    """``ssh user@127.0.0.1 command`` with no user/system config: only the given known_hosts, key and agent."""
    args = ["ssh", "-F", "/dev/null", "-p", str(port),
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "PreferredAuthentications=publickey"]
    if identity is not None:
        args += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    else:  # an explicit, absent IdentityFile keeps ssh off ~/.ssh/id_*: the agent is the only source
        args += ["-o", f"IdentityFile={known_hosts.parent / 'no-such-identity'}"]
    if cert is not None:
        args += ["-o", f"CertificateFile={cert}"]
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    if agent_sock is not None:
        env["SSH_AUTH_SOCK"] = str(agent_sock)
    return subprocess.run([*args, f"{user}@127.0.0.1", command], capture_output=True, text=True, env=env,
                          timeout=60)


def keygen_list(cert: Path) -> dict:
    """``ssh-keygen -L -f cert`` (in UTC) as a dict; list-valued fields are lists, (none) is []."""
    out = subprocess.run(["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True,
                         env={**os.environ, "TZ": "UTC"})
    assert out.returncode == 0, f"ssh-keygen -L cannot read {cert}: {out.stderr}"
    info: dict = {"text": out.stdout}
    current = None
    for line in out.stdout.splitlines()[1:]:
        if line.startswith("                "):  # a list item under the last field
            info[current].append(line.strip())
            continue
        key, _, value = line.strip().partition(":")
        value = value.strip()
        current = key
        info[key] = [] if value in ("", "(none)") and key in ("Principals", "Critical Options",
                                                                "Extensions") else value
    frm, _, to = info["Valid"].removeprefix("from ").partition(" to ")
    info["valid_after"] = dt.datetime.fromisoformat(frm).replace(tzinfo=dt.UTC)
    info["valid_before"] = dt.datetime.fromisoformat(to).replace(tzinfo=dt.UTC)
    info["Key ID"] = info["Key ID"].strip('"')
    return info


@dataclasses.dataclass
class Agent:
    sock: Path
    process: subprocess.Popen

    def list(self) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh-add", "-l"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "SSH_AUTH_SOCK": str(self.sock)})

    def stop(self) -> None:
        procs.stop(self.process)


def start_agent(sock: Path) -> Agent:
    """``ssh-agent -D -a sock`` (in the foreground, so the test owns its pid)."""
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("ssh-agent did not start")
        time.sleep(0.05)
    return Agent(sock, proc)
