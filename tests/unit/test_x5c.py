"""X5C provisioner, unit level: roots parsing, chain verification, names, token helper."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless.claims import Claims
from stepless.cli.x5c import x5c_header, x5c_token
from stepless.errors import CLIError, ConfigError, Forbidden, Unauthorized
from stepless.provisioners import Provisioners, build
from stepless.provisioners.base import Context
from stepless.provisioners.x5c import X5CProvisioner, encode_roots, leaf_names, parse_roots

CA = "https://ca.example.com"
HOSTS = frozenset({"ca.example.com"})
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

# --- a small PKI -----------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ku(*, sign: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(sign, False, False, False, False, cert_sign, cert_sign, False, False)


def certificate(cn: str, key: Any, *, issuer: tuple[x509.Certificate | None, Any], ca: bool = False,
                sans: list[str] | None = None, digital_signature: bool = True, eku: list | None = None,
                not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
                path_length: int | None = None) -> x509.Certificate:
    issuer_cert, issuer_key = issuer
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        b = b.add_extension(_ku(cert_sign=True), critical=True)
    elif digital_signature:
        b = b.add_extension(_ku(sign=True), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(False, True, True, False, False, False, False, False, False), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if sans:
        names: list[x509.GeneralName] = [x509.RFC822Name(s) if "@" in s else x509.DNSName(s) for s in sans]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(issuer_key, algorithm)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class PKI:
    """root → intermediate → leaves."""

    def __init__(self, name: str = "Devices") -> None:
        self.root_key, self.inter_key = ec_key(), ec_key()
        self.root = certificate(f"{name} Root", self.root_key, issuer=(None, self.root_key), ca=True)
        self.inter = certificate(f"{name} Intermediate", self.inter_key, issuer=(self.root, self.root_key),
                                 ca=True, path_length=0)

    def leaf(self, cn: str = "dev1.example.com", key: Any = None, **kw: Any) -> tuple[x509.Certificate, Any]:
        key = key or ec_key()
        kw.setdefault("sans", [cn])
        return certificate(cn, key, issuer=(self.inter, self.inter_key), **kw), key

    def roots_value(self) -> str:
        return encode_roots([self.root])


def x5c_claims(sub: str, *, name: str = "devices", path: str = "/1.0/sign", sans: list[str] | None = None,
               lifetime: int = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": name, "aud": CA + path, "sub": sub, "iat": now, "nbf": now, "exp": now + lifetime,
              "jti": uuid.uuid4().hex, "sans": sans if sans is not None else [sub], **extra}
    return {k: v for k, v in claims.items() if v is not None}


def make_token(chain: list[x509.Certificate], key: Any, claims: dict[str, Any], alg: str | None = None) -> str:
    alg = alg or ("EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey)
                  else "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    return jwt.encode(claims, key, algorithm=alg, headers={"x5c": x5c_header(chain)})


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
