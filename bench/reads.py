"""Unauthenticated requests cost O(1) reads (issue 10 items 2 and 14): items read and KMS signatures per
``POST /ssh/check-host``, ``GET /ssh/hosts``, ``GET /ssh/krl`` and ``POST /ocsp`` with 100 and with 10,000
recorded certificates.

Section (``python -m bench reads --only calls``):

* calls — the real handlers against moto in-process (KMS backend): a CA with 3 host principals, one revoked
  SSH certificate, a good and a revoked X.509 certificate; the certificates table padded with X.509 and SSH
  user records to 100, then to 10,000. Per request (a warm container: the authority configuration loaded,
  the OCSP response produced once beforehand): DynamoDB items read — keys asked for by GetItem and
  BatchGetItem (a miss costs a read too) plus items evaluated by Query and Scan (their ScannedCount) — and
  kms.Sign calls. The KRL is counted cold (another container: its per-container copy dropped before each
  request) and warm. Target: the same figures at both sizes, and no signature.
  Before this change check-host and hosts scanned the whole certificates table and the KRL the whole
  revocations table on every request, and every OCSP request cost a kms.Sign.
"""

from __future__ import annotations

import base64
import collections
import json
from collections.abc import Callable
from typing import Any

from bench.common import Row, expect, quiet_logger, run_sections

SECTIONS = ("calls",)
SIZES = (100, 10_000)
HOSTS = ("db.example.com", "web.example.com", "cache.example.com")


class ItemsRead:
    """DynamoDB items read and calls made through the stepless clients, by a before/after-call hook."""

    def __init__(self) -> None:
        self.items = 0
        self.calls: collections.Counter[str] = collections.Counter()
        self._uid = f"stepless-bench-items-{id(self)}"

    def _before(self, event_name: str = "", params: dict | None = None, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}.{operation}"] += 1
        if operation == "GetItem":
            self.items += 1
        elif operation == "BatchGetItem":  # params: the serialized request; its body is the JSON sent
            body = json.loads((params or {}).get("body") or b"{}")
            self.items += sum(len(t.get("Keys", [])) for t in body.get("RequestItems", {}).values())

    def _after(self, event_name: str = "", parsed: dict | None = None, **_: Any) -> None:
        if event_name.rsplit(".", 1)[-1] in ("Query", "Scan"):
            self.items += int((parsed or {}).get("ScannedCount", 0))

    def attach(self) -> ItemsRead:
        from stepless import aws

        for service in ("dynamodb", "kms"):
            events = aws.client(service).meta.events
            events.register("before-call.*.*", self._before, unique_id=self._uid + "b")
            events.register("after-call.*.*", self._after, unique_id=self._uid + "a")
        return self

    def detach(self) -> None:
        from stepless import aws

        for service in ("dynamodb", "kms"):
            events = aws.client(service).meta.events
            events.unregister("before-call.*.*", unique_id=self._uid + "b")
            events.unregister("after-call.*.*", unique_id=self._uid + "a")


def _pad(total: int, already: int) -> None:
    """Add certificate records (alternately X.509 and SSH user) until the table holds ``total``."""
    import boto3

    from stepless import clock, settings
    from stepless.stores.dynamo import to_item

    ddb = boto3.client("dynamodb")
    table = settings.table(settings.CERTIFICATES_TABLE)
    now = int(clock.now().timestamp())
    for start in range(already, total, 25):
        batch = []
        for i in range(start, min(total, start + 25)):
            rec = ({"serial": str(10**20 + i), "kind": "x509", "subject": f"pad{i}.example.com",
                    "not_after": now + 86400} if i % 2 else
                   {"serial": f"ssh:{10**15 + i}", "kind": "ssh", "cert_type": "user", "principals": [f"u{i}"],
                    "not_after": now + 86400})
            batch.append({"PutRequest": {"Item": to_item(rec)}})
        ddb.batch_write_item(RequestItems={table: batch})


def _recorded() -> int:
    """How many certificate records the table holds (a counting scan, outside any measurement)."""
    import boto3

    from stepless import settings

    pages = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=settings.table(settings.CERTIFICATES_TABLE), Select="COUNT")
    return sum(page["Count"] for page in pages)


def _count(send: Callable[[], Any], n: int, before: Callable[[], None] | None = None) -> tuple[float, float]:
    """(items read, kms.Sign) per request over ``n`` requests."""
    counter = ItemsRead().attach()
    try:
        for _ in range(n):
            if before is not None:
                before()
            send()
    finally:
        counter.detach()
    return counter.items / n, counter.calls.get("kms.Sign", 0) / n


