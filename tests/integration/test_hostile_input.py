"""Hostile input across every issuing endpoint: nothing unauthorized may ever come out of the CA.

Each case builds one attack against a module-wide test CA (moto, KMS backend, SSH enabled, a second JWK
provisioner "bob") and sends it once. Every case asserts the status, a meaningful part of the message,
that the answer carries no certificate (``crt``/``certChain``) and that neither the certificates table nor
the revocations table gained a record while the attack was handled (moto scans before and after; any
setup a builder needs — issuing the victim certificate, using a token once — happens before the count).

Endpoints: POST /sign, /renew (mTLS and x5cInsecure Bearer), /rekey, /revoke, /ssh/sign, /ssh/renew,
/ssh/rekey, /ssh/revoke, /ssh/config, /ssh/check-host. The cases complement (they do not repeat) the
per-endpoint suites in test_sign_bad_input, test_renew, test_revoke, test_ssh_sign and test_ssh_renew.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import time
import unicodedata
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import boto3
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless import authority, clock, jose, oidc_discovery
from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.api import sign as sign_api
from stepless.api import ssh as ssh_api
from stepless.services import issuance
from stepless.signers import as_private_key
from stepless.signers.memory import MemorySigner
from stepless.ssh import HOST, USER, build_and_sign, parse_certificate, to_authorized_key
from stepless.stores import authority as authority_store
from stepless.stores import certificates, revocations
from stepless.x509 import extensions, profile
from tests.integration.test_renew import der_b64, issue, renew_token
from tests.integration.test_sign_san_rule import _csr as _shape_csr
from tests.integration.test_sign_san_rule import _tlv
from tests.integration.test_ssh_renew import host_cert, sshpop_token, user_cert
from tests.integration.test_ssh_sign import b64key, ssh_token
from tests.support import ca as support
from tests.support.ca import CA_URL, call, make_csr, make_key
from tests.support.oidc_provider import Provider
from tests.support.x5c import make_token, x5c_claims
from tests.unit.test_x509_tbs import pkilint

CN = "svc.example.com"
PREFIX = {
    400: "The request could not be completed",
    401: "The request lacked necessary authorization to be completed",
    403: "The request was forbidden by the certificate authority",
    404: "The requested resource could not be found",
    413: "The request body is too large",
}


# ---------------------------------------------------------------------------------------------- the CA


@dataclasses.dataclass
class Hostile:
    """The module's CA, plus a second JWK provisioner (``bob``) whose private key we hold."""

    ca: support.TestCA
    bob: support.TestCA


@pytest.fixture(scope="module")
def hostile() -> Hostile:
    """One CA for the whole module (every case is refused, so the cases cannot disturb each other)."""
    with support.moto_environment():
        ca = support.initialize(support.create_resources())
        bob_key = make_key()
        jwk = jose.public_jwk(bob_key)
        jwk = {"use": "sig", **jwk, "kid": jose.thumbprint(jwk), "alg": "ES256"}
        doc, version = authority_store.load()
        doc["provisioners"].append({"type": "JWK", "name": "bob", "key": jwk})
        authority_store.save(doc, expected_version=version)
        authority.reset()
        yield Hostile(ca, support.TestCA(ca.result, bob_key, jwk["kid"], name="bob"))


# ---------------------------------------------------------------------------------------------- helpers


@dataclasses.dataclass
class Attack:
    """One request: which handler, method, path, body and call options."""

    app: Any
    path: str
    body: Any = None
    method: str = "POST"
    kw: dict[str, Any] = dataclasses.field(default_factory=dict)
    shift: dt.timedelta = dt.timedelta(0)  # the CA's clock runs this far ahead while the request is handled


def count(table: str) -> int:
    """The table's item count (moto's DescribeTable counts live; a scan would grow slower with every case)."""
    return boto3.client("dynamodb").describe_table(TableName=table)["Table"]["ItemCount"]


def records() -> tuple[int, int]:
    return count("test-certificates"), count("test-revocations")


def refused(attack: Attack, status: int, text: str) -> dict[str, Any]:
    """Send ``attack``; assert the refusal, no certificate in the answer, no record written."""
    before = records()
    with clock.shift(attack.shift):
        got, answer = call(attack.app, attack.method, attack.path, attack.body, **attack.kw)
    assert isinstance(answer, dict), (got, answer)
    assert got == status, (got, answer)
    assert answer.get("status") == got, answer
    message = answer.get("message", "")
    assert message.startswith(PREFIX[got]), message
    assert text in message, message
    assert "crt" not in answer and "certChain" not in answer, answer
    assert records() == before, "a refused request wrote a certificate or revocation record"
    return answer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], *, alg: str, secret: bytes = b"") -> str:
    """A compact JWS with ``alg`` ``none`` (empty signature) or an HMAC keyed with ``secret``."""
    signing_input = b64url(json.dumps({**header, "alg": alg}).encode()) + "." + b64url(json.dumps(payload).encode())
    if alg == "none":
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg])
    return signing_input + "." + b64url(mac.digest())


def claims(sub: str, path: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "admin", "aud": CA_URL + path, "sub": sub, "sans": [sub], "iat": now, "nbf": now,
            "exp": now + 300, "jti": uuid.uuid4().hex, **extra}


def public_pem(key: Any) -> bytes:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def serial_of(cert: x509.Certificate) -> str:
    return str(cert.serial_number)


def ssh_serial(crt: str) -> int:
    return parse_certificate(base64.b64decode(crt)).serial


# request shapes, one per endpoint


def sign_req(csr: str, ott: str, **body: Any) -> Attack:
    return Attack(sign_api.app, "/1.0/sign", {"csr": csr, "ott": ott, **body})


def revoke_req(serial: str, ott: str | None = None, **kw: Any) -> Attack:
    body = {"serial": serial, **({"ott": ott} if ott is not None else {}), **kw.pop("body", {})}
    return Attack(revoke_api.app, "/1.0/revoke", body, kw=kw)


def ssh_sign_req(ott: str, key: Any = None, **body: Any) -> Attack:
    key = key or make_key()
    return Attack(ssh_api.app, "/1.0/ssh/sign", {"publicKey": b64key(key), "ott": ott, **body})


def renew_mtls_req(pem: str) -> Attack:
    return Attack(renew_api.app, "/renew", kw={"client_cert_pem": pem})


def renew_bearer_req(token: str) -> Attack:
    return Attack(renew_api.app, "/1.0/renew", kw={"headers": {"Authorization": f"Bearer {token}"}})


def rekey_req(pem: str, csr: str) -> Attack:
    return Attack(renew_api.app, "/1.0/rekey", {"csr": csr}, kw={"client_cert_pem": pem})


def ssh_revoke_req(serial: int | str, ott: str) -> Attack:
    return Attack(ssh_api.app, "/1.0/ssh/revoke", {"serial": str(serial), "ott": ott, "reasonCode": 1})


def revoke_token(h: Hostile, serial: str, **kw: Any) -> str:
    return h.ca.token(serial, path="/1.0/revoke", **kw)


def victim(h: Hostile, cn: str = CN, **body: Any) -> tuple[x509.Certificate, Any, str]:
    """A certificate issued through POST /sign (before the counts are taken)."""
    return issue(h.ca, cn, **body)


# ---------------------------------------------------------------------------------------------- token attacks


def _alg_none_on_revoke(h: Hostile) -> Attack:
    cert, _, _ = victim(h)
    token = forge({"kid": h.ca.kid, "typ": "JWT"}, claims(serial_of(cert), "/1.0/revoke"), alg="none")
    return revoke_req(serial_of(cert), token)


def _alg_none_on_ssh_sign(h: Hostile) -> Attack:
    token = forge({"kid": h.ca.kid, "typ": "JWT"}, claims("alice", "/1.0/ssh/sign", step={"ssh": {}}), alg="none")
    return ssh_sign_req(token)


def _alg_none_on_renew(h: Hostile) -> Attack:
    cert, _, _ = victim(h)
    now = int(time.time())
    payload = {"iss": "step-ca-client/1.0", "sub": CN, "aud": CA_URL + "/1.0/renew", "iat": now, "nbf": now,
               "exp": now + 300, "jti": uuid.uuid4().hex}
    header = {"x5cInsecure": [der_b64(cert), der_b64(authority.get().intermediate)]}
    return renew_bearer_req(forge(header, payload, alg="none"))


def _hmac_public_key_on_revoke(h: Hostile) -> Attack:
    cert, _, _ = victim(h)
    token = forge({"kid": h.ca.kid, "typ": "JWT"}, claims(serial_of(cert), "/1.0/revoke"), alg="HS256",
                  secret=public_pem(h.ca.provisioner_key))
    return revoke_req(serial_of(cert), token)


