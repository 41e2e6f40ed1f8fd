"""POST /sign: issuance throughput, AWS calls per warm issuance, peak RSS, cold start.

Sections (``python -m bench sign --only issuance,calls,rss,cold``):

* issuance — in-process, Secrets Manager backend (moto), the AWS write stubbed so only CPU counts,
  tokens and distinct CSRs made beforehand (client work); baseline: cryptography signing one prebuilt
  TBS (``CertificateBuilder.sign`` with an EC P-256 key). Target ≥ 3,000 certificates/s/core.
* calls — the real handler against moto with the KMS backend; after one warm-up request, calls per
  issuance: 0 reads, 1 TransactWriteItems, ≤ 1 kms Sign.
* rss — a fresh process serving 1,000 issuances through the real handler (Secrets backend, moto
  in-process), and again with the write stubbed (moto keeps every record in memory). Target ≤ 128 MB.
* cold — fresh processes importing functions/sign/app.py by path and serving a first request, against
  ``python -c "import boto3"``. Target: no more than boto3's import + 60 ms. Also GET /health as the layer
  ships: read-only, its packages' bytecode compiled with ``compileall --invalidation-mode unchecked-hash``
  (layers/common/Makefile), the stdlib's present, app.py's none; and, as a note, without the layer's .pyc.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from bench.common import (
    APP_INIT_CODE,
    ROOT,
    Row,
    child_env,
    child_result,
    environ,
    expect,
    free_port,
    interleave,
    peak_rss_mb,
    quiet_logger,
    report,
    run_python,
    run_sections,
    warm_counts,
)

SECTIONS = ("issuance", "calls", "rss", "cold")
TARGET_RATE = 3000  # certificates per second per core
TARGET_RSS_MB = 128
TARGET_COLD_EXTRA_S = 0.060
APP_PATH = ROOT / "functions" / "sign" / "app.py"


# --- in-process CA --------------------------------------------------------------------------------------


def _env(ttl: str | None) -> dict[str, str | None]:
    """The functions' environment for moto in-process; ``ttl`` None = the production default (30 s)."""
    from tests.support import ca as support

    # the full botocore client: these in-process benchmarks stub or answer its calls at botocore's events
    # (the lean path's cost is in ``python -m bench real``)
    return {**support.env(), "STEPLESS_CONFIG_TTL": ttl, "AWS_ENDPOINT_URL": None, "AWS_PROFILE": None,
            "STEPLESS_AWS_LEAN": "0"}


@contextlib.contextmanager
def _ca(backend: str, ttl: str | None = "3600", offline: bool = False) -> Iterator[Any]:
    """An initialized CA in moto (in-process); stepless's caches are reset on the way in and out.

    ``offline``: once the authority and its signer are loaded, moto is stopped and every AWS call
    fails loudly, except those :func:`_http_stub` answers (so moto's own CPU never enters a figure).
    """
    from moto import mock_aws
    from tests.support import ca as support

    from stepless import authority, aws

    with environ(_env(ttl)):
        mock: Any = mock_aws()
        mock.start()
        try:
            aws.reset()
            authority.reset()
            ca = support.initialize(support.create_resources(), backend=backend)
            if not offline:
                yield ca
                return
            authority.get().intermediate_signer.public_key()  # the one GetSecretValue / GetPublicKey
            mock.stop()
            mock = None
            with _offline():
                yield ca
        finally:
            if mock is not None:
                mock.stop()
            aws.reset()
            authority.reset()


