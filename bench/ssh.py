"""POST /ssh/sign: SSH user certificate issuance throughput, AWS calls per warm issuance.

Sections (``python -m bench ssh --only issuance,calls``):

* issuance — in-process, Secrets Manager backend, moto stopped, the AWS write stubbed: a JWK SSH token
  (``step.ssh``, certType user) and a distinct P-256 user key per request, made beforehand (client work);
  token check + build + sign + record item + response (services.ssh.sign), also through the handler.
  Baseline: the sign benchmark's (``CertificateBuilder.sign`` P-256 over a prebuilt TBS). Reference, not
  measured here: step-ca 0.19 on this kind of machine, ~0.57 ms CPU per SSH certificate over HTTPS.
* calls — the real handler against moto (KMS backend); after one warm-up request, calls per issuance:
  0 reads, 1 TransactWriteItems (used token + record), ≤ 1 kms.Sign.
"""

from __future__ import annotations

import base64
from typing import Any

from bench.common import Row, expect, interleave, quiet_logger, run_sections, warm_counts
from bench.renew import baseline_row, hotspots, offline_ca, rate_note
from bench.sign import _ca, _stub_record, baseline_batch

SECTIONS = ("issuance", "calls")
STEP_CA_S = 0.57e-3  # step-ca 0.19: CPU seconds per SSH certificate over HTTPS (reference, not measured here)


def _bodies(ca: Any, n: int) -> list[dict[str, str]]:
    """``n`` POST /ssh/sign bodies: a distinct P-256 user key and a fresh JWK SSH token each."""
    from tests.support.ca import make_key

    from stepless.ssh import encode_public_key

    bodies = []
    for i in range(n):
        sub = f"user{i}@example.com"
        key = make_key()
        ott = ca.token(sub, path="/1.0/ssh/sign", lifetime=600, step={"ssh": {"certType": "user"}})
        bodies.append({"publicKey": base64.b64encode(encode_public_key(key.public_key())).decode(), "ott": ott,
                       "certType": "user"})
    return bodies


# --- 1. issuance throughput -----------------------------------------------------------------------------


def issuance(n: int = 200, rounds: int = 5, profile: bool = False) -> tuple[list[Row], list[str]]:
    from tests.support.ca import event

    from stepless import authority, clock, tokens
    from stepless.api.ssh import app
    from stepless.provisioners import Context
    from stepless.services import ssh
    from stepless.ssh import DEFAULT_USER_EXTENSIONS, USER, build_and_sign, parse_certificate, verify_signature

    details: list[str] = []
    with offline_ca("secrets") as (ca, _), _stub_record(), quiet_logger():
        auth = authority.get()
        bodies = _bodies(ca, n)
        events = [event("POST", "/1.0/ssh/sign", b) for b in bodies]
        cert = parse_certificate(base64.b64decode(ssh.sign(bodies[0], auth)["crt"]))
        if cert.cert_type != USER or not verify_signature(cert):
            raise RuntimeError("ssh sign: not a valid user certificate")

        prov = auth.provisioners.get(ca.name)
        now = clock.now()
        ctx = Context(auth.hosts, now)
        keys = [ssh.public_key_from(b["publicKey"]) for b in bodies]
        signer = ssh.ca_signer(auth, USER)
        va, vb = int(now.timestamp()) - 60, int(now.timestamp()) + 16 * 3600
        certs = [build_and_sign(k, serial=ssh.new_serial(), cert_type=USER, key_id="user0@example.com",
                                principals=("user0", "user0@example.com"), valid_after=va, valid_before=vb,
                                extensions=DEFAULT_USER_EXTENSIONS, signer=signer) for k in keys]

        def service() -> int:
            for body in bodies:
                ssh.sign(body, auth)
            return n

        def handler() -> int:
            for ev in events:
                expect(app.handler(ev, None), 201)
            return n

        def token() -> int:
            for body in bodies:
                header, claims = tokens.unverified(body["ott"])
                prov.authorize_ssh_sign(body["ott"], header, claims, ctx)
            return n

        def build() -> int:
            for k in keys:
                build_and_sign(k, serial=ssh.new_serial(), cert_type=USER, key_id="user0@example.com",
                               principals=("user0", "user0@example.com"), valid_after=va, valid_before=vb,
                               extensions=DEFAULT_USER_EXTENSIONS, signer=signer)
            return n

        def record() -> int:
            for c in certs:
                ssh.record(c, provisioner=prov.name, provisioner_type=prov.type, issued_at=0)
                ssh.response(c)
            return n

        def pubkey() -> int:
            for b in bodies:
                ssh.public_key_from(b["publicKey"])
            return n

        t = interleave({"baseline": baseline_batch(n), "service": service, "handler": handler, "token": token,
                        "build": build, "record": record, "pubkey": pubkey}, rounds=rounds)
        if profile:
            details += hotspots(service, f"{n} SSH user certificates (services.ssh.sign, write stubbed)")

    base, svc, hnd = t["baseline"], t["service"], t["handler"]
    rows = [
        baseline_row("ssh", base),
        Row("ssh", "SSH user cert issuance in-process (services.ssh.sign, write stubbed)",
            f"{svc.min / base.min:.2f}x", "baseline",
            note=f"{rate_note(svc)} certs (median round {1 / svc.median:,.0f}/s; wall {1 / svc.wall:,.0f}/s)"),
        Row("ssh", "SSH user cert issuance via app.handler (event -> 201)", f"{hnd.min / base.min:.2f}x",
            "baseline", note=rate_note(hnd)),
        Row("ssh", "  reference: step-ca 0.19, ~0.57 ms CPU per SSH certificate over HTTPS",
            f"{STEP_CA_S / base.min:.2f}x", "baseline",
            note=f"not measured here; stepless in-process {svc.min * 1e3:.2f} ms = {svc.min / STEP_CA_S:.2f}x "
                 f"step-ca's, via the handler {hnd.min * 1e3:.2f} ms = {hnd.min / STEP_CA_S:.2f}x (no TLS: "
                 "API Gateway terminates it)"),
    ]
    for key, label in (("pubkey", "public key parse (ssh.public_key_from)"),
                       ("token", "token check (unverified + JWK verify, authorize_ssh_sign)"),
                       ("build", "build + sign (ssh.build_and_sign)"), ("record", "record item + response")):
        st = t[key]
        rows.append(Row("ssh", f"  stage: {label}", f"{st.min / base.min:.2f}x", "baseline",
                        note=f"{st.min * 1e6:.0f} us CPU/op, {st.min / svc.min:.0%} of an issuance"))
    return rows, details


