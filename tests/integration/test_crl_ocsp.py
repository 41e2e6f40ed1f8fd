"""GET /crl and the OCSP responder through the handler, against moto; checked with cryptography,
openssl and pkilint."""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import subprocess
import sys
from urllib.parse import quote

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepless import aws, clock
from stepless.services import crl as crl_service
from stepless.services import ocsp as ocsp_service
from stepless.stores import revocations
from stepless.stores.revocations import RevocationRecord
from stepless.x509 import der as asn1
from tests.integration.test_renew import foreign_ca, issue, revoke_app
from tests.support.ca import call, event
from tests.support.calls import counted

OPENSSL = shutil.which("openssl")


def revoke(test_ca, cert, code=0, reason=""):
    now = int(clock.now().timestamp())
    serial = str(cert.serial_number)
    token = test_ca.token(serial, path="/1.0/revoke", iat=now, nbf=now, exp=now + 300)
    status, body = call(revoke_app, "POST", "/revoke",
                        {"serial": serial, "ott": token, "reasonCode": code, "reason": reason})
    assert status == 200, body


def get_crl(query=None):
    res = revoke_app.handler(event("GET", "/1.0/crl", query=query), None)
    assert res["statusCode"] == 200, res
    return res


def crl_der(query=None) -> bytes:
    res = get_crl(query)
    assert res["isBase64Encoded"] and res["headers"]["content-type"] == "application/pkix-crl"
    return base64.b64decode(res["body"])


def load_crl(der=None) -> x509.CertificateRevocationList:
    crl = x509.load_der_x509_crl(der if der is not None else crl_der())
    return crl


def entry(crl, cert):
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number)


def reason_of(revoked):
    try:
        return revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def write_ca_files(test_ca, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text(test_ca.result.root_pem + test_ca.authority.intermediate_pem)
    inter = tmp_path / "inter.pem"
    inter.write_text(test_ca.authority.intermediate_pem)
    return ca, inter


def pkilint(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"pkilint.bin.{module}", "lint", "-s", "WARNING", *args],
                          capture_output=True, text=True, timeout=120)


# ---- CRL ----

def test_empty_crl_is_signed_by_the_intermediate(test_ca):
    crl = load_crl()
    inter = test_ca.authority.intermediate
    assert crl.is_signature_valid(inter.public_key())
    assert crl.issuer == inter.subject
    assert len(crl) == 0
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(hours=24)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number >= 1
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_crl_lists_revoked_serials_with_reasons(test_ca):
    a, _, _ = issue(test_ca, "a.example.com")
    b, _, _ = issue(test_ca, "b.example.com")
    c, _, _ = issue(test_ca, "c.example.com")
    revoke(test_ca, a, 1, "key compromise")
    revoke(test_ca, b, 0)
    crl = load_crl()
    assert crl.is_signature_valid(test_ca.authority.intermediate.public_key())
    assert len(crl) == 2
    assert reason_of(entry(crl, a)) == x509.ReasonFlags.key_compromise
    assert reason_of(entry(crl, b)) is None  # unspecified: extension left out (RFC 5280 5.3.1)
    assert entry(crl, c) is None
    rec = revocations.get(str(a.serial_number))
    assert entry(crl, a).revocation_date_utc == dt.datetime.fromtimestamp(rec.revoked_at, dt.UTC)


def test_crl_is_refreshed_when_a_revocation_lands_and_numbers_increase(test_ca):
    first_der = crl_der()
    assert crl_der() == first_der  # cached: the same CRL
    first = load_crl(first_der)
    a, _, _ = issue(test_ca)
    revoke(test_ca, a, 4)
    second = load_crl()
    assert entry(second, a) is not None
    n1 = first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    n2 = second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert n2 > n1


def test_crl_cache_expires_after_ttl(test_ca, monkeypatch):
    monkeypatch.setenv("STEPLESS_CRL_TTL", "60")
    first = load_crl()
    # a revocation recorded by another container (not through this one's handler)
    revocations.put(RevocationRecord(serial="424242", kind="x509", reason_code=1, revoked_at=1,
                                     not_after=int(clock.now().timestamp()) + 3600))
    assert len(load_crl()) == len(first)
    with clock.shift(dt.timedelta(seconds=61)):
        assert load_crl().get_revoked_certificate_by_serial_number(424242) is not None


