"""POST /renew and /revoke, the CRL and OCSP: AWS calls, renew throughput, a 100,000-entry CRL, OCSP time.

Sections (``python -m bench renew --only calls,renew,crl,ocsp``):

* calls — the real handlers against moto (KMS backend), after one warm-up request each: calls per renew
  over mTLS (no read: one TransactWriteItems whose conditions check the record, ≤ 1 kms.Sign), per revoke by
  a provisioner token and per revoke over mTLS (one transaction: the conditional revocation, the token's use
  for the first, the serial's OCSP record set to revoked), each plus the signed revoked OCSP response (one
  kms.Sign, one PutItem: OCSP requests then cost no signature); the reads each needs are reported as counted.
* renew — in-process, Secrets Manager backend, moto stopped: renew over mTLS (services.renew.renew_mtls),
  the write stubbed; also through the handler, by an x5cInsecure token, and with its DynamoDB call made by
  botocore (a canned answer before send). Baseline: the sign
  benchmark's (``CertificateBuilder.sign`` P-256 over a prebuilt TBS, :func:`bench.sign._baseline_builder`).
* crl — in a fresh process: services.crl.generate over 100,000 revocation records (the table scan and the
  CRL-number counter monkeypatched, nothing written to moto), and over 25,000 to show how it scales; CPU
  time and peak RSS (VmHWM) against the baseline, and against a plain ``CertificateRevocationListBuilder``
  of 100,000 entries (given to its constructor) signed with a local P-256 key in another fresh process.
  What the monkeypatched scan leaves out is estimated apart: the real revocations.scan_all over canned
  1,000-item Scan pages (10,000 items through botocore and from_item), extrapolated to 100,000.
* ocsp — in-process: services.ocsp.respond for a good and a revoked certificate when the response has to be
  signed (a serial's first request, or half way to nextUpdate: reads answered from dicts, the store's write
  a no-op), and served pre-produced from the store (the common case: one read, no signature), through the
  handler, and with the GetItem made by botocore; against the baseline.

The helpers :func:`offline_ca`, :func:`canned_dynamodb`, :func:`bench.sign.baseline_batch` and :func:`hotspots` are
shared with bench.ssh and bench.provisioners.
"""

from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import datetime as dt
import io
import json
import pstats
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from bench.common import (
    ROOT,
    AWSCalls,
    Row,
    child_env,
    child_result,
    environ,
    expect,
    interleave,
    peak_rss_mb,
    quiet_logger,
    report,
    run_sections,
    warm_counts,
)
from bench.sign import _ca, _env, _offline, _Raw, _trim_pstats, baseline_batch

SECTIONS = ("calls", "renew", "crl", "ocsp")
CRL_ENTRIES = 100_000
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


# --- shared helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def offline_ca(backend: str = "secrets", prepare: Callable[[Any], Any] | None = None) -> Iterator[tuple[Any, Any]]:
    """(test CA, ``prepare(ca)``'s result): as ``bench.sign._ca(offline=True)``, with ``prepare`` run against
    moto first (add provisioners, …); then every configured CA key is loaded (X.509 intermediate, SSH user
    and host) and moto stops: from there any AWS call raises (bench.sign._offline)."""
    from moto import mock_aws
    from tests.support import ca as support

    from stepless import authority, aws
    from stepless.services import ssh
    from stepless.ssh import HOST, USER

    with environ(_env("3600")):
        mock: Any = mock_aws()
        mock.start()
        try:
            aws.reset()
            authority.reset()
            ca = support.initialize(support.create_resources(), backend=backend)
            prepared = prepare(ca) if prepare is not None else None
            auth = authority.get()
            auth.intermediate_signer.public_key()
            for cert_type in (USER, HOST):
                if auth.ssh.get("userKey" if cert_type == USER else "hostKey"):
                    ssh.ca_signer(auth, cert_type).public_key()
        finally:
            mock.stop()
        try:
            with _offline():
                yield ca, prepared
        finally:
            aws.reset()
            authority.reset()


