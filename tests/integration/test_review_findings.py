"""Regression tests for what the outside review of the issue 10/11 work found (one test per finding)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import clock
from stepless.services import ssh_info
from stepless.ssh import parse_certificate
from stepless.stores import revocations
from tests.integration.test_ssh_info import reads_of
from tests.integration.test_ssh_renew import revoke, sshpop_token
from tests.integration.test_ssh_sign import sign


def test_a_replayed_ssh_revocation_writes_nothing(test_ca):
    """A revoke of an already revoked SSH certificate does not consume its token (the transaction fails), so
    the holder of any SSH certificate can mint SSHPOP tokens and revoke it again and again for as long
    as the certificate is valid. Each replay re-ran the whole KRL write: the revoked-set UpdateItem (bumping the
    KRL version every time), the S3 KRL and one UpdateItem per host principal — writes amplified by the
    number of principals, from a revoked credential. Completing a lost KRL write must cost a read, not
    writes, once the revoked set has the serial."""
    principals = [f"h{i}.example.com" for i in range(20)]
    key = ec.generate_private_key(ec.SECP256R1())
    status, body = sign(test_ca, principals[0], key=key, token_opts={"certType": "host", "principals": principals})
    assert status == 201, body
    crt = body["crt"]
    serial = parse_certificate(base64.b64decode(crt)).serial
    token = sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial))
    assert revoke(serial, token)[0] == 200
    version = ssh_info._revoked(test_ca.authority).version

    out = []
    again = sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial))  # its holder mints as many as it likes
    calls = reads_of(lambda: out.append(revoke(serial, again)))
    assert out[0][0] == 400 and "already revoked" in out[0][1]["message"]
    assert not [c for c in calls if c.split(".")[1] in ("UpdateItem", "PutItem", "PutObject")], calls
    assert sum(calls.values()) <= 4, calls
    ssh_info._krl_cache = None
    assert ssh_info._revoked(test_ca.authority).version == version


def test_lineage_completes_on_an_already_revoked_certificate(test_ca, monkeypatch):
    """``lineage: true`` on a certificate already revoked (revoked earlier without lineage, or a lineage
    revocation cut short: each descendant now costs a KMS signature for its OCSP response, so a timeout or a
    KMS error midway is likely) answered 400 "already revoked" before walking the lineage: the renewals of
    a compromised certificate stayed valid with no way to reach them. Now the walk completes (idempotent),
    the answer lists the renewals revoked now, and the token is spent."""
    from stepless.services import ocsp
    from tests.integration.test_renew import renew_mtls, revoke_app
    from tests.integration.test_revoke import _renew_chain, revoke_by_token
    from tests.support.ca import call

    serials, pems = _renew_chain(test_ca, 3)  # A → B → C → D
    assert revoke_by_token(test_ca, serials[0])[0] == 200  # A alone: B, C, D stay valid
    status, body = revoke_by_token(test_ca, serials[0], lineage=True)
    assert (status, body) == (200, {"status": "ok", "lineage": serials[1:]}), body
    for pem in pems:
        assert renew_mtls(pem)[0] == 401

    serials, _ = _renew_chain(test_ca, 3)
    signed = ocsp.record_revocation
    calls = []

    def failing(auth, serial, item):  # the OCSP write of the second descendant fails (KMS throttled)
        calls.append(serial)
        if len(calls) == 3:
            raise RuntimeError("KMS throttled")
        return signed(auth, serial, item)

    monkeypatch.setattr(ocsp, "record_revocation", failing)
    status, _ = revoke_by_token(test_ca, serials[0], lineage=True)
    assert status >= 500
    monkeypatch.setattr(ocsp, "record_revocation", signed)
    assert revocations.get(serials[3]) is None  # cut short
    status, body = revoke_by_token(test_ca, serials[0], lineage=True)  # the administrator retries
    assert status == 200 and body["lineage"] == [serials[3]], body
    assert ocsp.ocsp_responses.get(serials[2]).status == "revoked"  # the lost OCSP write completed too

    # without lineage a second revocation is still 400; the token of a completing walk is spent
    assert revoke_by_token(test_ca, serials[0])[0] == 400
    now = int(clock.now().timestamp())
    token = test_ca.token(serials[0], path="/1.0/revoke", iat=now, nbf=now, exp=now + 300)
    body = {"serial": serials[0], "ott": token, "lineage": True}
    assert call(revoke_app, "POST", "/1.0/revoke", body) == (200, {"status": "ok", "lineage": []})
    status, body = call(revoke_app, "POST", "/1.0/revoke", body)
    assert status == 401 and "already used" in body["message"]
    # over mTLS a revoked certificate authenticates nothing more: no walk on its say-so
    serials, pems = _renew_chain(test_ca, 1)
    assert revoke_by_token(test_ca, serials[0])[0] == 200
    body = {"serial": serials[0], "lineage": True}
    status, _ = call(revoke_app, "POST", "/1.0/revoke", body, client_cert_pem=pems[0])
    assert status == 400 and revocations.get(serials[1]) is None


def test_a_principal_with_a_lone_surrogate_is_not_sent_to_dynamodb(test_ca):
    """JSON admits a lone surrogate (``"\\ud800"``); no certificate can carry one (it has no UTF-8 form), yet
    check-host sent it to DynamoDB as a key (botocore escapes it; DynamoDB refuses invalid Unicode with a
    ValidationException, i.e. a 503 and the ServerErrors alarm from an unauthenticated request). Such a
    principal is not indexable: check-host answers false without a read, a cursor with one is a 400."""
    from stepless.api.ssh import app
    from tests.support.ca import call

    lone = "db\ud800.example.com"
    calls = reads_of(lambda: call(app, "POST", "/ssh/check-host", {"type": "host", "principal": lone}))
    assert calls == {}
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": lone}) == (200, {"exists": False})
    status, body = call(app, "GET", "/ssh/hosts", query={"cursor": lone})
    assert status == 400 and "cursor" in body["message"]


@pytest.mark.parametrize("digit", ["\u00b2", "\u2460", "\U0001d7d9"])  # ², ①, 𝟙: str.isdigit() says True, int() refuses
def test_unicode_digits_are_a_400_not_a_500(test_ca, digit):
    """``str.isdigit()`` accepts superscripts and circled digits that ``int()`` refuses: ``GET
    /ssh/hosts?limit=²`` and ``POST /ssh/revoke {"serial": "²"}`` answered 500 (the ServerErrors alarm) to
    anyone, before any authentication."""
    from stepless.api.ssh import app
    from tests.support.ca import call

    status, body = call(app, "GET", "/ssh/hosts", query={"limit": digit})
    assert status == 400 and "limit" in body["message"], body
    status, body = call(app, "POST", "/1.0/ssh/revoke", {"serial": digit, "ott": "x"})
    assert status == 400 and "serial" in body["message"], body


def test_a_unicode_digit_bastion_port_is_refused_in_one_line():
    from stepless.admin.ssh_bastion import check_setting
    from stepless.errors import ClientError

    with pytest.raises(ClientError, match="invalid bastion port"):
        check_setting("bastion.example.com", port="\u00b2")
