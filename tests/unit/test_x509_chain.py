"""stepless.x509.chain and the x5cInsecure renew-token verifier, with an in-memory CA (no AWS)."""

from __future__ import annotations

import base64
import datetime as dt
import time
import types
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless.errors import BadRequest, Unauthorized
from stepless.provisioners import x5c_insecure
from stepless.signers.memory import MemorySigner
from stepless.x509 import ca, chain, profile
from stepless.x509.csr import SANs

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def memory_ca(name="Unit"):
    root_key, inter_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_signer, inter_signer = MemorySigner(root_key), MemorySigner(inter_key)
    root = ca.root(root_signer, name, NOW - dt.timedelta(days=1))
    inter = ca.intermediate(inter_signer, root, root_signer, name, NOW - dt.timedelta(days=1))
    return types.SimpleNamespace(root=root, intermediate=inter, intermediate_signer=inter_signer)


def leaf(auth, cn="svc.example.com", life=dt.timedelta(hours=1), not_before=None):
    key = ec.generate_private_key(ec.SECP256R1())
    nb = not_before or NOW - dt.timedelta(minutes=1)
    cert = profile.leaf(public_key=key.public_key(), common_name=cn, sans=SANs.split([cn]), not_before=nb,
                        not_after=nb + life, issuer=auth.intermediate, signer=auth.intermediate_signer,
                        provisioner=(1, "admin", "kid"))
    return cert, key


@pytest.fixture(scope="module")
def auth():
    return memory_ca()


def test_issued_by_ours(auth):
    cert, _ = leaf(auth)
    assert chain.issued_by(cert, auth.intermediate)
    chain.check_ours(cert, [auth.intermediate])
    assert chain.has_client_auth(cert) and chain.allows_digital_signature(cert)


def test_same_name_other_key_is_not_ours(auth):
    other = memory_ca()  # same names "Unit Intermediate CA"
    cert, _ = leaf(other)
    assert cert.issuer == auth.intermediate.subject
    assert not chain.issued_by(cert, auth.intermediate)
    with pytest.raises(Unauthorized, match="not issued by"):
        chain.check_ours(cert, [auth.intermediate])


def test_intermediate_itself_is_not_a_leaf(auth):
    with pytest.raises(Unauthorized):
        chain.check_ours(auth.intermediate, [auth.intermediate])


def test_missing_aki_is_not_ours(auth):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
            .issuer_name(auth.intermediate.subject).public_key(key.public_key())
            .serial_number(profile.new_serial()).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(profile.as_private_key(auth.intermediate_signer), hashes.SHA256()))
    assert not chain.issued_by(cert, auth.intermediate)
    assert not chain.has_client_auth(cert)


def test_load_pem():
    with pytest.raises(BadRequest):
        chain.load_pem("nope")
    with pytest.raises(BadRequest):
        chain.load_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# ---- x5cInsecure ----

HOSTS = frozenset({"ca.example.com"})


def b64(cert):
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def token(cert, key, auth, **over):
    now = int(time.time())
    claims = {"iss": "step-ca-client/1.0", "sub": "svc.example.com", "aud": "https://ca.example.com:9000/1.0/renew",
              "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    header = {"x5cInsecure": [b64(cert), b64(auth.intermediate)]}
    header.update(over.pop("header", {}))
    claims.update(over)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="ES256", headers=header)


def test_verify_renew_token(auth):
    cert, key = leaf(auth)
    out = x5c_insecure.verify(token(cert, key, auth), [auth.intermediate], HOSTS)
    assert out.leaf == cert
    assert out.use.id.startswith(f"renew/{cert.serial_number}#")
    # the issuing provisioner's name is accepted as issuer too (older clients)
    x5c_insecure.verify(token(cert, key, auth, iss="admin"), [auth.intermediate], HOSTS)


def test_expired_leaf_still_verifies(auth):
    cert, key = leaf(auth, life=dt.timedelta(minutes=5), not_before=NOW - dt.timedelta(hours=2))
    assert x5c_insecure.verify(token(cert, key, auth), [auth.intermediate], HOSTS).leaf == cert


@pytest.mark.parametrize(("over", "reason"), [
    ({"sub": "x.example.com"}, "subject"),
    ({"iss": "nobody"}, "issuer"),
    ({"aud": "https://ca.example.com/1.0/sign"}, "audience"),
    ({"aud": "https://other.example.com/1.0/renew"}, "audience"),
    ({"jti": None}, "jti"),
    ({"exp": 1}, "expired"),
    ({"header": {"x5cInsecure": "notalist"}}, "x5cInsecure"),
    ({"header": {"x5cInsecure": ["@@@"]}}, "invalid certificate"),
])
def test_bad_tokens(auth, over, reason):
    cert, key = leaf(auth)
    with pytest.raises(Unauthorized, match=reason):
        x5c_insecure.verify(token(cert, key, auth, **over), [auth.intermediate], HOSTS)


def test_token_from_other_ca(auth):
    other = memory_ca()
    cert, key = leaf(other)
    with pytest.raises(Unauthorized, match="not issued by"):
        x5c_insecure.verify(token(cert, key, other), [auth.intermediate], HOSTS)


def test_token_signed_by_another_key(auth):
    cert, _ = leaf(auth)
    with pytest.raises(Unauthorized, match="signature"):
        x5c_insecure.verify(token(cert, ec.generate_private_key(ec.SECP256R1()), auth), [auth.intermediate], HOSTS)