def _hmac_public_key_on_ssh_sign(h: Hostile) -> Attack:
    token = forge({"kid": h.ca.kid, "typ": "JWT"}, claims("alice", "/1.0/ssh/sign", step={"ssh": {}}),
                  alg="HS512", secret=public_pem(h.ca.provisioner_key))
    return ssh_sign_req(token)


def _hmac_leaf_key_on_renew(h: Hostile) -> Attack:
    """The x5cInsecure leaf's public key (which anyone has) as an HMAC secret."""
    cert, _, _ = victim(h)
    now = int(time.time())
    payload = {"iss": "step-ca-client/1.0", "sub": CN, "aud": CA_URL + "/1.0/renew", "iat": now, "nbf": now,
               "exp": now + 300, "jti": uuid.uuid4().hex}
    header = {"x5cInsecure": [der_b64(cert), der_b64(authority.get().intermediate)]}
    return renew_bearer_req(forge(header, payload, alg="HS256", secret=public_pem(cert.public_key())))


def _kid_of_bob_iss_admin(h: Hostile) -> Attack:
    """Bob's key and kid, but claiming to be the admin provisioner."""
    return sign_req(make_csr(CN)[0], h.bob.token(CN, iss="admin"))


def _kid_of_admin_iss_bob(h: Hostile) -> Attack:
    """Admin's kid (and key) with bob's name as issuer."""
    return sign_req(make_csr(CN)[0], h.ca.token(CN, iss="bob"))


def _kid_of_admin_signed_by_bob(h: Hostile) -> Attack:
    """Bob signs a token that names admin's kid and admin as issuer."""
    return sign_req(make_csr(CN)[0], h.ca.token(CN, key=h.bob.provisioner_key))


def _kid_of_bob_iss_admin_on_ssh(h: Hostile) -> Attack:
    return ssh_sign_req(h.bob.token("alice", path="/1.0/ssh/sign", iss="admin", step={"ssh": {}}))


def _aud_fragment_of_bob(h: Hostile) -> Attack:
    """An admin token aimed at provisioner bob (audience fragment)."""
    return sign_req(make_csr(CN)[0], h.ca.token(CN, aud=CA_URL + "/1.0/sign#bob"))


def _aud(path: str, endpoint: str) -> Callable[[Hostile], Attack]:
    """A token whose audience is ``path`` (another endpoint, another host …) sent to ``endpoint``."""

    def build(h: Hostile) -> Attack:
        aud = path if path.startswith("https://") or path.startswith("http") else CA_URL + path
        if endpoint == "sign":
            return sign_req(make_csr(CN)[0], h.ca.token(CN, aud=aud, step={"ssh": {}}))
        if endpoint == "ssh/sign":
            return ssh_sign_req(h.ca.token("alice", aud=aud, step={"ssh": {}}))
        if endpoint == "revoke":
            cert, _, _ = victim(h)
            return revoke_req(serial_of(cert), h.ca.token(serial_of(cert), aud=aud))
        if endpoint == "ssh/revoke":
            crt, _ = user_cert(h.ca)
            serial = ssh_serial(crt)
            return ssh_revoke_req(serial, h.ca.token(str(serial), aud=aud))
        if endpoint == "renew":
            cert, key, _ = victim(h)
            return renew_bearer_req(renew_token(cert, key, aud=aud))
        raise AssertionError(endpoint)

    return build


def _times(endpoint: str, *, nbf: int = 0, exp: int = 300, iat: int = 0) -> Callable[[Hostile], Attack]:
    """A token with the given times (seconds from now), otherwise valid for ``endpoint``."""

    def build(h: Hostile) -> Attack:
        now = int(time.time())
        t = {"iat": now + iat, "nbf": now + nbf, "exp": now + exp}
        if endpoint == "ssh/sign":
            return ssh_sign_req(h.ca.token("alice", path="/1.0/ssh/sign", step={"ssh": {}}, **t))
        if endpoint == "revoke":
            cert, _, _ = victim(h)
            return revoke_req(serial_of(cert), revoke_token(h, serial_of(cert), **t))
        if endpoint == "ssh/revoke":
            crt, _ = user_cert(h.ca)
            serial = ssh_serial(crt)
            return ssh_revoke_req(serial, h.ca.token(str(serial), path="/1.0/ssh/revoke", **t))
        if endpoint == "renew":
            cert, key, _ = victim(h)
            return renew_bearer_req(renew_token(cert, key, lifetime=exp))
        if endpoint == "ssh/renew":
            crt, key = host_cert(h.ca)
            return Attack(ssh_api.app, "/1.0/ssh/renew", {"ott": sshpop_token(crt, key, "/1.0/ssh/renew",
                                                                               lifetime=exp)})
        raise AssertionError(endpoint)

    return build


def _replayed_revoke_token_on_other_path(h: Hostile) -> Attack:
    """A revoke token used once (on /1.0/revoke) is not new again on /revoke."""
    cert, _, _ = victim(h)
    token = revoke_token(h, serial_of(cert))
    status, body = call(revoke_api.app, "POST", "/1.0/revoke", {"serial": serial_of(cert), "ott": token})
    assert status == 200, body
    attack = revoke_req(serial_of(cert), token, body={"reasonCode": 1})
    attack.path = "/revoke"
    return attack


def _replayed_ssh_token_on_unversioned_path(h: Hostile) -> Attack:
    token = ssh_token(h.ca, "alice")
    status, body = call(ssh_api.app, "POST", "/1.0/ssh/sign", ssh_sign_req(token).body)
    assert status == 201, body
    attack = ssh_sign_req(token, certType="user")
    attack.path = "/ssh/sign"
    return attack


def _jti_of_sign_reused_on_revoke(h: Hostile) -> Attack:
    """Sign with jti J, then revoke the new certificate with another token carrying the same J."""
    jti = uuid.uuid4().hex
    csr, _ = make_csr(CN)
    status, body = call(sign_api.app, "POST", "/1.0/sign", {"csr": csr, "ott": h.ca.token(CN, jti=jti)})
    assert status == 201, body
    serial = serial_of(x509.load_pem_x509_certificate(body["crt"].encode()))
    return revoke_req(serial, revoke_token(h, serial, jti=jti))


def _jti_of_sign_reused_on_ssh_sign(h: Hostile) -> Attack:
    jti = uuid.uuid4().hex
    status, body = call(sign_api.app, "POST", "/1.0/sign", {"csr": make_csr(CN)[0], "ott": h.ca.token(CN, jti=jti)})
    assert status == 201, body
    return ssh_sign_req(h.ca.token("alice", path="/1.0/ssh/sign", jti=jti, step={"ssh": {}}))


def _jti_of_ssh_sign_reused_on_sign(h: Hostile) -> Attack:
    jti = uuid.uuid4().hex
    token = h.ca.token("alice", path="/1.0/ssh/sign", jti=jti, step={"ssh": {}})
    status, body = call(ssh_api.app, "POST", "/1.0/ssh/sign", ssh_sign_req(token).body)
    assert status == 201, body
    return sign_req(make_csr(CN)[0], h.ca.token(CN, jti=jti))


def _jti_of_revoke_reused_on_ssh_revoke(h: Hostile) -> Attack:
    cert, _, _ = victim(h)
    jti = uuid.uuid4().hex
    status, body = call(revoke_api.app, "POST", "/revoke",
                        {"serial": serial_of(cert), "ott": revoke_token(h, serial_of(cert), jti=jti)})
    assert status == 200, body
    crt, _ = user_cert(h.ca)
    serial = ssh_serial(crt)
    return ssh_revoke_req(serial, h.ca.token(str(serial), path="/1.0/ssh/revoke", jti=jti))


def _deep_json_in_token(h: Hostile) -> Attack:
    """A signed token whose claims nest 5,000 levels deep (parsing must fail cleanly, not crash)."""
    signing_input = b64url(json.dumps({"alg": "ES256", "kid": h.ca.kid}).encode()) + "." + b64url(
        b'{"sub":' + b"[" * 5000 + b"]" * 5000 + b"}")
    return sign_req(make_csr(CN)[0], signing_input + "." + b64url(b"x" * 64))


def _token_over_16k(h: Hostile) -> Attack:
    return sign_req(make_csr(CN)[0], h.ca.token(CN, pad="A" * 17000))


def _sshpop_token_on_x509_revoke(h: Hostile) -> Attack:
    """An SSH host certificate's proof of possession cannot revoke an X.509 certificate."""
    cert, _, _ = victim(h)
    crt, key = host_cert(h.ca)
    return revoke_req(serial_of(cert), sshpop_token(crt, key, "/1.0/revoke", sub=serial_of(cert)))


