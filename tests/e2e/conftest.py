"""End-to-end fixtures: a real `stepless dev` process (its default SQLite engine + HTTPS gateway) on a free port."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepless.local.devstack import free_port
from tests.support.dns import TxtServer
from tests.support.procs import stop

CLI = [sys.executable, "-c", "from stepless.cli.main import main; main()"]


@dataclasses.dataclass
class DevCA:
    url: str
    home: Path
    fingerprint: str
    password_file: Path
    root: Path
    process: subprocess.Popen

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "STEPLESS_HOME": str(self.home), **extra}

    def stepless(self, *args: str, cwd: Path, input: str | None = None, check: bool = True,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        """Run our CLI; with ``check`` a non-zero exit fails the test with its stderr."""
        res = subprocess.run([*CLI, *args], cwd=cwd, env=env or self.env(), input=input, capture_output=True,
                             text=True, timeout=120)
        if check and res.returncode != 0:
            pytest.fail(f"stepless {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res


def start_dev(home: Path, *flags: str, **extra_env: str) -> Iterator[DevCA]:
    """A `stepless dev` process on ``home`` (with ``flags``, and ``extra_env`` in its environment) until the
    generator is closed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("STEPLESS_")}
    env["STEPLESS_HOME"] = str(home)
    env.update(extra_env)
    log = open(home / "dev.log", "w")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen([*CLI, "dev", "--address", f"127.0.0.1:{port}", *flags], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    defaults = home / "config" / "defaults.json"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"stepless dev exited: {(home / 'dev.log').read_text()[-2000:]}")
        if "CA ready" in (home / "dev.log").read_text():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("stepless dev did not start within 90 s")
    data = json.loads(defaults.read_text())
    ca = DevCA(url=data["ca-url"], home=home, fingerprint=data["fingerprint"],
               password_file=home / "secrets" / "password", root=Path(data["root"]), process=proc)
    yield ca
    stop(proc)
    log.close()


@pytest.fixture(scope="session")
def dev_ca(tmp_path_factory: pytest.TempPathFactory):
    """One `stepless dev` (its default SQLite engine) for the whole session."""
    yield from start_dev(tmp_path_factory.mktemp("stepless-home"))


@pytest.fixture(scope="session")
def dev_ca_aws(tmp_path_factory: pytest.TempPathFactory):
    """One `stepless dev --aws-emulation` (moto: the template's resources, ACM included) for the session."""
    yield from start_dev(tmp_path_factory.mktemp("stepless-home-aws"), "--aws-emulation")


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """The loopback ports an ACME test's clients answer http-01 and tls-alpn-01 challenges on."""
    return {"http": free_port(), "tls": free_port()}


@pytest.fixture(scope="module")
def dns():
    """A TXT responder for dns-01 (tests/support/dns.py)."""
    server = TxtServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def acme_ca(tmp_path_factory, ports, dns):
    """A `stepless dev` whose ACME validation (test-only settings) reaches ``ports`` on 127.0.0.1 and asks ``dns``."""
    home = tmp_path_factory.mktemp("stepless-acme-home")
    yield from start_dev(home, STEPLESS_CONFIG_TTL="0", STEPLESS_ACME_HTTP01_PORT=str(ports["http"]),
                         STEPLESS_ACME_TLSALPN01_PORT=str(ports["tls"]), STEPLESS_ACME_VALIDATION_HOST="127.0.0.1",
                         STEPLESS_ACME_DNS_RESOLVER=f"127.0.0.1:{dns.port}")


@pytest.fixture(scope="session")
def step_bin() -> str:
    """The real step CLI (built by tools/build-step.sh), or a skip that says why."""
    path = shutil.which("step") or str(Path.home() / ".cache/stepless-peers/bin/step")
    if not Path(path).exists():
        pytest.skip("the real step CLI is not built (run `make step`; it needs Debian's golang packages)")
    return path


@pytest.fixture
def step(step_bin, dev_ca, tmp_path):
    """Run the real step CLI in ``tmp_path`` with its own STEPPATH, bootstrapped against the dev CA (flags after
    positionals); a failure shows step's stderr. ``agent=SOCKET`` points it at an ssh-agent."""
    base = {"STEPPATH": str(tmp_path / "steppath"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def run(*args: str, check: bool = True, input: str | None = None, agent: Path | None = None):
        env = {**base, "SSH_AUTH_SOCK": str(agent)} if agent else base
        res = subprocess.run([step_bin, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                             input=input, timeout=60)
        if check and res.returncode != 0:
            pytest.fail(f"step {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    run("ca", "bootstrap", "--ca-url", dev_ca.url, "--fingerprint", dev_ca.fingerprint)
    return run