def _scenario(ca: Any) -> dict[str, Callable[[], Any]]:
    """Make the CA's certificates; the requests to measure, by name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp
    from tests.integration.test_ssh_sign import sign as ssh_sign
    from tests.support.ca import call, event, make_csr

    from stepless import authority
    from stepless.api.revoke import app as revoke_app
    from stepless.api.sign import app as sign_app
    from stepless.api.ssh import app as ssh_app
    from stepless.services import ssh_info
    from stepless.ssh import parse_certificate

    for host in HOSTS:
        expect_status(ssh_sign(ca, host, token_opts={"certType": "host"}), 201)
    status, body = ssh_sign(ca, "alice@example.com")
    expect_status((status, body), 201)
    serial = parse_certificate(base64.b64decode(body["crt"])).serial
    expect_status(call(ssh_app, "POST", "/ssh/revoke", {"serial": str(serial), "ott": ca.token(
        str(serial), path="/1.0/ssh/revoke")}), 200)
    certs = []
    for name in ("good.example.com", "revoked.example.com"):
        csr, _ = make_csr(name)
        status, body = call(sign_app, "POST", "/1.0/sign", {"ott": ca.token(name), "csr": csr})
        expect_status((status, body), 201)
        certs.append(x509.load_pem_x509_certificate(body["crt"].encode()))
    good, revoked = certs
    expect_status(call(revoke_app, "POST", "/revoke", {"serial": str(revoked.serial_number), "ott": ca.token(
        str(revoked.serial_number), path="/1.0/revoke"), "reasonCode": 1}), 200)
    inter = authority.get().intermediate

    def ocsp_event(cert: x509.Certificate, serial: int | None = None) -> dict:
        req = ocsp.OCSPRequestBuilder()
        if serial is None:
            req = req.add_certificate(cert, inter, hashes.SHA1())
        else:
            probe = ocsp.OCSPRequestBuilder().add_certificate(cert, inter, hashes.SHA1()).build()
            req = req.add_certificate_by_hash(probe.issuer_name_hash, probe.issuer_key_hash, serial, hashes.SHA1())
        ev = event("POST", "/ocsp", headers={"content-type": "application/ocsp-request"})
        ev["body"] = base64.b64encode(req.build().public_bytes(Encoding.DER)).decode()
        ev["isBase64Encoded"] = True
        return ev

    events = {
        "check-host": event("POST", "/ssh/check-host", {"type": "host", "principal": HOSTS[0]}),
        "hosts": event("GET", "/ssh/hosts"),
        "krl": event("GET", "/ssh/krl"),
    }
    ocsp_events = {"ocsp good": ocsp_event(good), "ocsp revoked": ocsp_event(revoked),
                   "ocsp unknown serial": ocsp_event(good, serial=987654321)}

    def ssh_request(ev: dict) -> Callable[[], Any]:
        return lambda: expect(ssh_app.handler(ev, None), 200)

    def ocsp_request(ev: dict) -> Callable[[], Any]:
        return lambda: expect(revoke_app.handler(ev, None), 200)

    requests = {name: ssh_request(ev) for name, ev in events.items()}
    requests |= {name: ocsp_request(ev) for name, ev in ocsp_events.items()}
    for send in requests.values():  # warm: clients made, the OCSP responses produced once
        send()
    requests["krl (this container's copy, 60 s)"] = requests.pop("krl")
    requests["krl (another container)"] = requests["krl (this container's copy, 60 s)"]
    requests["_drop_krl_copy"] = lambda: setattr(ssh_info, "_krl_cache", None)
    return requests


def expect_status(result: tuple[int, Any], status: int) -> None:
    if result[0] != status:
        raise RuntimeError(f"expected {status}: {result}")


def calls(n: int = 10) -> tuple[list[Row], list[str]]:
    from bench.sign import _ca

    figures: dict[str, dict[int, tuple[float, float]]] = collections.defaultdict(dict)
    with _ca("kms", ttl="3600") as ca, quiet_logger():
        requests = _scenario(ca)
        drop = requests.pop("_drop_krl_copy")
        recorded = _recorded()  # the scenario's certificates
        for size in SIZES:
            _pad(size, recorded)
            recorded = _recorded()
            if recorded != size:
                raise RuntimeError(f"{recorded} certificates recorded, {size} wanted")
            for name, send in requests.items():
                before = drop if name.endswith("(another container)") else None
                figures[name][size] = _count(send, n, before)
        writes = _writes(ca)

    rows = []
    for name, by_size in sorted(figures.items(), key=lambda kv: kv[0].startswith("krl")):
        (small, small_signs), (large, large_signs) = by_size[SIZES[0]], by_size[SIZES[1]]
        counted = small > 0 or "copy" in name  # a zero would mean the reads went uncounted (not the hook)
        ok = small == large and small_signs == 0 == large_signs and counted
        rows.append(Row("reads", f"{name}: items read per request at {SIZES[0]:,} / {SIZES[1]:,} certificates",
                        f"{small:g} / {large:g}", "", "equal, 0 kms.Sign", ok,
                        f"kms.Sign per request {small_signs:g} / {large_signs:g}"))
    rows += [Row("reads", f"  what the writers pay instead: {name}", f"{sum(c.values())}", "", note=", ".join(
        f"{k} {v}" for k, v in sorted(c.items()))) for name, c in writes.items()]
    return rows, []


def _writes(ca: Any) -> dict[str, dict[str, int]]:
    """AWS calls of one SSH host issuance (one principal) and one X.509 revocation, for the record."""
    from cryptography import x509
    from tests.integration.test_ssh_sign import sign as ssh_sign
    from tests.support.ca import call, make_csr

    from stepless.api.revoke import app as revoke_app
    from stepless.api.sign import app as sign_app

    counter = ItemsRead().attach()
    try:
        expect_status(ssh_sign(ca, "new.example.com", token_opts={"certType": "host"}), 201)
        host = dict(counter.calls)
        csr, _ = make_csr("gone.example.com")
        status, body = call(sign_app, "POST", "/1.0/sign", {"ott": ca.token("gone.example.com"), "csr": csr})
        expect_status((status, body), 201)
        serial = str(x509.load_pem_x509_certificate(body["crt"].encode()).serial_number)
        counter.calls.clear()
        expect_status(call(revoke_app, "POST", "/revoke", {"serial": serial, "ott": ca.token(
            serial, path="/1.0/revoke")}), 200)
        revoke = dict(counter.calls)
    finally:
        counter.detach()
    return {"SSH host issuance, 1 principal (+2 UpdateItem per principal: the principal, its listing)": host,
            "X.509 revocation (+1 kms.Sign, +1 PutItem: the revoked OCSP response)": revoke}


def run(only: tuple[str, ...] = SECTIONS, **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only``."""
    return run_sections("reads", {"calls": calls}, only)