TOKEN_CASES = [
    pytest.param(_alg_none_on_revoke, 401, "algorithm 'none' is not allowed", id="revoke-alg-none"),
    pytest.param(_alg_none_on_ssh_sign, 401, "algorithm 'none' is not allowed", id="ssh-sign-alg-none"),
    pytest.param(_alg_none_on_renew, 401, "algorithm 'none' is not allowed", id="renew-x5c-alg-none"),
    pytest.param(_hmac_public_key_on_revoke, 401, "algorithm 'HS256' is not allowed", id="revoke-hmac-public-key"),
    pytest.param(_hmac_public_key_on_ssh_sign, 401, "algorithm 'HS512' is not allowed",
                 id="ssh-sign-hmac-public-key"),
    pytest.param(_hmac_leaf_key_on_renew, 401, "algorithm 'HS256' is not allowed", id="renew-x5c-hmac-leaf-key"),
    pytest.param(_kid_of_bob_iss_admin, 401, "key id", id="sign-kid-bob-iss-admin"),
    pytest.param(_kid_of_admin_iss_bob, 401, "key id", id="sign-kid-admin-iss-bob"),
    pytest.param(_kid_of_admin_signed_by_bob, 401, "token signature is invalid", id="sign-kid-admin-key-bob"),
    pytest.param(_kid_of_bob_iss_admin_on_ssh, 401, "key id", id="ssh-sign-kid-bob-iss-admin"),
    pytest.param(_aud_fragment_of_bob, 401, "invalid audience", id="sign-aud-fragment-other-provisioner"),
    # audience of another endpoint
    pytest.param(_aud("/1.0/revoke", "sign"), 401, "invalid audience", id="revoke-token-on-sign"),
    pytest.param(_aud("/1.0/ssh/sign", "sign"), 401, "invalid audience", id="ssh-sign-token-on-sign"),
    pytest.param(_aud("/1.0/renew", "sign"), 401, "invalid audience", id="renew-aud-token-on-sign"),
    pytest.param(_aud("/1.0/sign", "ssh/sign"), 401, "invalid audience", id="sign-token-on-ssh-sign"),
    pytest.param(_aud("/1.0/revoke", "ssh/sign"), 401, "invalid audience", id="revoke-token-on-ssh-sign"),
    pytest.param(_aud("/1.0/sign", "revoke"), 401, "invalid audience", id="sign-token-on-revoke"),
    pytest.param(_aud("/1.0/ssh/revoke", "revoke"), 401, "invalid audience", id="ssh-revoke-token-on-revoke"),
    pytest.param(_aud("/1.0/revoke", "ssh/revoke"), 401, "invalid audience", id="revoke-token-on-ssh-revoke"),
    pytest.param(_aud("/1.0/sign", "renew"), 401, "invalid audience", id="sign-aud-on-renew"),
    # audience of another host
    pytest.param(_aud("https://ca.evil.example.com/1.0/revoke", "revoke"), 401, "invalid audience",
                 id="revoke-aud-other-host"),
    pytest.param(_aud("https://ca.evil.example.com/1.0/ssh/sign", "ssh/sign"), 401, "invalid audience",
                 id="ssh-sign-aud-other-host"),
    pytest.param(_aud("https://ca.evil.example.com/1.0/ssh/revoke", "ssh/revoke"), 401, "invalid audience",
                 id="ssh-revoke-aud-other-host"),
    pytest.param(_aud("https://localhost:8443@evil.example.com/1.0/sign", "sign"), 401, "invalid audience",
                 id="sign-aud-userinfo-trick"),
    pytest.param(_aud("https://localhost.evil.example.com/1.0/sign", "sign"), 401, "invalid audience",
                 id="sign-aud-host-suffix-trick"),
    # times
    pytest.param(_times("ssh/sign", iat=-900, nbf=-900, exp=-200), 401, "token expired", id="ssh-sign-expired"),
    pytest.param(_times("revoke", iat=-900, nbf=-900, exp=-200), 401, "token expired", id="revoke-expired"),
    pytest.param(_times("ssh/revoke", iat=-900, nbf=-900, exp=-200), 401, "token expired",
                 id="ssh-revoke-expired"),
    pytest.param(_times("renew", exp=-200), 401, "token expired", id="renew-token-expired"),
    pytest.param(_times("ssh/renew", exp=-200), 401, "token expired", id="ssh-renew-token-expired"),
    pytest.param(_times("ssh/sign", nbf=300, exp=600), 401, "token not valid yet", id="ssh-sign-not-yet-valid"),
    pytest.param(_times("revoke", nbf=300, exp=600), 401, "token not valid yet", id="revoke-not-yet-valid"),
    pytest.param(_times("ssh/sign", exp=3 * 3600), 401, "token lifetime is longer than 1h0m0s",
                 id="ssh-sign-lifetime-3h"),
    pytest.param(_times("revoke", exp=30 * 86400), 401, "token lifetime is longer than 1h0m0s",
                 id="revoke-lifetime-30d"),
    pytest.param(_times("renew", exp=2 * 3600), 401, "token lifetime is longer than 1h0m0s",
                 id="renew-token-lifetime-2h"),
    pytest.param(_times("ssh/renew", exp=2 * 3600), 401, "token lifetime is longer than 1h0m0s",
                 id="ssh-renew-lifetime-2h"),
    # replay, and one jti across endpoints
    pytest.param(_replayed_revoke_token_on_other_path, 401, "token already used", id="revoke-token-replayed"),
    pytest.param(_replayed_ssh_token_on_unversioned_path, 401, "token already used", id="ssh-sign-token-replayed"),
    pytest.param(_jti_of_sign_reused_on_revoke, 401, "token already used", id="jti-sign-then-revoke"),
    pytest.param(_jti_of_sign_reused_on_ssh_sign, 401, "token already used", id="jti-sign-then-ssh-sign"),
    pytest.param(_jti_of_ssh_sign_reused_on_sign, 401, "token already used", id="jti-ssh-sign-then-sign"),
    pytest.param(_jti_of_revoke_reused_on_ssh_revoke, 401, "token already used", id="jti-revoke-then-ssh-revoke"),
    # malformed
    pytest.param(_deep_json_in_token, 401, "malformed token", id="token-claims-nested-5000-deep"),
    pytest.param(_token_over_16k, 401, "malformed token", id="token-over-16KiB"),
    pytest.param(_sshpop_token_on_x509_revoke, 401, "cannot revoke", id="sshpop-token-on-x509-revoke"),
]


# ---------------------------------------------------------------------------------------------- CSR attacks


def der_tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def der_children(der: bytes) -> list[bytes]:
    """The encoded elements inside the outer SEQUENCE ``der``."""

    def header(buf: bytes, pos: int) -> tuple[int, int]:
        first = buf[pos + 1]
        if first < 0x80:
            return pos + 2, first
        size = first & 0x7F
        return pos + 2 + size, int.from_bytes(buf[pos + 2:pos + 2 + size], "big")

    start, length = header(der, 0)
    out, pos = [], start
    while pos < start + length:
        body, n = header(der, pos)
        out.append(der[pos:body + n])
        pos = body + n
    return out


