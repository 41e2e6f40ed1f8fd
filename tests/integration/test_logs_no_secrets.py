"""No secret ever reaches a log: a representative flow with every log line captured.

``ca init`` with a known password, sign, renew (mTLS and token), revoke, SSH sign, and bad requests
(some of which put a token where the error detail echoes it), with every logger at DEBUG (caplog,
botocore's and moto's loggers included), stepless's JSON lines and EMF lines (the Powertools handler's
stream) and anything printed (capsys). None of the provisioner password, the tokens, the decrypted JWK's
``d``, any private key PEM or any CSR may appear; stepless's own lines carry no PEM at all, and each
request's lines carry its request id and route.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.api import sign as sign_api
from stepless.api import ssh as ssh_api
from stepless.observability import logger
from tests.integration.test_renew import renew_token
from tests.support import ca as support
from tests.support.ca import call, make_csr


def _b64url_int(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, Any]]:
    """Everything logged or printed while the test body runs (read it after the body, from "text")."""
    handler = logger.registered_handler
    stream = io.StringIO()
    old_stream = handler.setStream(stream)  # type: ignore[attr-defined]
    old_level = logger.log_level
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    box: dict[str, Any] = {"stream": stream}
    try:
        yield box
    finally:
        handler.setStream(old_stream)  # type: ignore[attr-defined]
        logger.setLevel(old_level)


def _everything(box: dict[str, Any], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    printed = capsys.readouterr()
    records = []
    for r in caplog.records:
        extras = {k: v for k, v in r.__dict__.items() if k not in ("exc_info", "args", "msg")}
        records.append(f"{r.getMessage()} {extras}")
    return "\n".join([box["stream"].getvalue(), caplog.text, *records, printed.out, printed.err])


def test_no_secret_in_any_log(aws_env: dict[str, str], captured: dict[str, Any], caplog: pytest.LogCaptureFixture,
                              capsys: pytest.CaptureFixture[str]) -> None:
    ca = support.initialize(aws_env)  # `ca init` with support.PASSWORD, inside the capture
    tokens: list[str] = []
    csrs: list[str] = []

    def token(sub: str, **kw: Any) -> str:
        tokens.append(ca.token(sub, **kw))
        return tokens[-1]

    def csr(cn: str, sans: list[str] | None = None) -> tuple[str, Any]:
        pem, key = make_csr(cn, sans)
        csrs.append(pem)
        return pem, key

    sign, renew, revoke, ssh = sign_api.app, renew_api.app, revoke_api.app, ssh_api.app

    # --- sign: one good, then refusals
    pem, key = csr("svc.example.com")
    ott = token("svc.example.com")
    status, body = call(sign, "POST", "/1.0/sign", {"csr": pem, "ott": ott})
    assert status == 201, body
    cert_pem = body["crt"]
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert call(sign, "POST", "/1.0/sign", {"csr": pem, "ott": ott})[0] == 401  # replayed
    other, _ = csr("b.example.com")
    assert call(sign, "POST", "/1.0/sign", {"csr": other, "ott": token("b.example.com", path="/1.0/revoke")})[0] == 401
    assert call(sign, "POST", "/1.0/sign", {"csr": other, "ott": token("b.example.com", lifetime=-600)})[0] == 401
    assert call(sign, "POST", "/1.0/sign", {"csr": other, "ott": token("c.example.com")})[0] == 403  # SANs
    leaked = token("b.example.com")  # a token where a duration belongs: the error detail echoes it
    status, body = call(sign, "POST", "/1.0/sign", {"csr": other, "ott": leaked, "notAfter": leaked})
    assert status == 400 and leaked in body["message"]  # (the client sees its own input, the logs must not)
    assert call(sign, "POST", "/1.0/sign", "{not json")[0] == 400
    broken_csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA"
    assert call(sign, "POST", "/1.0/sign", {"csr": broken_csr, "ott": leaked})[0] == 400
    assert call(sign, "GET", f"/1.0/nothing/{token('x.example.com')}")[0] == 404
    assert call(sign, "GET", "/provisioners")[0] == 200
    assert call(sign, "GET", f"/1.0/provisioners/{ca.kid}/encrypted-key")[0] == 200

    # --- renew: mTLS, then an x5cInsecure token, then a bad Authorization header
    status, body = call(renew, "POST", "/renew", client_cert_pem=cert_pem)
    assert status == 201, body
    renewed = x509.load_pem_x509_certificate(body["crt"].encode())
    bearer = renew_token(renewed, key)
    tokens.append(bearer)
    status, body = call(renew, "POST", "/1.0/renew", headers={"Authorization": f"Bearer {bearer}"})
    assert status == 201, body
    garbage = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ.c2lnbmF0dXJlLXRoYXQtaXMtbm90"
    tokens.append(garbage)
    assert call(renew, "POST", "/1.0/renew", headers={"Authorization": f"Bearer {garbage}"})[0] == 401

    # --- revoke by token
    serial = str(cert.serial_number)
    status, body = call(revoke, "POST", "/1.0/revoke", {"serial": serial, "ott": token(serial, path="/1.0/revoke")})
    assert status == 200, body

    # --- ssh sign, then a replay
    ssh_key = ec.generate_private_key(ec.SECP256R1())
    from tests.integration.test_ssh_sign import b64key

    ssh_ott = token("alice@example.com", path="/1.0/ssh/sign", step={"ssh": {}})
    payload = {"publicKey": b64key(ssh_key), "ott": ssh_ott}
    status, body = call(ssh, "POST", "/1.0/ssh/sign", payload)
    assert status == 201, body
    assert call(ssh, "POST", "/1.0/ssh/sign", payload)[0] == 401

    # ------------------------------------------------------------------------------------ the logs
    text = _everything(captured, caplog, capsys)
    numbers = ca.provisioner_key.private_numbers()
    secrets = {
        "password": support.PASSWORD,
        "jwk d": _b64url_int(numbers.private_value, 32),
        "jwk d (decimal)": str(numbers.private_value),
        **{f"token {i}": t for i, t in enumerate(tokens)},
        # the signatures alone (a token split at its dots must not leak either)
        **{f"token {i} signature": t.rsplit(".", 1)[1] for i, t in enumerate(tokens)},
        **{f"csr {i}": c.strip().splitlines()[1] for i, c in enumerate(csrs)},
    }
    assert len(text) > 10_000, "the capture saw the flow"
    for what, secret in secrets.items():
        assert secret not in text, f"{what} is in the logs"
    for marker in ("PRIVATE KEY", "CERTIFICATE REQUEST"):
        assert marker not in text, marker

    ours = [json.loads(line) for line in captured["stream"].getvalue().splitlines() if line.strip()]
    logs = [line for line in ours if "_aws" not in line]
    assert logs and not any("-----BEGIN" in json.dumps(line) for line in logs)
    requests = [line for line in logs if line.get("message") in ("request refused", "certificate issued",
                                                                   "certificate renewed", "certificate revoked",
                                                                   "ssh certificate issued")]
    assert len(requests) >= 15
    for line in requests:
        assert line["request_id"] and line["route"] and line["service"] == "stepless", line
    for line in (line for line in requests if line["message"] != "request refused"):
        assert line["provisioner"] and line["serial"], line

    emf = [line for line in ours if "_aws" in line]
    counted: dict[str, list[dict[str, str]]] = {}
    for line in emf:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            counted.setdefault(metric["Name"], []).append({d: line[d] for d in directive["Dimensions"][0]})
    assert {d["kind"] for d in counted["Issued"]} == {"x509", "ssh"}
    assert [d["kind"] for d in counted["Renewed"]] == ["x509", "x509"]
    assert [d["kind"] for d in counted["Revoked"]] == ["x509"]
    reasons = {d["reason"] for d in counted["Rejected"]}
    assert {"token_already_used", "invalid_audience", "token_expired", "sans_mismatch", "invalid_validity",
            "invalid_json", "invalid_csr", "no_route"} <= reasons, reasons
    assert len(counted["Latency"]) == len(emf) - sum(len(v) for k, v in counted.items() if k != "Latency")
