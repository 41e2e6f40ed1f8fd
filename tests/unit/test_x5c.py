"""X5C provisioner, unit level: roots parsing, chain verification, names, token helper."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepless.claims import Claims
from stepless.cli.x5c import x5c_header, x5c_token
from stepless.errors import CLIError, ConfigError, Forbidden, Unauthorized
from stepless.provisioners import Provisioners, build
from stepless.provisioners.base import Context
from stepless.provisioners.x5c import X5CProvisioner, leaf_names, parse_roots
from tests.support.x5c import CA, HOSTS, NOW, PKI, certificate, ec_key, make_token, x5c_claims

# --- tests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def provisioner(pki: PKI, **extra: Any) -> X5CProvisioner:
    p = build({"type": "X5C", "name": "devices", "roots": pki.roots_value(), **extra}, Claims.defaults())
    assert isinstance(p, X5CProvisioner)
    return p


def authorize(p: X5CProvisioner, token: str):
    from stepless import tokens

    header, claims = tokens.unverified(token)
    return p.authorize_sign(token, header, claims, Context(HOSTS, dt.datetime.now(dt.UTC)))


def test_roots_formats(pki):
    pem = pki.root.public_bytes(serialization.Encoding.PEM).decode()
    assert parse_roots(pki.roots_value())[0] == pki.root
    assert parse_roots(pem)[0] == pki.root
    assert parse_roots([pem, pem]) == [pki.root, pki.root]
    with pytest.raises(ConfigError):
        parse_roots("")
    with pytest.raises(ConfigError):
        parse_roots(base64.b64encode(b"not a pem").decode())


def test_selected_by_x5c_header_and_name(pki):
    p = provisioner(pki)
    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com"))
    from stepless import tokens

    header, claims = tokens.unverified(token)
    assert Provisioners([p]).select(header, claims) is p


def test_good_chain(pki):
    p = provisioner(pki)
    leaf, key = pki.leaf()
    authz = authorize(p, make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com")))
    assert authz.subject == "dev1.example.com" and authz.sans == ("dev1.example.com",)
    assert authz.not_after_limit == leaf.not_valid_after_utc
    assert authz.not_before_limit == leaf.not_valid_before_utc
    assert authz.token.id.startswith("devices#")
    assert p.type_code == 7 and p.credential_id == "" and p.id == "x5c/devices"


def test_fragment_audience(pki):
    p = provisioner(pki)
    leaf, key = pki.leaf()
    claims = x5c_claims("dev1.example.com", aud=CA + "/1.0/sign#x5c/devices")
    assert authorize(p, make_token([leaf, pki.inter], key, claims))
    claims = x5c_claims("dev1.example.com", aud=CA + "/1.0/sign#x5c/other")
    with pytest.raises(Unauthorized, match="audience"):
        authorize(p, make_token([leaf, pki.inter], key, claims))


def test_missing_intermediate(pki):
    leaf, key = pki.leaf()
    with pytest.raises(Unauthorized, match="chain"):
        authorize(provisioner(pki), make_token([leaf], key, x5c_claims("dev1.example.com")))


def test_unknown_root(pki):
    other = PKI("Other")
    leaf, key = other.leaf()
    with pytest.raises(Unauthorized, match="chain"):
        authorize(provisioner(pki), make_token([leaf, other.inter], key, x5c_claims("dev1.example.com")))


def test_root_itself_in_the_header_does_not_help(pki):
    other = PKI("Other")
    leaf, key = other.leaf()
    with pytest.raises(Unauthorized, match="chain"):
        authorize(provisioner(pki), make_token([leaf, other.inter, other.root], key, x5c_claims("dev1.example.com")))


def test_expired_leaf(pki):
    leaf, key = pki.leaf(not_before=NOW - dt.timedelta(days=2), not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(Unauthorized, match="expired"):
        authorize(provisioner(pki), make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com")))


def test_leaf_without_digital_signature(pki):
    leaf, key = pki.leaf(digital_signature=False)
    with pytest.raises(Unauthorized, match="digital signature"):
        authorize(provisioner(pki), make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com")))


def test_leaf_for_servers_only(pki):
    leaf, key = pki.leaf(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(Unauthorized, match="key usage"):
        authorize(provisioner(pki), make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com")))
    leaf, key = pki.leaf(eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    assert authorize(provisioner(pki), make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com")))


def test_intermediate_that_is_no_ca(pki):
    fake_key = ec_key()
    fake = certificate("Not a CA", fake_key, issuer=(pki.root, pki.root_key), ca=False)
    key = ec_key()
    leaf = certificate("dev1.example.com", key, issuer=(fake, fake_key), sans=["dev1.example.com"])
    with pytest.raises(Unauthorized, match="chain"):
        authorize(provisioner(pki), make_token([leaf, fake], key, x5c_claims("dev1.example.com")))


def test_signed_by_another_key(pki):
    leaf, _ = pki.leaf()
    with pytest.raises(Unauthorized, match="signature"):
        authorize(provisioner(pki), make_token([leaf, pki.inter], ec_key(), x5c_claims("dev1.example.com")))


def test_algorithm_must_suit_the_leaf_key(pki):
    leaf, _ = pki.leaf()
    forged = jwt.encode(x5c_claims("dev1.example.com"), "k" * 32, algorithm="HS256",
                        headers={"x5c": x5c_header([leaf, pki.inter])})
    with pytest.raises(Unauthorized, match="algorithm"):
        authorize(provisioner(pki), forged)


def test_rsa_and_ed25519_leaves(pki):
    for key in (rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()):
        leaf, key = pki.leaf(key=key)
        assert authorize(provisioner(pki), make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com")))


def test_wrong_issuer_claim(pki):
    leaf, key = pki.leaf()
    with pytest.raises(Unauthorized, match="issuer"):
        authorize(provisioner(pki), make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com", name="x")))


def test_names_beyond_the_leaf(pki):
    leaf, key = pki.leaf("dev1.example.com", sans=["dev1.example.com", "dev1@example.com"])
    p = provisioner(pki)
    ok = x5c_claims("dev1.example.com", sans=["DEV1.example.com", "dev1@example.com"])
    assert authorize(p, make_token([leaf, pki.inter], key, ok))
    with pytest.raises(Forbidden, match="www.example.com"):
        authorize(p, make_token([leaf, pki.inter], key,
                                x5c_claims("dev1.example.com", sans=["dev1.example.com", "www.example.com"])))
    with pytest.raises(Forbidden):
        authorize(p, make_token([leaf, pki.inter], key, x5c_claims("other", sans=["dev1.example.com"])))


def test_allow_any_names(pki):
    leaf, key = pki.leaf()
    p = provisioner(pki, allowAnyNames=True)
    authz = authorize(p, make_token([leaf, pki.inter], key, x5c_claims("x.example.org")))
    assert authz.sans == ("x.example.org",)
    with pytest.raises(ConfigError):
        provisioner(pki, allowAnyNames="yes")


def test_leaf_names_include_the_common_name(pki):
    leaf, _ = pki.leaf("Device 7", sans=["d7.example.com"])
    assert set(leaf_names(leaf).names()) == {"d7.example.com", "device 7"}


def test_ssh_principals(pki):
    from stepless import tokens

    p = provisioner(pki, claims={"enableSSHCA": True})
    leaf, key = pki.leaf("dev1.example.com", sans=["dev1.example.com", "ops@example.com"])
    ctx = Context(HOSTS, dt.datetime.now(dt.UTC))

    def ssh(**opts):
        token = make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com", path="/1.0/ssh/sign",
                                                               step={"ssh": opts}))
        header, claims = tokens.unverified(token)
        return p.authorize_ssh_sign(token, header, claims, ctx)

    authz = ssh(certType="host", principals=["dev1.example.com"])
    assert authz.cert_type == "host" and authz.not_after_limit == leaf.not_valid_after_utc
    assert ssh(certType="user", principals=["ops", "ops@example.com"]).principals == ("ops", "ops@example.com")
    with pytest.raises(Forbidden):
        ssh(certType="host", principals=["db.example.com"])
    with pytest.raises(Forbidden):
        ssh(certType="user", principals=["root"])


def test_ssh_needs_the_ssh_claim_and_the_ssh_ca(pki):
    from stepless import tokens

    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com", path="/1.0/ssh/sign"))
    header, claims = tokens.unverified(token)
    ctx = Context(HOSTS, dt.datetime.now(dt.UTC))
    with pytest.raises(Unauthorized, match="disabled"):
        provisioner(pki).authorize_ssh_sign(token, header, claims, ctx)
    with pytest.raises(Unauthorized, match="token has no step.ssh claim"):
        provisioner(pki, claims={"enableSSHCA": True}).authorize_ssh_sign(token, header, claims, ctx)


def test_revoke(pki):
    from stepless import tokens

    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, x5c_claims("1234", path="/1.0/revoke"))
    header, claims = tokens.unverified(token)
    use = provisioner(pki).authorize_revoke(token, header, claims, Context(HOSTS, dt.datetime.now(dt.UTC)),
                                            "/1.0/revoke")
    assert use.id == f"devices#{claims['jti']}"


def test_x5c_token_helper(pki, tmp_path: Path):
    leaf, key = pki.leaf()
    crt, key_file = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    crt.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + pki.inter.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"pw")))
    with pytest.raises(CLIError, match="password"):
        x5c_token(crt, key_file, {})
    token = x5c_token(crt, key_file, x5c_claims("dev1.example.com"), password=b"pw")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert len(jwt.get_unverified_header(token)["x5c"]) == 2
    assert authorize(provisioner(pki), token).subject == "dev1.example.com"
    other = tmp_path / "other.key"
    other.write_bytes(ec_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    with pytest.raises(CLIError, match="not the key"):
        x5c_token(crt, other, {})