class _Raw:
    """Just enough of urllib3's response for botocore to read a canned body."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._body


_ANSWER_DYNAMODB: list[bool] = [False]


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No request leaves the process: DynamoDB calls get 200 ``{}`` inside :func:`_http_stub`, others raise."""
    from botocore.awsrequest import AWSResponse

    from stepless import aws

    def before_send(request: Any = None, event_name: str = "", **_: Any) -> AWSResponse:
        if _ANSWER_DYNAMODB[0] and event_name.startswith("before-send.dynamodb."):
            return AWSResponse(request.url, 200, {"x-amzn-requestid": "bench"}, _Raw(b"{}"))
        raise RuntimeError(f"unexpected AWS call in an offline benchmark: {event_name}")

    uid = "stepless-bench-offline"
    clients = [aws.client(s) for s in ("dynamodb", "kms", "secretsmanager")]
    for c in clients:
        c.meta.events.register_first("before-send", before_send, unique_id=uid)
    try:
        yield
    finally:
        for c in clients:
            c.meta.events.unregister("before-send", unique_id=uid)


@contextlib.contextmanager
def _http_stub() -> Iterator[None]:
    """Within :func:`_offline`: the real ``record_issuance``, its DynamoDB call answered before it is sent."""
    from stepless.stores import certificates

    stub = certificates.record_issuance
    certificates.record_issuance = _REAL_RECORD[0]
    _ANSWER_DYNAMODB[0] = True
    try:
        yield
    finally:
        _ANSWER_DYNAMODB[0] = False
        certificates.record_issuance = stub


_REAL_RECORD: list[Any] = []


@contextlib.contextmanager
def _stub_record() -> Iterator[None]:
    """``certificates.record_issuance`` as a no-op: the transaction is built, never sent."""
    from stepless.stores import certificates

    real = certificates.record_issuance
    _REAL_RECORD[:] = [real]
    certificates.record_issuance = lambda record, token: None
    try:
        yield
    finally:
        certificates.record_issuance = real


def _requests(ca: Any, n: int, prefix: str = "host") -> list[dict[str, str]]:
    """``n`` sign request bodies: a fresh one-time token and a distinct CSR (own key) each."""
    from tests.support.ca import make_csr

    bodies = []
    for i in range(n):
        name = f"{prefix}{i}.example.com"
        bodies.append({"ott": ca.token(name, lifetime=600), "csr": make_csr(name)[0]})
    return bodies


def _baseline_builder() -> tuple[Any, Any]:
    """(prebuilt leaf-like CertificateBuilder, EC P-256 key): the baseline signs this TBS again and again."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host.example.com")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Intermediate CA")]))
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=24))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("host.example.com")]), critical=False)
    )
    return builder, ca_key


def baseline_batch(n: int) -> Callable[[], int]:
    """The sign benchmark's baseline: ``n`` signatures of one prebuilt leaf TBS with an EC P-256 key."""
    from cryptography.hazmat.primitives import hashes

    builder, key = _baseline_builder()
    sha256 = hashes.SHA256()

    def batch() -> int:
        for _ in range(n):
            builder.sign(key, sha256)
        return n

    return batch


# --- 1. issuance throughput -----------------------------------------------------------------------------


STAGE_NAMES = {"csr": "CSR parse + check (csr.read)", "token": "token check (unverified + JWK verify)",
               "build": "build + sign (profile.leaf)", "record": "record item + response PEMs",
               "log": "log line (Powertools logger.info)",
               "floor": "crypto floor: CSR verify + token ES256 verify + ECDSA sign"}


def issuance(n: int = 300, rounds: int = 5, profile: bool = False) -> tuple[list[Row], list[str]]:
    """Whole issuances (service, handler, with the DynamoDB call made) and their stages, against the baseline."""
    from tests.support.ca import event

    details: list[str] = []
    with _ca("secrets", offline=True) as ca, _stub_record(), quiet_logger():
        bodies = _requests(ca, n)
        events = [event("POST", "/1.0/sign", b) for b in bodies]
        batches = {"baseline": baseline_batch(n), "service": partial(_service, bodies),
                   "handler": partial(_handler, events), "service_http": partial(_service_http, bodies),
                   **_stage_batches(ca, bodies)}
        t = interleave(batches, rounds=rounds)
        details.append("stages are timed alone, each in a tight loop over the same inputs; they sum to less "
                       "than a whole issuance (warm caches), so read them as a ranking, the profile as the split.")
        if profile:
            details += _profile(bodies)
    return _issuance_rows(t), details


