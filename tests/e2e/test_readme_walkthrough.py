"""README.md's walkthrough, run verbatim: every ```sh block between "## Walkthrough" and the next "## "
heading, top to bottom, with bash, in an empty directory, against a fresh `stepless dev` (its own
STEPLESS_HOME), with nothing sourced and no AWS credentials.

Each command (a line, with its ``\\`` continuations) must succeed, except those whose comment says
``# refused:`` (they must fail) and those marked ``(untested: …)`` (a real identity provider or browser),
which are left out. The `stepless dev` here runs in a pseudo-terminal, so its readable request lines are
checked too.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from stepless.local.devstack import free_port
from stepless.x509 import extensions
from tests.support.procs import stop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REFUSED = "# refused:"
UNTESTED = "(untested:"


def walkthrough(readme: str) -> list[str]:
    """The walkthrough's shell blocks, in order."""
    start = readme.index("\n## Walkthrough")
    end = readme.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", readme[start:end], re.S)


def commands(block: str) -> list[str]:
    """The block's commands: lines joined with their backslash continuations; blank lines dropped."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending += line + "\n"
        if not line.rstrip().endswith("\\"):
            if pending.strip():
                out.append(pending.rstrip("\n"))
            pending = ""
    return out


def script(cmds: list[str]) -> str:
    """Each command verbatim, followed by a check of its exit status against the README's expectation."""
    lines = ["set -o pipefail",
             '__check() { if [ "$3" = ok ] && [ "$1" -ne 0 ]; then echo "README COMMAND $2 FAILED ($1)" >&2; exit 3;'
             ' elif [ "$3" = refused ] && [ "$1" -eq 0 ]; then echo "README COMMAND $2 WAS NOT REFUSED" >&2; exit 3;'
             ' fi; echo "README COMMAND $2 DONE" >&2; }']
    for n, cmd in enumerate(cmds):
        if UNTESTED in cmd:
            continue
        lines += [f'echo "README COMMAND {n}: "{shlex.quote(cmd.splitlines()[0])} >&2', cmd,
                  f"__check $? {n} {'refused' if REFUSED in cmd else 'ok'}"]
    return "\n".join(lines) + "\n"


def test_walkthrough_parsing():
    cmds = [c for b in walkthrough((ROOT / "README.md").read_text()) for c in commands(b)]
    assert len(cmds) > 40
    assert sum(REFUSED in c for c in cmds) >= 3 and sum(UNTESTED in c for c in cmds) == 2
    assert not any("make dev" in c or "sam deploy" in c for c in cmds)  # other sections are not the walkthrough
    assert any(c.count("\n") == 1 for c in cmds)  # continuations joined


@dataclass
class Walk:
    work: Path
    home: Path
    result: subprocess.CompletedProcess
    dev_output: list[bytes]


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    missing = [tool for tool in ("bash", "jq", "ssh-keygen", "awk") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the README walkthrough uses {', '.join(missing)} (CI installs them: .ci/run)")
    base = tmp_path_factory.mktemp("readme")
    home, work = base / "home", base / "work"
    work.mkdir()
    bindir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(base), "STEPLESS_HOME": str(home),
           "LANG": "C.UTF-8"}
    master, slave = pty.openpty()  # `stepless dev` in a terminal, as in the README
    dev = subprocess.Popen([str(Path(bindir) / "stepless"), "dev", "--address", f"127.0.0.1:{free_port()}"],
                           env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=base)
    os.close(slave)
    output: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            output.append(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while b"Press Ctrl-C" not in b"".join(output):
            if dev.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stepless dev did not start: {b''.join(output).decode(errors='replace')[-2000:]}")
            time.sleep(0.2)
        cmds = [c for b in walkthrough((ROOT / "README.md").read_text()) for c in commands(b)]
        result = subprocess.run(["bash", "-c", script(cmds)], cwd=work, env=env, capture_output=True, text=True,
                                timeout=900, stdin=subprocess.DEVNULL)
        yield Walk(work, home, result, output)
    finally:
        stop(dev, 15)
        os.close(master)


def test_readme_walkthrough_runs_as_written(walk):
    res = walk.result
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Traceback" not in res.stderr
    work = walk.work

    def leaf(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificates((work / name).read_bytes())[0]

    def hours(name: str) -> float:
        c = leaf(name)
        return (c.not_valid_after_utc - c.not_valid_before_utc).total_seconds() / 3600

    assert not (work / "too-long.crt").exists() and not (work / "other.crt").exists()  # the refused ones
    assert hours("localhost.crt") == pytest.approx(6 / 60)  # --not-after=5m (+1m backdate), replaced with --force
    assert hours("long.crt") == pytest.approx(36 + 1 / 60)  # after `ca claims --x509-max-dur 48h`
    assert hours("ops.crt") == pytest.approx(8 + 1 / 60)  # ops' own default after `provisioner update`
    assert extensions.of(leaf("d.crt"))[:2] == (7, "devices")  # X5C, with the device's certificate
    assert leaf("d.crt").subject.rfc4514_string() == "CN=device1.example.com"
    assert (work / "revoked.krl").read_bytes().startswith(b"SSHKRL")
    assert (work / "ssh_host_ecdsa_key-cert.pub").read_text().startswith("ecdsa-sha2-nistp256-cert-v01@openssh.com ")
    assert "has been revoked" in res.stderr
    # the refused commands, for the reasons their comments give
    assert "more than the authorized maximum certificate duration of 24h" in res.stderr
    assert "error: more than one provisioner (admin, ops): choose one with --provisioner" in res.stderr
    assert re.search(r"error: .*revoked", res.stderr)
    assert "stepless-dev/managed/api" in res.stdout  # the managed certificate's secret ARN


def test_dev_prints_one_readable_line_per_request_in_a_terminal(walk):
    text = b"".join(walk.dev_output).decode(errors="replace").replace("\r\n", "\n")
    lines = text.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")]  # no JSON log or EMF metric lines
    issued = re.compile(r"^\d\d:\d\d:\d\d POST /sign 201 svc\.example\.com serial=\d+ \d+ ms$")
    assert any(issued.match(line) for line in lines), text[-3000:]
    assert any(re.match(r"^\d\d:\d\d:\d\d POST /sign 403 .*maximum.* \d+ ms$", line) for line in lines)
    assert any(re.match(r"^\d\d:\d\d:\d\d POST /renew 401 .*revoked.* \d+ ms$", line) for line in lines)
    after_banner = lines[next(i for i, line in enumerate(lines) if "Press Ctrl-C" in line) + 1:]
    requests = [line for line in after_banner if re.match(r"^\d\d:\d\d:\d\d [A-Z]+ /\S* \d{3} ", line)]
    assert len(requests) > 30 and requests == after_banner  # one line per request, nothing else