@contextlib.contextmanager
def canned_dynamodb(bodies: dict[str, bytes | Callable[[], bytes]]) -> Iterator[None]:
    """Within :func:`offline_ca`: the DynamoDB operations named in ``bodies`` go through botocore for real
    (parameter validation, serialization, SigV4, parsing) and get that body (or what calling it returns),
    HTTP 200, just before sending. Any other DynamoDB operation raises."""
    from botocore.awsrequest import AWSResponse

    from bench import sign as sign_bench
    from stepless import aws

    def before_send(request: Any = None, event_name: str = "", **_: Any) -> AWSResponse:
        op = event_name.rsplit(".", 1)[-1]
        if op not in bodies:
            raise RuntimeError(f"unexpected AWS call in an offline benchmark: {event_name}")
        body = bodies[op]
        return AWSResponse(request.url, 200, {"x-amzn-requestid": "bench"}, _Raw(body if isinstance(body, bytes)
                                                                                 else body()))

    # Registered on the more specific event, this hook runs before bench.sign._offline's guard (on
    # "before-send"), whose answer, once told to answer DynamoDB, is then ignored (the first wins).
    client = aws.client("dynamodb")
    uid = "stepless-bench-canned"
    client.meta.events.register("before-send.dynamodb", before_send, unique_id=uid)
    sign_bench._ANSWER_DYNAMODB[0] = True
    try:
        yield
    finally:
        sign_bench._ANSWER_DYNAMODB[0] = False
        client.meta.events.unregister("before-send.dynamodb", unique_id=uid)


def baseline_row(bench: str, base: Any, run: str = "") -> Row:
    where = f" ({run})" if run else ""
    return Row(bench, f"baseline{where}: CertificateBuilder.sign, P-256, prebuilt TBS", "1.00x",
               note=f"{base.min * 1e6:.0f} us CPU/op = {base.rate:,.0f}/s/core")