# Whole issuances: each batch returns its op count, as :func:`bench.common.interleave` wants.


def _service(bodies: list[dict[str, str]]) -> int:
    """``services.sign.sign`` over every body (write stubbed)."""
    from stepless import authority
    from stepless.services import sign as signing

    for body in bodies:
        signing.sign(body, authority.get())
    return len(bodies)


def _service_http(bodies: list[dict[str, str]]) -> int:
    """:func:`_service` with the real ``record_issuance``, its DynamoDB call answered before it is sent."""
    with _http_stub():
        return _service(bodies)


def _handler(events: list[dict]) -> int:
    """The sign function's ``app.handler`` over every event, each a 201."""
    from stepless.api.sign import app

    for ev in events:
        res = app.handler(ev, None)
        if res["statusCode"] != 201:
            raise RuntimeError(f"sign failed: {res}")
    return len(events)


# Stages of one issuance, each alone over the same inputs (where the time goes).


def _stage_batches(ca: Any, bodies: list[dict[str, str]]) -> dict[str, Callable[[], int]]:
    """The stage batches (keys of :data:`STAGE_NAMES`), their inputs made here from ``bodies``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from stepless import authority, clock, tokens
    from stepless.provisioners import Context
    from stepless.x509 import csr as csrs
    from stepless.x509 import profile as profiles
    from stepless.x509.csr import SANs

    auth = authority.get()
    pems = [b["csr"] for b in bodies]
    otts = [b["ott"] for b in bodies]
    reqs = [csrs.read(p) for p in pems]
    now = clock.now()
    prov = auth.provisioners.get(ca.name)
    ctx = Context(auth.hosts, now)
    leaf_args = dict(common_name="host0.example.com", sans=SANs.split(["host0.example.com"]),
                     not_before=now, not_after=now + prov.claims.default_tls, issuer=auth.intermediate,
                     signer=auth.intermediate_signer,
                     provisioner=(prov.type_code, prov.name, prov.credential_id))
    certs = [profiles.leaf(public_key=r.public_key, **leaf_args) for r in reqs]
    builder, key = _baseline_builder()
    tbs_bytes = builder.sign(key, hashes.SHA256()).tbs_certificate_bytes
    floor_inputs = [(p.encode(), tokens.parse(ott)) for p, ott in zip(pems, otts, strict=True)]
    return {"csr": partial(_csr_check, pems), "token": partial(_token_check, otts, prov, ctx),
            "build": partial(_build_sign, reqs, leaf_args), "record": partial(_record_respond, certs, prov, auth),
            "log": partial(_log_line, certs, prov),
            "floor": partial(_crypto_floor, floor_inputs, prov, key, tbs_bytes, ec.ECDSA(hashes.SHA256()))}


def _csr_check(pems: list[str]) -> int:
    """Stage: CSR parse + check."""
    from stepless.x509 import csr as csrs

    for pem in pems:
        csrs.read(pem)
    return len(pems)


def _token_check(otts: list[str], prov: Any, ctx: Any) -> int:
    """Stage: token parse (unverified) + the provisioner's JWK verify and checks."""
    from stepless import tokens

    for ott in otts:
        header, claims = tokens.unverified(ott)
        prov.authorize_sign(ott, header, claims, ctx)
    return len(otts)


def _build_sign(reqs: list[Any], leaf_args: dict[str, Any]) -> int:
    """Stage: build and sign the leaf (``profile.leaf``)."""
    from stepless.x509 import profile as profiles

    for r in reqs:
        profiles.leaf(public_key=r.public_key, **leaf_args)
    return len(reqs)


