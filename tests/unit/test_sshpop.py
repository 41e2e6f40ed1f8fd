"""The SSHPOP provisioner alone: token format, CA verification, renew/rekey/revoke rules (no AWS)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stepless import clock, jose
from stepless.claims import Claims
from stepless.errors import BadRequest, StepError, Unauthorized
from stepless.provisioners import Context, build
from stepless.provisioners.sshpop import CAKeys, SSHPOPProvisioner, certificate_from_header, token_algorithms
from stepless.signers.memory import MemorySigner
from stepless.ssh import HOST, USER, build_and_sign

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
CA = "https://ca.example.com"
HOSTS = frozenset({"ca.example.com"})


@pytest.fixture(autouse=True)
def frozen():
    with clock.freeze(NOW):  # tokens.check_times reads the clock
        yield


@pytest.fixture(scope="module")
def host_ca() -> MemorySigner:
    return MemorySigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def user_ca() -> MemorySigner:
    return MemorySigner(ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="module")
def keys(host_ca, user_ca) -> CAKeys:
    return CAKeys.of([user_ca.public_key()], [host_ca.public_key()])


def provisioner(claims: dict | None = None) -> SSHPOPProvisioner:
    p = build({"type": "SSHPOP", "name": "sshpop", "claims": claims or {"enableSSHCA": True}}, Claims.defaults())
    assert isinstance(p, SSHPOPProvisioner)
    return p


def certificate(signer, key, *, cert_type=HOST, serial=1234, after=T - 60, before=T + 3600):
    return build_and_sign(key.public_key(), serial=serial, cert_type=cert_type, key_id="host",
                          principals=["host.example.com"], valid_after=after, valid_before=before,
                          signer=signer)


def _alg(key) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]


def token(cert, key, path="/1.0/ssh/renew", *, alg=None, headers=None, **claims):
    payload = {"iss": "sshpop", "aud": f"{CA}{path}#sshpop/sshpop", "sub": str(cert.serial),
               "iat": T, "nbf": T, "exp": T + 300, "jti": uuid.uuid4().hex, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    header = {"sshpop": base64.b64encode(cert.raw).decode(), "kid": jose.thumbprint(jose.public_jwk(key)),
              **(headers or {})}
    header = {k: v for k, v in header.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg or _alg(key), headers=header)


def authorize(method: str, tok: str, keys: CAKeys, prov: SSHPOPProvisioner | None = None, now=NOW):
    prov = prov or provisioner()
    header = jwt.get_unverified_header(tok)
    return getattr(prov, f"authorize_ssh_{method}")(tok, header, Context(HOSTS, now), keys)


@pytest.mark.parametrize("key", [
    ec.generate_private_key(ec.SECP256R1()),
    ec.generate_private_key(ec.SECP384R1()),
    ec.generate_private_key(ec.SECP521R1()),
    ed25519.Ed25519PrivateKey.generate(),
    rsa.generate_private_key(65537, 2048),
], ids=["p256", "p384", "p521", "ed25519", "rsa"])
def test_renew_every_key_type(host_ca, keys, key):
    cert = certificate(host_ca, key)
    authz = authorize("renew", token(cert, key), keys)
    assert authz.certificate.raw == cert.raw
    assert authz.token.id.startswith("sshpop#")
    assert authz.token.expires == T + 300


def test_without_jti_the_token_hash_is_the_id(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    authz = authorize("renew", token(cert, key, jti=None), keys)
    assert authz.token.id.startswith("sshpop#sha256:")


def test_kid_is_optional_but_checked(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    authorize("renew", token(cert, key, headers={"kid": None}), keys)
    with pytest.raises(Unauthorized, match="kid"):
        authorize("renew", token(cert, key, headers={"kid": "other"}), keys)


def test_signed_by_another_key(host_ca, keys):
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    tok = token(cert, other, headers={"kid": jose.thumbprint(jose.public_jwk(key))})
    with pytest.raises(Unauthorized, match="token signature is invalid"):
        authorize("renew", tok, keys)


def test_algorithm_must_fit_the_key(host_ca, keys):
    key = rsa.generate_private_key(65537, 2048)
    cert = certificate(host_ca, key)
    authorize("renew", token(cert, key, alg="PS256"), keys)
    ec_cert = certificate(host_ca, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(Unauthorized, match="algorithm 'RS256' is not allowed"):
        authorize("renew", token(ec_cert, key, headers={"kid": None}), keys)
    assert token_algorithms(ed25519.Ed25519PrivateKey.generate().public_key()) == {"EdDSA"}


def test_hmac_and_none_refused(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    header = {"sshpop": base64.b64encode(cert.raw).decode()}
    payload = {"iss": "sshpop", "aud": f"{CA}/1.0/ssh/renew", "sub": "x", "exp": T + 300}
    for tok in (jwt.encode(payload, "secret" * 6, algorithm="HS256", headers=header),
                jwt.encode(payload, None, algorithm="none", headers=header)):
        with pytest.raises(Unauthorized, match="algorithm"):
            authorize("renew", tok, keys)


def test_certificate_from_another_ca(user_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(user_ca, key)  # a host certificate signed by the user CA
    with pytest.raises(Unauthorized, match="could not find valid ca signer"):
        authorize("renew", token(cert, key), keys)


def test_tampered_certificate(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    raw = bytearray(cert.raw)
    index = raw.index(b"host.example.com")
    raw[index] ^= 1
    header = {"sshpop": base64.b64encode(bytes(raw)).decode()}
    tok = token(cert, key, headers=header)
    with pytest.raises(Unauthorized, match="could not find valid ca signer"):
        authorize("renew", tok, keys)


@pytest.mark.parametrize(("value", "match"), [
    (None, "missing the sshpop header"),
    ("%%%", "base64"),
    (base64.b64encode(b"\x00\x00\x00\x03abc").decode(), "error parsing the sshpop certificate"),
])
def test_bad_sshpop_header(host_ca, keys, value, match):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    with pytest.raises(Unauthorized, match=match):
        authorize("renew", token(cert, key, headers={"sshpop": value}), keys)


def test_plain_public_key_in_header_refused():
    from stepless.ssh import encode_public_key

    blob = encode_public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(Unauthorized, match="not an SSH certificate"):
        certificate_from_header({"sshpop": base64.b64encode(blob).decode()})


def test_issuer_audience_subject_times(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    with pytest.raises(Unauthorized, match="issuer"):
        authorize("renew", token(cert, key, iss="admin"), keys)
    with pytest.raises(Unauthorized, match="audience"):
        authorize("renew", token(cert, key, aud="https://evil.example.com/1.0/ssh/renew"), keys)
    with pytest.raises(Unauthorized, match="audience"):
        authorize("renew", token(cert, key, aud=f"{CA}/1.0/ssh/renew#jwk/admin"), keys)
    authorize("renew", token(cert, key, aud=f"{CA}/ssh/renew#sshpop"), keys)
    with pytest.raises(Unauthorized, match="subject"):
        authorize("renew", token(cert, key, sub=""), keys)
    with pytest.raises(Unauthorized, match="expired"):
        authorize("renew", token(cert, key, iat=T - 900, nbf=T - 900, exp=T - 600), keys)


def test_renew_refuses_user_certificates(user_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(user_ca, key, cert_type=USER)
    with pytest.raises(Unauthorized, match="must be a host ssh certificate"):
        authorize("renew", token(cert, key), keys)
    with pytest.raises(Unauthorized, match="must be a host ssh certificate"):
        authorize("rekey", token(cert, key, "/1.0/ssh/rekey"), keys)
    authz = authorize("revoke", token(cert, key, "/1.0/ssh/revoke"), keys)  # revoke takes user certs
    assert authz.certificate.cert_type == USER


def test_renew_validity_rules(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    expired = certificate(host_ca, key, after=T - 7200, before=T - 60)
    with pytest.raises(Unauthorized, match="certificate has expired"):
        authorize("renew", token(expired, key), keys)
    late = provisioner({"allowRenewalAfterExpiry": True})
    assert authorize("renew", token(expired, key), keys, late).certificate.serial == expired.serial
    future = certificate(host_ca, key, after=T + 600, before=T + 7200)
    with pytest.raises(Unauthorized, match="not yet valid"):
        authorize("renew", token(future, key), keys)
    disabled = provisioner({"disableRenewal": True})
    with pytest.raises(Unauthorized, match="renew is disabled for provisioner 'sshpop'"):
        authorize("renew", token(certificate(host_ca, key), key), keys, disabled)


def test_rekey_and_revoke_need_a_valid_certificate(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    expired = certificate(host_ca, key, after=T - 7200, before=T - 60)
    late = provisioner({"allowRenewalAfterExpiry": True})
    with pytest.raises(Unauthorized, match="validBefore is in the past"):
        authorize("rekey", token(expired, key, "/1.0/ssh/rekey"), keys, late)
    with pytest.raises(Unauthorized, match="validBefore is in the past"):
        authorize("revoke", token(expired, key, "/1.0/ssh/revoke"), keys)
    future = certificate(host_ca, key, after=T + 600, before=T + 7200)
    with pytest.raises(Unauthorized, match="validAfter is in the future"):
        authorize("rekey", token(future, key, "/1.0/ssh/rekey"), keys)


def test_revoke_subject_is_the_serial(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key, serial=987654321)
    assert authorize("revoke", token(cert, key, "/1.0/ssh/revoke"), keys).subject == "987654321"
    with pytest.raises(BadRequest, match="subject must be equivalent"):
        authorize("revoke", token(cert, key, "/1.0/ssh/revoke", sub="1"), keys)


def test_audience_per_method(host_ca, keys):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(host_ca, key)
    for method, path in (("renew", "/1.0/ssh/rekey"), ("rekey", "/1.0/ssh/revoke"), ("revoke", "/1.0/ssh/renew")):
        with pytest.raises(StepError, match="audience"):
            authorize(method, token(cert, key, path), keys)


def test_public_json_and_id():
    p = provisioner()
    assert p.id == "sshpop/sshpop"
    assert json.loads(json.dumps(p.public_json())) == {"type": "SSHPOP", "name": "sshpop",
                                                        "claims": {"enableSSHCA": True}}
