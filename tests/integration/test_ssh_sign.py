"""POST /ssh/sign through the handler against moto: profiles, claims, bad input, records, ssh-keygen."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stepless import authority
from stepless.api.ssh import app
from stepless.ssh import (
    DEFAULT_USER_EXTENSIONS,
    HOST,
    USER,
    encode_public_key,
    parse_certificate,
    to_line,
    verify_signature,
)
from stepless.ssh.keys import decode_public_key, split_line
from stepless.stores import authority as store
from tests.support import ca as support
from tests.support.ca import call
from tests.unit.ssh.test_ssh_keygen_interop import parse_listing

SSH_KEYGEN = shutil.which("ssh-keygen")


def b64key(key) -> str:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return base64.b64encode(encode_public_key(pub)).decode()


def ssh_token(test_ca, sub: str, **opts) -> str:
    """A JWK SSH sign token; ``opts`` go to step.ssh (certType, keyID, principals, validAfter/Before)."""
    return test_ca.token(sub, path="/1.0/ssh/sign", step={"ssh": opts})


def sign(test_ca, sub="alice@example.com", key=None, token=None, token_opts=None, **body):
    key = key or ec.generate_private_key(ec.SECP256R1())
    token = token or ssh_token(test_ca, sub, **(token_opts or {}))
    payload = {"publicKey": b64key(key), "ott": token, **body}
    return call(app, "POST", "/1.0/ssh/sign", payload)


def ca_key(test_ca, which: str):
    return decode_public_key(split_line(test_ca.authority.ssh[which])[1])


def cert_of(body):
    assert set(body) == {"crt"}, body
    return parse_certificate(base64.b64decode(body["crt"]))


def test_user_certificate(test_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    before = int(time.time())
    status, body = sign(test_ca, key=key, token_opts={"certType": "user"}, certType="user")
    assert status == 201, body
    cert = cert_of(body)
    assert cert.cert_type == USER
    assert cert.key_id == "alice@example.com"
    assert cert.principals == ("alice", "alice@example.com")
    assert cert.extensions == dict(DEFAULT_USER_EXTENSIONS)
    assert cert.critical_options == {}
    assert 0 < cert.serial < 2**64
    assert encode_public_key(cert.public_key) == encode_public_key(key.public_key())
    assert encode_public_key(cert.signature_key) == encode_public_key(ca_key(test_ca, "userPublicKey"))
    assert verify_signature(cert)
    assert cert.valid_before - cert.valid_after == 16 * 3600 + 60
    assert before - 60 - 2 <= cert.valid_after <= before - 60 + 2


def test_host_certificate(test_ca):
    status, body = sign(test_ca, "internal.example.com", token_opts={"certType": "host"}, certType="host")
    assert status == 201, body
    cert = cert_of(body)
    assert cert.cert_type == HOST
    assert cert.principals == ("internal.example.com",)
    assert cert.key_id == "internal.example.com"
    assert cert.extensions == {} and cert.critical_options == {}
    assert encode_public_key(cert.signature_key) == encode_public_key(ca_key(test_ca, "hostPublicKey"))
    assert verify_signature(cert)
    assert cert.valid_before - cert.valid_after == 30 * 86400 + 60


def test_certificate_is_recorded(test_ca):
    status, body = sign(test_ca, token_opts={"keyID": "kid-1", "principals": ["alice", "root"]})
    assert status == 201, body
    cert = cert_of(body)
    item = boto3.client("dynamodb").get_item(
        TableName="test-certificates", Key={"serial": {"S": f"ssh:{cert.serial}"}}
    )["Item"]
    assert item["kind"]["S"] == "ssh"
    assert item["cert_type"]["S"] == "user"
    assert item["key_id"]["S"] == "kid-1"
    assert [p["S"] for p in item["principals"]["L"]] == ["alice", "root"]
    assert int(item["not_before"]["N"]) == cert.valid_after
    assert int(item["not_after"]["N"]) == cert.valid_before
    assert item["provisioner"]["S"] == "admin"
    assert item["key_fingerprint"]["S"] == cert.key_fingerprint
    assert item["cert"]["S"] == body["crt"]
    assert "parent_serial" not in item


@pytest.mark.parametrize("key", [
    ed25519.Ed25519PrivateKey.generate(),
    ec.generate_private_key(ec.SECP384R1()),
    ec.generate_private_key(ec.SECP521R1()),
    rsa.generate_private_key(65537, 2048),
], ids=["ed25519", "p384", "p521", "rsa2048"])
def test_key_types(test_ca, key):
    status, body = sign(test_ca, key=key)
    assert status == 201, body
    assert encode_public_key(cert_of(body).public_key) == encode_public_key(key.public_key())


def test_authorized_keys_line_accepted(test_ca):
    key = ed25519.Ed25519PrivateKey.generate()
    token = ssh_token(test_ca, "bob")
    line = "ssh-ed25519 " + b64key(key) + " bob@laptop"
    status, body = call(app, "POST", "/ssh/sign", {"publicKey": line, "ott": token})
    assert status == 201, body


@pytest.mark.parametrize(("public_key", "fragment"), [
    (b64key(rsa.generate_private_key(65537, 1024)), "RSA keys must be at least 2048 bits"),
    ("AAAA", "truncated SSH data"),
    ("not base64!", "invalid base64"),
    ("", "missing or empty publicKey"),
], ids=["weak-rsa", "truncated", "garbage", "empty"])
def test_bad_public_keys(test_ca, public_key, fragment):
    token = ssh_token(test_ca, "alice")
    status, body = call(app, "POST", "/ssh/sign", {"publicKey": public_key, "ott": token})
    assert status == 400, body
    assert fragment in body["message"]
    assert "crt" not in body


def test_certificate_as_public_key_refused(test_ca):
    status, body = sign(test_ca)
    token = ssh_token(test_ca, "alice")
    status, body = call(app, "POST", "/ssh/sign", {"publicKey": body["crt"], "ott": token})
    assert status == 400 and "unsupported SSH key type" in body["message"]


def test_missing_ott(test_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    status, body = call(app, "POST", "/ssh/sign", {"publicKey": b64key(key)})
    assert status == 400
    assert body["message"] == "The request could not be completed: missing or empty ott."


def test_invalid_cert_type_in_body(test_ca):
    status, body = sign(test_ca, certType="admin")
    assert status == 400 and "invalid certType 'admin'" in body["message"]


def test_user_token_for_host_certificate(test_ca):
    status, body = sign(test_ca, "internal.example.com", token_opts={"certType": "user"}, certType="host")
    assert status == 403
    assert "ssh certificate type does not match - got host, want user" in body["message"]
    assert "crt" not in body


def test_host_token_for_user_certificate(test_ca):
    status, body = sign(test_ca, "alice", token_opts={"certType": "host"}, certType="user")
    assert status == 403
    assert "ssh certificate type does not match - got user, want host" in body["message"]


def test_principals_outside_the_token(test_ca):
    status, body = sign(test_ca, "alice@example.com", principals=["alice", "root"])
    assert status == 403
    assert "ssh certificate principals does not match" in body["message"]
    assert "crt" not in body


def test_body_principals_subset_gets_token_principals(test_ca):
    status, body = sign(test_ca, "alice@example.com", principals=["alice"])
    assert status == 201, body
    assert cert_of(body).principals == ("alice", "alice@example.com")


def test_key_id_mismatch(test_ca):
    status, body = sign(test_ca, "alice@example.com", keyID="root")
    assert status == 403
    assert "key id does not match - got root, want alice@example.com" in body["message"]


@pytest.mark.parametrize(("principals", "fragment"), [
    (["a,b"], "commas are not allowed"),
    (["a\nb"], "newlines are not allowed"),
    (["a\x00b"], "NUL characters are not allowed"),
    (["   "], "principal cannot be empty"),
    ([f"p{i}" for i in range(257)], "too many principals (257)"),
])
def test_bad_principals(test_ca, principals, fragment):
    status, body = sign(test_ca, "alice", token_opts={"principals": principals})
    assert status == 400, body
    assert fragment in body["message"]


def test_max_principals_accepted(test_ca):
    principals = [f"p{i}" for i in range(256)]
    status, body = sign(test_ca, "alice", token_opts={"principals": principals})
    assert status == 201, body
    assert len(cert_of(body).principals) == 256


def test_over_maximum_duration(test_ca):
    status, body = sign(test_ca, validBefore="48h")
    assert status == 403
    assert body["message"] == (
        "The request was forbidden by the certificate authority: requested duration of 48h1m0s is more than "
        "the authorized maximum ssh certificate duration of 24h1m0s."
    )


def test_under_minimum_duration(test_ca):
    status, body = sign(test_ca, validAfter="1m", validBefore="3m")
    assert status == 403
    assert "requested duration of 2m0s is less than the authorized minimum ssh certificate duration of 5m0s" \
        in body["message"]


def test_durations_count_from_now(test_ca):
    now = int(time.time())
    status, body = sign(test_ca, validAfter="1h", validBefore="3h")
    assert status == 201, body
    cert = cert_of(body)
    assert abs(cert.valid_after - (now + 3600)) <= 2
    assert cert.valid_before - cert.valid_after == 2 * 3600


def test_rfc3339_times(test_ca):
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=10)
    end = start + dt.timedelta(hours=2)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    status, body = sign(test_ca, validAfter=start.strftime(fmt), validBefore=end.strftime(fmt))
    assert status == 201, body
    cert = cert_of(body)
    assert (cert.valid_after, cert.valid_before) == (int(start.timestamp()), int(end.timestamp()))


def test_valid_before_in_the_past(test_ca):
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = sign(test_ca, validBefore=past)
    assert status == 400 and "validBefore cannot be in the past" in body["message"]


def test_token_validity_wins_and_must_match(test_ca):
    status, body = sign(test_ca, token_opts={"validBefore": "2h"})
    assert status == 201, body
    cert = cert_of(body)
    assert cert.valid_before - cert.valid_after == 2 * 3600 + 60
    status, body = sign(test_ca, token_opts={"validBefore": "2h"}, validBefore="3h")
    assert status == 403 and "validBefore does not match" in body["message"]


def test_bad_time_argument(test_ca):
    status, body = sign(test_ca, validBefore="tomorrow")
    assert status == 400 and "invalid validBefore" in body["message"]


def test_replayed_token(test_ca):
    token = ssh_token(test_ca, "alice")
    key = ec.generate_private_key(ec.SECP256R1())
    assert call(app, "POST", "/ssh/sign", {"publicKey": b64key(key), "ott": token})[0] == 201
    status, body = call(app, "POST", "/ssh/sign", {"publicKey": b64key(key), "ott": token})
    assert status == 401 and "token already used" in body["message"]
    assert "crt" not in body


def test_sign_token_for_x509_audience_refused(test_ca):
    token = test_ca.token("alice", step={"ssh": {}})  # aud …/1.0/sign
    status, body = sign(test_ca, token=token)
    assert status == 401 and "invalid audience" in body["message"]


def test_token_without_ssh_claim(test_ca):
    token = test_ca.token("alice", path="/1.0/ssh/sign")
    status, body = sign(test_ca, token=token)
    assert status == 401 and "step.ssh" in body["message"]


def _set_provisioner_claims(claims: dict) -> None:
    doc, version = store.load()
    doc["provisioners"][0]["claims"] = claims
    store.save(doc, expected_version=version)
    authority.reset()


def test_ssh_ca_disabled_for_provisioner(test_ca):
    _set_provisioner_claims({"enableSSHCA": False})
    status, body = sign(test_ca)
    assert status == 401 and "not allowed to sign SSH certificates" in body["message"]


def test_provisioner_claims_apply(test_ca):
    _set_provisioner_claims({"enableSSHCA": True, "maxUserSSHCertDuration": "1h",
                             "defaultUserSSHCertDuration": "30m"})
    status, body = sign(test_ca)
    assert status == 201, body
    cert = cert_of(body)
    assert cert.valid_before - cert.valid_after == 31 * 60
    status, body = sign(test_ca, validBefore="2h")
    assert status == 403 and "maximum ssh certificate duration of 1h1m0s" in body["message"]


def test_no_ssh_configured(aws_env):
    test_ca = support.initialize(aws_env, ssh=False)
    status, body = sign(test_ca)
    assert status == 501, body
    assert "not enabled" in body["message"]
    assert call(app, "GET", "/ssh/roots")[0] == 404


def test_routes(test_ca):
    assert call(app, "GET", "/ssh/sign")[0] == 405
    assert call(app, "POST", "/ssh/nothing")[0] == 404
    status, body = call(app, "POST", "/1.0/ssh/sign", "not json")
    assert status == 400


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen not installed")
@pytest.mark.parametrize("cert_type", ["user", "host"])
def test_ssh_keygen_reads_certificates(test_ca, tmp_path: Path, cert_type):
    sub = "alice@example.com" if cert_type == "user" else "internal.example.com"
    status, body = sign(test_ca, sub, token_opts={"certType": cert_type})
    assert status == 201, body
    cert = cert_of(body)
    path = tmp_path / "id-cert.pub"
    path.write_text(to_line(cert) + "\n")
    out = subprocess.run([SSH_KEYGEN, "-L", "-f", str(path)], capture_output=True, text=True, check=False,
                         env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    info = parse_listing(out.stdout)
    assert info["Type"].startswith(f"ecdsa-sha2-nistp256-cert-v01@openssh.com {cert_type} certificate")
    assert info["Key ID"] == f'"{sub}"'
    assert info["Serial"] == str(cert.serial)
    assert info["Critical Options"] == []
    if cert_type == "user":
        assert info["Principals"] == ["alice", "alice@example.com"]
        assert sorted(info["Extensions"]) == sorted(DEFAULT_USER_EXTENSIONS)
    else:
        assert info["Principals"] == ["internal.example.com"]
        assert info["Extensions"] == []
    fmt = "%Y-%m-%dT%H:%M:%S"
    start = dt.datetime.fromtimestamp(cert.valid_after, dt.UTC).strftime(fmt)
    end = dt.datetime.fromtimestamp(cert.valid_before, dt.UTC).strftime(fmt)
    assert info["Valid"] == f"from {start} to {end}"
    assert json.dumps(info)  # plain data


@pytest.mark.parametrize(("valid_after", "valid_before"), [
    ("9999-12-31T23:59:00Z", ""),
    ("0001-01-01T00:00:00Z", "1h"),
    ("", "0001-01-01T00:00:00Z"),
    ("-", ""),
])
def test_extreme_times_are_refused_cleanly(test_ca, valid_after, valid_before):
    status, body = sign(test_ca, validAfter=valid_after, validBefore=valid_before)
    assert status in (400, 403), body
    assert "crt" not in body


def test_secrets_backend_signs_ssh(secrets_ca):
    status, body = sign(secrets_ca, "internal.example.com", token_opts={"certType": "host"})
    assert status == 201, body
    cert = cert_of(body)
    assert verify_signature(cert)
    assert encode_public_key(cert.signature_key) == encode_public_key(ca_key(secrets_ca, "hostPublicKey"))