def _record_respond(certs: list[Any], prov: Any, auth: Any) -> int:
    """Stage: the issuance record item and the response PEMs."""
    from stepless.services import issuance as issuing

    for c in certs:
        issuing.record(c, provisioner=prov.name, provisioner_type=prov.type, issued_at=0)
        issuing.sign_response(c, auth)
    return len(certs)


def _crypto_floor(inputs: list[tuple[bytes, Any]], prov: Any, key: Any, tbs_bytes: bytes, ecdsa: Any) -> int:
    """Only the three ECDSA operations an issuance cannot skip, on the same inputs."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    for pem, tok in inputs:
        if not x509.load_pem_x509_csr(pem).is_signature_valid:
            raise RuntimeError("bad CSR")
        r, s = int.from_bytes(tok.signature[:32], "big"), int.from_bytes(tok.signature[32:], "big")
        prov.public_key.verify(encode_dss_signature(r, s), tok.signing_input, ecdsa)
        key.sign(tbs_bytes, ecdsa)
    return len(inputs)


def _log_line(certs: list[Any], prov: Any) -> int:
    """Stage: the "certificate issued" log line."""
    from stepless.observability import logger

    for c in certs:
        logger.info("certificate issued", extra={"serial": str(c.serial_number), "provisioner": prov.name,
                                                  "subject": "host0.example.com"})
    return len(certs)


def _profile(bodies: list[dict[str, str]]) -> list[str]:
    """cProfile of one :func:`_service` batch: the top 15 by cumulative and by own time."""
    n = len(bodies)
    prof = cProfile.Profile()
    prof.enable()
    _service(bodies)
    prof.disable()
    details = []
    for key_, label in (("cumulative", "cumulative"), ("tottime", "own (tottime)")):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key_).print_stats(15)
        details.append(f"cProfile of {n} issuances (services.sign.sign, write stubbed), top 15 by "
                       f"{label} time (profiler overhead inflates many small calls):\n"
                       + _trim_pstats(out.getvalue()))
    return details


def _issuance_rows(t: dict[str, Any]) -> list[Row]:
    """The issuance section's rows from the timings: whole issuances, then each stage, against the baseline."""
    base, svc, hnd = t["baseline"], t["service"], t["handler"]
    rows = [
        Row("sign", "baseline: CertificateBuilder.sign, P-256, prebuilt TBS", "1.00x",
            note=f"{base.min * 1e6:.0f} us CPU/op = {base.rate:,.0f}/s/core"),
        Row("sign", "issuance in-process (services.sign, write stubbed)", f"{svc.min / base.min:.2f}x",
            "baseline", f">= {TARGET_RATE:,}/s/core", svc.rate >= TARGET_RATE,
            f"{svc.min * 1e6:.0f} us CPU/op = {svc.rate:,.0f} certs/s/core (median round {1 / svc.median:,.0f}/s; "
            f"wall {1 / svc.wall:,.0f}/s)"),
        Row("sign", "issuance via app.handler (event -> 201, write stubbed)", f"{hnd.min / base.min:.2f}x",
            "baseline", f">= {TARGET_RATE:,}/s/core", hnd.rate >= TARGET_RATE,
            f"{hnd.min * 1e6:.0f} us CPU/op = {hnd.rate:,.0f} certs/s/core"),
        Row("sign", "issuance in-process, DynamoDB call made (full botocore client, HTTP stubbed)",
            f"{t['service_http'].min / base.min:.2f}x", "baseline", f">= {TARGET_RATE:,}/s/core",
            t["service_http"].rate >= TARGET_RATE,
            f"{t['service_http'].min * 1e6:.0f} us CPU/op = {t['service_http'].rate:,.0f} certs/s/core: "
            "+ item marshalling, botocore serialize/SigV4/parse; canned 200 before send"),
        Row("sign", "  rate needed for the target, vs baseline", f"{(1 / TARGET_RATE) / base.min:.2f}x",
            "baseline", note=f"{1e6 / TARGET_RATE:.0f} us/op"),
    ]
    for key_, label in STAGE_NAMES.items():
        st = t[key_]
        rows.append(Row("sign", f"  stage: {label}", f"{st.min / base.min:.2f}x", "baseline",
                        note=f"{st.min * 1e6:.0f} us CPU/op, {st.min / svc.min:.0%} of an issuance"))
    return rows


