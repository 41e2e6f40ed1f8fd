"""POST /sign through the handler, against moto: the happy path, the profile, and the records."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepless.api.sign import app
from stepless.x509 import extensions
from tests.support.ca import call, make_csr


def sign(test_ca, cn="svc.example.com", sans=None, **body):
    csr, key = make_csr(cn, sans)
    token = test_ca.token(cn, sans=sans)
    return call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token, **body})


def test_sign_returns_leaf_and_intermediate(test_ca):
    status, body = sign(test_ca)
    assert status == 201, body
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    inter = x509.load_pem_x509_certificate(body["ca"].encode())
    assert body["certChain"] == [body["crt"], body["ca"]]
    leaf.verify_directly_issued_by(inter)
    assert leaf.subject.rfc4514_string() == "CN=svc.example.com"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.example.com"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    assert extensions.of(leaf) == (1, "admin", test_ca.kid)
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert life == dt.timedelta(hours=24, minutes=1)  # 24h default + 1m backdate


def test_sign_records_certificate(test_ca):
    status, body = sign(test_ca)
    assert status == 201
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    item = boto3.client("dynamodb").get_item(
        TableName="test-certificates", Key={"serial": {"S": str(leaf.serial_number)}}
    )["Item"]
    assert item["provisioner"]["S"] == "admin"
    assert item["subject"]["S"] == "svc.example.com"
    assert len(item["fingerprint"]["S"]) == 64


def test_token_is_single_use(test_ca):
    csr, _ = make_csr("a.example.com")
    token = test_ca.token("a.example.com")
    assert call(app, "POST", "/sign", {"csr": csr, "ott": token})[0] == 201
    status, body = call(app, "POST", "/sign", {"csr": csr, "ott": token})
    assert status == 401
    assert "token already used" in body["message"]
    assert "crt" not in body


@pytest.mark.parametrize(("not_after", "expected"), [("5m", dt.timedelta(minutes=6)), ("1h", dt.timedelta(minutes=61))])
def test_not_after_duration(test_ca, not_after, expected):
    status, body = sign(test_ca, notAfter=not_after)
    assert status == 201, body
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == expected


def test_over_maximum_is_forbidden_with_reason(test_ca):
    status, body = sign(test_ca, notBefore="5m", notAfter="240h")
    assert status == 403
    assert body["message"] == (
        "The request was forbidden by the certificate authority: requested duration of 240h0m0s is more than "
        "the authorized maximum certificate duration of 24h1m0s."
    )


def test_secrets_backend_signs(secrets_ca):
    status, body = sign(secrets_ca)
    assert status == 201, body


def test_read_only_endpoints(test_ca):
    assert call(app, "GET", "/health") == (200, {"status": "ok"})
    status, body = call(app, "GET", f"/1.0/root/{test_ca.result.fingerprint.upper()}")
    assert status == 200 and body["ca"] == test_ca.result.root_pem
    assert call(app, "GET", "/root/" + "0" * 64)[0] == 404
    status, body = call(app, "GET", "/roots")
    assert body["crts"] == [test_ca.result.root_pem]
    status, body = call(app, "GET", "/provisioners", query={"limit": "1"})
    assert status == 200 and len(body["provisioners"]) == 1 and body["nextCursor"] == "1"
    status, body = call(app, "GET", "/provisioners", query={"limit": "1", "cursor": "1"})
    assert body["provisioners"][0]["type"] == "SSHPOP" and body["nextCursor"] == ""
    assert call(app, "GET", "/provisioners", query={"limit": "x"})[0] == 400
    status, body = call(app, "GET", f"/provisioners/{test_ca.kid}/encrypted-key")
    assert status == 200 and body["key"].count(".") == 4
    assert call(app, "GET", "/provisioners/nope/encrypted-key")[0] == 404
    assert call(app, "GET", "/nothing")[0] == 404
    assert call(app, "DELETE", "/sign")[0] == 405
