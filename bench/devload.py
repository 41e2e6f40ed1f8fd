"""``python -m bench devload``: sustained issuance through ``stepless dev`` (its SQLite engine) over HTTPS
keep-alive at concurrency 8, tokens and CSRs made beforehand — and step-ca 0.19 under the same load in the
same run when it is built (``~/.cache/stepless-peers/bin/step-ca``, tools/build-step.sh).

For each CA: errors (target 0); certificates/s, and stepless's as a ratio of step-ca's (target >= 0.5x);
server CPU per certificate of the last window vs the first (windows of 1,000, or a quarter of a short run;
target <= 1.2x: flat under load); RSS growth over the run (target <= 64 MiB). Sections ``x509`` and
``ssh`` (/1.0/sign and /1.0/ssh/sign), and ``aws``: the X.509 load on ``--aws-emulation`` (moto, its
requests serialized), errors only. Default rounds are small (2,000 X.509, 1,000 SSH, 300 on moto);
``--full``: the issue's 20,000 (5,000 SSH, 2,000 on moto); ``--smoke``: 40; ``STEPLESS_DEVLOAD_N`` overrides
them all.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, STEP, STEP_CA, Row, child_env, cpu_seconds, free_port, run_sections

CONCURRENCY = 8
SECTIONS = ("x509", "ssh", "aws")


@dataclass
class Server:
    """A running CA: where it listens, how to trust it, its process, the provisioner key to make tokens."""

    name: str
    url: str
    root: Path
    proc: subprocess.Popen
    key: object  # the JWK provisioner's private key
    kid: str
    provisioner: str = "admin"

    def cpu(self) -> float:
        """The server process's CPU seconds so far (user + system)."""
        return cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _provisioner_key(url: str, root: Path, password: str, name: str) -> tuple[object, str]:
    """Decrypt the JWK provisioner's key from the CA's own /provisioners (both CAs publish encryptedKey)."""
    from stepless import jose

    ctx = ssl.create_default_context(cafile=str(root))
    listed = json.loads(urllib.request.urlopen(f"{url}/provisioners", context=ctx, timeout=30).read())
    entry = next(p for p in listed["provisioners"] if p["name"] == name and p["type"] == "JWK")
    private = jose.decrypt_jwk(entry["encryptedKey"], password)
    return jose.key_from_jwk(private), entry["key"]["kid"]


def _wait(proc: subprocess.Popen, log: Path, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def stepless_dev(work: Path, *flags: str) -> Iterator[Server]:
    """``stepless dev`` (default engine, or as ``flags`` say) on a fresh home."""
    home, port, log = work / "stepless-home", free_port(), work / "stepless-dev.log"
    env = child_env({"STEPLESS_HOME": str(home)})
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from stepless.cli.main import main; main()", "dev",
                                 "--address", f"127.0.0.1:{port}", *flags], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    _wait(proc, log, lambda: "CA ready" in log.read_text(), "stepless dev")
    url, root = f"https://localhost:{port}", home / "certs" / "root_ca.crt"
    key, kid = _provisioner_key(url, root, (home / "secrets" / "password").read_text().strip(), "admin")
    server = Server("stepless dev", url, root, proc, key, kid)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def step_ca(work: Path) -> Iterator[Server | None]:
    """step-ca 0.19 (``step ca init --ssh``, badger DB) on a fresh STEPPATH; None when it is not built."""
    if not (STEP_CA.exists() and STEP.exists()):
        yield None
        return
    steppath, port, log = work / "steppath", free_port(), work / "step-ca.log"
    password = work / "password"
    password.write_text("bench-password\n")
    env = {"STEPPATH": str(steppath), "HOME": str(work), "PATH": "/usr/bin:/bin"}
    subprocess.run([str(STEP), "ca", "init", "--name", "Peer", "--dns", "localhost", "--address",
                    f"127.0.0.1:{port}", "--provisioner", "admin", "--password-file", str(password),
                    "--provisioner-password-file", str(password), "--ssh"],
                   env=env, check=True, capture_output=True, timeout=120)
    with open(log, "w") as out:
        proc = subprocess.Popen([str(STEP_CA), str(steppath / "config" / "ca.json"), "--password-file",
                                 str(password)], env=env, stdout=out, stderr=subprocess.STDOUT)
    _wait(proc, log, lambda: "Serving HTTPS" in log.read_text(), "step-ca")
    url, root = f"https://localhost:{port}", steppath / "certs" / "root_ca.crt"
    key, kid = _provisioner_key(url, root, "bench-password", "admin")
    server = Server("step-ca 0.19", url, root, proc, key, kid)
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ requests