def hotspots(fn: Callable[[], Any], label: str, top: int = 10) -> list[str]:
    """cProfile of ``fn()``: the top ``top`` functions by own time and by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = []
    for key, name in (("tottime", "own (tottime)"), ("cumulative", "cumulative")):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(top)
        out.append(f"cProfile of {label}, top {top} by {name} time (profiler overhead inflates many small "
                   f"calls):\n" + _trim_pstats(buf.getvalue()))
    return out


def rate_note(t: Any) -> str:
    return f"{t.min * 1e6:.0f} us CPU/op = {t.rate:,.0f}/s/core"


def issue_offline(ca: Any, n: int, prefix: str = "host") -> tuple[list[tuple[str, Any]], dict[str, dict]]:
    """``n`` certificates issued by services.sign (offline): [(PEM, key)], and their records by serial."""
    from tests.support.ca import make_csr

    from stepless import authority
    from stepless.services import sign as signing
    from stepless.stores import certificates

    records: dict[str, dict] = {}
    real = certificates.record_issuance
    certificates.record_issuance = lambda record, token: records.__setitem__(record.serial, record)
    try:
        issued = []
        for i in range(n):
            name = f"{prefix}{i}.example.com"
            csr, key = make_csr(name)
            out = signing.sign({"ott": ca.token(name, lifetime=600), "csr": csr}, authority.get())
            issued.append((out["crt"], key))
    finally:
        certificates.record_issuance = real
    return issued, records


@contextlib.contextmanager
def _store(records: dict[str, Any], revoked: dict[str, Any]) -> Iterator[None]:
    """The read (a certificate without the provisioner extension) answered from dicts, the renewal write a
    no-op (nothing sent)."""
    from stepless.stores import certificates

    real = certificates.get_with_revocation, certificates.record_renewal
    _REAL_STORE.append(real)
    certificates.get_with_revocation = lambda serial: (records.get(serial), revoked.get(serial))
    certificates.record_renewal = lambda record, token, parent, **_: None
    try:
        yield
    finally:
        certificates.get_with_revocation, certificates.record_renewal = real
        _REAL_STORE.pop()


_REAL_STORE: list[tuple[Any, Any]] = []


@contextlib.contextmanager
def _unstubbed() -> Iterator[None]:
    """Inside :func:`_store`: the real read and write again (their DynamoDB calls for canned_dynamodb)."""
    from stepless.stores import certificates

    stubs = certificates.get_with_revocation, certificates.record_renewal
    certificates.get_with_revocation, certificates.record_renewal = _REAL_STORE[-1]
    try:
        yield
    finally:
        certificates.get_with_revocation, certificates.record_renewal = stubs


def _batch_get_body(record: Any | None, revocation: Any | None = None) -> bytes:
    from stepless import settings
    from stepless.stores.dynamo import to_item

    certs = [to_item(record.to_dict())] if record else []
    responses: dict[str, list] = {settings.table(settings.CERTIFICATES_TABLE): certs}
    responses[settings.table(settings.REVOCATIONS_TABLE)] = [to_item(revocation.to_dict())] if revocation else []
    return json.dumps({"Responses": responses, "UnprocessedKeys": {}}).encode()


def _split(per: dict[str, float]) -> tuple[float, float, float]:
    reads = sum(v for k, v in per.items() if k.split(".", 1)[1] in AWSCalls.READS)
    writes = sum(v for k, v in per.items() if k.split(".", 1)[1] in WRITES)
    return reads, writes, per.get("kms.Sign", 0.0)


def calls(n: int = 20) -> tuple[list[Row], list[str]]:
    from cryptography import x509
    from tests.support.ca import event

    from bench.sign import _requests
    from stepless.api.renew import app as renew_app
    from stepless.api.revoke import app as revoke_app
    from stepless.api.sign import app as sign_app

    with _ca("kms", ttl=None) as ca, quiet_logger():
        bodies = _requests(ca, 3 * (n + 1), prefix="renew")
        pems = [json.loads(expect(sign_app.handler(event("POST", "/1.0/sign", b), None), 201)["body"])["crt"]
                for b in bodies]
        certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
        renew_pems = pems[:n + 1]
        by_token = [str(c.serial_number) for c in certs[n + 1:2 * (n + 1)]]
        by_mtls = list(zip([str(c.serial_number) for c in certs[2 * (n + 1):]], pems[2 * (n + 1):], strict=True))
        tokens = {s: ca.token(s, path="/1.0/revoke", lifetime=600) for s in by_token}

        def renew(pem: str) -> None:
            expect(renew_app.handler(event("POST", "/renew", client_cert_pem=pem), None), 201)

        def revoke_token(serial: str) -> None:
            body = {"serial": serial, "ott": tokens[serial], "reasonCode": 1}
            expect(revoke_app.handler(event("POST", "/revoke", body), None), 200)

        def revoke_mtls(item: tuple[str, str]) -> None:
            serial, pem = item
            expect(revoke_app.handler(event("POST", "/revoke", {"serial": serial}, client_cert_pem=pem), None), 200)

        results = {"renew": warm_counts(renew, renew_pems),
                   "revoke (token)": warm_counts(revoke_token, by_token),
                   "revoke (mTLS)": warm_counts(revoke_mtls, by_mtls)}

    rows = []
    cold, per, _ = results["renew"]
    reads, writes, kms_sign = _split(per)
    txn = per.get("dynamodb.TransactWriteItems", 0.0)
    ok = reads == 0 and writes == 1 and txn == 1 and kms_sign <= 1
    rows += [
        Row("renew", f"AWS calls per warm renew over mTLS (KMS backend, {n} requests)", f"{sum(per.values()):.2f}",
            "", "0 reads, 1 txn, kms.Sign <= 1", ok, ", ".join(f"{k} {v:g}" for k, v in per.items())),
        Row("renew", "  reads per warm renew", f"{reads:g}", "", "0", reads == 0,
            "record and revocation checked by the transaction's conditions"),
        Row("renew", "  writes per warm renew", f"{writes:g}", "", "1 (TransactWriteItems)", writes == 1 and txn == 1,
            "new record + parent link (recorded, this certificate) + ConditionCheck 'parent not revoked'"),
        Row("renew", "  kms.Sign per warm renew", f"{kms_sign:g}", "", "<= 1", kms_sign <= 1),
        Row("renew", "  (cold first renew, for reference)", f"{sum(cold.values())}", "",
            note=", ".join(f"{k} {v}" for k, v in sorted(cold.items()))),
    ]
    for name in ("revoke (token)", "revoke (mTLS)"):
        cold, per, _ = results[name]
        reads, writes, kms_sign = _split(per)
        # the revocation (with the token's use, and the OCSP record set to revoked) is one transaction
        conditional = "TransactWriteItems"
        ocsp_put = per.get("dynamodb.PutItem", 0)
        rows += [
            Row("renew", f"AWS calls per warm {name} ({n} requests)", f"{sum(per.values()):.2f}", "",
                "1 conditional write + the OCSP response (1 put, 1 kms.Sign)",
                writes == 2 and per.get(f"dynamodb.{conditional}", 0) >= 1 and ocsp_put == 1 and kms_sign == 1,
                ", ".join(f"{k} {v:g}" for k, v in per.items())),
            Row("renew", f"  reads per warm {name}", f"{reads:g}", "", "as needed",
                note="GetItem of the certificate record (404 for a serial we never issued)"),
            Row("renew", f"  writes per warm {name}", f"{writes:g}", "", "2", writes == 2,
                ("revocation put + token use + OCSP record set to revoked, one transaction" if name == "revoke (token)"
                 else "revocation put + OCSP record set to revoked, one transaction")
                + "; PutItem of the signed revoked OCSP response"),
            Row("renew", f"  (cold first {name}, for reference)", f"{sum(cold.values())}", "",
                note=", ".join(f"{k} {v}" for k, v in sorted(cold.items()))),
        ]
    return rows, []


# --- 2. renew throughput --------------------------------------------------------------------------------


def throughput(n: int = 200, rounds: int = 5, profile: bool = False) -> tuple[list[Row], list[str]]:
    from cryptography import x509
    from tests.integration.test_renew import renew_token
    from tests.support.ca import event

    from stepless import authority, clock
    from stepless.api.renew import app as renew_app
    from stepless.services import issuance
    from stepless.services import renew as renewal
    from stepless.x509 import chain
    from stepless.x509 import profile as profiles

    details: list[str] = []
    with offline_ca("secrets") as (ca, _), quiet_logger():
        auth = authority.get()
        issued, records = issue_offline(ca, n, prefix="renew")
        pems = [pem for pem, _ in issued]
        certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
        events = [event("POST", "/renew", client_cert_pem=p) for p in pems]
        bearer = [event("POST", "/1.0/renew", headers={"Authorization": f"Bearer {renew_token(c, k, lifetime=3600)}"})
                  for c, (_, k) in zip(certs, issued, strict=True)]
        canned = dataclasses.replace(records[str(certs[0].serial_number)], fingerprint=None)
        http_bodies = {"BatchGetItem": _batch_get_body(canned), "TransactWriteItems": b"{}"}  # the read: rare path
        now = clock.now()
        old = certs[0]
        duration = old.not_valid_after_utc - old.not_valid_before_utc
        ok0 = renewal.Renewable(old, auth.provisioners.get(ca.name))

        def service() -> int:
            for pem in pems:
                renewal.renew_mtls(pem, auth)
            return n

        def handler() -> int:
            for ev in events:
                expect(renew_app.handler(ev, None), 201)
            return n

        def by_token() -> int:
            for ev in bearer:
                expect(renew_app.handler(ev, None), 201)
            return n

        def service_http() -> int:
            with _unstubbed(), canned_dynamodb(http_bodies):
                return service()

        def authorize() -> int:
            for pem in pems:
                renewal.authorize(chain.load_pem(pem), auth, now, mtls=True)
            return n

        def build() -> int:
            for _ in range(n):
                profiles.renewal(old, public_key=None, not_before=now, not_after=now + duration,
                                 issuer=auth.intermediate, signer=auth.intermediate_signer)
            return n

        def record_respond() -> int:
            for c in certs:
                issuance.record(c, provisioner=ok0.provisioner.name, provisioner_type=ok0.provisioner.type,
                                parent_serial="1", issued_at=0)
                issuance.sign_response(c, auth)
            return n

        with _store(records, {}):
            t = interleave({"baseline": baseline_batch(n), "service": service, "handler": handler,
                            "token": by_token, "service_http": service_http, "authorize": authorize,
                            "build": build, "record": record_respond}, rounds=rounds)
            if profile:
                details += hotspots(service, f"{n} renewals over mTLS (services.renew.renew_mtls, write stubbed)")
                details += hotspots(service_http, f"{n} renewals over mTLS with the DynamoDB call made by "
                                                  "botocore (a canned answer before send)")[:1]

    base, svc = t["baseline"], t["service"]
    rows = [
        baseline_row("renew", base),
        Row("renew", "renew over mTLS in-process (services.renew, write stubbed)", f"{svc.min / base.min:.2f}x",
            "baseline", note=f"{rate_note(svc)} (median round {1 / svc.median:,.0f}/s; wall {1 / svc.wall:,.0f}/s)"),
        Row("renew", "renew over mTLS via app.handler (event -> 201)", f"{t['handler'].min / base.min:.2f}x",
            "baseline", note=rate_note(t["handler"])),
        Row("renew", "renew by x5cInsecure token via app.handler", f"{t['token'].min / base.min:.2f}x", "baseline",
            note=f"{rate_note(t['token'])}: + token parse, leaf chain check, ES256 verify"),
        Row("renew", "renew over mTLS, its DynamoDB call made (HTTP stubbed)",
            f"{t['service_http'].min / base.min:.2f}x", "baseline",
            note=f"{rate_note(t['service_http'])}: + TransactWriteItems through botocore "
                 "(serialize, SigV4, parse), canned 200 before send"),
    ]
    for key, label in (("authorize", "authorize: PEM load, chain check, rules (no read)"),
                       ("build", "build + sign (profile.renewal)"), ("record", "record item + response PEMs")):
        st = t[key]
        rows.append(Row("renew", f"  stage: {label}", f"{st.min / base.min:.2f}x", "baseline",
                        note=f"{st.min * 1e6:.0f} us CPU/op, {st.min / svc.min:.0%} of a renewal"))
    return rows, details


# --- 3. CRL of 100,000 revoked serials ------------------------------------------------------------------


def _revocations(n: int, now: dt.datetime) -> list[Any]:
    """``n`` revocation records as revocations.scan_all returns them."""
    from stepless.stores.revocations import RevocationRecord

    ts, not_after = int(now.timestamp()), int(now.timestamp()) + 86400
    serial0 = 1 << 120
    return [RevocationRecord(serial=str(serial0 + 7919 * i), kind="x509", reason="", reason_code=i % 7,
                             revoked_at=ts - i, revoked_by="provisioner:admin", not_after=not_after,
                             subject=f"host{i}.example.com", provisioner="admin") for i in range(n)]


def rss_mb() -> float:
    """This process's current resident set size (``VmRSS``), in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def crl_child(sizes: tuple[int, ...]) -> None:
    """In a fresh process: services.crl.generate over each of ``sizes`` records; memory counts for the first
    (records made, then VmRSS before and VmHWM after). Reports CPU seconds and MiB."""
    from cryptography import x509

    from stepless import authority, clock
    from stepless.services import crl
    from stepless.stores import crl_store, revocations

    figures: dict[str, Any] = {"start": peak_rss_mb()}
    scan_all = revocations.scan_all
    with offline_ca("secrets") as _, quiet_logger():
        auth = authority.get()
        figures["base_us"] = interleave({"base": baseline_batch(200)}, rounds=5)["base"].min * 1e6
        numbers = iter(range(1, 1000))
        crl_store.next_number = lambda: next(numbers)  # an UpdateItem ADD on the authority table
        figures["setup"] = peak_rss_mb()
        for size in sizes:
            before = rss_mb()
            records = _revocations(size, clock.now())
            figures[f"rss_before_{size}"], figures[f"rss_records_{size}"] = before, rss_mb()
            revocations.scan_all = lambda records=records: records  # the paginated Scan
            c0, w0 = time.process_time(), time.perf_counter()
            stored = crl.generate(auth)
            figures[f"cpu_{size}"], figures[f"wall_{size}"] = time.process_time() - c0, time.perf_counter() - w0
            figures[f"peak_{size}"] = peak_rss_mb()
            c0 = time.process_time()
            crl.entries(records, clock.now())
            figures[f"entries_cpu_{size}"] = time.process_time() - c0
            parsed = x509.load_der_x509_crl(stored.der)
            if len(parsed) != size or not parsed.is_signature_valid(auth.intermediate.public_key()):
                raise RuntimeError(f"bad CRL: {len(parsed)} entries for {size}")
            figures[f"der_{size}"] = len(stored.der)
            del records, stored, parsed
        revocations.scan_all = scan_all
        figures["scan_cpu"], figures["scan_items"] = _scan(revocations.scan_all, clock.now())
    report(figures)