def resign_csr(tbs: bytes, key: ec.EllipticCurvePrivateKey, sig_alg: bytes) -> str:
    """A CSR PEM from a (tampered) CertificationRequestInfo, signed again so the signature verifies."""
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = der_tlv(0x30, tbs + sig_alg + der_tlv(0x03, b"\x00" + signature))
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _csr_duplicated_san_extension(h: Hostile) -> Attack:
    """Two subjectAltName extensions (RFC 5280: an extension appears at most once), validly signed.

    cryptography refuses to build it, so the CSR carries SAN and a placeholder extension 2.5.29.99 whose
    DER OID is as long as SAN's (2.5.29.17); the placeholder's OID bytes are then swapped for SAN's and
    the request is signed again: a well-formed, correctly signed CSR with the extension twice.
    """
    key = make_key()
    good = x509.SubjectAlternativeName([x509.DNSName(CN)])
    evil = x509.SubjectAlternativeName([x509.DNSName("evil.example.com")])
    placeholder = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.99"), evil.public_bytes())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)]))
           .add_extension(good, critical=False).add_extension(placeholder, critical=False)
           .sign(key, hashes.SHA256()))
    tbs, sig_alg, _ = der_children(csr.public_bytes(serialization.Encoding.DER))
    assert tbs.count(b"\x06\x03\x55\x1d\x63") == 1
    pem = resign_csr(tbs.replace(b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x11"), key, sig_alg)
    parsed = x509.load_pem_x509_csr(pem.encode())
    assert parsed.is_signature_valid
    with pytest.raises(x509.DuplicateExtension):
        parsed.extensions  # noqa: B018
    return sign_req(pem, h.ca.token(CN))


def _csr_sans(names: list[str], token_sans: list[str] | None = None, cn: str = CN) -> Callable[[Hostile], Attack]:
    def build(h: Hostile) -> Attack:
        csr, _ = make_csr(cn, names)
        return sign_req(csr, h.ca.token(CN, sans=token_sans if token_sans is not None else names))

    return build


def _csr_san_shape(**shape: Any) -> Callable[[Hostile], Attack]:
    """A CSR whose SAN carries a name no certificate carries (see test_sign_san_rule.SHAPES for them all)."""
    return lambda h: sign_req(_shape_csr(**shape), h.ca.token(CN))


def _token_sub(sub: str) -> Callable[[Hostile], Attack]:
    """A clean CSR and token SANs, but a subject (which becomes the certificate's CN) with a control character."""

    def build(h: Hostile) -> Attack:
        csr, _ = make_csr(CN, [CN])
        return sign_req(csr, h.ca.token(sub, sans=[CN]))

    return build


def _csr_bad_signature_on_rekey(h: Hostile) -> Attack:
    _, _, pem = victim(h)
    csr, _ = make_csr(CN)
    der = bytearray(x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    return rekey_req(pem, f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n")


def _csr_weak_rsa_on_rekey(h: Hostile) -> Attack:
    _, _, pem = victim(h)
    csr, _ = make_csr(CN, key=rsa.generate_private_key(65537, 1024))
    return rekey_req(pem, csr)


def _csr_weak_curve_on_rekey(h: Hostile) -> Attack:
    _, _, pem = victim(h)
    csr, _ = make_csr(CN, key=ec.generate_private_key(ec.SECP192R1()))
    return rekey_req(pem, csr)


THOUSAND = [f"h{i}.example.com" for i in range(1000)]

CSR_CASES = [
    pytest.param(_csr_duplicated_san_extension, 400, "invalid csr", id="csr-duplicated-san-extension"),
    pytest.param(_csr_sans(THOUSAND, [CN]), 400, "more than 100 subject alternative names", id="csr-1000-sans"),
    pytest.param(_csr_sans(["svc.example.com\x00.evil.example.com"]), 400, "control characters",
                 id="csr-san-nul-byte-in-token-too"),
    pytest.param(_csr_sans(["svc.example.com\x00.evil.example.com"], [CN]), 400, "control characters",
                 id="csr-san-nul-byte"),
    pytest.param(_token_sub(CN + "\x00.evil.example.com"), 400, "control characters", id="token-sub-nul-byte"),
    pytest.param(_token_sub(CN + "\n.evil.example.com"), 400, "control characters", id="token-sub-newline"),
    pytest.param(_csr_sans([CN, "*.example.com"], [CN]), 403, "SANs do not match the token",
                 id="csr-wildcard-san-not-in-token"),
    pytest.param(_csr_sans(["*.example.com"], [CN]), 403, "SANs do not match the token",
                 id="csr-wildcard-instead-of-name"),
    pytest.param(_csr_sans([CN], [CN], cn="*.example.com"), 403, "common name '*.example.com'",
                 id="csr-wildcard-common-name"),
    pytest.param(_csr_san_shape(raw=[_tlv(0x87, bytes([10, 0, 0, 0, 255, 0, 0, 0]))]), 400,
                 "IP address SAN 10.0.0.0/8 is a network", id="csr-san-ip-network"),
    pytest.param(_csr_san_shape(raw=[_tlv(0xA3, _tlv(0x30, b""))]), 400, "x400Address or ediPartyName",
                 id="csr-san-x400-address"),
    pytest.param(_csr_bad_signature_on_rekey, 400, "signature does not verify", id="rekey-csr-bad-signature"),
    pytest.param(_csr_weak_rsa_on_rekey, 400, "RSA key of 1024 bits is too small", id="rekey-csr-rsa-1024"),
    pytest.param(_csr_weak_curve_on_rekey, 400, "unsupported elliptic curve", id="rekey-csr-p192"),
]


# ---------------------------------------------------------------------------------------------- body attacks


def _big_body(path: str) -> Callable[[Hostile], Attack]:
    apps = {"/1.0/revoke": revoke_api.app, "/1.0/ssh/sign": ssh_api.app, "/1.0/ssh/revoke": ssh_api.app,
            "/1.0/ssh/renew": ssh_api.app, "/1.0/rekey": renew_api.app, "/1.0/renew": renew_api.app}

    def build(h: Hostile) -> Attack:
        return Attack(apps[path], path, json.dumps({"ott": "x", "pad": "A" * (70 * 1024)}))

    return build


def _deep_body(path: str, depth: int = 10_000) -> Callable[[Hostile], Attack]:
    apps = {"/1.0/sign": sign_api.app, "/1.0/revoke": revoke_api.app, "/1.0/ssh/sign": ssh_api.app,
            "/1.0/ssh/revoke": ssh_api.app, "/1.0/ssh/renew": ssh_api.app, "/1.0/ssh/rekey": ssh_api.app,
            "/1.0/rekey": renew_api.app, "/1.0/ssh/config": ssh_api.app, "/1.0/ssh/check-host": ssh_api.app}

    def build(h: Hostile) -> Attack:
        body = '{"templateData": ' + "[" * depth + "]" * depth + "}"
        kw = {"client_cert_pem": victim(h)[2]} if path == "/1.0/rekey" else {}
        return Attack(apps[path], path, body, kw=kw)

    return build


def _name(path: str) -> str:
    return path.removeprefix("/1.0/").replace("/", "-")


BODY_CASES = [
    *(pytest.param(_big_body(p), 413, "larger than 64 KiB", id=f"body-70KiB-{_name(p)}")
      for p in ("/1.0/revoke", "/1.0/ssh/sign", "/1.0/ssh/revoke", "/1.0/ssh/renew", "/1.0/rekey",
                "/1.0/renew")),
    *(pytest.param(_deep_body(p), 400, "invalid JSON", id=f"json-10000-deep-{_name(p)}")
      for p in ("/1.0/sign", "/1.0/revoke", "/1.0/ssh/sign", "/1.0/ssh/revoke", "/1.0/ssh/renew",
                "/1.0/ssh/rekey", "/1.0/rekey", "/1.0/ssh/config", "/1.0/ssh/check-host")),
]

# wrong types: every field of /sign, /revoke and /ssh/sign, each with values of every wrong JSON type; the
# rest of the request is valid (a real token, CSR or key, serial), so only the field can be the reason
WRONG = {"number": 7, "zero": 0, "false": False, "true": True, "list": ["x"], "empty-list": [],
         "object": {"x": 1}, "empty-object": {}, "list-of-number": [7]}
FIELDS = {
    "sign": {"csr": "number zero false true list empty-list object empty-object",
             "ott": "number zero false true list empty-list object empty-object",
             "notBefore": "number zero false true list empty-list object empty-object",
             "notAfter": "number zero false true list empty-list object empty-object",
             "templateData": "number zero false true list"},  # {} and {"x": 1} are valid templateData
    "revoke": {"serial": "number zero false true list empty-list object empty-object",
               "ott": "number zero false true list empty-list object empty-object",
               "reasonCode": "false true list empty-list object empty-object",
               "reason": "number zero false true list empty-list object empty-object",
               "passive": "number zero list empty-list object empty-object",
               "lineage": "number zero list empty-list object empty-object"},
    "ssh/sign": {"publicKey": "number zero false true list empty-list object empty-object",
                 "ott": "number zero false true list empty-list object empty-object",
                 "certType": "number zero false true list empty-list object empty-object",
                 "keyID": "number zero false true list empty-list object empty-object",
                 "principals": "number zero false true object empty-object list-of-number",
                 "validAfter": "number zero false true list empty-list object empty-object",
                 "validBefore": "number zero false true list empty-list object empty-object"},
}


def _valid_request(h: Hostile, endpoint: str, cert: x509.Certificate | None = None) -> Attack:
    if endpoint == "sign":
        return sign_req(make_csr(CN)[0], h.ca.token(CN))
    if endpoint == "revoke":
        assert cert is not None
        return revoke_req(serial_of(cert), revoke_token(h, serial_of(cert)), body={"reasonCode": 1})
    return ssh_sign_req(ssh_token(h.ca, "alice@example.com"), certType="user",
                        keyID="alice@example.com", principals=["alice"])


@pytest.mark.parametrize(("endpoint", "field"), [
    pytest.param(e, f, id=f"{e.replace('/', '-')}-{f}") for e, fields in FIELDS.items() for f in fields
])
def test_wrong_types_are_refused(hostile, endpoint, field):
    target = victim(hostile)[0] if endpoint == "revoke" else None  # every refusal leaves it unrevoked
    for name in FIELDS[endpoint][field].split():
        attack = _valid_request(hostile, endpoint, target)
        attack.body[field] = WRONG[name]
        answer = refused(attack, 400, "")
        assert answer["message"] != PREFIX[400] + ".", (field, name, answer)
    # the same request with the field intact is accepted: the refusals were about the types
    attack = _valid_request(hostile, endpoint, target)
    status, body = call(attack.app, attack.method, attack.path, attack.body, **attack.kw)
    assert status in (200, 201), body


# unicode tricks: the token names one string, the CSR another that looks (or normalizes) the same


CAFE_NFC = unicodedata.normalize("NFC", "café.example.com")
CAFE_NFD = unicodedata.normalize("NFD", "café.example.com")
assert CAFE_NFC != CAFE_NFD


def _unicode_csr_cn(cn: str, sub: str) -> Callable[[Hostile], Attack]:
    """CSR with CN ``cn`` and the token's (ASCII) SAN; the token's subject is ``sub``."""

    def build(h: Hostile) -> Attack:
        csr, _ = make_csr(cn, ["cafe.example.com"])
        return sign_req(csr, h.ca.token(sub, sans=["cafe.example.com"]))

    return build


def _kelvin_sign_san(h: Hostile) -> Attack:
    """Token SAN with KELVIN SIGN (U+212A), which str.lower() folds to ASCII 'k'; CSR asks for 'k8s…'."""
    csr, _ = make_csr("k8s.example.com", ["k8s.example.com"])
    return sign_req(csr, h.ca.token("\u212a8s.example.com", sans=["\u212a8s.example.com"]))


UNICODE_CASES = [
    pytest.param(_unicode_csr_cn("сafe.example.com", "cafe.example.com"), 403, "common name",
                 id="unicode-homoglyph-cyrillic-cn"),
    pytest.param(_unicode_csr_cn("\u202emoc.elpmaxe.efac", "cafe.example.com"), 403, "common name",
                 id="unicode-rtl-override-cn"),
    pytest.param(_unicode_csr_cn("cafe\u200b.example.com", "cafe.example.com"), 403, "common name",
                 id="unicode-zero-width-space-cn"),
    pytest.param(_unicode_csr_cn(CAFE_NFD, CAFE_NFC), 403, "common name", id="unicode-nfd-cn-nfc-sub"),
    pytest.param(_unicode_csr_cn(CAFE_NFC, CAFE_NFD), 403, "common name", id="unicode-nfc-cn-nfd-sub"),
    pytest.param(_kelvin_sign_san, 403, "SANs do not match the token", id="unicode-kelvin-sign-san"),
]


def test_nfc_common_name_matching_the_token_is_issued(hostile):
    """Control for the unicode cases: the very same form the token names is accepted."""
    status, body = call(sign_api.app, "POST", "/1.0/sign", _unicode_csr_cn(CAFE_NFC, CAFE_NFC)(hostile).body)
    assert status == 201, body
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CAFE_NFC


# ---------------------------------------------------------------------------------------------- renewal attacks


def custom_leaf(*, eku: tuple[x509.ObjectIdentifier, ...], cn: str = "client.example.com",
                issuer: x509.Certificate | None = None, signer: Any = None,
                record: bool = True) -> tuple[x509.Certificate, Any, str]:
    """A leaf built directly (ours by default, with the given EKU), recorded like an issued one."""
    auth = authority.get()
    key = make_key()
    issuer = issuer or auth.intermediate
    prov = auth.provisioners.get("admin")
    nb = clock.now() - dt.timedelta(minutes=1)
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(profile.new_serial())
        .not_valid_before(nb).not_valid_after(nb + dt.timedelta(hours=1))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .add_extension(extensions.extension(prov.type_code, prov.name, prov.credential_id), critical=False)
    )
    cert = builder.sign(as_private_key(signer or auth.intermediate_signer), hashes.SHA256())
    if record:
        certificates.record_issuance(issuance.record(cert, provisioner="admin", provisioner_type="JWK",
                                                     issued_at=int(clock.now().timestamp())), None)
    return cert, key, issuance.pem(cert)


def other_ca() -> tuple[x509.Certificate, MemorySigner]:
    """A complete stranger: its own name and key (not our intermediate's look-alike)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Elsewhere Intermediate CA")])
    now = clock.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(profile.new_serial())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, MemorySigner(key)


def _other_ca_over_mtls(h: Hostile) -> Attack:
    ca, signer = other_ca()
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), issuer=ca, signer=signer, record=False)
    return renew_mtls_req(pem)


def _other_ca_in_x5c_claiming_our_intermediate(h: Hostile) -> Attack:
    """A stranger's leaf with our intermediate appended: the chain is not what it claims."""
    ca, signer = other_ca()
    cert, key, _ = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), cn=CN, issuer=ca, signer=signer,
                               record=False)
    return renew_bearer_req(renew_token(cert, key))


def _other_ca_in_x5c_with_its_own_chain(h: Hostile) -> Attack:
    ca, signer = other_ca()
    cert, key, _ = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), cn=CN, issuer=ca, signer=signer,
                               record=False)
    return renew_bearer_req(renew_token(cert, key, chain=[der_b64(cert), der_b64(ca)]))