def _token(server: Server, sub: str, path: str, extra: dict | None = None) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": server.provisioner, "aud": server.url + path, "sub": sub, "iat": now, "nbf": now,
              "exp": now + 3600, "jti": uuid.uuid4().hex, **(extra or {})}
    return jwt.encode(claims, server.key, algorithm="ES256", headers={"kid": server.kid})


def x509_requests(server: Server, n: int) -> list[bytes]:
    """``n`` /1.0/sign bodies (one key, a CSR and a token per certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    out = []
    for i in range(n):
        cn = f"load{i}.example.com"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
               .sign(key, hashes.SHA256()))
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        out.append(json.dumps({"csr": pem, "ott": _token(server, cn, "/1.0/sign", {"sans": [cn]})}).encode())
    return out


def ssh_requests(server: Server, n: int) -> list[bytes]:
    """``n`` /1.0/ssh/sign bodies (user certificates for one Ed25519 key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    blob = line.split()[1]
    out = []
    for i in range(n):
        user = f"user{i}"
        ssh = {"certType": "user", "keyID": user, "principals": [user], "validAfter": "", "validBefore": ""}
        ott = _token(server, user, "/1.0/ssh/sign", {"step": {"ssh": ssh}})
        out.append(json.dumps({"publicKey": blob, "ott": ott, "certType": "user", "keyID": user,
                               "principals": [user]}).encode())
    return out


@dataclass
class Window:
    count: int
    errors: int
    wall: float
    cpu: float
    statuses: dict[int, int]


def drive(server: Server, path: str, bodies: list[bytes], concurrency: int = CONCURRENCY) -> Window:
    """POST every body with ``concurrency`` keep-alive HTTPS connections; CPU of the server meanwhile."""
    ctx = ssl.create_default_context(cafile=str(server.root))
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    lock, index = threading.Lock(), [0]
    statuses: dict[int, int] = {}

    def worker() -> None:
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
        while True:
            with lock:
                i = index[0]
                index[0] += 1
            if i >= len(bodies):
                break
            try:
                conn.request("POST", path, body=bodies[i], headers={"Content-Type": "application/json"})
                res = conn.getresponse()
                res.read()
                status = res.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    cpu0, t0 = server.cpu(), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
    ok = sum(v for k, v in statuses.items() if k in (200, 201))
    return Window(len(bodies), len(bodies) - ok, wall, cpu, statuses)


@dataclass
class Run:
    server: str
    n: int
    errors: int
    rate: float
    cpu_first_ms: float
    cpu_last_ms: float
    rss_start: float
    rss_end: float
    statuses: dict[int, int]

    @property
    def flatness(self) -> float:
        return self.cpu_last_ms / self.cpu_first_ms if self.cpu_first_ms else 0.0


def sustained(server: Server, path: str, make: Callable[[Server, int], list[bytes]], n: int) -> Run:
    """``n`` issuances in three phases (first window, middle, last window), tokens made beforehand."""
    window = min(1000, max(1, n // 4))
    bodies = make(server, n + 50)
    drive(server, path, bodies[:50])  # warm: connections, caches, the first signer use
    rss_start = server.rss_mb()
    first = drive(server, path, bodies[50:50 + window])
    middle = drive(server, path, bodies[50 + window:50 + n - window])
    last = drive(server, path, bodies[50 + n - window:])
    statuses: dict[int, int] = {}
    for w in (first, middle, last):
        for k, v in w.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    total_wall = first.wall + middle.wall + last.wall
    return Run(server.name, n, first.errors + middle.errors + last.errors, n / total_wall,
               first.cpu / window * 1000, last.cpu / window * 1000, rss_start, server.rss_mb(), statuses)


def _rows(kind: str, ours: Run, peer: Run | None) -> tuple[list[Row], list[str]]:
    rows = [
        Row("devload", f"{kind}: {ours.n:,} issuances, concurrency {CONCURRENCY}: errors", str(ours.errors), "",
            "0", ours.errors == 0, f"statuses {ours.statuses}"),
        Row("devload", f"  {kind}: server CPU per certificate, last window vs first", f"{ours.flatness:.2f}x",
            "first window", "<= 1.2x", ours.flatness <= 1.2,
            f"{ours.cpu_first_ms:.2f} -> {ours.cpu_last_ms:.2f} ms/cert"),
        Row("devload", f"  {kind}: RSS growth over the run", f"{ours.rss_end - ours.rss_start:+.0f} MiB", "",
            "<= 64 MiB", ours.rss_end - ours.rss_start <= 64, f"{ours.rss_start:.0f} -> {ours.rss_end:.0f} MiB"),
    ]
    if peer is None:
        rows.append(Row("devload", f"  {kind}: certificates/s vs step-ca 0.19", "n/a", "", ">= 0.5x", None,
                        f"step-ca not built (tools/build-step.sh); stepless {ours.rate:.0f}/s"))
    else:
        ratio = ours.rate / peer.rate if peer.rate else 0.0
        rows.append(Row("devload", f"  {kind}: certificates/s vs step-ca 0.19", f"{ratio:.2f}x", "step-ca",
                        ">= 0.5x (stretch 1x)", ratio >= 0.5,
                        f"{ours.rate:.0f}/s vs {peer.rate:.0f}/s; step-ca errors {peer.errors}, CPU "
                        f"{peer.cpu_first_ms:.2f} -> {peer.cpu_last_ms:.2f} ms/cert, RSS "
                        f"{peer.rss_start:.0f} -> {peer.rss_end:.0f} MiB"))
    return rows, []


def _section(kind: str, path: str, make: Callable[[Server, int], list[bytes]], n: int
             ) -> Callable[[], tuple[list[Row], list[str]]]:
    def run() -> tuple[list[Row], list[str]]:
        work = Path(tempfile.mkdtemp(prefix="stepless-devload-"))
        try:
            with stepless_dev(work) as ours_server:
                ours = sustained(ours_server, path, make, n)
            with step_ca(work) as peer_server:
                peer = sustained(peer_server, path, make, n) if peer_server else None
            return _rows(kind, ours, peer)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return run


def _aws_emulation(n: int) -> Callable[[], tuple[list[Row], list[str]]]:
    """The same X.509 load on ``stepless dev --aws-emulation`` (moto, serialized): errors only — moto copies
    every table it touches on each transaction, so its CPU per certificate grows by design."""

    def run() -> tuple[list[Row], list[str]]:
        work = Path(tempfile.mkdtemp(prefix="stepless-devload-"))
        try:
            with stepless_dev(work, "--aws-emulation") as server:
                got = sustained(server, "/1.0/sign", x509_requests, n)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return [Row("devload", f"X.509 on --aws-emulation (moto, serialized): {n:,} issuances: errors",
                    str(got.errors), "", "0", got.errors == 0,
                    f"{got.rate:.0f}/s; CPU {got.cpu_first_ms:.1f} -> {got.cpu_last_ms:.1f} ms/cert (moto's copies); "
                    f"statuses {got.statuses}")], []

    return run


def run(*, profile: bool = False, full: bool = False, smoke: bool = False, only: tuple[str, ...] = SECTIONS,
        ) -> tuple[list[Row], list[str]]:
    override = os.environ.get("STEPLESS_DEVLOAD_N") or ("40" if smoke else None)
    n_x509 = int(override) if override else (20_000 if full else 2_000)
    n_ssh = int(override) if override else (5_000 if full else 1_000)
    sections = {"x509": _section("X.509", "/1.0/sign", x509_requests, n_x509),
                "ssh": _section("SSH", "/1.0/ssh/sign", ssh_requests, n_ssh),
                "aws": _aws_emulation(int(override) if override else (2_000 if full else 300))}
    return run_sections("devload", sections, only)


__all__ = ["run"]
