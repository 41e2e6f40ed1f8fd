"""POST /sign refuses every bad input: the right status, step-ca's message, no certificate, no record.

Each case builds a request body against a fresh test CA and names the status and a meaningful part of
the message it must get. Every refusal is also checked for "no ``crt`` in the answer" and "nothing
written to the certificates table" (a moto scan before and after).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from stepless.api.sign import app
from tests.support import ca as support
from tests.support.ca import CA_URL, call, event, make_csr, make_key

CN = "svc.example.com"
PREFIX = {
    400: "The request could not be completed",
    401: "The request lacked necessary authorization to be completed",
    403: "The request was forbidden by the certificate authority",
    413: "The request body is too large",
}


# ---------------------------------------------------------------------------------------------- helpers


def certificate_count() -> int:
    return boto3.client("dynamodb").scan(TableName="test-certificates", Select="COUNT")["Count"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub: str = CN, sans: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """The claims the step CLI puts in a sign token."""
    now = int(time.time())
    out = {"iss": "admin", "aud": CA_URL + "/1.0/sign", "sub": sub, "sans": sans or [sub],
           "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    out.update(extra)
    return out


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """header.payload (the JWS signing input)."""
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())


def rfc3339(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def csr_with_key(key: Any, cn: str = CN) -> str:
    pem, _ = make_csr(cn, key=key)
    return pem


def good_body(ca: support.TestCA, **extra: Any) -> dict[str, Any]:
    csr, _ = make_csr(CN)
    return {"csr": csr, "ott": ca.token(CN), **extra}


def refused(body: Any, status: int | tuple[int, ...], text: str, **kw: Any) -> dict[str, Any]:
    """Send ``body`` to POST /1.0/sign; assert the refusal, and that nothing was issued or recorded."""
    before = certificate_count()
    got, answer = call(app, "POST", "/1.0/sign", body, **kw)
    statuses = status if isinstance(status, tuple) else (status,)
    assert got in statuses, (got, answer)
    assert isinstance(answer, dict), answer
    assert answer.get("status") == got, answer
    message = answer.get("message", "")
    assert message.startswith(PREFIX[got]), message
    assert text in message, message
    assert "crt" not in answer and "certChain" not in answer, answer
    assert certificate_count() == before, "a refused request left a certificate record"
    return answer


# ---------------------------------------------------------------------------------------------- the cases
# Each builder gets the test CA and returns the request body (a dict is JSON-encoded, a str sent as is).


def _malformed_json(ca: support.TestCA) -> str:
    return '{"csr": "x", "ott": '


def _json_array(ca: support.TestCA) -> str:
    return json.dumps([good_body(ca)])


def _missing_csr(ca: support.TestCA) -> dict:
    return {"ott": ca.token(CN)}


def _missing_ott(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0]}


def _ott_not_a_string(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": 12345}


def _ott_garbage(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": "not.a.jwt"}


def _csr_not_pem(ca: support.TestCA) -> dict:
    csr, _ = make_csr(CN)
    der = x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER)
    return {"csr": base64.b64encode(der).decode(), "ott": ca.token(CN)}


def _csr_pem_garbage(ca: support.TestCA) -> dict:
    pem = "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3NyIGF0IGFsbA==\n-----END CERTIFICATE REQUEST-----\n"
    return {"csr": pem, "ott": ca.token(CN)}


def _csr_broken_signature(ca: support.TestCA) -> dict:
    csr, _ = make_csr(CN)
    der = bytearray(x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte is inside the signature's s integer: still DER, no longer valid
    body = base64.encodebytes(bytes(der)).decode()
    pem = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    assert not x509.load_pem_x509_csr(pem.encode()).is_signature_valid
    return {"csr": pem, "ott": ca.token(CN)}


def _csr_rsa_1024(ca: support.TestCA) -> dict:
    return {"csr": csr_with_key(rsa.generate_private_key(65537, 1024)), "ott": ca.token(CN)}


def _csr_secp256k1(ca: support.TestCA) -> dict:
    return {"csr": csr_with_key(ec.generate_private_key(ec.SECP256K1())), "ott": ca.token(CN)}


def _csr_dsa(ca: support.TestCA) -> dict:
    return {"csr": csr_with_key(dsa.generate_private_key(2048)), "ott": ca.token(CN)}


def _alg_none(ca: support.TestCA) -> dict:
    token = unsigned({"alg": "none", "kid": ca.kid, "typ": "JWT"}, claims()) + "."
    return {"csr": make_csr(CN)[0], "ott": token}


def _hmac_token(secret: Callable[[support.TestCA], bytes]) -> Callable[[support.TestCA], dict]:
    def build(ca: support.TestCA) -> dict:
        signing_input = unsigned({"alg": "HS256", "kid": ca.kid, "typ": "JWT"}, claims())
        mac = hmac.new(secret(ca), signing_input.encode(), hashlib.sha256).digest()
        return {"csr": make_csr(CN)[0], "ott": signing_input + "." + b64url(mac)}

    return build


def _public_pem(ca: support.TestCA) -> bytes:
    return ca.provisioner_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _public_jwk(ca: support.TestCA) -> bytes:
    return json.dumps(ca.authority.provisioners.get("admin").data["key"]).encode()


def _unknown_kid(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, headers={"kid": "no-such-kid"})}


def _other_key_right_kid(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, key=make_key())}


def _wrong_iss(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, iss="mallory")}


def _aud(aud: Any) -> Callable[[support.TestCA], dict]:
    def build(ca: support.TestCA) -> dict:
        return {"csr": make_csr(CN)[0], "ott": ca.token(CN, aud=aud)}

    return build


def _aud_list_wrong(ca: support.TestCA) -> dict:
    token = ca.token(CN, aud=["https://evil.example.com/1.0/sign", CA_URL + "/1.0/revoke"])
    return {"csr": make_csr(CN)[0], "ott": token}


def _times(iat: int, nbf: int, exp: int) -> Callable[[support.TestCA], dict]:
    def build(ca: support.TestCA) -> dict:
        now = int(time.time())
        return {"csr": make_csr(CN)[0], "ott": ca.token(CN, iat=now + iat, nbf=now + nbf, exp=now + exp)}

    return build


def _lifetime_over_an_hour(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, lifetime=2 * 3600)}


def _exp(value: Any) -> Callable[[support.TestCA], dict]:
    # JSON has no Infinity/NaN, but Python's json (pyjwt both ways) writes and reads them; signed by the real key
    def build(ca: support.TestCA) -> dict:
        return {"csr": make_csr(CN)[0], "ott": ca.token(CN, exp=value)}

    return build


def _exp_not_a_number(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, exp="tomorrow")}


def _no_jti(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, jti=None)}


def _empty_sub(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token("", sans=[CN])}


def _sans_not_a_list(ca: support.TestCA) -> dict:
    return {"csr": make_csr(CN)[0], "ott": ca.token(CN, sans=CN)}


def _sans_differ(ca: support.TestCA) -> dict:
    csr, _ = make_csr("a.example.com", ["a.example.com", "b.example.com"])
    return {"csr": csr, "ott": ca.token("a.example.com", sans=["a.example.com"])}


def _sans_fewer(ca: support.TestCA) -> dict:
    csr, _ = make_csr("a.example.com", ["a.example.com"])
    return {"csr": csr, "ott": ca.token("a.example.com", sans=["a.example.com", "b.example.com"])}


def _cn_not_allowed(ca: support.TestCA) -> dict:
    csr, _ = make_csr("other.example.com", ["a.example.com"])
    return {"csr": csr, "ott": ca.token("a.example.com", sans=["a.example.com"])}


def _times_body(**fields: Callable[[dt.datetime], Any]) -> Callable[[support.TestCA], dict]:
    def build(ca: support.TestCA) -> dict:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return good_body(ca, **{k: f(now) if callable(f) else f for k, f in fields.items()})

    return build


def _oversized(size: int) -> Callable[[support.TestCA], str]:
    def build(ca: support.TestCA) -> str:
        body = json.dumps(good_body(ca, templateData={"pad": ""}))
        return body.replace('"pad": ""', '"pad": "' + "A" * (size - len(body)) + '"')

    return build


def _template_data(value: Any) -> Callable[[support.TestCA], dict]:
    def build(ca: support.TestCA) -> dict:
        return good_body(ca, templateData=value)

    return build


HOUR = dt.timedelta(hours=1)

CASES = [
    pytest.param(_malformed_json, 400, "invalid JSON", id="malformed-json"),
    pytest.param(_json_array, 400, "a JSON object is required", id="json-array"),
    pytest.param(lambda ca: "", 400, "missing ott", id="empty-body"),
    pytest.param(_missing_csr, 400, "missing csr", id="missing-csr"),
    pytest.param(_missing_ott, 400, "missing ott", id="missing-ott"),
    pytest.param(_ott_not_a_string, 400, "missing ott", id="ott-not-a-string"),
    pytest.param(_ott_garbage, 401, "malformed token", id="ott-garbage"),
    pytest.param(_csr_not_pem, 400, "not a PEM certificate request", id="csr-not-pem"),
    pytest.param(_csr_pem_garbage, 400, "invalid csr", id="csr-pem-garbage"),
    pytest.param(_csr_broken_signature, 400, "signature does not verify", id="csr-broken-signature"),
    pytest.param(_csr_rsa_1024, 400, "RSA key of 1024 bits is too small", id="csr-rsa-1024"),
    pytest.param(_csr_secp256k1, 400, "unsupported elliptic curve secp256k1", id="csr-secp256k1"),
    pytest.param(_csr_dsa, 400, "unsupported public key type", id="csr-dsa"),
    pytest.param(_alg_none, 401, "algorithm 'none' is not allowed", id="alg-none"),
    pytest.param(_hmac_token(_public_pem), 401, "algorithm 'HS256' is not allowed", id="hmac-public-pem"),
    pytest.param(_hmac_token(_public_jwk), 401, "algorithm 'HS256' is not allowed", id="hmac-public-jwk"),
    pytest.param(_unknown_kid, 401, "kid", id="unknown-kid"),
    pytest.param(_other_key_right_kid, 401, "token signature is invalid", id="other-key-right-kid"),
    pytest.param(_wrong_iss, 401, "no provisioner matches the token", id="wrong-iss"),
    pytest.param(_aud(CA_URL + "/1.0/revoke"), 401, "invalid audience", id="aud-wrong-path"),
    pytest.param(_aud("https://evil.example.com/1.0/sign"), 401, "invalid audience", id="aud-wrong-host"),
    pytest.param(_aud("http://localhost:8443/1.0/sign"), 401, "invalid audience", id="aud-http-scheme"),
    pytest.param(_aud(CA_URL + "/1.0/sign#jwk/someone-else"), 401, "invalid audience", id="aud-wrong-fragment"),
    pytest.param(_aud_list_wrong, 401, "invalid audience", id="aud-list-without-ours"),
    pytest.param(_times(-900, -900, -61 - 60), 401, "token expired", id="expired"),
    pytest.param(_times(0, 120, 400), 401, "token not valid yet", id="not-yet-valid"),
    pytest.param(_times(120, 0, 400), 401, "token issued in the future", id="iat-in-future"),
    pytest.param(_lifetime_over_an_hour, 401, "token lifetime is longer than 1h0m0s", id="lifetime-over-hour"),
    pytest.param(_exp_not_a_number, 401, "exp", id="exp-not-a-number"),
    pytest.param(_exp(float("inf")), 401, "token exp claim is not a number", id="exp-infinite"),
    pytest.param(_exp(float("nan")), 401, "token exp claim is not a number", id="exp-nan"),
    pytest.param(_exp(10**30), 401, "exp", id="exp-huge"),
    pytest.param(_exp(True), 401, "token exp claim is not a number", id="exp-boolean"),
    pytest.param(_no_jti, 401, "token has no jti claim", id="no-jti"),
    pytest.param(_empty_sub, 401, "token subject cannot be empty", id="empty-sub"),
    pytest.param(_sans_not_a_list, 401, "sans", id="sans-not-a-list"),
    pytest.param(_sans_differ, 403, "SANs do not match the token", id="sans-csr-has-more"),
    pytest.param(_sans_fewer, 403, "SANs do not match the token", id="sans-csr-has-fewer"),
    pytest.param(_cn_not_allowed, 403, "common name 'other.example.com'", id="cn-not-in-sub-or-sans"),
    pytest.param(_times_body(notAfter=lambda now: rfc3339(now - HOUR)), 400, "notAfter cannot be in the past",
                 id="not-after-in-past"),
    pytest.param(_times_body(notBefore=lambda now: rfc3339(now + 2 * HOUR),
                             notAfter=lambda now: rfc3339(now + HOUR)),
                 400, "notAfter cannot be before notBefore", id="not-after-before-not-before"),
    pytest.param(_times_body(notAfter="1m"), 403, "less than the authorized minimum certificate duration of 5m0s",
                 id="lifetime-under-minimum"),
    pytest.param(_times_body(notAfter="25h"), 403,
                 "more than the authorized maximum certificate duration of 24h1m0s", id="lifetime-over-maximum"),
    pytest.param(_times_body(notBefore="5m", notAfter="24h2m"), 403,
                 "more than the authorized maximum", id="lifetime-over-maximum-no-backdate-given"),
    pytest.param(_times_body(notBefore="tomorrow"), 400, "invalid notBefore", id="not-before-garbage"),
    pytest.param(_times_body(notAfter="5 minutes"), 400, "invalid notAfter", id="not-after-garbage"),
    pytest.param(_times_body(notAfter=300), 400, "notAfter must be a string", id="not-after-number"),
    pytest.param(
        _times_body(notBefore="-"), 400, "invalid notBefore", id="not-before-bare-sign"),
    pytest.param(
        _times_body(notBefore="9999-12-31T00:00:00Z"), (400, 403), "", id="not-before-year-9999"),
    pytest.param(
        _times_body(notBefore="0001-01-01T00:00:00Z", notAfter="-1h"), (400, 403), "", id="not-before-year-1"),
    pytest.param(_oversized(70 * 1024), 413, "larger than 64 KiB", id="body-over-64KiB"),
    pytest.param(_oversized(200 * 1024), 413, "larger than 64 KiB", id="body-far-over-64KiB"),
    pytest.param(_template_data("not an object"), 400, "templateData must be a JSON object", id="template-data-string"),
    pytest.param(_template_data([1, 2]), 400, "templateData must be a JSON object", id="template-data-list"),
    pytest.param(_template_data(7), 400, "templateData must be a JSON object", id="template-data-number"),
]


@pytest.mark.parametrize(("build", "status", "text"), CASES)
def test_bad_input_is_refused(test_ca, build, status, text):
    refused(build(test_ca), status, text)


def test_invalid_base64_body_is_refused(test_ca):
    ev = event("POST", "/1.0/sign", "!!! not base64 !!!")
    ev["isBase64Encoded"] = True
    before = certificate_count()
    res = app.handler(ev, None)
    answer = json.loads(res["body"])
    assert res["statusCode"] == 400, answer
    assert answer["message"].startswith(PREFIX[400]) and "not valid base64" in answer["message"]
    assert "crt" not in answer and certificate_count() == before


def test_replayed_token_is_refused(test_ca):
    csr, _ = make_csr(CN)
    token = test_ca.token(CN)
    status, answer = call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token})
    assert status == 201, answer
    assert certificate_count() == 1
    refused({"csr": csr, "ott": token}, 401, "token already used")
    # a new CSR (new key) does not make an old token new; nor does the unversioned path
    refused({"csr": make_csr(CN)[0], "ott": token}, 401, "token already used")
    before = certificate_count()
    status, answer = call(app, "POST", "/sign", {"csr": make_csr(CN)[0], "ott": token})
    assert status == 401 and "token already used" in answer["message"] and "crt" not in answer
    assert certificate_count() == before == 1


def test_refused_token_is_not_consumed(test_ca):
    """A request refused after the token verified (here: a bad lifetime) must not burn the token."""
    csr, _ = make_csr(CN)
    token = test_ca.token(CN)
    refused({"csr": csr, "ott": token, "notAfter": "1m"}, 403, "less than the authorized minimum")
    status, answer = call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token})
    assert status == 201, answer


def test_good_request_still_works_after_all_bad_inputs(test_ca):
    for case in CASES:
        if case.marks:  # known bugs (strict xfails above) are left out of the sequence
            continue
        build, status, text = case.values
        refused(build(test_ca), status, text)
    assert certificate_count() == 0
    status, answer = call(app, "POST", "/1.0/sign", good_body(test_ca))
    assert status == 201, answer
    assert "crt" in answer
    assert certificate_count() == 1