def _trim_pstats(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    home = str(ROOT) + "/"
    site = re.compile(r"\S*/site-packages/")
    return "\n".join(site.sub("", line.replace(home, "")) for line in lines[start:] if line.strip())


# --- 2. AWS calls per warm issuance ---------------------------------------------------------------------


def calls(n: int = 20) -> tuple[list[Row], list[str]]:
    from tests.support.ca import event

    from stepless.api.sign import app

    with _ca("kms", ttl=None) as ca, quiet_logger():
        events = [event("POST", "/1.0/sign", b) for b in _requests(ca, n + 1)]
        cold, per, reads = warm_counts(lambda ev: expect(app.handler(ev, None), 201), events)

    txn = per.get("dynamodb.TransactWriteItems", 0.0)
    kms_sign = per.get("kms.Sign", 0.0)
    total = sum(per.values())
    rows = [
        Row("sign", f"AWS calls per warm issuance (KMS backend, {n} requests)", f"{total:.2f}",
            "", "reads 0, txn 1, kms.Sign <= 1", reads == 0 and txn == 1 and kms_sign <= 1,
            ", ".join(f"{k} {v:g}" for k, v in per.items())),
        Row("sign", "  reads per warm issuance", f"{reads:g}", "", "0", reads == 0,
            "GetItem/BatchGetItem/Query/Scan/GetSecretValue/GetPublicKey/DescribeKey"),
        Row("sign", "  dynamodb.TransactWriteItems per issuance", f"{txn:g}", "", "1", txn == 1),
        Row("sign", "  kms.Sign per issuance", f"{kms_sign:g}", "", "<= 1", kms_sign <= 1),
        Row("sign", "  (cold first request, for reference)", f"{sum(cold.values())}", "",
            note=", ".join(f"{k} {v}" for k, v in sorted(cold.items()))),
    ]
    return rows, []


# --- 3. peak RSS ----------------------------------------------------------------------------------------


def rss_child(mode: str, n: int) -> None:
    """Runs in a fresh process: ``n`` issuances through the real handler; reports peak RSS (MiB)."""
    from tests.support.ca import event

    from stepless import authority, aws
    from stepless.api.sign import app

    figures: dict[str, float] = {"start": peak_rss_mb()}
    stub = _stub_record() if mode == "stubbed" else contextlib.nullcontext()
    with _ca("secrets", ttl=None) as ca, stub, quiet_logger():
        bodies = [json.dumps(b) for b in _requests(ca, n + 1)]
        aws.reset()
        authority.reset()
        figures["setup"] = peak_rss_mb()
        for i, body in enumerate(bodies):
            res = app.handler(event("POST", "/1.0/sign", body), None)
            if res["statusCode"] != 201:
                raise RuntimeError(f"sign failed: {res}")
            if i == 0:
                figures["warm"] = peak_rss_mb()
        figures["peak"] = peak_rss_mb()
    report(figures)


def rss(n: int = 1000, n_moto: int = 300) -> tuple[list[Row], list[str]]:
    """``n`` issuances with the write stubbed; ``n_moto`` through moto (whose transactions deep-copy every
    table, so the in-process moto run is quadratic: 1,000 take minutes; ``--full`` runs them)."""
    env = child_env()
    _, base_proc = run_python("import boto3\nfrom bench.common import peak_rss_mb\nprint(peak_rss_mb())", env)
    base = float(base_proc.stdout.split()[-1])
    counts = {"moto": n_moto, "stubbed": n}
    procs = {
        mode: subprocess.Popen([sys.executable, "-c", f"from bench.sign import rss_child; rss_child({mode!r}, {k})"],
                               env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for mode, k in counts.items()
    }
    app_code = _IMPORT_CODE.format(path=str(APP_PATH)) + (
        "from bench.common import peak_rss_mb\nprint(peak_rss_mb())\n")
    _, app_proc = run_python(app_code, env)
    app_rss = float(app_proc.stdout.split()[-1])
    figures = {}
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"rss child {mode} failed:\n{err[-3000:]}")
        figures[mode] = child_result(subprocess.CompletedProcess(proc.args, 0, out, err))
    rows = [Row("sign", "baseline: peak RSS of `import boto3`", "1.00x", note=f"{base:.0f} MiB"),
            Row("sign", "peak RSS of importing functions/sign/app.py (no moto)", f"{app_rss / base:.2f}x", "boto3 RSS",
                note=f"{app_rss:.0f} MiB")]
    for mode, label in (("moto", "writes to moto in-process"), ("stubbed", "write stubbed")):
        f, k = figures[mode], counts[mode]
        # the target is the handler's: with moto in the process, moto's own store of every record grows too
        target = mode == "stubbed"
        rows.append(Row(
            "sign", f"peak RSS after {k} issuances, real handler ({label})", f"{f['peak'] / base:.2f}x",
            "boto3 RSS", f"<= {TARGET_RSS_MB} MiB" if target else "(moto's memory included)",
            f["peak"] <= TARGET_RSS_MB if target else None,
            f"{f['peak']:.0f} MiB; after setup {f['setup']:.0f}, after 1st request {f['warm']:.0f}, "
            f"growth over {k} issuances {f['peak'] - f['warm']:+.1f} MiB"))
    return rows, ["peak RSS (VmHWM) includes moto, the test CA set-up and the pre-made tokens/CSRs in the "
                  "same process: an upper bound for a Lambda container, which has none of them."]


# --- 4. cold start --------------------------------------------------------------------------------------


_IMPORT_CODE = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location("app", {path!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
"""

_STDLIB_CODE = _IMPORT_CODE + """\
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in sys.stdlib_module_names)))
"""

_WARM_CODE = """\
import importlib
for m in {modules!r}:
    try:
        importlib.import_module(m)
    except Exception:
        pass
