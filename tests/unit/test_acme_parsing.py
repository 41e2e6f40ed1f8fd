"""ACME pieces without AWS: identifier policy matching, JWS parsing of hostile bodies (only problem documents,
never a crash), challenge answers (key authorization, DNS answer parsing)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepless import jose
from stepless.acme import jws, validation
from stepless.acme.errors import AcmeError
from stepless.acme.messages import Identifier
from stepless.acme.policy import Policy

POLICY = Policy({"allow": {"dns": ["*.example.com", "example.com"], "ip": ["10.0.0.0/8"]},
                 "deny": {"dns": ["bad.example.com"], "ip": ["10.9.9.9"]}})


@pytest.mark.parametrize(("kind", "value", "ok"), [
    ("dns", "example.com", True),
    ("dns", "www.example.com", True),
    ("dns", "*.example.com", True),
    ("dns", "a.b.example.com", False),  # * is one label
    ("dns", "bad.example.com", False),  # deny wins
    ("dns", "example.org", False),
    ("dns", "WWW.example.com", False),  # not lower case
    ("dns", "-x.example.com", False),
    ("dns", "*.com", False),
    ("ip", "10.1.2.3", True),
    ("ip", "10.9.9.9", False),
    ("ip", "192.168.0.1", False),
    ("ip", "010.1.2.3", False),  # not canonical
])
def test_policy(kind, value, ok):
    if ok:
        POLICY.check(Identifier(kind, value))
    else:
        with pytest.raises(AcmeError) as e:
            POLICY.check(Identifier(kind, value))
        assert e.value.kind == "rejectedIdentifier"


def test_no_policy_allows_valid_names_only():
    Policy(None).check(Identifier("dns", "anything.test"))
    Policy(None).check(Identifier("ip", "::1"))
    with pytest.raises(AcmeError):
        Policy(None).check(Identifier("dns", "under_score.test"))


KEY = None


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(st.one_of(st.binary(max_size=120),
                 st.dictionaries(st.sampled_from(["protected", "payload", "signature", "header"]),
                                 st.one_of(st.text(max_size=40), st.integers(), st.none()), max_size=4)
                 .map(lambda d: json.dumps(d).encode())))
def test_hostile_bodies_are_problems(body):
    try:
        parsed = jws.parse(body)
    except AcmeError as e:
        assert e.kind == "malformed"
        return
    with pytest.raises(AcmeError):  # whatever parsed cannot verify against a key
        jws.verify(parsed, _key())


def _key():
    global KEY
    if KEY is None:
        from cryptography.hazmat.primitives.asymmetric import ec

        KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
    return KEY


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "n", "e", "d", "alg"]),
                       st.one_of(st.text(max_size=20), st.integers(), st.sampled_from(["EC", "RSA", "OKP", "P-256"])),
                       max_size=5))
def test_hostile_jwks_are_bad_public_keys(jwk):
    with pytest.raises(AcmeError) as e:
        jws.account_key(jwk)
    assert e.value.kind == "badPublicKey"


def test_private_jwk_refused():
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AcmeError, match="private"):
        jws.account_key({**jose.public_jwk(key), "d": "AAAA"})


def test_dns_answer_parsing(monkeypatch):
    from tests.support.dns import TxtServer

    server = TxtServer()
    try:
        server.records_file.write_text(json.dumps({"_acme-challenge.a.test": ["one", "x" * 200]}))
        monkeypatch.setenv(validation.DNS_RESOLVER, f"127.0.0.1:{server.port}")
        assert validation.txt_records("_acme-challenge.a.test") == ["one", "x" * 200]
        assert validation.txt_records("_acme-challenge.b.test") == []
        with pytest.raises(AcmeError) as e:
            validation.dns01(Identifier("dns", "a.test"), "token.thumb")
        assert e.value.kind == "incorrectResponse"
    finally:
        server.close()