def _our_intermediate_over_mtls(h: Hostile) -> Attack:
    return renew_mtls_req(authority.get().intermediate_pem)


def _our_root_over_mtls(h: Hostile) -> Attack:
    return renew_mtls_req(authority.get().root_pems[0])


LATER = dt.timedelta(hours=1)  # a 5-minute certificate issued now has expired by then


def _expired_over_mtls(h: Hostile) -> Attack:
    _, _, pem = victim(h, notAfter="5m")
    return dataclasses.replace(renew_mtls_req(pem), shift=LATER)


def _expired_by_token(h: Hostile) -> Attack:
    cert, key, _ = victim(h, notAfter="5m")
    with clock.shift(LATER):  # the token itself is fresh when it is presented
        token = renew_token(cert, key)
    return dataclasses.replace(renew_bearer_req(token), shift=LATER)


def _revoked_by_token(h: Hostile) -> Attack:
    cert, key, _ = victim(h)
    status, body = call(revoke_api.app, "POST", "/revoke",
                        {"serial": serial_of(cert), "ott": revoke_token(h, serial_of(cert))})
    assert status == 200, body
    return renew_bearer_req(renew_token(cert, key))


def _revoked_rekey(h: Hostile) -> Attack:
    cert, _, pem = victim(h)
    status, body = call(revoke_api.app, "POST", "/revoke", {"serial": serial_of(cert)}, client_cert_pem=pem)
    assert status == 200, body
    return rekey_req(pem, make_csr(CN)[0])


def _server_only_rekey(h: Hostile) -> Attack:
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    return rekey_req(pem, make_csr(CN)[0])


def _server_only_over_mtls(h: Hostile) -> Attack:
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.SERVER_AUTH,), cn="web.example.com")
    return renew_mtls_req(pem)


def _renew_token_signed_by_other_leaf(h: Hostile) -> Attack:
    """x5cInsecure carries victim A, the token is signed by B's (also ours, also valid) key."""
    a, _, _ = victim(h)
    _, b_key, _ = victim(h)
    return renew_bearer_req(renew_token(a, b_key))


def _renew_token_with_second_leaf_first(h: Hostile) -> Attack:
    """The chain's first element decides: another leaf at position 2 is not 'the' certificate."""
    a, a_key, _ = victim(h)
    b, _, _ = victim(h, "b.example.com")
    return renew_bearer_req(renew_token(b, a_key, sub=CN, chain=[der_b64(b), der_b64(a)]))


RENEW_CASES = [
    pytest.param(_other_ca_over_mtls, 401, "not issued by this certificate authority", id="renew-other-ca-mtls"),
    pytest.param(_other_ca_in_x5c_claiming_our_intermediate, 401, "not issued by this certificate authority",
                 id="renew-other-ca-x5c-with-our-intermediate"),
    pytest.param(_other_ca_in_x5c_with_its_own_chain, 401, "not issued by this certificate authority",
                 id="renew-other-ca-x5c-own-chain"),
    pytest.param(_our_intermediate_over_mtls, 401, "not issued by this certificate authority",
                 id="renew-our-intermediate-mtls"),
    pytest.param(_our_root_over_mtls, 401, "not issued by this certificate authority", id="renew-our-root-mtls"),
    pytest.param(_expired_over_mtls, 401, "certificate has expired", id="renew-expired-mtls"),
    pytest.param(_expired_by_token, 401, "certificate has expired", id="renew-expired-x5c"),
    pytest.param(_revoked_by_token, 401, "certificate has been revoked", id="renew-revoked-x5c"),
    pytest.param(_revoked_rekey, 401, "certificate has been revoked", id="rekey-revoked"),
    pytest.param(_server_only_over_mtls, 401, "client authentication", id="renew-server-only-mtls"),
    pytest.param(_server_only_rekey, 401, "client authentication", id="rekey-server-only"),
    pytest.param(_renew_token_signed_by_other_leaf, 401, "token signature is invalid",
                 id="renew-x5c-signed-by-other-leaf"),
    pytest.param(_renew_token_with_second_leaf_first, 401, "token signature is invalid",
                 id="renew-x5c-leaf-order-swap"),
]


