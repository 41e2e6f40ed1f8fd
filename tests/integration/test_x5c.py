"""The X5C provisioner through the sign handler, against moto."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepless import authority
from stepless.api.sign import app
from stepless.cli.x5c import x5c_token
from stepless.stores import authority as store
from stepless.x509 import extensions
from tests.support.ca import CA_URL, call, make_csr
from tests.support.x5c import NOW, PKI, ec_key, make_token, x5c_claims


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture
def x5c_ca(test_ca, pki):
    doc, version = store.load()
    doc["provisioners"] = [*doc["provisioners"], {"type": "X5C", "name": "devices", "roots": pki.roots_value()}]
    store.save(doc, expected_version=version)
    authority.reset()
    return test_ca


def claims(sub: str, **kw):
    return x5c_claims(sub, aud=CA_URL + "/1.0/sign", **kw)


def sign(token: str, cn: str = "dev1.example.com", sans: list[str] | None = None, **body):
    csr, _ = make_csr(cn, sans if sans is not None else [cn])
    return call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token, **body})


def leaf_of(body) -> x509.Certificate:
    return x509.load_pem_x509_certificate(body["crt"].encode())


def test_good_chain(x5c_ca, pki, tmp_path: Path):
    leaf, key = pki.leaf()
    crt, key_file = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    crt.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + pki.inter.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    status, body = sign(x5c_token(crt, key_file, claims("dev1.example.com")))
    assert status == 201, body
    cert = leaf_of(body)
    assert extensions.of(cert) == (7, "devices", "")
    assert cert.subject.rfc4514_string() == "CN=dev1.example.com"


def test_single_use(x5c_ca, pki):
    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, claims("dev1.example.com"))
    assert sign(token)[0] == 201
    status, body = sign(token)
    assert status == 401 and "already used" in body["message"]


def test_unknown_root(x5c_ca):
    other = PKI("Other")
    leaf, key = other.leaf()
    status, body = sign(make_token([leaf, other.inter], key, claims("dev1.example.com")))
    assert status == 401 and "chain" in body["message"]


def test_expired_leaf(x5c_ca, pki):
    leaf, key = pki.leaf(not_before=NOW - dt.timedelta(days=3), not_after=NOW - dt.timedelta(days=1))
    status, body = sign(make_token([leaf, pki.inter], key, claims("dev1.example.com")))
    assert status == 401 and "expired" in body["message"]


def test_leaf_without_digital_signature(x5c_ca, pki):
    leaf, key = pki.leaf(digital_signature=False)
    status, body = sign(make_token([leaf, pki.inter], key, claims("dev1.example.com")))
    assert status == 401 and "digital signature" in body["message"]


def test_signed_by_another_key(x5c_ca, pki):
    leaf, _ = pki.leaf()
    status, body = sign(make_token([leaf, pki.inter], ec_key(), claims("dev1.example.com")))
    assert status == 401 and "signature" in body["message"]


def test_names_beyond_the_leaf(x5c_ca, pki):
    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, claims("dev1.example.com", sans=["dev1.example.com", "evil.com"]))
    status, body = sign(token, sans=["dev1.example.com", "evil.com"])
    assert status == 403 and "evil.com" in body["message"]


def test_csr_beyond_the_token(x5c_ca, pki):
    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, claims("dev1.example.com"))
    status, _ = sign(token, sans=["dev1.example.com", "other.example.com"])
    assert status == 403


def test_lifetime_capped_by_the_leaf(x5c_ca, pki):
    leaf, key = pki.leaf(not_after=NOW + dt.timedelta(hours=2))
    status, body = sign(make_token([leaf, pki.inter], key, claims("dev1.example.com")))
    assert status == 201, body
    assert leaf_of(body).not_valid_after_utc == leaf.not_valid_after_utc  # 24h default capped

    status, body = sign(make_token([leaf, pki.inter], key, claims("dev1.example.com")), notAfter="10h")
    assert status == 403 and "provisioning credential" in body["message"]
