"""POST /ssh/renew, /ssh/rekey (SSHPOP) and /ssh/revoke, and the KRL at GET /ssh/krl, against moto."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from stepless import clock, jose
from stepless.api.ssh import app
from stepless.signers.memory import MemorySigner
from stepless.ssh import HOST, build_and_sign, encode_public_key, parse_certificate, to_line
from tests.integration.test_ssh_sign import b64key, cert_of, sign
from tests.support.ca import CA_URL, call

SSH_KEYGEN = shutil.which("ssh-keygen")


def sshpop_token(cert_b64: str, key, path: str, *, sub: str = "host", iss: str = "sshpop",
                 aud: str | None = None, kid: str | None = None, lifetime: int = 300) -> str:
    """An SSHPOP token as the step CLI makes it: the certificate in the header, signed by its key."""
    now = int(time.time())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    else:
        alg = "RS256"
    payload = {"iss": iss, "aud": aud or f"{CA_URL}{path}#sshpop/sshpop", "sub": sub, "iat": now, "nbf": now,
               "exp": now + lifetime, "jti": uuid.uuid4().hex}
    headers = {"sshpop": cert_b64, "kid": kid or jose.thumbprint(jose.public_jwk(key))}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def host_cert(test_ca, name="internal.example.com", key=None, **body):
    key = key or ec.generate_private_key(ec.SECP256R1())
    status, resp = sign(test_ca, name, key=key, token_opts={"certType": "host"}, **body)
    assert status == 201, resp
    return resp["crt"], key


def user_cert(test_ca, name="alice@example.com", key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    status, resp = sign(test_ca, name, key=key)
    assert status == 201, resp
    return resp["crt"], key


def renew(crt: str, key, **kw):
    return call(app, "POST", "/1.0/ssh/renew", {"ott": sshpop_token(crt, key, "/1.0/ssh/renew", **kw)})


def item(serial: int) -> dict:
    return boto3.client("dynamodb").get_item(
        TableName="test-certificates", Key={"serial": {"S": f"ssh:{serial}"}}
    ).get("Item")


def test_renew_host_certificate(test_ca):
    crt, key = host_cert(test_ca, validBefore="2h")
    old = parse_certificate(base64.b64decode(crt))
    status, body = renew(crt, key)
    assert status == 201, body
    new = cert_of(body)
    assert new.serial != old.serial and new.serial
    assert new.cert_type == HOST
    assert encode_public_key(new.public_key) == encode_public_key(old.public_key)
    assert (new.key_id, new.principals) == (old.key_id, old.principals)
    assert new.valid_before - new.valid_after == old.valid_before - old.valid_after
    assert abs(new.valid_after - (int(time.time()) - 60)) <= 2
    assert new.extensions == {} and new.critical_options == {}
    rec = item(new.serial)
    assert rec["parent_serial"]["S"] == f"ssh:{old.serial}"
    assert rec["provisioner"]["S"] == "sshpop"
    assert rec["provisioner_type"]["S"] == "SSHPOP"


def test_renew_with_ed25519_host_key(test_ca):
    crt, key = host_cert(test_ca, key=ed25519.Ed25519PrivateKey.generate())
    status, body = renew(crt, key)
    assert status == 201, body


def test_renew_token_is_single_use(test_ca):
    crt, key = host_cert(test_ca)
    token = sshpop_token(crt, key, "/1.0/ssh/renew")
    assert call(app, "POST", "/ssh/renew", {"ott": token})[0] == 201
    status, body = call(app, "POST", "/ssh/renew", {"ott": token})
    assert status == 401 and "token already used" in body["message"]
    assert "crt" not in body


def test_renew_missing_ott(test_ca):
    status, body = call(app, "POST", "/ssh/renew", {})
    assert status == 400 and "missing or empty ott" in body["message"]


def test_renew_user_certificate_refused(test_ca):
    crt, key = user_cert(test_ca)
    status, body = renew(crt, key)
    assert status == 401
    assert "sshpop certificate must be a host ssh certificate" in body["message"]
    assert "crt" not in body


def test_sshpop_signed_by_the_wrong_key(test_ca):
    crt, _ = host_cert(test_ca)
    other = ec.generate_private_key(ec.SECP256R1())
    status, body = renew(crt, other, kid=jose.thumbprint(jose.public_jwk(other)))
    assert status == 401 and "kid" in body["message"]
    status, body = renew(crt, other, kid=jose.thumbprint(jose.public_jwk(parse_certificate(
        base64.b64decode(crt)).public_key)))
    assert status == 401 and "token signature is invalid" in body["message"]


def test_sshpop_certificate_from_another_ca(test_ca):
    foreign = MemorySigner(ec.generate_private_key(ec.SECP256R1()))
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    cert = build_and_sign(key.public_key(), serial=42, cert_type=HOST, key_id="x", principals=["x"],
                          valid_after=now - 60, valid_before=now + 3600, signer=foreign)
    status, body = renew(base64.b64encode(cert.raw).decode(), key)
    assert status == 401 and "could not find valid ca signer" in body["message"]


def test_sshpop_wrong_issuer_and_audience(test_ca):
    crt, key = host_cert(test_ca)
    status, body = renew(crt, key, iss="admin")
    assert status == 401 and "invalid token issuer" in body["message"]
    status, body = renew(crt, key, aud=f"{CA_URL}/1.0/ssh/rekey")
    assert status == 401 and "invalid audience" in body["message"]
    status, body = renew(crt, key, aud=f"{CA_URL}/1.0/ssh/renew")  # no fragment: accepted
    assert status == 201, body


def test_jwk_token_cannot_renew(test_ca):
    token = test_ca.token("internal.example.com", path="/1.0/ssh/renew")
    status, body = call(app, "POST", "/ssh/renew", {"ott": token})
    assert status == 401 and "requires an sshpop token" in body["message"]


def test_expired_host_certificate_not_renewed(test_ca):
    crt, key = host_cert(test_ca, validBefore="10m")
    with clock.shift(dt.timedelta(minutes=30)):
        token = sshpop_token(crt, key, "/1.0/ssh/renew")
        # the token is "from the future" relative to the shifted clock only by its own times; re-sign
        now = int(clock.now().timestamp())
        claims = jwt.decode(token, options={"verify_signature": False})
        claims.update(iat=now, nbf=now, exp=now + 300)
        token = jwt.encode(claims, key, algorithm="ES256", headers=jwt.get_unverified_header(token))
        status, body = call(app, "POST", "/ssh/renew", {"ott": token})
    assert status == 401 and "certificate has expired" in body["message"]


def test_rekey(test_ca):
    crt, key = host_cert(test_ca)
    old = parse_certificate(base64.b64decode(crt))
    new_key = ed25519.Ed25519PrivateKey.generate()
    token = sshpop_token(crt, key, "/1.0/ssh/rekey")
    status, body = call(app, "POST", "/ssh/rekey", {"ott": token, "publicKey": b64key(new_key)})
    assert status == 201, body
    new = cert_of(body)
    assert encode_public_key(new.public_key) == encode_public_key(new_key.public_key())
    assert (new.key_id, new.principals, new.cert_type) == (old.key_id, old.principals, HOST)
    assert new.valid_before - new.valid_after == old.valid_before - old.valid_after
    assert item(new.serial)["parent_serial"]["S"] == f"ssh:{old.serial}"


def test_rekey_bad_public_key(test_ca):
    crt, key = host_cert(test_ca)
    token = sshpop_token(crt, key, "/1.0/ssh/rekey")
    status, body = call(app, "POST", "/ssh/rekey", {"ott": token})
    assert status == 400 and "missing or empty public key" in body["message"]
    status, body = call(app, "POST", "/ssh/rekey", {"ott": token, "publicKey": "AAAA"})
    assert status == 400


def test_rekey_renew_token_refused(test_ca):
    crt, key = host_cert(test_ca)
    token = sshpop_token(crt, key, "/1.0/ssh/renew")
    status, body = call(app, "POST", "/ssh/rekey", {"ott": token, "publicKey": b64key(key)})
    assert status == 401 and "invalid audience" in body["message"]


def revoke(serial, token, **body):
    return call(app, "POST", "/1.0/ssh/revoke",
                {"serial": str(serial), "ott": token, "reasonCode": 1, "reason": "key compromise",
                 "passive": True, **body})


def test_revoke_with_sshpop_blocks_renew(test_ca):
    crt, key = host_cert(test_ca)
    serial = parse_certificate(base64.b64decode(crt)).serial
    status, body = revoke(serial, sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial)))
    assert (status, body) == (200, {"status": "ok"})
    rec = boto3.client("dynamodb").get_item(
        TableName="test-revocations", Key={"serial": {"S": f"ssh:{serial}"}})["Item"]
    assert rec["kind"]["S"] == "ssh" and rec["cert_type"]["S"] == "host"
    assert rec["reason_code"]["N"] == "1" and rec["provisioner"]["S"] == "sshpop"
    status, body = renew(crt, key)
    assert status == 401 and "certificate has been revoked" in body["message"]
    assert "crt" not in body
    token = sshpop_token(crt, key, "/1.0/ssh/rekey")
    status, body = call(app, "POST", "/ssh/rekey", {"ott": token, "publicKey": b64key(key)})
    assert status == 401 and "revoked" in body["message"]


def test_revoke_with_jwk_token_and_twice(test_ca):
    crt, _ = user_cert(test_ca)
    serial = parse_certificate(base64.b64decode(crt)).serial
    token = test_ca.token(str(serial), path="/1.0/ssh/revoke")
    assert revoke(serial, token)[0] == 200
    status, body = revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))
    assert status == 400
    assert body["message"] == ("The request could not be completed: ssh certificate with serial number "
                               f"{serial} is already revoked.")


def test_revoke_user_certificate_with_sshpop(test_ca):
    crt, key = user_cert(test_ca)
    serial = parse_certificate(base64.b64decode(crt)).serial
    status, body = revoke(serial, sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial)))
    assert status == 200, body


def test_revoke_refusals(test_ca):
    crt, key = host_cert(test_ca)
    serial = parse_certificate(base64.b64decode(crt)).serial
    status, body = revoke(serial, sshpop_token(crt, key, "/1.0/ssh/revoke", sub="123"))
    assert status == 400 and "subject must be equivalent" in body["message"]
    status, body = revoke(12345, sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial)))
    assert status == 401 and "is not the serial number 12345" in body["message"]
    status, body = revoke(12345, test_ca.token("12345", path="/1.0/ssh/revoke"))
    assert status == 404 and "12345 was not found" in body["message"]
    status, body = revoke(serial, test_ca.token(str(serial), path="/1.0/revoke"))
    assert status == 401 and "invalid audience" in body["message"]
    status, body = revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"), passive="no")
    assert status == 400 and "passive must be true or false" in body["message"]
    status, body = revoke(serial, "", reasonCode=1)
    assert status == 400 and "missing ott" in body["message"]
    status, body = revoke("abc", test_ca.token("abc", path="/1.0/ssh/revoke"))
    assert status == 400 and "invalid ssh certificate serial number" in body["message"]
    status, body = revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"), reasonCode=11)
    assert status == 400 and "reasonCode out of bounds" in body["message"]
    status, body = renew(crt, key)  # none of the above revoked it
    assert status == 201, body


def _krl(tmp_path: Path, query: dict | None = None) -> Path:
    res = app.handler(
        {"version": "2.0", "rawPath": "/ssh/krl", "headers": {}, "queryStringParameters": query,
         "requestContext": {"http": {"method": "GET", "path": "/ssh/krl"}}, "body": None,
         "isBase64Encoded": False}, None)
    assert res["statusCode"] == 200, res
    assert res["headers"]["content-type"] == "application/octet-stream" and res["isBase64Encoded"]
    path = tmp_path / f"krl-{uuid.uuid4().hex}"
    path.write_bytes(base64.b64decode(res["body"]))
    return path


def _query(krl: Path, crt: str, tmp_path: Path) -> subprocess.CompletedProcess:
    cert_path = tmp_path / f"{uuid.uuid4().hex}-cert.pub"
    cert_path.write_text(to_line(parse_certificate(base64.b64decode(crt))) + "\n")
    return subprocess.run([SSH_KEYGEN, "-Q", "-f", str(krl), str(cert_path)], capture_output=True, text=True,
                          check=False)


def test_krl_empty(test_ca, tmp_path):
    assert _krl(tmp_path).read_bytes().startswith(b"SSHKRL\n\x00")
    assert call(app, "GET", "/ssh/krl", query={"type": "nope"})[0] == 400


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen not installed")
def test_krl_with_ssh_keygen(test_ca, tmp_path):
    revoked_user, _ = user_cert(test_ca)
    kept_user, _ = user_cert(test_ca)
    revoked_host, _ = host_cert(test_ca)
    kept_host, _ = host_cert(test_ca)
    for crt in (revoked_user, revoked_host):
        serial = parse_certificate(base64.b64decode(crt)).serial
        assert revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))[0] == 200
    both = _krl(tmp_path)
    for crt, revoked in ((revoked_user, True), (kept_user, False), (revoked_host, True), (kept_host, False)):
        out = _query(both, crt, tmp_path)
        assert out.returncode == (1 if revoked else 0), (out.stdout, out.stderr)
        assert ("REVOKED" in out.stdout) == revoked
    listing = subprocess.run([SSH_KEYGEN, "-Q", "-l", "-f", str(both)], capture_output=True, text=True,
                             check=False)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("serial: ") == 2
    user_only = _krl(tmp_path, {"type": "user"})
    assert _query(user_only, revoked_user, tmp_path).returncode == 1
    assert _query(user_only, revoked_host, tmp_path).returncode == 0
    host_only = _krl(tmp_path, {"type": "host"})
    assert _query(host_only, revoked_host, tmp_path).returncode == 1
    assert _query(host_only, revoked_user, tmp_path).returncode == 0


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen not installed")
def test_revoke_publishes_the_krl_to_s3(test_ca, tmp_path, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="test-crl")
    monkeypatch.setenv("STEPLESS_CRL_BUCKET", "test-crl")
    crt, _ = user_cert(test_ca)
    serial = parse_certificate(base64.b64decode(crt)).serial
    assert revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))[0] == 200
    krl = tmp_path / "s3.krl"
    krl.write_bytes(boto3.client("s3").get_object(Bucket="test-crl", Key="krl/ssh.krl")["Body"].read())
    out = _query(krl, crt, tmp_path)
    assert out.returncode == 1 and "REVOKED" in out.stdout, out.stdout + out.stderr