def _scan(scan_all: Callable[[], list], now: dt.datetime, pages: int = 10, per_page: int = 1000,
          ) -> tuple[float, int]:
    """CPU seconds of the real revocations.scan_all over ``pages`` canned Scan pages of ``per_page`` items
    (botocore parses them, stores.dynamo.from_item converts): what the monkeypatched scan leaves out."""
    from stepless.stores.dynamo import to_item

    items = [to_item(r.to_dict()) for r in _revocations(per_page, now)]
    last = json.dumps({"Items": items, "Count": per_page, "ScannedCount": per_page}).encode()
    more = json.dumps({"Items": items, "Count": per_page, "ScannedCount": per_page,
                       "LastEvaluatedKey": {"serial": items[-1]["serial"]}}).encode()
    served = [0]

    def page() -> bytes:
        served[0] += 1
        return more if served[0] < pages else last

    with canned_dynamodb({"Scan": page}):
        c0 = time.process_time()
        got = scan_all()
        cpu = time.process_time() - c0
    if len(got) != pages * per_page:
        raise RuntimeError(f"scan: {len(got)} items")
    return cpu, len(got)


def crl_plain_child(n: int) -> None:
    """In a fresh process: the baseline (VmHWM after it = the memory baseline), then a plain
    CertificateRevocationListBuilder of ``n`` entries, given to its constructor, signed with a local key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    base = interleave({"base": baseline_batch(200)}, rounds=5)["base"]
    figures: dict[str, Any] = {"base_us": base.min * 1e6, "base_rss": peak_rss_mb(), "rss_before": rss_mb()}
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    serial0 = 1 << 120
    c0 = time.process_time()
    revoked = []
    for i in range(n):
        b = x509.RevokedCertificateBuilder().serial_number(serial0 + 7919 * i).revocation_date(now)
        if i % 7:
            b = b.add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        revoked.append(b.build())
    crl = (x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
           .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Intermediate CA")]))
           .last_update(now).next_update(now + dt.timedelta(hours=24))
           .sign(key, hashes.SHA256()))
    der = crl.public_bytes(Encoding.DER)
    figures["cpu"] = time.process_time() - c0
    figures["peak"] = peak_rss_mb()
    figures["der"] = len(der)
    report(figures)


def crl_bench(n: int = CRL_ENTRIES) -> tuple[list[Row], list[str]]:
    env = child_env()
    small = n // 4
    def spawn(code: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    # both at once (one core each): CPU time is per process
    procs = {"stepless": spawn(f"from bench.renew import crl_child; crl_child({(n, small)})"),
             "plain": spawn(f"from bench.renew import crl_plain_child; crl_plain_child({n})")}
    f: dict[str, dict] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"crl child {name} failed:\n{err[-3000:]}")
        f[name] = child_result(subprocess.CompletedProcess(proc.args, 0, out, err))
    s, p = f["stepless"], f["plain"]
    base_s = s["base_us"] / 1e6
    cpu, cpu_small, plain = s[f"cpu_{n}"], s[f"cpu_{small}"], p["cpu"]
    records = s[f"rss_records_{n}"] - s[f"rss_before_{n}"]
    growth = s[f"peak_{n}"] - s[f"rss_before_{n}"]  # records (the scan's result) + generation
    plain_growth = p["peak"] - p["rss_before"]  # RevokedCertificate objects + builder + signing
    scale = cpu / cpu_small
    rows = [
        Row("renew", f"CRL of {n:,} revoked serials: services.crl.generate CPU time", f"{cpu / base_s:,.0f}x",
            "baseline", note=f"{cpu:.2f} s CPU (wall {s[f'wall_{n}']:.2f} s) = {cpu / n * 1e6:.0f} us/entry = "
                             f"{cpu / n / base_s:.2f}x baseline per entry; DER {s[f'der_{n}'] / 2**20:.1f} MiB; "
                             f"baseline {s['base_us']:.0f} us"),
        Row("renew", "  vs a plain CertificateRevocationListBuilder (entries to its constructor)",
            f"{cpu / plain:.1f}x", "plain builder",
            note=f"plain: {plain:.2f} s CPU for {n:,} entries (build entries, sign, DER) = "
                 f"{plain / (p['base_us'] / 1e6):,.0f}x baseline"),
        Row("renew", f"  scaling: {small:,} -> {n:,} entries (4x)", f"{scale:.1f}x", "linear = 4x",
            note=f"{cpu_small:.2f} s -> {cpu:.2f} s; crl.entries() alone {s[f'entries_cpu_{n}']:.2f} s for {n:,}: "
                 "the rest is the builder"),
        Row("renew", f"  left out above: revocations.scan_all of {n:,} records (extrapolated)",
            f"{s['scan_cpu'] * n / s['scan_items'] / base_s:,.0f}x", "baseline",
            note=f"{s['scan_cpu'] * n / s['scan_items']:.2f} s CPU: {s['scan_items']:,} items in canned 1,000-item "
                 f"Scan pages took {s['scan_cpu']:.2f} s (botocore parse + from_item)"),
        Row("renew", f"CRL of {n:,}: peak RSS (VmHWM) of the process", f"{s[f'peak_{n}'] / p['base_rss']:.2f}x",
            "baseline process", note=f"{s[f'peak_{n}']:.0f} MiB, of which moto + CA set-up {s['setup']:.0f} MiB; "
                                     f"baseline process (python, cryptography, the sign baseline) "
                                     f"{p['base_rss']:.0f} MiB; plain builder process {p['peak']:.0f} MiB"),
        # with smoke's few entries the plain builder may grow by nothing (pages reused): no ratio then
        Row("renew", f"  memory for {n:,} records + generation",
            f"{growth / plain_growth:.2f}x" if plain_growth > 0 else "n/a",
            "plain builder's", note=f"+{growth:.0f} MiB (the records alone +{records:.0f} MiB); "
                                    f"plain builder +{plain_growth:.0f} MiB over its baseline"),
    ]
    details = [f"CRL: {scale:.1f}x the time for 4x the entries (linear is 4x); services.crl.build passes every "
               f"entry to the builder at once (cryptography {_crypto_version()})."]
    return rows, details


def _crypto_version() -> str:
    import cryptography

    return cryptography.__version__


# --- 4. OCSP --------------------------------------------------------------------------------------------


OCSP_ROWS = (("good", "OCSP response signed in-process, good (services.ocsp.respond, reads stubbed)"),
             ("revoked", "OCSP response signed in-process, revoked (reads stubbed)"),
             ("served", "OCSP response served pre-produced (read stubbed, no signature)"),
             ("handler", "OCSP via app.handler, POST /ocsp, good, served pre-produced"),
             ("http", "OCSP served pre-produced, GetItem made by full botocore (HTTP stubbed)"))


def ocsp_bench(n: int = 300, rounds: int = 5) -> tuple[list[Row], list[str]]:
    """OCSP responses signed (good, revoked), served pre-produced, via the handler, and with the GetItem made."""
    import base64

    from cryptography import x509
    from tests.support.ca import event

    from stepless import authority, clock
    from stepless.stores import ocsp_responses
    from stepless.stores.revocations import RevocationRecord

    # full botocore clients: canned_dynamodb answers at botocore's before-send, which the lean path skips
    with environ({"STEPLESS_AWS_LEAN": "0"}), offline_ca("secrets") as (ca, _), quiet_logger():
        auth = authority.get()
        issued, records = issue_offline(ca, 2, prefix="ocsp")
        good, bad = (x509.load_pem_x509_certificate(p.encode()) for p, _ in issued)
        ts = int(clock.now().timestamp())
        revoked = {str(bad.serial_number): RevocationRecord(str(bad.serial_number), reason_code=1, revoked_at=ts - 60,
                                                            revoked_by="provisioner:admin")}
        der_good, der_bad = _ocsp_request(good, auth.intermediate), _ocsp_request(bad, auth.intermediate)
        post = event("POST", "/ocsp", headers={"content-type": "application/ocsp-request"})
        post["body"], post["isBase64Encoded"] = base64.b64encode(der_good).decode(), True
        stored = _pre_produce(auth, records, revoked, der_good, der_bad)
        get_body = _get_item_body(stored[str(good.serial_number)])
        real_get = ocsp_responses.get
        with _store(records, revoked), _ocsp_store(get=stored.get):
            t = interleave({"baseline": baseline_batch(n), "good": partial(_ocsp_signed, der_good, auth, n),
                            "revoked": partial(_ocsp_signed, der_bad, auth, n),
                            "served": partial(_ocsp_respond, der_good, auth, n),
                            "handler": partial(_ocsp_handler, post, n),
                            "http": partial(_ocsp_http, der_good, auth, n, get_body, real_get)}, rounds=rounds)

    base = t["baseline"]
    rows = [baseline_row("renew", base, "OCSP run")]
    for key, label in OCSP_ROWS:
        rows.append(Row("renew", label, f"{t[key].min / base.min:.2f}x", "baseline", note=rate_note(t[key])))
    return rows, []


def _ocsp_request(cert: Any, issuer: Any) -> bytes:
    """An OCSP request for ``cert`` as openssl ocsp sends it: SHA-1 CertID, a nonce."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    return (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
            .add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False).build().public_bytes(Encoding.DER))


