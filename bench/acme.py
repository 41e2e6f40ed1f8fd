"""ACME (RFC 8555): AWS calls per complete order, and warm CPU per order against a POST /sign in the same run.

One complete order is what certbot and lego do after registering: newNonce is served from the previous
response's Replay-Nonce, then newOrder → authorization (POST-as-GET) → challenge (http-01, validated from
the function against a loopback responder) → order poll → finalize → certificate download. The CA is the
KMS backend on moto in-process; calls are counted at botocore's before-call hook (bench.common.AWSCalls).
Every POST consumes a nonce (a conditional UpdateItem) and every response stores a new one (a PutItem):
those are part of the protocol and counted separately.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import AWSCalls, Row, environ, quiet_logger, run_sections

SECTIONS = ("calls", "cpu", "stepca")
STEPS = ("newOrder", "authz", "challenge", "order", "finalize", "certificate")


@contextlib.contextmanager
def _registered() -> Iterator[tuple[Any, Any, Any]]:
    """The benchmark's CA with an ACME provisioner, an http-01 responder the function validates against, and
    an account registered and warmed by one complete order: (ca, client, server)."""
    from tests.support.acme import ChallengeServer, Client

    from bench.managed import _ca
    from stepless import authority
    from stepless.admin import provisioners as admin
    from stepless.api.sign import app

    with _ca() as ca, quiet_logger():
        admin.add(admin.acme_entry("acme", require_eab=False))
        authority.reset()  # the benchmark's CA caches its configuration for an hour
        server = ChallengeServer()
        try:
            with environ({"STEPLESS_ACME_HTTP01_PORT": str(server.port), "STEPLESS_ACME_VALIDATION_HOST": "127.0.0.1"}):
                client = Client(app)
                client.register()
                _order(client, server, "warmup.example.test")
                yield ca, client, server
        finally:
            server.close()


def _order(client: Any, server: Any, name: str, counter: AWSCalls | None = None) -> dict[str, dict[str, int]]:
    """One complete order; with ``counter``, the AWS calls of each step."""
    from tests.support.acme import csr_der

    per: dict[str, dict[str, int]] = {}

    def step(label: str, tail: str, payload: Any) -> Any:
        if counter is not None:
            counter.reset()
        status, headers, body = client.post(tail, payload)
        if status not in (200, 201):
            raise RuntimeError(f"{label}: {status} {body}")
        if counter is not None:
            per[label] = dict(counter.counts)
        return headers, body

    headers, order = step("newOrder", "new-order", {"identifiers": [{"type": "dns", "value": name}]})
    order_url = headers["location"]
    _, authz = step("authz", order["authorizations"][0], None)
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    server.tokens[ch["token"]] = client.key_authorization(ch["token"])
    step("challenge", ch["url"], {})
    _, order = step("order", order_url, None)
    csr, _ = csr_der([name])
    _, order = step("finalize", order["finalize"], {"csr": csr})
    step("certificate", order["certificate"], None)
    return per


def calls(n: int = 10) -> tuple[list[Row], list[str]]:
    with _registered() as (_, client, server):
        counter = AWSCalls().attach()
        totals: dict[str, dict[str, float]] = {s: {} for s in STEPS}
        for i in range(n):
            for label, counts in _order(client, server, f"o{i}.example.test", counter).items():
                for op, c in counts.items():
                    totals[label][op] = totals[label].get(op, 0) + c / n
    whole: dict[str, float] = {}
    for counts in totals.values():
        for op, c in counts.items():
            whole[op] = whole.get(op, 0) + c
    nonces = whole.get("dynamodb.UpdateItem", 0) + len(STEPS)  # each use, and one new nonce per response
    total = sum(whole.values())
    rows = [Row("acme", f"AWS calls per complete order (newOrder → challenge → finalize → download, {n} orders)",
                f"{total:.1f}", "", "counted", None, ", ".join(f"{k} {v:g}" for k, v in sorted(whole.items())))]
    for label in STEPS:
        rows.append(Row("acme", f"  {label}", f"{sum(totals[label].values()):g}", "",
                        note=", ".join(f"{k} {v:g}" for k, v in sorted(totals[label].items()))))
    rows.append(Row("acme", "  of which nonce use + new nonce (UpdateItem + PutItem)", f"{nonces:g}", "",
                    note="2 per request: RFC 8555's anti-replay, one conditional write each way"))
    return rows, []


def cpu(n: int = 20) -> tuple[list[Row], list[str]]:
    """Warm CPU per complete ACME order vs one POST /sign (same CA, same moto, same process)."""
    from tests.support.ca import event

    from bench.sign import _requests
    from stepless.api.sign import app

    with _registered() as (ca, client, server):
        bodies = _requests(ca, n + 1, prefix="bench-sign")
        app.handler(event("POST", "/1.0/sign", bodies[0]), None)
        t0 = time.process_time()
        for body in bodies[1:]:
            app.handler(event("POST", "/1.0/sign", body), None)
        sign_cpu = (time.process_time() - t0) / n
        t0 = time.process_time()
        for i in range(n):
            _order(client, server, f"cpu{i}.example.test")
        order_cpu = (time.process_time() - t0) / n
    ratio = order_cpu / sign_cpu
    return [Row("acme", f"warm CPU per complete ACME order / per POST /sign ({n} each, moto in-process)",
                f"{ratio:.1f}x", "POST /sign", "", None,
                f"{order_cpu * 1000:.1f} ms vs {sign_cpu * 1000:.1f} ms CPU (moto's own work included in both)")], []


def _lego_runs(server: Any, work: Path, n: int) -> float:
    """Seconds per ``lego run`` (one account, reused; a new order for ``localhost`` each time, http-01 on
    127.0.0.1:80, which both CAs validate: step-ca 0.19 has no port setting)."""
    import os
    import shutil
    import subprocess

    lego = shutil.which("lego")
    assert lego is not None
    env = {**os.environ, "LEGO_CA_CERTIFICATES": str(server.root)}
    cmd = [lego, "--path", str(work / "lego"), "--accept-tos", "--email", "bench@example.com", "--server",
           f"{server.url}/acme/acme/directory", "--domains", "localhost", "--http", "--http.port", "127.0.0.1:80",
           "run"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)  # the account, and a warm CA
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    return (time.perf_counter() - t0) / n


def _wait_directory(server: Any) -> None:
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(server.root))
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{server.url}/acme/acme/directory", context=ctx, timeout=10).read()
            return
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _can_bind_80() -> bool:
    import socket

    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as lego's listener (past TIME_WAITs)
            s.bind(("127.0.0.1", 80))
        return True
    except OSError:
        return False


def stepca(n: int = 5) -> tuple[list[Row], list[str]]:
    """The same lego flow against step-ca 0.19's ACME and stepless dev (same machine, same client)."""
    import json
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile

    from bench.common import child_env
    from bench.devload import step_ca, stepless_dev

    if shutil.which("lego") is None:
        return [Row("acme", "lego vs step-ca 0.19", "skipped", note="lego is not installed")], []
    if not _can_bind_80():
        return [Row("acme", "lego vs step-ca 0.19", "skipped", note="cannot listen on 127.0.0.1:80 (step-ca "
                    "0.19 validates http-01 on port 80 only)")], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for sub in ("peer", "ours"):
            (work / sub).mkdir()
        with step_ca(work / "peer") as peer:
            if peer is None:
                return [Row("acme", "lego vs step-ca 0.19", "skipped", note="step-ca is not built")], []
            config = work / "peer" / "steppath" / "config" / "ca.json"
            data = json.loads(config.read_text())
            data["authority"]["provisioners"].append({"type": "ACME", "name": "acme"})
            config.write_text(json.dumps(data))
            peer.proc.send_signal(signal.SIGHUP)  # step-ca reloads its configuration
            _wait_directory(peer)
            peer_s = _lego_runs(peer, work / "peer", n)
        with stepless_dev(work / "ours") as ours:
            subprocess.run([sys.executable, "-c", "from stepless.cli.main import main; main()", "ca", "provisioner",
                            "add", "acme", "--type", "ACME", "--no-require-eab"],
                           env=child_env({"STEPLESS_HOME": str(work / "ours" / "stepless-home")}), check=True,
                           capture_output=True, timeout=120, cwd=os.getcwd())
            _wait_directory(ours)
            ours_s = _lego_runs(ours, work / "ours", n)
    return [Row("acme", f"wall time per lego run (register once; order, http-01, finalize, download; {n} runs)",
                f"{ours_s / peer_s:.2f}x", "step-ca 0.19", "", None,
                f"stepless dev {ours_s * 1000:.0f} ms, step-ca {peer_s * 1000:.0f} ms per run (lego start-up in "
                "both)")], []


def run(only: tuple[str, ...] = SECTIONS, smoke: bool = False, full: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only``; ``smoke``: two orders each (it runs; the figures mean nothing)."""
    n = 2 if smoke else None
    scale = 2 if full else 1
    return run_sections("acme", {
        "calls": lambda: calls(n or 10 * scale),
        "cpu": lambda: cpu(n or 20 * scale),
        "stepca": lambda: stepca(n or 5 * scale),
    }, only)