# ---------------------------------------------------------------------------------------------- SSH attacks


def _ssh_sub(sub: str) -> Callable[[Hostile], Attack]:
    """Default principals come from the subject: an injected separator must not split into two."""

    def build(h: Hostile) -> Attack:
        return ssh_sign_req(ssh_token(h.ca, sub))

    return build


def _ssh_body_principals(principals: list[str], **token_opts: Any) -> Callable[[Hostile], Attack]:
    def build(h: Hostile) -> Attack:
        return ssh_sign_req(ssh_token(h.ca, "alice", **token_opts), principals=principals)

    return build


def _ssh_key_id_injection(h: Hostile) -> Attack:
    return ssh_sign_req(ssh_token(h.ca, "alice", keyID="alice\nroot"))


def _ssh_user_token_host_cert(h: Hostile) -> Attack:
    return ssh_sign_req(ssh_token(h.ca, "web.example.com", certType="user"), certType="host")


def _ssh_host_token_user_cert(h: Hostile) -> Attack:
    return ssh_sign_req(ssh_token(h.ca, "root", certType="host"), certType="user")


def _ssh_host_token_extra_principals(h: Hostile) -> Attack:
    token = ssh_token(h.ca, "web.example.com", certType="host", principals=["web.example.com"])
    return ssh_sign_req(token, certType="host", principals=["web.example.com", "db.example.com"])


def _ssh_user_cert_renews_as_host(h: Hostile) -> Attack:
    crt, key = user_cert(h.ca)
    return Attack(ssh_api.app, "/1.0/ssh/rekey",
                  {"ott": sshpop_token(crt, key, "/1.0/ssh/rekey"), "publicKey": b64key(make_key())})


def _ssh_foreign_host_cert_rekey(h: Hostile) -> Attack:
    key = make_key()
    now = int(time.time())
    cert = build_and_sign(key.public_key(), serial=7, cert_type=HOST, key_id="web", principals=["web"],
                          valid_after=now - 60, valid_before=now + 3600, signer=MemorySigner(make_key()))
    token = sshpop_token(base64.b64encode(cert.raw).decode(), key, "/1.0/ssh/rekey")
    return Attack(ssh_api.app, "/1.0/ssh/rekey", {"ott": token, "publicKey": b64key(make_key())})


def _ssh_sshpop_renew_token_signed_by_other_host(h: Hostile) -> Attack:
    crt, _ = host_cert(h.ca)
    _, other_key = host_cert(h.ca, "other.example.com")
    return Attack(ssh_api.app, "/1.0/ssh/renew",
                  {"ott": sshpop_token(crt, other_key, "/1.0/ssh/renew",
                                       kid=jose.thumbprint(jose.public_jwk(parse_certificate(
                                           base64.b64decode(crt)).public_key)))})


SSH_CASES = [
    pytest.param(_ssh_sub("alice,root"), 400, "commas are not allowed", id="ssh-sub-principal-comma"),
    pytest.param(_ssh_sub("alice\nroot"), 400, "newlines are not allowed", id="ssh-sub-principal-newline"),
    pytest.param(_ssh_sub("alice\x00root"), 400, "NUL characters are not allowed", id="ssh-sub-principal-nul"),
    pytest.param(_ssh_sub("alice\rroot"), 400, "newlines are not allowed", id="ssh-sub-principal-cr"),
    pytest.param(_ssh_body_principals(["alice,root"]), 403, "principals does not match",
                 id="ssh-body-principal-comma"),
    pytest.param(_ssh_body_principals(["alice\nroot"]), 403, "principals does not match",
                 id="ssh-body-principal-newline"),
    pytest.param(_ssh_body_principals(["alice\x00root"]), 403, "principals does not match",
                 id="ssh-body-principal-nul"),
    pytest.param(_ssh_key_id_injection, 400, "newlines are not allowed", id="ssh-key-id-newline"),
    pytest.param(_ssh_user_token_host_cert, 403, "got host, want user", id="ssh-user-token-for-host-cert"),
    pytest.param(_ssh_host_token_user_cert, 403, "got user, want host", id="ssh-host-token-for-user-cert"),
    pytest.param(_ssh_host_token_extra_principals, 403, "principals does not match",
                 id="ssh-host-token-extra-principals"),
    pytest.param(_ssh_user_cert_renews_as_host, 401, "must be a host ssh certificate", id="ssh-rekey-user-cert"),
    pytest.param(_ssh_foreign_host_cert_rekey, 401, "could not find valid ca signer", id="ssh-rekey-foreign-ca"),
    pytest.param(_ssh_sshpop_renew_token_signed_by_other_host, 401, "token signature is invalid",
                 id="ssh-renew-sshpop-signed-by-other-host"),
]


# ---------------------------------------------------------------------------------------------- revoke attacks


def _revoke_other_serial_over_mtls(h: Hostile) -> Attack:
    _, _, mine = victim(h, "mine.example.com")
    theirs, _, _ = victim(h, "theirs.example.com")
    return revoke_req(serial_of(theirs), client_cert_pem=mine)


def _revoke_other_serial_over_mtls_with_token_for_mine(h: Hostile) -> Attack:
    """mTLS as A, a (valid) revoke token for A, the body names B."""
    mine, _, pem = victim(h, "mine.example.com")
    theirs, _, _ = victim(h, "theirs.example.com")
    return revoke_req(serial_of(theirs), revoke_token(h, serial_of(mine)), client_cert_pem=pem)


def _revoke_token_sub_other_serial(h: Hostile) -> Attack:
    mine, _, _ = victim(h, "mine.example.com")
    theirs, _, _ = victim(h, "theirs.example.com")
    return revoke_req(serial_of(theirs), revoke_token(h, serial_of(mine)))


def _revoke_token_sub_padded_serial(h: Hostile) -> Attack:
    """sub "<serial> " or "+<serial>": a look-alike of the serial is not the serial."""
    cert, _, _ = victim(h)
    return revoke_req(serial_of(cert), revoke_token(h, "+" + serial_of(cert)))


def _ssh_revoke_token_sub_other_serial(h: Hostile) -> Attack:
    mine, _ = user_cert(h.ca)
    theirs, _ = user_cert(h.ca, "bob@example.com")
    return ssh_revoke_req(ssh_serial(theirs), h.ca.token(str(ssh_serial(mine)), path="/1.0/ssh/revoke"))


def _ssh_revoke_sshpop_of_other_cert(h: Hostile) -> Attack:
    mine, key = host_cert(h.ca)
    theirs, _ = host_cert(h.ca, "theirs.example.com")
    serial = ssh_serial(theirs)
    return ssh_revoke_req(serial, sshpop_token(mine, key, "/1.0/ssh/revoke", sub=str(serial)))


def _x509_revoke_of_ssh_serial(h: Hostile) -> Attack:
    crt, _ = user_cert(h.ca)
    serial = str(ssh_serial(crt))
    return revoke_req(serial, revoke_token(h, serial))


REVOKE_CASES = [
    pytest.param(_revoke_other_serial_over_mtls, 400, "different", id="revoke-other-serial-mtls"),
    pytest.param(_revoke_other_serial_over_mtls_with_token_for_mine, 401, "subject",
                 id="revoke-other-serial-mtls-plus-own-token"),
    pytest.param(_revoke_token_sub_other_serial, 401, "subject", id="revoke-token-sub-other-serial"),
    pytest.param(_revoke_token_sub_padded_serial, 401, "subject", id="revoke-token-sub-plus-serial"),
    pytest.param(_ssh_revoke_token_sub_other_serial, 401, "is not the serial number",
                 id="ssh-revoke-token-sub-other-serial"),
    pytest.param(_ssh_revoke_sshpop_of_other_cert, 400, "subject must be equivalent",
                 id="ssh-revoke-sshpop-other-cert"),
    pytest.param(_x509_revoke_of_ssh_serial, 404, "was not found", id="x509-revoke-of-ssh-serial"),
]


# ---------------------------------------------------------------------------------------------- the run


CASES = [*TOKEN_CASES, *CSR_CASES, *BODY_CASES, *UNICODE_CASES, *RENEW_CASES, *SSH_CASES, *REVOKE_CASES]


@pytest.mark.parametrize(("build", "status", "text"), CASES)
def test_hostile_request_is_refused(hostile, build, status, text):
    refused(build(hostile), status, text)


def test_every_endpoint_is_attacked():
    """The matrix covers every issuing or revoking endpoint (and the two SSH info POSTs)."""
    ids = " ".join(str(c.id) for c in CASES)
    for endpoint in ("sign", "renew", "rekey", "revoke", "ssh-sign", "ssh-renew", "ssh-rekey", "ssh-revoke",
                     "ssh-config", "ssh-check-host"):
        assert endpoint in ids, endpoint
    assert len(CASES) + sum(len(f) for f in FIELDS.values()) >= 40


