"""The real path: handlers whose AWS calls go over HTTP (keep-alive) to moto in another process, and
step-ca 0.19 under the same load.

Sections (``python -m bench real --only stepca,handlers,init``):

* stepca — when ``~/.cache/stepless-peers/bin/step-ca`` exists: step-ca 0.19 (JWK provisioner, its
  default badger DB) on loopback, a keep-alive HTTPS client sending ``POST /1.0/sign`` (tokens and CSRs
  made beforehand) at concurrency 1 and 8; its server CPU per certificate read from /proc/PID/stat
  (utime + stime) before and after. The baseline of the handlers' ratios.
* handlers — the real handlers (API Gateway event → 201) in this process, their AWS calls over HTTP to
  ``bench.motoserver`` (another process): sign (Secrets and KMS backends), renew over mTLS, SSH sign and
  SSHPOP renew (KMS backend); CPU of this process per request, on the lean AWS path (stepless.awsclient)
  and on the full botocore client (``STEPLESS_AWS_LEAN=0``), rounds alternating; AWS calls per request;
  and the CPU of one AWS call alone (TransactWriteItems of 2 items, kms.Sign) on each path. Targets
  (issue 14): ≤ 1.0x step-ca's CPU per certificate (Secrets), ≤ 1.3x (KMS), against its better figure.
* crt — where ``awscrt`` is installed: its C SigV4 signer and HTTP client for one TransactWriteItems
  against the lean path (issue 14 asked for the measurement; it is not adopted, see README).
* init — each function's cold start (a fresh process: import app.py by path, then its first request,
  the configuration read and the client set-up included, AWS over HTTP to moto) against
  ``python -c "import boto3"``, in CPU time of the process (wall time as a note). Target ≤ 1.3x.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    APP_INIT_CODE,
    MARK,
    ROOT,
    STEP,
    STEP_CA,
    CallCounter,
    Row,
    child_env,
    child_result,
    cpu_seconds,
    environ,
    expect,
    quiet_logger,
    run_python,
    run_sections,
    step_ca_server,
)
from bench.common import moto_stack as _stack  # tests/unit/test_awsclient.py uses real._stack

SECTIONS = ("stepca", "handlers", "init", "crt")
TARGET = {"secrets": 1.0, "kms": 1.3}
TARGET_INIT = 1.3
_STEPCA: dict[int, float] = {}  # concurrency -> step-ca CPU seconds per certificate (this run)


# --- step-ca 0.19 ---------------------------------------------------------------------------------------


def _stepca_bodies(url: str, key: Any, kid: str, n: int) -> list[bytes]:
    """``n`` POST /1.0/sign bodies for step-ca: a JWK token of the ``bench`` provisioner, a distinct CSR."""
    import jwt
    from tests.support.ca import make_csr

    now = int(time.time())
    bodies = []
    for i in range(n):
        name = f"host{i}.example.com"
        ott = jwt.encode({"iss": "bench", "aud": f"{url}/1.0/sign", "sub": name, "sans": [name], "iat": now,
                          "nbf": now, "exp": now + 600, "jti": uuid.uuid4().hex}, key, algorithm="ES256",
                         headers={"kid": kid})
        bodies.append(json.dumps({"csr": make_csr(name)[0], "ott": ott}).encode())
    return bodies


def _load(port: int, root: Path, bodies: list[bytes], concurrency: int) -> None:
    """Send every body once over ``concurrency`` keep-alive HTTPS connections; each must get 201."""
    ctx = ssl.create_default_context(cafile=str(root))
    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    errors: list[str] = []

    def worker(chunk: list[bytes]) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        for body in chunk:
            conn.request("POST", "/1.0/sign", body=body, headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            data = res.read()
            if res.status != 201:
                errors.append(f"{res.status} {data[:200]!r}")
                return
        conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"step-ca refused a request: {errors[0]}")


def stepca(n: int = 400, rounds: int = 3) -> tuple[list[Row], list[str]]:
    _STEPCA.clear()
    if not (STEP_CA.exists() and STEP.exists()):
        return [Row("real", "step-ca 0.19 server CPU per certificate", "n/a", note=f"{STEP_CA} not built: "
                    "bash tools/build-step.sh")], []
    with step_ca_server() as (url, pid, root, key, kid):
        port = int(url.rsplit(":", 1)[1])
        _load(port, root, _stepca_bodies(url, key, kid, 16), 8)  # warm-up
        for concurrency in (1, 8):
            best = float("inf")
            for _ in range(rounds):
                bodies = _stepca_bodies(url, key, kid, n)
                c0 = cpu_seconds(pid)
                _load(port, root, bodies, concurrency)
                best = min(best, (cpu_seconds(pid) - c0) / n)
            if best > 0:  # /proc counts CPU in clock ticks (10 ms): a short run (--smoke) can read 0
                _STEPCA[concurrency] = best
    rows = []
    for c in (8, 1):
        label = f"baseline: step-ca 0.19 server CPU per certificate, concurrency {c}"
        if c not in _STEPCA or 8 not in _STEPCA:
            rows.append(Row("real", label, "n/a", note=f"{n} certificates took less CPU than /proc's 10 ms tick: "
                            "no baseline in this run (more certificates: without --smoke)"))
            continue
        rows.append(Row("real", label, "1.00x" if c == 8 else f"{_STEPCA[c] / _STEPCA[8]:.2f}x",
                        "" if c == 8 else "concurrency 8",
                        note=f"{_STEPCA[c] * 1e6:.0f} us CPU/cert (TLS, HTTP, badger DB, ECDSA; "
                        f"best of {rounds} x {n})"))
    return rows, []


# --- stepless handlers, AWS over HTTP -------------------------------------------------------------------


def _sign_events(ca: Any, n: int) -> list[dict]:
    from tests.support.ca import event

    from bench.sign import _requests

    return [event("POST", "/1.0/sign", b) for b in _requests(ca, n)]


def _renew_events(ca: Any, n: int) -> list[dict]:
    from tests.support.ca import event

    from stepless.api.sign import app

    pems = [json.loads(expect(app.handler(ev, None), 201)["body"])["crt"] for ev in _sign_events(ca, n)]
    return [event("POST", "/renew", client_cert_pem=pem) for pem in pems]


def _ssh_events(ca: Any, n: int) -> list[dict]:
    from tests.support.ca import event

    from bench.ssh import _bodies

    return [event("POST", "/1.0/ssh/sign", b) for b in _bodies(ca, n)]


def _sshpop_events(ca: Any, n: int) -> list[dict]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from tests.integration.test_ssh_renew import sshpop_token
    from tests.integration.test_ssh_sign import ssh_token
    from tests.support.ca import event

    from stepless.api.ssh import app
    from stepless.ssh import encode_public_key

    events = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        body = {"publicKey": base64.b64encode(encode_public_key(key.public_key())).decode(),
                "ott": ssh_token(ca, f"host{i}.example.com", certType="host")}
        crt = json.loads(expect(app.handler(event("POST", "/1.0/ssh/sign", body), None), 201)["body"])["crt"]
        events.append(event("POST", "/1.0/ssh/renew", {"ott": sshpop_token(crt, key, "/1.0/ssh/renew")}))
    return events


def _app(name: str) -> Any:
    from stepless.api import renew, sign, ssh

    return {"sign": sign.app, "renew": renew.app, "ssh": ssh.app}[name]


def _measure(events: list[dict], app: Any, status: int, rounds: int, batch: int) -> dict[str, Any]:
    """CPU per request on each AWS path, rounds alternating (fresh clients per path); calls per request."""
    from stepless import aws

    cpu: dict[str, list[float]] = {"lean": [], "full": []}
    counts: dict[str, dict[str, float]] = {}
    it = iter(events)
    for r in range(rounds):
        for path in ("lean", "full"):
            with environ({"STEPLESS_AWS_LEAN": "1" if path == "lean" else "0"}):
                aws.reset()
                expect(app.handler(next(it), None), status)  # clients and endpoints set up: not timed
                counter = CallCounter()
                counter.calls.attach()
                items = [next(it) for _ in range(batch)]
                with counter.attached():
                    c0 = time.process_time()
                    for ev in items:
                        expect(app.handler(ev, None), status)
                    cpu[path].append((time.process_time() - c0) / batch)
                if r == 0:
                    counts[path] = counter.calls.per(batch)
    aws.reset()
    return {"cpu": {k: min(v) for k, v in cpu.items()}, "calls": counts}


def _per_call(rounds: int, n: int) -> dict[str, dict[str, float]]:
    """CPU of one call alone on each path: a 2-item TransactWriteItems, a kms.Sign."""
    from stepless import aws, settings

    out: dict[str, dict[str, float]] = {}
    table = settings.table(settings.CERTIFICATES_TABLE)
    key_id = os.environ.get("STEPLESS_BENCH_KMS_KEY", "")
    for path in ("lean", "full"):
        with environ({"STEPLESS_AWS_LEAN": "1" if path == "lean" else "0"}):
            aws.reset()
            ddb, kms = aws.client("dynamodb"), aws.client("kms")

            def txn(ddb: Any = ddb) -> None:
                serial = uuid.uuid4().hex
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": table, "Item": {"serial": {"S": f"t{serial}"}},
                             "ConditionExpression": "attribute_not_exists(serial)"}},
                    {"Put": {"TableName": table, "Item": {"serial": {"S": serial}, "der": {"B": b"\x30" * 600}},
                             "ConditionExpression": "attribute_not_exists(serial)"}}])

            def sign(kms: Any = kms) -> None:
                kms.sign(KeyId=key_id, Message=b"\x30" * 400, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")

            figures = {}
            for name, fn in (("TransactWriteItems", txn), ("kms.Sign", sign)):
                fn()
                best = float("inf")
                for _ in range(rounds):
                    c0 = time.process_time()
                    for _ in range(n):
                        fn()
                    best = min(best, (time.process_time() - c0) / n)
                figures[name] = best
            out[path] = figures
    aws.reset()
    return out


def handlers(batch: int = 40, rounds: int = 3, calls_n: int = 100, profile: bool = False,
             ) -> tuple[list[Row], list[str]]:
    from stepless import authority

    need = rounds * 2 * (batch + 1)
    results: dict[str, dict[str, Any]] = {}
    details: list[str] = []
    with quiet_logger():
        with _stack("secrets") as ca:
            results["sign (Secrets)"] = _measure(_sign_events(ca, need), _app("sign"), 201, rounds, batch)
        with _stack("kms") as ca:
            results["sign (KMS)"] = _measure(_sign_events(ca, need), _app("sign"), 201, rounds, batch)
            if profile:
                events, app = _sign_events(ca, batch * 2 + 1), _app("sign")
                expect(app.handler(events.pop(), None), 201)  # clients made, endpoints resolved: not profiled
                details.append(breakdown(lambda: [expect(app.handler(ev, None), 201) for ev in events],
                                         f"{len(events)} warm issuances, sign handler, KMS backend, lean AWS path"))
            results["renew mTLS (KMS)"] = _measure(_renew_events(ca, need), _app("renew"), 201, rounds, batch)
            results["SSH sign (KMS)"] = _measure(_ssh_events(ca, need), _app("ssh"), 201, rounds, batch)
            results["SSHPOP renew (KMS)"] = _measure(_sshpop_events(ca, need), _app("ssh"), 201, rounds, batch)
            key_id = authority.get().intermediate_signer.key_id
            with environ({"STEPLESS_BENCH_KMS_KEY": key_id}):
                per_call = _per_call(rounds, calls_n)

    base = _STEPCA.get(8)
    base1 = _STEPCA.get(1)
    rows = []
    for name, res in results.items():
        lean, full = res["cpu"]["lean"], res["cpu"]["full"]
        calls = res["calls"]["lean"]
        ncalls = sum(calls.values())
        target = TARGET["secrets"] if "Secrets" in name else TARGET["kms"]
        note = (f"{lean * 1e6:.0f} us CPU/request lean, {full * 1e6:.0f} us on the full botocore client "
                f"({full / lean:.2f}x); {ncalls:g} AWS calls: " + ", ".join(f"{k} {v:g}" for k, v in calls.items()))
        if base:
            rows.append(Row("real", f"{name}: handler CPU per request, AWS over HTTP (lean)", f"{lean / base:.2f}x",
                            "step-ca c=8", f"<= {target:.1f}x", lean / base <= target,
                            note + (f"; vs step-ca c=1: {lean / base1:.2f}x" if base1 else "")))
        else:
            rows.append(Row("real", f"{name}: handler CPU per request, AWS over HTTP (lean)",
                            f"{lean * 1e6:.0f} us", "", "", None, note + "; no step-ca baseline in this run"))
    for name in ("TransactWriteItems", "kms.Sign"):
        lean, full = per_call["lean"][name], per_call["full"][name]
        rows.append(Row("real", f"  one AWS call alone: {name} (lean vs full botocore client)", f"{lean / full:.2f}x",
                        "full client", note=f"{lean * 1e6:.0f} us vs {full * 1e6:.0f} us CPU per call "
                        "(keep-alive HTTP to moto in another process)"))
    return rows, details + ["real: CPU is this process's (handler + its AWS client); moto runs in another process. "
                  "step-ca's is its whole server process (TLS, HTTP, DB, signing) per certificate."]


# --- AWS's CRT, for comparison ----------------------------------------------------------------------------


def crt(n: int = 200, rounds: int = 3) -> tuple[list[Row], list[str]]:
    """One TransactWriteItems (2 items) signed and sent by awscrt (C SigV4 + HTTP/1.1 keep-alive; botocore
    serialization and parsing kept) against the lean path, CPU of this process (awscrt's threads included).
    Runs only where ``awscrt`` is installed (it is not a dependency: it lost, see README)."""
    try:
        from awscrt import auth as crt_auth
        from awscrt import http as crt_http
        from awscrt import io as crt_io
    except ImportError:
        return [Row("real", "AWS CRT (awscrt) TransactWriteItems vs the lean path", "n/a",
                    note="awscrt not installed (pip install awscrt to measure)")], []
    import io as stdio

    from botocore import parsers, serialize

    from stepless import aws, settings

    with _stack("secrets"):
        lean = aws.client("dynamodb")
        url = os.environ["AWS_ENDPOINT_URL"]
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        elg = crt_io.EventLoopGroup(1)
        bootstrap = crt_io.ClientBootstrap(elg, crt_io.DefaultHostResolver(elg))
        conn = crt_http.HttpClientConnection.new(host_name=host, port=port, bootstrap=bootstrap).result()
        creds = crt_auth.AwsCredentialsProvider.new_static(os.environ["AWS_ACCESS_KEY_ID"],
                                                           os.environ["AWS_SECRET_ACCESS_KEY"])
        op = lean.meta.service_model.operation_model("TransactWriteItems")
        ser, parser = serialize.create_serializer("json", include_validation=False), parsers.create_parser("json")
        table = settings.table(settings.CERTIFICATES_TABLE)

        def items() -> dict[str, Any]:
            serial = uuid.uuid4().hex
            return {"TransactItems": [
                {"Put": {"TableName": table, "Item": {"serial": {"S": f"t{serial}"}},
                         "ConditionExpression": "attribute_not_exists(serial)"}},
                {"Put": {"TableName": table, "Item": {"serial": {"S": serial}, "der": {"B": b"\x30" * 600}},
                         "ConditionExpression": "attribute_not_exists(serial)"}}]}

        def crt_call() -> None:
            request = ser.serialize_to_request({**items(), "ClientRequestToken": str(uuid.uuid4())}, op)
            body = request["body"]
            headers = crt_http.HttpHeaders([("Host", f"{host}:{port}"), ("Content-Length", str(len(body))),
                                            *((k, v) for k, v in request["headers"].items())])
            req = crt_http.HttpRequest("POST", "/", headers, crt_io.InputStream.wrap(stdio.BytesIO(body)))
            config = crt_auth.AwsSigningConfig(algorithm=crt_auth.AwsSigningAlgorithm.V4,
                                               signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
                                               credentials_provider=creds, region="us-east-1", service="dynamodb")
            crt_auth.aws_sign_request(req, config).result()
            out, got = bytearray(), {}

            def on_response(http_stream: Any, status_code: int, headers: Any, **_: Any) -> None:
                got.update(status=status_code, headers=dict(headers))

            def on_body(http_stream: Any, chunk: bytes, **_: Any) -> None:
                out.extend(chunk)

            stream = conn.request(req, on_response, on_body)
            stream.activate()
            stream.completion_future.result()
            parser.parse({"headers": got["headers"], "status_code": got["status"], "body": bytes(out),
                          "context": {}}, op.output_shape)
            if got["status"] != 200:
                raise RuntimeError(f"CRT call failed: {got} {bytes(out)[:200]!r}")

        def lean_call() -> None:
            lean.transact_write_items(**items())

        best = {"crt": float("inf"), "lean": float("inf")}
        for fn in (crt_call, lean_call):
            fn()
        for _ in range(rounds):
            for name, fn in (("crt", crt_call), ("lean", lean_call)):
                c0 = time.process_time()
                for _ in range(n):
                    fn()
                best[name] = min(best[name], (time.process_time() - c0) / n)
        conn.close()
    return [Row("real", "AWS CRT (awscrt) TransactWriteItems vs the lean path", f"{best['crt'] / best['lean']:.2f}x",
                "lean path", note=f"{best['crt'] * 1e6:.0f} us vs {best['lean'] * 1e6:.0f} us CPU per call "
                "(awscrt's event-loop thread included)")], []


# --- where a request's CPU goes ---------------------------------------------------------------------------

# (label, file suffix, function name): cumulative CPU of these entry points; nested ones are subtracted
# from the entry they sit in, so the lines add up to the whole request.
_PARTS = (
    ("handler (API Gateway event -> 201)", "stepless/api/app.py", "handler"),
    ("AWS calls, lean path (everything below)", "stepless/awsclient.py", "_call"),
    ("  SigV4 (as botocore.auth.SigV4Auth signs)", "stepless/awsclient.py", "_sigv4"),
    ("  serialization (JSON, blobs base64)", "stepless/awsclient.py", "serialize"),
    ("  HTTP exchange (socket syscalls, HTTP/1.1 framing)", "stepless/awsclient.py", "send"),
    ("  response parsing (JSON, blobs decoded, ResponseMetadata)", "stepless/awsclient.py", "_parsed"),
    ("DynamoDB item marshalling (stores)", "stepless/stores/attributes.py", "serialize"),
    ("log line and metrics (Powertools)", "stepless/observability/metrics.py", "_write"),
)


def breakdown(fn: Callable[[], Any], label: str) -> str:
    """cProfile (CPU clock) of ``fn()``: the share of each part of a request (see :data:`_PARTS`)."""
    import cProfile
    import pstats

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]

    def cum(suffix: str, func: str) -> float:
        return sum(v[3] for (file, _, name), v in stats.items() if file.endswith(suffix) and name == func)

    figures = {lab: cum(suffix, func) for lab, suffix, func in _PARTS}
    whole = figures[_PARTS[0][0]] or 1.0
    aws_total = figures[_PARTS[1][0]]
    inside = sum(v for lab, v in figures.items() if lab.startswith("  "))
    rest = whole - aws_total - figures[_PARTS[-2][0]] - figures[_PARTS[-1][0]]
    lines = [f"where the CPU goes — {label} (cProfile on the CPU clock; it inflates many small calls, so read the "
             "shares, not microseconds):"]
    lines += [f"  {figures[lab] / whole:6.1%}  {lab}" for lab, _, _ in _PARTS[1:]]
    lines.append(f"  {(aws_total - inside) / whole:6.1%}    call loop, credentials, idempotency token")
    lines.append(f"  {rest / whole:6.1%}  the rest of the handler: token and CSR checks, certificate, record, response")
    return "\n".join(lines)


# --- cold start per function -----------------------------------------------------------------------------



def _init_events(ca: Any) -> dict[str, tuple[dict, int]]:
    """One first request per function (its hot route), made beforehand."""
    from cryptography import x509
    from tests.support.ca import event

    renew = _renew_events(ca, 2)
    pem = renew[1]["requestContext"]["authentication"]["clientCert"]["clientCertPem"]
    serial = str(x509.load_pem_x509_certificate(pem.encode()).serial_number)
    revoke = {"serial": serial, "ott": ca.token(serial, path="/1.0/revoke", lifetime=600), "reasonCode": 1}
    return {
        "sign": (_sign_events(ca, 1)[0], 201),
        "renew": (renew[0], 201),
        "ssh": (_ssh_events(ca, 1)[0], 201),
        "revoke": (event("POST", "/revoke", revoke), 200),
    }


def _run_cpu(code: str, env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """``python -c code``: (CPU seconds of the child, user + system; wall seconds; the process). CPU is what a
    cold start costs the function, and it holds still when the machine is busy (wall time doesn't)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, proc = run_python(code, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall, proc


def init(rounds: int = 5) -> tuple[list[Row], list[str]]:
    from tests.support import ca as support

    tmp = tempfile.mkdtemp(prefix="stepless-bench-init-")
    cpu: dict[str, list[float]] = {"import boto3": []}
    walls: dict[str, list[float]] = {"import boto3": []}
    inner: dict[str, list[dict]] = {}
    try:
        with _stack("kms") as ca, quiet_logger():
            env = child_env({**{k: v for k, v in support.env().items()}, "STEPLESS_CONFIG_TTL": "30",
                             "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
                             "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pyc")})
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            for r in range(rounds + 1):  # round 0 fills the bytecode cache
                events = _init_events(ca)  # fresh tokens each round
                c, w, _ = _run_cpu("import boto3", env)
                if r:
                    cpu["import boto3"].append(c)
                    walls["import boto3"].append(w)
                for fn, (ev, status) in events.items():
                    path = ROOT / "functions" / fn / "app.py"
                    c, w, proc = _run_cpu(APP_INIT_CODE.format(path=str(path), event=ev, status=status, mark=MARK), env)
                    if r:
                        cpu.setdefault(fn, []).append(c)
                        walls.setdefault(fn, []).append(w)
                        inner.setdefault(fn, []).append(child_result(proc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(v: list[float]) -> float:
        return sorted(v)[len(v) // 2]

    base, base_wall = med(cpu["import boto3"]), med(walls["import boto3"])
    rows = [Row("real", "cold start baseline: python -c 'import boto3' (CPU of the process)", "1.00x",
                note=f"median {base * 1e3:.0f} ms CPU, {base_wall * 1e3:.0f} ms wall")]
    for fn in ("sign", "renew", "ssh", "revoke"):
        c, w = med(cpu[fn]), med(walls[fn])
        imp = med([p["import"] for p in inner[fn]])
        first = med([p["first"] for p in inner[fn]])
        rows.append(Row("real", f"INIT of the {fn} function: import app.py + first request (moto server)",
                        f"{c / base:.2f}x", "import boto3", f"<= {TARGET_INIT}x", c / base <= TARGET_INIT,
                        f"median {c * 1e3:.0f} ms CPU of {rounds} ({w / base_wall:.2f}x in wall time, "
                        f"{w * 1e3:.0f} ms); "
                        f"in-process import {imp * 1e3:.0f} ms, first request {first * 1e3:.0f} ms (wall)"))
    return rows, []


# --- entry ----------------------------------------------------------------------------------------------


def run(only: tuple[str, ...] = SECTIONS, profile: bool = False, full: bool = False, smoke: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only`` (stepca before handlers: its figure is their baseline)."""
    if smoke:
        return run_sections("real", {"stepca": lambda: stepca(n=8, rounds=1),
                                     "handlers": lambda: handlers(batch=2, rounds=1, calls_n=2, profile=profile),
                                     "init": lambda: init(rounds=1),
                                     "crt": lambda: crt(n=2, rounds=1)}, only)
    rounds = 7 if full else 5
    return run_sections("real", {"stepca": lambda: stepca(rounds=rounds),
                                 "handlers": lambda: handlers(rounds=rounds, profile=profile),
                                 "init": lambda: init(rounds=7 if full else 5),
                                 "crt": lambda: crt(rounds=rounds)}, only)