"""


def _app_code(event: dict, status: int) -> str:
    from bench.common import MARK

    return APP_INIT_CODE.format(path=str(APP_PATH), event=event, status=status, mark=MARK)


def _cold_cases(server_env: dict[str, str]) -> dict[str, tuple[str, dict[str, str] | None]]:
    from tests.support.ca import event

    return {
        "python -c pass": ("pass", None),
        "import boto3 (baseline)": ("import boto3", None),
        "GET /health": (_app_code(event("GET", "/health"), 200), None),
        "GET /roots (moto server)": (_app_code(event("GET", "/1.0/roots"), 200), server_env),
        "POST /sign (moto server, Secrets)": ("sign", server_env),
    }


def _sign_code(ca: Any) -> str:
    from tests.support.ca import event, make_csr

    body = {"ott": ca.token("cold.example.com", lifetime=600), "csr": make_csr("cold.example.com")[0]}
    return _app_code(event("POST", "/1.0/sign", body), 201)


def cold(rounds: int = 3, shipped_rounds: int = 3) -> tuple[list[Row], list[str]]:
    from moto.server import ThreadedMotoServer
    from tests.support import ca as support

    from stepless import authority, aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's access log
    tmp = tempfile.mkdtemp(prefix="stepless-bench-")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        fn_env = {k: v for k, v in support.env().items()} | {"STEPLESS_CONFIG_TTL": "30"}
        with environ({**fn_env, "AWS_ENDPOINT_URL": endpoint, "AWS_PROFILE": None}):
            aws.reset()
            authority.reset()
            ca = support.initialize(support.create_resources(), backend="secrets")
            aws.reset()
            authority.reset()
        server_env = {**fn_env, "AWS_ENDPOINT_URL": endpoint}
        cases = _cold_cases(server_env)

        # Warm bytecode for everything (a package with .pyc files): a private pycache, filled by a first round.
        warm = child_env({"PYTHONPYCACHEPREFIX": os.path.join(tmp, "warm")})
        warm.pop("PYTHONDONTWRITEBYTECODE", None)
        walls: dict[str, list[float]] = {name: [] for name in cases}
        inner: dict[str, list[dict]] = {name: [] for name in cases}
        for r in range(rounds + 1):
            for name, (code, extra) in cases.items():
                code = _sign_code(ca) if code == "sign" else code
                wall, proc = run_python(code, {**warm, **(extra or {})})
                if r:  # round 0 fills the bytecode cache
                    walls[name].append(wall)
                    if "exec_module" in code:
                        inner[name].append(child_result(proc))

        # As the layer ships (/opt read-only): the runtime's stdlib has bytecode; the layer's packages have
        # .pyc compiled by layers/common/Makefile (compileall --invalidation-mode unchecked-hash); app.py
        # (the function's own code) has none. Here: private pycaches, never written to by the runs
        # (PYTHONDONTWRITEBYTECODE), the stdlib's filled by importing it, then the top-level packages
        # app.py imports compiled as the Makefile does, for this interpreter. For comparison, the same
        # without the layer's .pyc (as it shipped before: pip --no-compile, __pycache__ removed).
        _, proc = run_python(_STDLIB_CODE.format(path=str(APP_PATH)), warm)
        stdlib_modules = proc.stdout.split()
        nopyc = child_env({"PYTHONPYCACHEPREFIX": os.path.join(tmp, "stdlib")})
        nopyc.pop("PYTHONDONTWRITEBYTECODE", None)
        run_python(_WARM_CODE.format(modules=stdlib_modules), nopyc)
        shipped = {**nopyc, "PYTHONPYCACHEPREFIX": os.path.join(tmp, "layer")}
        shutil.copytree(nopyc["PYTHONPYCACHEPREFIX"], shipped["PYTHONPYCACHEPREFIX"])
        _, proc = run_python(_IMPORT_CODE.format(path=str(APP_PATH)) + (
            "for top in sorted({m.partition('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)):\n"
            "    mod = sys.modules.get(top)\n"
            "    print(*list(getattr(mod, '__path__', None) or []) or [getattr(mod, '__file__', None) or ''],"
            " sep='\\n')\n"), warm)
        layer_paths = sorted({p for p in proc.stdout.splitlines()
                              if p.endswith(".py") or (p and os.path.isdir(p))})
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                        *layer_paths], env=shipped, cwd=ROOT, capture_output=True, timeout=300, check=True)
        nopyc["PYTHONDONTWRITEBYTECODE"] = shipped["PYTHONDONTWRITEBYTECODE"] = "1"
        shipped_cases = {(layer, k): (cases[k], env) for k in ("import boto3 (baseline)", "GET /health")
                         for layer, env in ((True, shipped), (False, nopyc))}
        shipped_walls: dict[tuple[bool, str], list[float]] = {key: [] for key in shipped_cases}
        for _ in range(shipped_rounds):
            for key, ((code, extra), env) in shipped_cases.items():
                wall, _ = run_python(code, {**env, **(extra or {})})
                shipped_walls[key].append(wall)

        # Where the import time goes (warm bytecode).
        _, proc = run_python(_IMPORT_CODE.format(path=str(APP_PATH)), warm, args=("-X", "importtime"))
        details = [_importtime(proc.stderr)]
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {name: sorted(v)[len(v) // 2] for name, v in walls.items()}
    base = med["import boto3 (baseline)"]
    limit = base + TARGET_COLD_EXTRA_S
    rows = [Row("sign", "cold start baseline: python -c 'import boto3'", "1.00x",
                note=f"median {base * 1e3:.0f} ms of {rounds} (python -c pass: {med['python -c pass'] * 1e3:.0f} ms)")]
    for name in ("GET /health", "GET /roots (moto server)", "POST /sign (moto server, Secrets)"):
        parts = inner[name]
        imp = sorted(p["import"] for p in parts)[len(parts) // 2]
        first = sorted(p["first"] for p in parts)[len(parts) // 2]
        rows.append(Row(
            "sign", f"cold start: import app.py + {name}", f"{med[name] / base:.2f}x", "import boto3",
            "<= boto3 + 60 ms", med[name] <= limit,
            f"median {med[name] * 1e3:.0f} ms = boto3 {(med[name] - base) * 1e3:+.0f} ms; "
            f"in-process: import {imp * 1e3:.0f} ms, first request {first * 1e3:.0f} ms"))
    shipped_med = {key: sorted(v)[shipped_rounds // 2] for key, v in shipped_walls.items()}
    sb, sh = shipped_med[True, "import boto3 (baseline)"], shipped_med[True, "GET /health"]
    nb, nh = shipped_med[False, "import boto3 (baseline)"], shipped_med[False, "GET /health"]
    rows.append(Row("sign", "cold start as the layer ships (unchecked-hash .pyc, read-only): GET /health",
                    f"{sh / base:.2f}x", "import boto3 (with .pyc)", "<= boto3 + 60 ms", sh <= limit,
                    f"median {sh * 1e3:.0f} ms of {shipped_rounds}, `import boto3` so: {sb * 1e3:.0f} ms; "
                    f"without the layer's .pyc: {nh * 1e3:.0f} ms, `import boto3` {nb * 1e3:.0f} ms"))
    return rows, details


def _importtime(stderr: str, top: int = 15) -> str:
    """Top imports by cumulative time, and self time summed per top-level package."""
    entries = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            entries.append((int(m[1]), int(m[2]), len(m[3]) // 2, m[4]))
    total = sum(e[0] for e in entries)
    by_cum = sorted(entries, key=lambda e: -e[1])[:top]
    by_pkg: dict[str, int] = {}
    for self_us, _, _, name in entries:
        pkg = name.split(".")[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0) + self_us
    lines = [f"python -X importtime of functions/sign/app.py (warm bytecode): {total / 1e3:.0f} ms in total",
             f"  top {top} by cumulative time (ms, depth, module):"]
    lines += [f"    {cum / 1e3:7.1f}  {depth:>2}  {name}" for _, cum, depth, name in by_cum]
    lines.append("  self time per top-level package (ms):")
    lines += [f"    {us / 1e3:7.1f}  {pkg}" for pkg, us in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines)


# --- entry ----------------------------------------------------------------------------------------------


def run(only: tuple[str, ...] = SECTIONS, profile: bool = False, full: bool = False, smoke: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only``; ``full``: more rounds, and 1,000 issuances through moto for the RSS;
    ``smoke``: minimal rounds (the benchmark runs, its figures mean nothing)."""
    rounds = 1 if smoke else 9 if full else 5
    if smoke:
        return run_sections("sign", {
            "issuance": lambda: issuance(n=3, rounds=1, profile=profile),
            "calls": lambda: calls(n=2),
            "rss": lambda: rss(n=5, n_moto=3),
            "cold": lambda: cold(rounds=1, shipped_rounds=1),
        }, only)
    return run_sections("sign", {
        "issuance": lambda: issuance(profile=profile, rounds=rounds),
        "calls": calls,
        "rss": lambda: rss(n_moto=1000 if full else 300),
        "cold": lambda: cold(rounds=7, shipped_rounds=3) if full else cold(),
    }, only)