@contextlib.contextmanager
def _ocsp_store(**stubs: Callable[..., Any]) -> Iterator[None]:
    """``stores.ocsp_responses``' ``get`` / ``create`` / ``put_revoked`` replaced by ``stubs``, restored after."""
    from stepless.stores import ocsp_responses

    saved = {name: getattr(ocsp_responses, name) for name in stubs}
    for name, fn in stubs.items():
        setattr(ocsp_responses, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(ocsp_responses, name, fn)


def _pre_produce(auth: Any, records: dict[str, Any], revoked: dict[str, Any], der_good: bytes,
                 der_bad: bytes) -> dict[str, Any]:
    """Answer one good and one revoked request (checking the status), keeping the responses produced."""
    from cryptography.x509 import ocsp

    from stepless.services import ocsp as responder

    stored: dict[str, Any] = {}

    def store(rec: Any) -> bool:
        stored[rec.serial] = rec
        return True

    with _ocsp_store(get=stored.get, create=store, put_revoked=store):
        for der, status in ((der_good, ocsp.OCSPCertStatus.GOOD), (der_bad, ocsp.OCSPCertStatus.REVOKED)):
            with _store(records, revoked):
                resp = ocsp.load_der_ocsp_response(responder.respond(der, auth))
            if resp.certificate_status != status:
                raise RuntimeError(f"OCSP: {resp.certificate_status}, expected {status}")
    return stored


def _get_item_body(record: Any) -> bytes:
    """DynamoDB's GetItem answer holding the pre-produced response ``record``."""
    import base64

    return json.dumps({"Item": {
        "serial": {"S": record.serial}, "status": {"S": record.status}, "expires": {"N": str(record.expires)},
        "responses": {"M": {slot: {"M": {"der": {"B": base64.b64encode(r.der).decode()},
                                         "this_update": {"N": str(r.this_update)},
                                         "next_update": {"N": str(r.next_update)}}}
                            for slot, r in record.responses.items()}}}}).encode()


def _ocsp_respond(der: bytes, auth: Any, n: int) -> int:
    """``services.ocsp.respond`` ``n`` times (what the store stubs hold decides: served or signed)."""
    from stepless.services import ocsp as responder

    for _ in range(n):
        responder.respond(der, auth)
    return n


def _ocsp_signed(der: bytes, auth: Any, n: int) -> int:
    """:func:`_ocsp_respond` with nothing pre-produced: every response is signed."""
    with _ocsp_store(get=lambda serial: None, create=lambda rec: True, put_revoked=lambda rec: None):
        return _ocsp_respond(der, auth, n)


def _ocsp_handler(post: dict, n: int) -> int:
    """The revoke function's ``app.handler``, POST /ocsp, ``n`` times (each a 200)."""
    from stepless.api.revoke import app as revoke_app

    for _ in range(n):
        expect(revoke_app.handler(post, None), 200)
    return n


def _ocsp_http(der: bytes, auth: Any, n: int, get_body: bytes, real_get: Callable[..., Any]) -> int:
    """:func:`_ocsp_respond` with the real ``ocsp_responses.get`` (``real_get``), its GetItem answered with
    ``get_body``."""
    with _ocsp_store(get=real_get), canned_dynamodb({"GetItem": get_body}):
        return _ocsp_respond(der, auth, n)


# --- entry ----------------------------------------------------------------------------------------------


def run(only: tuple[str, ...] = SECTIONS, profile: bool = False, full: bool = False, smoke: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only``; ``full``: more rounds; ``smoke``: minimal rounds (figures mean nothing)."""
    if smoke:
        return run_sections("renew", {
            "calls": lambda: calls(n=2),
            "renew": lambda: throughput(n=3, rounds=1, profile=profile),
            "crl": lambda: crl_bench(n=40),
            "ocsp": lambda: ocsp_bench(n=3, rounds=1),
        }, only)
    rounds = 9 if full else 5
    return run_sections("renew", {
        "calls": calls,
        "renew": lambda: throughput(rounds=rounds, profile=profile),
        "crl": crl_bench,
        "ocsp": lambda: ocsp_bench(rounds=rounds),
    }, only)