# --- 2. AWS calls per warm issuance ---------------------------------------------------------------------


def calls(n: int = 20) -> tuple[list[Row], list[str]]:
    from tests.support.ca import event

    from stepless.api.ssh import app

    with _ca("kms", ttl=None) as ca, quiet_logger():
        events = [event("POST", "/1.0/ssh/sign", b) for b in _bodies(ca, n + 1)]
        cold, per, reads = warm_counts(lambda ev: expect(app.handler(ev, None), 201), events)

    txn, kms_sign = per.get("dynamodb.TransactWriteItems", 0.0), per.get("kms.Sign", 0.0)
    ok = reads == 0 and txn == 1 and kms_sign <= 1
    return [
        Row("ssh", f"AWS calls per warm SSH issuance (KMS backend, {n} requests)", f"{sum(per.values()):.2f}", "",
            "reads 0, txn 1, kms.Sign <= 1", ok, ", ".join(f"{k} {v:g}" for k, v in per.items())),
        Row("ssh", "  reads per warm SSH issuance", f"{reads:g}", "", "0", reads == 0),
        Row("ssh", "  dynamodb.TransactWriteItems per issuance", f"{txn:g}", "", "1", txn == 1,
            "used token + certificate record"),
        Row("ssh", "  kms.Sign per issuance", f"{kms_sign:g}", "", "<= 1", kms_sign <= 1),
        Row("ssh", "  (cold first request, for reference)", f"{sum(cold.values())}", "",
            note=", ".join(f"{k} {v}" for k, v in sorted(cold.items()))),
    ], []


# --- entry ----------------------------------------------------------------------------------------------


def run(only: tuple[str, ...] = SECTIONS, profile: bool = False, full: bool = False, smoke: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only``; ``full``: more rounds; ``smoke``: minimal rounds (figures mean nothing)."""
    if smoke:
        return run_sections("ssh", {
            "issuance": lambda: issuance(n=3, rounds=1, profile=profile),
            "calls": lambda: calls(n=2),
        }, only)
    rounds = 9 if full else 5
    return run_sections("ssh", {
        "issuance": lambda: issuance(rounds=rounds, profile=profile),
        "calls": calls,
    }, only)