def test_the_ca_still_issues_after_the_attacks(hostile):
    csr, _ = make_csr(CN)
    status, body = call(sign_api.app, "POST", "/1.0/sign", {"csr": csr, "ott": hostile.ca.token(CN)})
    assert status == 201 and "crt" in body, body
    status, body = call(ssh_api.app, "POST", "/1.0/ssh/sign", ssh_sign_req(ssh_token(hostile.ca, "alice")).body)
    assert status == 201 and "crt" in body, body


# ---------------------------------------------------------------------------------------------- issue 10 (sec)
# Regressions of the outside review: SSHPOP with federated keys (1), names over their bounds (3), JWS ``crit``
# and ``b64`` (5), lineage across a rekey (7), X5C with a revoked leaf of ours (8). One more CA setup for
# these: a partner SSH CA whose keys are federated, an X5C provisioner rooted at our own root, an OIDC one.



@dataclasses.dataclass
class Sec:
    h: Hostile
    partner: MemorySigner  # a federated SSH CA (its keys are published as ssh.federatedUserKeys/HostKeys)
    idp: Provider


@pytest.fixture(scope="module")
def sec(hostile: Hostile) -> Sec:
    oidc_discovery.reset()
    partner = MemorySigner(make_key())
    with Provider() as idp:
        doc, version = authority_store.load()
        line = to_authorized_key(partner.public_key())  # type: ignore[arg-type]
        doc["ssh"] = {**doc["ssh"], "federatedUserKeys": [line], "federatedHostKeys": [line]}
        doc["provisioners"] += [
            {"type": "X5C", "name": "ours", "roots": authority.get().root_pems[0], "claims": {"enableSSHCA": True}},
            idp.entry(admins=["root@example.com"], domains=["example.com"]),
        ]
        authority_store.save(doc, expected_version=version)
        authority.reset()
        yield Sec(hostile, partner, idp)
    oidc_discovery.reset()


def resign(token: str, key: Any, **header: Any) -> str:
    """``token`` with ``header`` members added, signed again by ``key`` over the usual signing input (a
    verifier honouring ``b64: false`` would compute another one; ours must refuse the token either way)."""
    head, payload, _ = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    alg = fields["alg"]  # the key's algorithm, whatever the header says after the update
    fields.update(header)
    signing_input = b64url(json.dumps(fields).encode()) + "." + payload
    return signing_input + "." + b64url(jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), key))


CRIT = {"crit": ["exp"]}
B64 = {"b64": False}


def partner_sshpop(s: Sec, serial: int, cert_type: int, path: str, **kw: Any) -> str:
    """An SSHPOP token whose certificate the partner CA signed, reusing ``serial`` (one of our records)."""
    key = make_key()
    now = int(time.time())
    cert = build_and_sign(key.public_key(), serial=serial, cert_type=cert_type, key_id="attacker", principals=["*"],
                          valid_after=now - 60, valid_before=now + 3600, signer=s.partner)
    return sshpop_token(base64.b64encode(cert.raw).decode(), key, path, **kw)


def _federated_renew(s: Sec) -> Attack:
    crt, _ = host_cert(s.h.ca)
    return Attack(ssh_api.app, "/1.0/ssh/renew", {"ott": partner_sshpop(s, ssh_serial(crt), HOST, "/1.0/ssh/renew")})


def _federated_rekey(s: Sec) -> Attack:
    crt, _ = host_cert(s.h.ca)
    return Attack(ssh_api.app, "/1.0/ssh/rekey", {"ott": partner_sshpop(s, ssh_serial(crt), HOST, "/1.0/ssh/rekey"),
                                                   "publicKey": b64key(make_key())})


def _federated_revoke(s: Sec) -> Attack:
    crt, _ = user_cert(s.h.ca)
    serial = ssh_serial(crt)
    return ssh_revoke_req(serial, partner_sshpop(s, serial, USER, "/1.0/ssh/revoke", sub=str(serial)))


def _jose(header: dict[str, Any], endpoint: str) -> Callable[[Sec], Attack]:
    """A valid token of each type, with ``header`` added to its protected header."""

    def build(s: Sec) -> Attack:
        h = s.h
        if endpoint == "sign":
            return sign_req(make_csr(CN)[0], resign(h.ca.token(CN), h.ca.provisioner_key, **header))
        if endpoint == "revoke":
            cert, _, _ = victim(h)
            return revoke_req(serial_of(cert), resign(revoke_token(h, serial_of(cert)), h.ca.provisioner_key, **header))
        if endpoint == "ssh-sign":
            return ssh_sign_req(resign(ssh_token(h.ca, "alice"), h.ca.provisioner_key, **header))
        if endpoint == "ssh-renew":
            crt, key = host_cert(h.ca)
            return Attack(ssh_api.app, "/1.0/ssh/renew",
                          {"ott": resign(sshpop_token(crt, key, "/1.0/ssh/renew"), key, **header)})
        if endpoint == "ssh-revoke":
            crt, key = user_cert(h.ca)
            serial = ssh_serial(crt)
            return ssh_revoke_req(serial, resign(sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial)), key,
                                                 **header))
        if endpoint == "renew":
            cert, key, _ = victim(h)
            return renew_bearer_req(resign(renew_token(cert, key), key, **header))
        if endpoint == "x5c-sign":
            cert, key, _ = victim(h, "device.example.com")
            token = make_token([cert, authority.get().intermediate], key,
                               x5c_claims("device.example.com", name="ours", aud=CA_URL + "/1.0/sign"))
            return sign_req(make_csr("device.example.com")[0], resign(token, key, **header))
        assert endpoint == "oidc-sign"
        return sign_req(make_csr("alice@example.com")[0], resign(s.idp.issue(), s.idp.current.key, **header))

    return build


def revoked_leaf(s: Sec, name: str = "device.example.com") -> tuple[x509.Certificate, Any]:
    """A certificate of ours, revoked for key compromise (the thief still holds the key)."""
    cert, key, _ = victim(s.h, name)
    status, body = call(revoke_api.app, "POST", "/1.0/revoke",
                        {"serial": serial_of(cert), "ott": revoke_token(s.h, serial_of(cert)), "reasonCode": 1})
    assert status == 200, body
    return cert, key


def _x5c_revoked_leaf(endpoint: str) -> Callable[[Sec], Attack]:
    def build(s: Sec) -> Attack:
        cert, key = revoked_leaf(s)
        chain = [cert, authority.get().intermediate]
        if endpoint == "sign":
            token = make_token(chain, key, x5c_claims("device.example.com", name="ours", aud=CA_URL + "/1.0/sign"))
            return sign_req(make_csr("device.example.com")[0], token)
        if endpoint == "ssh-sign":
            ssh = {"ssh": {"certType": "host", "principals": ["device.example.com"]}}
            token = make_token(chain, key, x5c_claims("device.example.com", name="ours", aud=CA_URL + "/1.0/ssh/sign",
                                                      step=ssh))
            return ssh_sign_req(token, certType="host", principals=["device.example.com"])
        other, _, _ = victim(s.h, "other.example.com")
        token = make_token(chain, key, x5c_claims(serial_of(other), name="ours", aud=CA_URL + "/1.0/revoke"))
        return revoke_req(serial_of(other), token)

    return build


SEC_CASES = [
    pytest.param(_federated_renew, 401, "could not find valid ca signer", id="ssh-renew-federated-partner-cert"),
    pytest.param(_federated_rekey, 401, "could not find valid ca signer", id="ssh-rekey-federated-partner-cert"),
    pytest.param(_federated_revoke, 401, "could not find valid ca signer", id="ssh-revoke-federated-partner-cert"),
    *(pytest.param(_jose(CRIT, e), 401, "critical header", id=f"{e}-jws-crit")
      for e in ("sign", "revoke", "ssh-sign", "ssh-renew", "ssh-revoke", "renew", "x5c-sign", "oidc-sign")),
    *(pytest.param(_jose(B64, e), 401, "unencoded payload", id=f"{e}-jws-b64-false")
      for e in ("sign", "revoke", "ssh-renew", "renew", "x5c-sign", "oidc-sign")),
    # found by test_fuzz_parsers: header members of the wrong JSON type were a 500 (unhashable in a lookup)
    pytest.param(_jose({"alg": ["ES256"]}, "sign"), 401, "malformed token header", id="sign-jws-alg-list"),
    pytest.param(_jose({"kid": ["x"]}, "sign"), 401, "malformed token header", id="sign-jws-kid-list"),
    pytest.param(_jose({"kid": {"a": 1}}, "ssh-renew"), 401, "malformed token header", id="ssh-renew-jws-kid-object"),
    pytest.param(_jose({"typ": 7}, "oidc-sign"), 401, "malformed token header", id="oidc-sign-jws-typ-number"),
    pytest.param(_x5c_revoked_leaf("sign"), 401, "x5c certificate has been revoked", id="x5c-sign-revoked-leaf"),
    pytest.param(_x5c_revoked_leaf("ssh-sign"), 401, "x5c certificate has been revoked",
                 id="x5c-ssh-sign-revoked-leaf"),
    pytest.param(_x5c_revoked_leaf("revoke"), 401, "x5c certificate has been revoked", id="x5c-revoke-revoked-leaf"),
]


