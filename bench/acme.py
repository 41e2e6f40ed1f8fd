"""ACME (RFC 8555): AWS calls per complete order, and warm CPU per order, stubbed and on the real path.

One complete order is what certbot and lego do after registering: newNonce (HEAD), then newOrder →
authorization (POST-as-GET) → challenge (http-01, validated from the function against a loopback responder:
a process of its own answering any token with the account's key authorization) → order poll → finalize →
certificate download. Every POST consumes a nonce; every response carries a fresh one.

Sections (``python -m bench acme --only calls,cpu,real,stepca``):

* calls — stubbed (moto in-process): AWS calls of each step, counted at botocore's before-call hook.
* cpu — stubbed (moto in-process): warm CPU per complete order against one POST /sign, same process.
* real — the real path: the sign function's handler (API Gateway events) with its AWS calls over keep-alive
  HTTP to ``bench.motoserver`` (another process), Secrets and KMS backends; CPU of the handler calls in this
  process (the client's JWS signing, the responder and moto excluded), AWS calls per order by operation.
  Against step-ca 0.19 with an ACME provisioner (``step ca provisioner add acme --type ACME``), driven by the
  same client (same account key, same requests) over keep-alive HTTPS: its server CPU per order from
  /proc/PID/stat. Rounds alternate; best round each. step-ca 0.19 validates http-01 on port 80 only, so the
  comparison needs 127.0.0.1:80 (both CAs then validate there).
* stepca — lego's wall time per run against step-ca 0.19 and ``stepless dev`` (lego's start-up in both).
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.acme import Client

from bench.common import (
    STEP_CA,
    CallCounter,
    Row,
    child_env,
    cpu_seconds,
    environ,
    moto_stack,
    quiet_logger,
    run_sections,
    serving,
    step_ca_server,
)

SECTIONS = ("calls", "cpu", "real", "stepca")
STEPS = ("newNonce", "newOrder", "authz", "challenge", "order", "finalize", "certificate")
TARGET_CALLS = 26  # per complete order, KMS backend: 35 before nonces were authenticated values (issue 15)
NAME = "localhost"  # what step-ca 0.19 can validate: it connects to the identifier itself, on port 80


# --- the client, the http-01 responder, one complete order ------------------------------------------------


class HandlerClient(Client):
    """The bench's ACME client (tests.support.acme.Client: JWS ES256, ``jwk`` then ``kid``) on the sign
    function's handler (API Gateway events); ``cpu``: this process's CPU inside the handler calls."""

    def __init__(self, app: Any, key: Any = None) -> None:
        super().__init__(app, key=key)
        self.cpu = 0.0
        self.requests = 0

    def send(self, method: str, url: str, text: str | None, content_type: str,
             ) -> tuple[int, dict[str, str], str | bytes]:
        self.requests += 1
        c0 = time.process_time()
        try:
            return super().send(method, url, text, content_type)
        finally:
            self.cpu += time.process_time() - c0


class HTTPSClient(Client):
    """The same client over one keep-alive HTTPS connection (step-ca)."""

    def __init__(self, url: str, root: Path, key: Any, provisioner: str = "acme") -> None:
        super().__init__(None, provisioner, key=key)
        self.base = f"{url}/acme/{provisioner}"
        parts = urlsplit(url)
        self.conn = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                context=ssl.create_default_context(cafile=str(root)), timeout=60)
        self.requests = 0

    def send(self, method: str, url: str, text: str | None, content_type: str,
             ) -> tuple[int, dict[str, str], str | bytes]:
        self.requests += 1
        self.conn.request(method, urlsplit(url).path, body=text,
                          headers={"Content-Type": content_type} if text is not None else {})
        res = self.conn.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data


def serve_http01(port: int, thumbprint: str) -> None:
    """The http-01 responder (run in a process of its own, so its CPU stays out of the CA's figures): any
    token gets ``<token>.<thumbprint>``, the key authorization of that account. Prints ``PORT <n>``."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    prefix = "/.well-known/acme-challenge/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            token = self.path.removeprefix(prefix) if self.path.startswith(prefix) else ""
            body = f"{token}.{thumbprint}".encode() if token and "/" not in token else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


@contextlib.contextmanager
def responder(thumbprint: str, port: int = 0) -> Iterator[tuple[int, int]]:
    """:func:`serve_http01` in a child process for the block (``port`` 0: a free one): (its port, its pid)."""
    code = f"from bench.acme import serve_http01; serve_http01({port}, {thumbprint!r})"
    with serving(["-c", code], child_env(), f"the http-01 responder (port {port})") as served:
        yield served


def thumbprint_of(key: Any) -> str:
    from stepless import jose

    return jose.thumbprint(jose.public_jwk(key))


def order(client: Client, name: str = NAME, csr: str | None = None,
          on_step: Callable[[str], None] | None = None) -> str:
    """One complete order with ``client`` (see the module); the PEM chain. ``on_step(label)`` after each step
    (:data:`STEPS`; an order poll repeats ``order``)."""
    from tests.support.acme import csr_der

    def post(label: str, url: str, payload: Any, ok: int = 200) -> tuple[dict[str, str], Any]:
        status, headers, body = client.post(url, payload)
        if status != ok:
            raise RuntimeError(f"{label}: {status} {body!r}"[:2000])
        if on_step is not None:
            on_step(label)
        return headers, body

    def poll(url: str, body: Any, waiting: tuple[str, ...]) -> Any:
        for _ in range(200):
            if body["status"] not in waiting:
                return body
            time.sleep(0.02)
            _, body = post("order", url, None)
        raise RuntimeError(f"the order stayed {body['status']}")

    client.get_nonce()
    if on_step is not None:
        on_step("newNonce")
    headers, body = post("newOrder", "new-order", {"identifiers": [{"type": "dns", "value": name}]}, 201)
    order_url = headers["location"]
    _, authz = post("authz", body["authorizations"][0], None)
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    post("challenge", ch["url"], {})
    _, body = post("order", order_url, None)
    body = poll(order_url, body, ("pending",))
    if body["status"] != "ready":
        raise RuntimeError(f"the order is {body['status']} after its challenge: {body}")
    _, body = post("finalize", body["finalize"], {"csr": csr or csr_der([name])[0]})
    body = poll(order_url, body, ("ready", "processing"))
    _, pem = post("certificate", body["certificate"], None)
    pem = pem.decode() if isinstance(pem, bytes) else pem
    if pem.count("BEGIN CERTIFICATE") < 2:
        raise RuntimeError(f"no certificate chain: {pem[:200]!r}")
    return pem


@contextlib.contextmanager
def on_stepless(key: Any, port: int) -> Iterator[HandlerClient]:
    """The current CA with an ACME provisioner ``acme`` validating http-01 on 127.0.0.1:``port``, and the
    account of ``key`` registered and warmed by one complete order."""
    from stepless import authority
    from stepless.admin import provisioners as admin
    from stepless.api.sign import app

    admin.add(admin.acme_entry("acme", require_eab=False))
    authority.reset()  # the CA caches its configuration
    with environ({"STEPLESS_ACME_HTTP01_PORT": str(port), "STEPLESS_ACME_VALIDATION_HOST": "127.0.0.1"}):
        client = HandlerClient(app, key)
        status, _, body = client.register()
        if status != 201:
            raise RuntimeError(f"newAccount: {status} {body}")
        order(client)
        yield client


@contextlib.contextmanager
def _registered() -> Iterator[tuple[Any, HandlerClient]]:
    """Stubbed: the benchmark's CA on moto in-process (KMS backend), registered and warm: (ca, client)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from bench.managed import _ca

    key = ec.generate_private_key(ec.SECP256R1())
    with _ca() as ca, quiet_logger(), responder(thumbprint_of(key)) as (port, _), on_stepless(key, port) as client:
        yield ca, client


def _by_op(counts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(counts.items()))


def calls(n: int = 10) -> tuple[list[Row], list[str]]:
    """Stubbed: the AWS calls of each step of a complete order."""
    totals: dict[str, dict[str, float]] = {s: {} for s in STEPS}
    with _registered() as (_, client):
        counter = CallCounter()
        counter.calls.attach()

        def on_step(label: str) -> None:
            for op, c in counter.calls.counts.items():
                totals[label][op] = totals[label].get(op, 0) + c / n
            counter.calls.reset()

        with counter.attached():
            posts = client.requests
            for i in range(n):
                counter.calls.reset()
                order(client, f"o{i}.example.test", on_step=on_step)
            posts = (client.requests - posts) / n - 1  # every request but newNonce is a POST
    whole: dict[str, float] = {}
    for counts in totals.values():
        for op, c in counts.items():
            whole[op] = whole.get(op, 0) + c
    rows = [Row("acme", f"stubbed: AWS calls per complete order (newNonce → newOrder → challenge → finalize → "
                f"download, {n} orders)", f"{sum(whole.values()):.1f}", "", f"<= {TARGET_CALLS}",
                sum(whole.values()) <= TARGET_CALLS, _by_op(whole))]
    for label in STEPS:
        rows.append(Row("acme", f"  {label}", f"{sum(totals[label].values()):g}", "", note=_by_op(totals[label])))
    rows.append(Row("acme", "  of which nonces", f"{posts:g}", "",
                    note="one conditional write per POST (single use); a response's new nonce writes nothing "
                    "(an HMAC-authenticated value with its expiry)"))
    return rows, []


def cpu(n: int = 20) -> tuple[list[Row], list[str]]:
    """Stubbed: warm CPU per complete ACME order vs one POST /sign (same CA, same moto, same process)."""
    from tests.support.ca import event

    from bench.sign import _requests
    from stepless.api.sign import app

    with _registered() as (ca, client):
        bodies = _requests(ca, n + 1, prefix="bench-sign")
        app.handler(event("POST", "/1.0/sign", bodies[0]), None)
        t0 = time.process_time()
        for body in bodies[1:]:
            app.handler(event("POST", "/1.0/sign", body), None)
        sign_cpu = (time.process_time() - t0) / n
        client.cpu = 0.0
        for i in range(n):
            order(client, f"cpu{i}.example.test")
        order_cpu = client.cpu / n
    ratio = order_cpu / sign_cpu
    return [Row("acme", f"stubbed: warm CPU per complete ACME order / per POST /sign ({n} each, moto in-process)",
                f"{ratio:.1f}x", "POST /sign", "", None,
                f"{order_cpu * 1000:.1f} ms vs {sign_cpu * 1000:.1f} ms CPU (moto's own work included in both)")], []


def real(n: int = 30, rounds: int = 5) -> tuple[list[Row], list[str]]:
    """The real path against step-ca 0.19's ACME, same client, rounds alternating (see the module)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from tests.support.acme import csr_der

    key = ec.generate_private_key(ec.SECP256R1())  # one account key for both CAs: one responder answers both
    peer_ok = _can_bind_80() and STEP_CA.exists()
    why_not = "" if peer_ok else (f"{STEP_CA} not built" if _can_bind_80() else
                                  "cannot listen on 127.0.0.1:80 (step-ca 0.19 validates http-01 there only)")
    ours: dict[str, dict[str, Any]] = {}
    peer: list[float] = []
    peer_responder: list[float] = []
    with contextlib.ExitStack() as stack:
        port, rpid = stack.enter_context(responder(thumbprint_of(key), 80 if peer_ok else 0))
        peer_client = None
        if peer_ok:
            url, pid, root, _, _ = stack.enter_context(step_ca_server(acme=True))
            peer_client = HTTPSClient(url, root, key)
            status, _, body = peer_client.register()
            if status != 201:
                raise RuntimeError(f"step-ca newAccount: {status} {body}")
            order(peer_client)  # warm
        for backend in ("secrets", "kms"):
            with moto_stack(backend), quiet_logger(), on_stepless(key, port) as client:
                res: dict[str, Any] = {"cpu": [], "responder": []}
                for r in range(rounds):
                    csrs = [csr_der([NAME])[0] for _ in range(n)]  # the client's work, made beforehand
                    counter = CallCounter()
                    counter.calls.attach()
                    client.cpu, requests, r0 = 0.0, client.requests, cpu_seconds(rpid)
                    with counter.attached():
                        for csr in csrs:
                            order(client, NAME, csr)
                    res["cpu"].append(client.cpu / n)
                    res["responder"].append((cpu_seconds(rpid) - r0) / n)
                    if r == 0:
                        res["calls"] = counter.calls.per(n)
                        res["requests"] = (client.requests - requests) / n
                    if peer_client is not None:
                        c0, r0, requests = cpu_seconds(pid), cpu_seconds(rpid), peer_client.requests
                        for csr in csrs:
                            order(peer_client, NAME, csr)
                        peer.append((cpu_seconds(pid) - c0) / n)
                        peer_responder.append((cpu_seconds(rpid) - r0) / n)
                        ours.setdefault("step-ca", {"requests": (peer_client.requests - requests) / n})
                ours[backend] = res
    base = min(peer) if peer else None
    rows = []
    if base:
        rows.append(Row("acme", "real path baseline: step-ca 0.19 server CPU per complete ACME order", "1.00x",
                        note=f"{base * 1000:.2f} ms CPU/order (HTTPS, its badger DB, http-01 GET, ECDSA), "
                        f"{ours['step-ca']['requests']:g} requests/order; best of {len(peer)} x {n}; responder "
                        f"{min(peer_responder) * 1e6:.0f} us/order apart"))
    for backend, label in (("secrets", "Secrets"), ("kms", "KMS")):
        res = ours[backend]
        cpu_ms = min(res["cpu"]) * 1000
        note = (f"{cpu_ms:.2f} ms CPU/order in the handler calls, {res['requests']:g} requests/order; "
                f"responder {min(res['responder']) * 1e6:.0f} us/order apart; best of {rounds} x {n}")
        if backend == "kms":
            note += "; the signature is KMS's (moto's process), not in the figure"
        if base:
            rows.append(Row("acme", f"real path: warm CPU per complete ACME order, sign handler, AWS over HTTP "
                            f"({label})", f"{cpu_ms / 1000 / base:.2f}x", "step-ca 0.19", "", None, note))
        else:
            rows.append(Row("acme", f"real path: warm CPU per complete ACME order, sign handler, AWS over HTTP "
                            f"({label})", f"{cpu_ms:.2f} ms", "", "", None, note + f"; no step-ca: {why_not}"))
    for backend, label in (("kms", "KMS"), ("secrets", "Secrets")):
        counts = ours[backend]["calls"]
        rows.append(Row("acme", f"real path: AWS calls per complete order ({label} backend)",
                        f"{sum(counts.values()):g}", "", "counted", None, _by_op(counts)))
    return rows, ["acme real: CPU of the handler calls in this process (handler + its AWS client + the http-01 "
                  "GET); moto and the responder run in other processes, the client's JWS signing is outside the "
                  "calls. step-ca's is its whole server process per order, TLS included (API Gateway "
                  "terminates TLS for the function)."]


def _lego_runs(server: Any, work: Path, n: int) -> float:
    """Seconds per ``lego run`` (one account, reused; a new order for ``localhost`` each time, http-01 on
    127.0.0.1:80, which both CAs validate: step-ca 0.19 has no port setting)."""
    import os
    import shutil

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
        "real": lambda: real(n or 30 * scale, 1 if smoke else 5),
        "stepca": lambda: stepca(n or 5 * scale),
    }, only)