def test_expired_entries_drop_off(test_ca):
    short, _, _ = issue(test_ca, "short.example.com", notAfter="5m")
    long, _, _ = issue(test_ca, "long.example.com")
    revoke(test_ca, short, 1)
    revoke(test_ca, long, 1)
    assert entry(load_crl(), short) is not None
    with clock.shift(dt.timedelta(hours=1)):
        crl = load_crl()
        assert entry(crl, short) is None
        assert entry(crl, long) is not None


def test_crl_pem(test_ca):
    res = get_crl({"pem": ""})
    assert res["headers"]["content-type"] == "application/x-pem-file" and not res["isBase64Encoded"]
    crl = x509.load_pem_x509_crl(res["body"].encode())
    assert crl.is_signature_valid(test_ca.authority.intermediate.public_key())
    status, _ = call(revoke_app, "GET", "/crl")
    assert status == 200


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_verifies_the_crl(test_ca, tmp_path):
    a, _, _ = issue(test_ca)
    revoke(test_ca, a, 1)
    path = tmp_path / "x.crl"
    path.write_bytes(crl_der())
    ca, _ = write_ca_files(test_ca, tmp_path)
    out = subprocess.run([OPENSSL, "crl", "-inform", "DER", "-in", str(path), "-CAfile", str(ca), "-verify",
                          "-noout"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "verify OK" in out.stderr + out.stdout
    text = subprocess.run([OPENSSL, "crl", "-inform", "DER", "-in", str(path), "-noout", "-text"],
                          capture_output=True, text=True, timeout=60).stdout
    assert format(a.serial_number, "X")[-8:] in text.replace(":", "").upper() or "Key Compromise" in text


def test_pkilint_finds_nothing_in_the_crl(test_ca, tmp_path):
    for code in (0, 1, 4, 6):
        cert, _, _ = issue(test_ca, f"r{code}.example.com")
        revoke(test_ca, cert, code)
    path = tmp_path / "x.crl"
    path.write_bytes(crl_der())
    out = pkilint("lint_crl", "-t", "CRL", "-p", "PKIX", str(path))
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_large_crl_with_secrets_backend(secrets_ca, tmp_path):
    """Over 4096 bytes of TBS: KMS would sign a digest (moto's KMS mis-handles DIGEST, hence secrets)."""
    horizon = int(clock.now().timestamp()) + 86400
    ddb = boto3.client("dynamodb")
    for i in range(300):
        ddb.put_item(TableName="test-revocations", Item={
            "serial": {"S": str(10**30 + i)}, "kind": {"S": "x509"}, "reason_code": {"N": str(i % 6)},
            "revoked_at": {"N": str(horizon - 86400 * 2)}, "not_after": {"N": str(horizon)}})
    der = crl_der()
    crl = load_crl(der)
    assert len(crl) == 300 and len(crl.tbs_certlist_bytes) > 4096
    assert crl.is_signature_valid(secrets_ca.authority.intermediate.public_key())
    if OPENSSL:
        path = tmp_path / "big.crl"
        path.write_bytes(der)
        ca, _ = write_ca_files(secrets_ca, tmp_path)
        out = subprocess.run([OPENSSL, "crl", "-inform", "DER", "-in", str(path), "-CAfile", str(ca), "-verify",
                              "-noout"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr


def test_ssh_revocations_are_not_in_the_crl(test_ca):
    revocations.put(RevocationRecord(serial="ssh:12345", kind="ssh", reason_code=1, revoked_at=1))
    assert len(load_crl()) == 0


def test_crl_in_s3_bucket_and_scheduled_refresh(test_ca, monkeypatch):
    monkeypatch.setenv("STEPLESS_CRL_BUCKET", "test-crl")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="test-crl")
    der = crl_der()
    obj = s3.get_object(Bucket="test-crl", Key="crl/intermediate.crl")
    assert obj["Body"].read() == der and obj["ContentType"] == "application/pkix-crl"
    crl_service.invalidate()  # another container: serves the bucket's copy
    assert crl_der() == der
    out = revoke_app.handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, None)
    number = load_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert out["crlNumber"] == number + 1
    refreshed = s3.get_object(Bucket="test-crl", Key="crl/intermediate.crl")["Body"].read()
    assert load_crl(refreshed).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1


# ---- OCSP ----

def ocsp_request(cert, issuer, *, nonce: bytes | None = None, algorithm=None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def post_ocsp(der: bytes) -> ocsp.OCSPResponse:
    ev = event("POST", "/ocsp", headers={"content-type": "application/ocsp-request"})
    ev["body"], ev["isBase64Encoded"] = base64.b64encode(der).decode(), True
    res = revoke_app.handler(ev, None)
    assert res["statusCode"] == 200 and res["headers"]["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(base64.b64decode(res["body"]))


def get_ocsp(der: bytes) -> ocsp.OCSPResponse:
    path = "/1.0/ocsp/" + quote(base64.b64encode(der).decode(), safe="")
    res = revoke_app.handler(event("GET", path), None)
    assert res["statusCode"] == 200
    return ocsp.load_der_ocsp_response(base64.b64decode(res["body"]))


def check_signed(resp: ocsp.OCSPResponse, inter: x509.Certificate) -> None:
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    inter.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
    ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert resp.responder_key_hash == ski.digest
    assert resp.next_update_utc - resp.this_update_utc == dt.timedelta(hours=24)


def test_ocsp_good_is_signed_once_then_served_from_the_store(test_ca):
    """Issue 10 item 14: no unauthenticated request costs a signature once the serial's response exists."""
    cert, _, _ = issue(test_ca)
    inter = test_ca.authority.intermediate
    with counted() as first:
        resp = post_ocsp(ocsp_request(cert, inter, nonce=os.urandom(16)))
    check_signed(resp, inter)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.serial_number == cert.serial_number
    assert first["kms.Sign"] == 1
    # pre-produced: the nonce is not echoed (RFC 5019 §4), so the same bytes serve every client
    assert not [e for e in resp.extensions if isinstance(e.value, x509.OCSPNonce)]
    for _ in range(5):
        with counted() as calls:
            again = post_ocsp(ocsp_request(cert, inter, nonce=os.urandom(16)))
        assert again.public_bytes(Encoding.DER) == resp.public_bytes(Encoding.DER)
        assert dict(calls) == {"dynamodb.GetItem": 1}  # one read, no signature
    # half way to nextUpdate the next request signs a fresh one
    with clock.shift(dt.timedelta(hours=12, seconds=1)), counted() as calls:
        fresh = post_ocsp(ocsp_request(cert, inter))
    assert calls["kms.Sign"] == 1 and fresh.this_update_utc > resp.this_update_utc


def test_ocsp_reads_a_new_certificate_consistently(test_ca):
    """The first OCSP request for a certificate issued a moment ago reads its record with a consistent read: an
    eventually consistent miss would answer ``unauthorized``, cached for a minute."""
    cert, _, _ = issue(test_ca)
    seen: list[dict] = []

    def capture(params: dict, **_: object) -> None:
        seen.append(params)

    client = aws.client("dynamodb")
    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", capture)
    try:
        resp = post_ocsp(ocsp_request(cert, test_ca.authority.intermediate))
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.BatchGetItem", capture)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    (params,) = seen
    assert all(keys.get("ConsistentRead") is True for keys in params["RequestItems"].values())


def test_ocsp_cache_headers_reach_next_update(test_ca):
    cert, _, _ = issue(test_ca)
    ev = event("POST", "/ocsp", headers={"content-type": "application/ocsp-request"})
    request = ocsp_request(cert, test_ca.authority.intermediate)
    ev["body"], ev["isBase64Encoded"] = base64.b64encode(request).decode(), True
    headers = revoke_app.handler(ev, None)["headers"]
    assert "no-cache" not in headers["cache-control"] and "no-store" not in headers["cache-control"]
    max_age = int(headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 86400 - 60 <= max_age <= 86400
    assert headers["expires"].endswith("GMT") and headers["last-modified"].endswith("GMT") and headers["etag"]
    with clock.shift(dt.timedelta(hours=6)):
        later = revoke_app.handler(ev, None)["headers"]
    assert int(later["cache-control"].split("max-age=")[1].split(",")[0]) <= max_age - 6 * 3600 + 60
    assert later["etag"] == headers["etag"]


def test_ocsp_revocation_replaces_the_stored_good_response(test_ca):
    cert, _, _ = issue(test_ca)
    inter = test_ca.authority.intermediate
    assert post_ocsp(ocsp_request(cert, inter)).certificate_status == ocsp.OCSPCertStatus.GOOD
    revoke(test_ca, cert, 1, "key compromise")
    with counted() as calls:
        resp = post_ocsp(ocsp_request(cert, inter))
    check_signed(resp, inter)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert dict(calls) == {"dynamodb.GetItem": 1}  # signed at revocation, served from the store


def test_a_good_response_signed_before_a_revocation_never_overwrites_it(test_ca):
    from stepless.stores import ocsp_responses
    from stepless.stores.ocsp_responses import GOOD, Record, Response

    cert, _, _ = issue(test_ca)
    serial = str(cert.serial_number)
    revoke(test_ca, cert, 1)
    stale = Response(b"good", 1, 2)
    assert not ocsp_responses.create(Record(serial, GOOD, 0, responses={"sha1:00": stale}))
    assert not ocsp_responses.add_response(serial, GOOD, "sha1:00", stale)
    rec = ocsp_responses.get(serial)
    assert rec is not None and rec.status == "revoked" and "sha1:00" not in rec.responses


def test_ocsp_sha256_revoked_is_signed_once_on_demand(test_ca):
    cert, _, _ = issue(test_ca)
    revoke(test_ca, cert, 4)
    inter = test_ca.authority.intermediate
    with counted() as calls:
        resp = post_ocsp(ocsp_request(cert, inter, algorithm=hashes.SHA256()))
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED and calls["kms.Sign"] == 1
    assert "dynamodb.BatchGetItem" not in calls  # the stored record says revoked: no need to look further
    with counted() as calls:
        assert post_ocsp(ocsp_request(cert, inter, algorithm=hashes.SHA256())).public_bytes(Encoding.DER) == \
            resp.public_bytes(Encoding.DER)
    assert dict(calls) == {"dynamodb.GetItem": 1}


def test_ocsp_revoked_with_time_and_reason(test_ca):
    cert, _, _ = issue(test_ca)
    revoke(test_ca, cert, 1, "key compromise")
    inter = test_ca.authority.intermediate
    resp = post_ocsp(ocsp_request(cert, inter, algorithm=hashes.SHA256()))
    check_signed(resp, inter)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason == x509.ReasonFlags.key_compromise
    rec = revocations.get(str(cert.serial_number))
    assert resp.revocation_time_utc == dt.datetime.fromtimestamp(rec.revoked_at, dt.UTC)
    assert resp.hash_algorithm.name == "sha256"


def by_hash(test_ca, serial: int) -> bytes:
    """A request naming our issuer and ``serial`` (any integer: built by hand, as an attacker would)."""
    cert, _, _ = issue(test_ca)
    req = ocsp.load_der_ocsp_request(ocsp_request(cert, test_ca.authority.intermediate))
    alg = asn1.sequence(asn1.oid("1.3.14.3.2.26"), b"\x05\x00")
    cert_id = asn1.sequence(alg, asn1.octet_string(req.issuer_name_hash), asn1.octet_string(req.issuer_key_hash),
                           asn1.integer(serial))
    return asn1.sequence(asn1.sequence(asn1.sequence(asn1.sequence(cert_id))))


def test_ocsp_unknown_serial_is_unauthorized_without_a_signature(test_ca):
    """RFC 5019 §2.2.3: no status for the certificate -> the unsigned "unauthorized" (no KMS call)."""
    request = by_hash(test_ca, 987654321)
    for _ in range(3):
        with counted() as calls:
            assert post_ocsp(request).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
        assert dict(calls) == {"dynamodb.GetItem": 1, "dynamodb.BatchGetItem": 1}  # two reads, no signature


@pytest.mark.parametrize("serial", [-5, -1, 0, -(2**159)])
def test_ocsp_serial_not_positive_is_malformed(test_ca, serial):
    """Issue 10 item 4: a negative serial answered 500 (and tripped the ServerErrors alarm)."""
    request = by_hash(test_ca, serial)
    with counted() as calls:
        assert post_ocsp(request).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert not calls


def test_ocsp_serial_too_large_is_unauthorized(test_ca):
    request = by_hash(test_ca, 2**200)
    with counted() as calls:
        assert post_ocsp(request).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert not calls


def test_ocsp_ssh_serial_is_unauthorized(test_ca):
    from tests.integration.test_ssh_sign import sign

    status, body = sign(test_ca, "db.example.com", token_opts={"certType": "host"})
    assert status == 201
    from stepless.ssh import parse_certificate

    serial = parse_certificate(base64.b64decode(body["crt"])).serial
    assert post_ocsp(by_hash(test_ca, serial)).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_ocsp_get(test_ca):
    cert, _, _ = issue(test_ca)
    inter = test_ca.authority.intermediate
    # find a request whose base64 contains '/' or '+' to exercise URL encoding
    resp = get_ocsp(ocsp_request(cert, inter, nonce=os.urandom(16)))
    check_signed(resp, inter)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    raw = base64.b64encode(ocsp_request(cert, inter)).decode()
    res = revoke_app.handler(event("GET", "/ocsp/" + raw), None)  # unencoded, maybe with '/'
    assert ocsp.load_der_ocsp_response(base64.b64decode(res["body"])).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("body", [b"", b"not der", b"\x30\x03\x02\x01\x01"])
def test_ocsp_malformed(test_ca, body):
    assert post_ocsp(body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_get_malformed(test_ca):
    res = revoke_app.handler(event("GET", "/ocsp/%%%%"), None)
    resp = ocsp.load_der_ocsp_response(base64.b64decode(res["body"]))
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_other_issuer_is_unauthorized(test_ca):
    cert, _, _ = issue(test_ca)
    other, _ = foreign_ca()  # same name, other key → issuerKeyHash differs
    assert post_ocsp(ocsp_request(cert, other)).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_ocsp_round_trip(test_ca, tmp_path):
    good, _, good_pem = issue(test_ca, "good.example.com")
    bad, _, bad_pem = issue(test_ca, "bad.example.com")
    revoke(test_ca, bad, 1)
    ca, inter = write_ca_files(test_ca, tmp_path)
    for name, pem, expected in (("good", good_pem, "good"), ("bad", bad_pem, "revoked")):
        leaf = tmp_path / f"{name}.pem"
        leaf.write_text(pem)
        req, resp = tmp_path / f"{name}.req", tmp_path / f"{name}.resp"
        subprocess.run([OPENSSL, "ocsp", "-issuer", str(inter), "-cert", str(leaf), "-reqout", str(req)],
                       check=True, capture_output=True, timeout=60)
        answer = post_ocsp(req.read_bytes())
        resp.write_bytes(answer.public_bytes(Encoding.DER))
        # signature and nonce against the request openssl made
        out = subprocess.run([OPENSSL, "ocsp", "-reqin", str(req), "-respin", str(resp), "-issuer", str(inter),
                              "-CAfile", str(ca)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "Response verify OK" in out.stderr + out.stdout
        # the status of the certificate (-cert makes openssl build a new request, hence -no_nonce)
        out = subprocess.run([OPENSSL, "ocsp", "-respin", str(resp), "-issuer", str(inter), "-cert", str(leaf),
                              "-CAfile", str(ca), "-no_nonce"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"{leaf}: {expected}" in out.stdout
        if expected == "revoked":
            assert "Key Compromise" in out.stdout or "keyCompromise" in out.stdout
        lint = pkilint("lint_ocsp_response", str(resp))
        assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr


# ---- property tests: no OCSP request gives a 500 (issue 10 item 4) ----

_HASH_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1", "sha384": "2.16.840.1.101.3.4.2.2",
              "sha512": "2.16.840.1.101.3.4.2.3", "md5": "1.2.840.113549.2.5", "other": "1.2.3.4.5"}


def _digest(name: str, data: bytes) -> bytes:
    import hashlib

    return hashlib.new(name, data).digest() if name in hashlib.algorithms_available else data[:16]


@st.composite
def ocsp_requests(draw, ca) -> bytes:
    """DER OCSP requests, well-formed or nearly: our issuer or not, any serial (negative, huge, ours), several
    CertIDs, extensions, a version; sometimes mangled afterwards."""
    inter, serials = ca
    requests = []
    for _ in range(draw(st.integers(0, 3))):
        alg = draw(st.sampled_from(sorted(_HASH_OIDS)))
        ours = draw(st.booleans())
        name_hash = _digest(alg, inter.subject.public_bytes()) if ours else draw(st.binary(max_size=70))
        key_hash = (_digest(alg, ocsp_service.subject_public_key_bits(inter)) if ours
                    else draw(st.binary(max_size=70)))
        serial = draw(st.one_of(st.sampled_from(serials), st.integers(-(2**200), 2**200)))
        params = draw(st.sampled_from([b"\x05\x00", b"", b"\x04\x00"]))
        cert_id = asn1.sequence(asn1.sequence(asn1.oid(_HASH_OIDS[alg]), params), asn1.octet_string(name_hash),
                                asn1.octet_string(key_hash), asn1.integer(serial))
        requests.append(asn1.sequence(cert_id))
    parts = []
    if draw(st.booleans()):
        parts.append(asn1.explicit(0, asn1.integer(draw(st.integers(-2, 3)))))
    parts.append(asn1.sequence(*requests))
    if draw(st.booleans()):
        nonce = asn1.extension(asn1.oid("1.3.6.1.5.5.7.48.1.2"), asn1.octet_string(draw(st.binary(max_size=40))),
                               critical=draw(st.booleans()))
        parts.append(asn1.explicit(2, asn1.sequence(nonce)))
    request = asn1.sequence(asn1.sequence(*parts))
    if draw(st.integers(0, 4)) == 0:  # mangled: truncated or a byte changed
        cut = draw(st.integers(0, len(request)))
        request = request[:cut] + draw(st.binary(max_size=3)) + request[cut + 1:]
    return request


@pytest.fixture
def ocsp_ca(test_ca):
    good, _, _ = issue(test_ca, "good.example.com")
    bad, _, _ = issue(test_ca, "bad.example.com")
    revoke(test_ca, bad, 1)
    return test_ca.authority.intermediate, [good.serial_number, bad.serial_number]


def _check_answer(res: dict, inter) -> None:
    assert res["statusCode"] == 200, res
    assert res["headers"]["content-type"] == "application/ocsp-response"
    resp = ocsp.load_der_ocsp_response(base64.b64decode(res["body"]))
    if resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
        assert resp.certificate_status in (ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED)
        inter.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_no_ocsp_request_gives_a_500(ocsp_ca, data):
    request = data.draw(ocsp_requests(ocsp_ca))
    ev = event("POST", "/ocsp", headers={"content-type": "application/ocsp-request"})
    ev["body"], ev["isBase64Encoded"] = base64.b64encode(request).decode(), True
    _check_answer(revoke_app.handler(ev, None), ocsp_ca[0])
    path = "/1.0/ocsp/" + quote(base64.b64encode(request).decode(), safe="")
    _check_answer(revoke_app.handler(event("GET", path), None), ocsp_ca[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600), path=st.text(max_size=200))
def test_no_ocsp_bytes_or_path_give_a_500(ocsp_ca, body, path):
    ev = event("POST", "/ocsp", headers={"content-type": "application/ocsp-request"})
    ev["body"], ev["isBase64Encoded"] = base64.b64encode(body).decode(), True
    _check_answer(revoke_app.handler(ev, None), ocsp_ca[0])
    res = revoke_app.handler(event("GET", "/ocsp/" + quote(path, safe="/")), None)
    if res["statusCode"] == 200:
        _check_answer(res, ocsp_ca[0])
    else:  # no request in the path (e.g. only "/" or a newline): the router's 404, never a 500
        assert res["statusCode"] in (404, 405), res


def test_a_retried_revocation_completes_a_lost_ocsp_write(test_ca):
    """The revocation was recorded but its OCSP write failed (the function died in between): the stored
    good response would be served until its refresh. The client's retry ("already revoked") completes it."""
    from stepless.stores import ocsp_responses

    cert, _, _ = issue(test_ca)
    inter = test_ca.authority.intermediate
    assert post_ocsp(ocsp_request(cert, inter)).certificate_status == ocsp.OCSPCertStatus.GOOD
    good = ocsp_responses.get(str(cert.serial_number))
    revoke(test_ca, cert, 1)
    boto3.client("dynamodb").delete_item(TableName="test-ocsp", Key={"serial": {"S": str(cert.serial_number)}})
    assert ocsp_responses.create(good)  # as if the revoked record had never been written
    assert post_ocsp(ocsp_request(cert, inter)).certificate_status == ocsp.OCSPCertStatus.GOOD
    now = int(clock.now().timestamp())
    token = test_ca.token(str(cert.serial_number), path="/1.0/revoke", iat=now, nbf=now, exp=now + 300)
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(cert.serial_number), "ott": token})
    assert status == 400 and "already revoked" in body["message"]
    assert post_ocsp(ocsp_request(cert, inter)).certificate_status == ocsp.OCSPCertStatus.REVOKED