@pytest.mark.parametrize(("build", "status", "text"), SEC_CASES)
def test_sec_hostile_request_is_refused(sec, build, status, text):
    refused(build(sec), status, text)


def test_x5c_leaf_of_ours_not_revoked_is_accepted(sec):
    """The control for the revoked-leaf cases: the same chain, unrevoked, is issued (one revocation read)."""
    cert, key, _ = victim(sec.h, "device.example.com")
    token = make_token([cert, authority.get().intermediate], key,
                       x5c_claims("device.example.com", name="ours", aud=CA_URL + "/1.0/sign"))
    status, body = call(sign_api.app, "POST", "/1.0/sign", sign_req(make_csr("device.example.com")[0], token).body)
    assert status == 201, body


def test_federated_keys_are_still_published(sec):
    """Federation is trust for relying parties (GET /ssh/federation), not authentication."""
    status, body = call(ssh_api.app, "GET", "/1.0/ssh/federation")
    assert status == 200, body
    line = to_authorized_key(sec.partner.public_key()).split()[1]  # type: ignore[arg-type]
    assert any(line in k for k in body["userKey"]) and any(line in k for k in body["hostKey"]), body


# lineage across a rekey (7)


def _rekeyed_lineage(h: Hostile) -> tuple[list[str], list[str]]:
    """A → B (renewed: same key) and A → C (rekeyed: the owner's new key) → D (renewed from C)."""
    _, _, a = victim(h, "lineage.example.com")
    pems = [a]
    for app, path, body, parent in ((renew_api.app, "/renew", None, 0),
                                    (renew_api.app, "/1.0/rekey", {"csr": make_csr("lineage.example.com")[0]}, 0),
                                    (renew_api.app, "/renew", None, 2)):
        status, out = call(app, "POST", path, body, client_cert_pem=pems[parent])
        assert status == 201, out
        pems.append(out["crt"])
    return [serial_of(x509.load_pem_x509_certificate(p.encode())) for p in pems], pems


def test_self_revocation_lineage_stops_at_a_rekey(hostile):
    """A thief of A's key (rekeyed away from) revokes A and its same-key renewal B, never C or D."""
    (a, b, c, d), pems = _rekeyed_lineage(hostile)
    status, body = call(revoke_api.app, "POST", "/1.0/revoke", {"serial": a, "reasonCode": 1, "lineage": True},
                        client_cert_pem=pems[0])
    assert status == 200 and body["lineage"] == [b], body
    assert revocations.get(a) is not None and revocations.get(b) is not None
    assert revocations.get(c) is None and revocations.get(d) is None
    assert call(renew_api.app, "POST", "/renew", client_cert_pem=pems[3])[0] == 201  # the owner's certificate lives


def test_token_revocation_lineage_crosses_a_rekey(hostile):
    """An administrator (a provisioner's revoke token) revokes the whole lineage, rekeys included."""
    (a, b, c, d), _ = _rekeyed_lineage(hostile)
    status, body = call(revoke_api.app, "POST", "/1.0/revoke",
                        {"serial": a, "ott": revoke_token(hostile, a), "reasonCode": 1, "lineage": True})
    assert status == 200 and sorted(body["lineage"]) == sorted([b, c, d]), body


# names over their bounds (3): issued with the name in the SANs (no CN over 64), pkilint clean; never a 500


LONG_DNS = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, the longest DNS name
LONG_EMAIL = "firstname.middlename.lastname" + "@" + "mail.engineering.department.example.com"  # 69 characters


def long_csr(cn: str, sans: list[str], key: Any = None) -> str:
    """A CSR as step (Go) builds it: a CN of any length (cryptography's builder refuses over 64 octets)."""
    key = key or make_key()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)]) if cn else x509.Name([])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.RFC822Name(s) if "@" in s else x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def named_by_sans(pem: str, name: str) -> x509.Certificate:
    """The issued certificate carries ``name`` in its (critical) SANs, a subject without CN, no lint."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert name in [str(v) for v in san.value.get_values_for_type(x509.DNSName)
                    + san.value.get_values_for_type(x509.RFC822Name)]
    assert cert.subject == x509.Name([]) and san.critical
    assert pkilint(cert) == ""
    return cert


@pytest.mark.parametrize("name", [LONG_DNS, "h" * 58 + ".example.com", LONG_EMAIL],
                         ids=["dns-253", "host-70", "email-69"])
def test_long_names_are_issued_and_renewed(hostile, name):
    status, body = call(sign_api.app, "POST", "/1.0/sign",
                        {"csr": long_csr(name, [name]), "ott": hostile.ca.token(name)})
    assert status == 201, body
    named_by_sans(body["crt"], name)
    status, body = call(renew_api.app, "POST", "/renew", client_cert_pem=body["crt"])  # the builder path
    assert status == 201, body
    named_by_sans(body["crt"], name)


def test_long_name_renews_by_token(hostile):
    """step's renew token carries sub = the leaf's CN; with no CN there is none to match (as step-ca)."""
    key = make_key()
    csr = long_csr(LONG_DNS, [LONG_DNS], key)
    status, body = call(sign_api.app, "POST", "/1.0/sign", {"csr": csr, "ott": hostile.ca.token(LONG_DNS)})
    assert status == 201, body
    cert = named_by_sans(body["crt"], LONG_DNS)
    now = int(time.time())
    claims = {"iss": "step-ca-client/1.0", "aud": CA_URL + "/1.0/renew", "iat": now, "nbf": now, "exp": now + 300,
              "jti": uuid.uuid4().hex}  # no sub: step leaves out an empty one
    token = jwt.encode(claims, key, algorithm="ES256",
                       headers={"x5cInsecure": [der_b64(cert), der_b64(authority.get().intermediate)]})
    status, body = call(renew_api.app, "POST", "/1.0/renew", headers={"Authorization": f"Bearer {token}"})
    assert status == 201, body
    named_by_sans(body["crt"], LONG_DNS)


def test_long_oidc_subject_is_issued(sec):
    """A real IdP's opaque sub can be longer than a CN may be: CN = sub is left out, the e-mail names it."""
    sub = "auth0|" + "7f3a9c" * 16
    status, body = call(sign_api.app, "POST", "/1.0/sign",
                        {"csr": long_csr(sub, ["alice@example.com"]), "ott": sec.idp.issue(sub=sub)})
    assert status == 201, body
    named_by_sans(body["crt"], "alice@example.com")


def _long_name(cn: str, sans: list[str]) -> Callable[[Sec], Attack]:
    def build(s: Sec) -> Attack:
        token = s.h.ca.token(cn, sans=sans) if sans else s.idp.issue(sub="42", email="root@example.com")
        return sign_req(long_csr(cn, sans), token)

    return build


LONG_NAME_CASES = [
    pytest.param(_long_name("x" * 64 + ".example.com", ["x" * 64 + ".example.com"]), 400, "longer than DNS allows",
                 id="sign-dns-label-64"),
    pytest.param(_long_name("a" * 250 + ".com", ["a" * 250 + ".com"]), 400, "longer than DNS allows",
                 id="sign-dns-name-254"),
    pytest.param(_long_name("x" * 65 + "@example.com", ["x" * 65 + "@example.com"]), 400, "longer than SMTP allows",
                 id="sign-email-local-part-65"),
    pytest.param(_long_name("y" * 80, []), 400, "no subject alternative name", id="sign-admin-long-cn-no-sans"),
]


@pytest.mark.parametrize(("build", "status", "text"), LONG_NAME_CASES)
def test_names_beyond_their_bounds_are_refused(sec, build, status, text):
    refused(build(sec), status, text)


def test_long_ssh_key_id_and_principal(hostile):
    """SSH has no 64-character bound: a 253-character host principal and a long key ID are issued."""
    status, body = call(ssh_api.app, "POST", "/1.0/ssh/sign", ssh_sign_req(
        ssh_token(hostile.ca, LONG_DNS, certType="host", keyID="k" * 1000), certType="host").body)
    assert status == 201, body
    cert = parse_certificate(base64.b64decode(body["crt"]))
    assert list(cert.principals) == [LONG_DNS] and cert.key_id == "k" * 1000
    status, body = call(ssh_api.app, "POST", "/1.0/ssh/sign",
                        ssh_sign_req(ssh_token(hostile.ca, "alice", keyID="k" * 1025)).body)
    assert status == 400 and "longer than 1024" in body["message"], body
