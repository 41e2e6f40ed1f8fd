"""OIDC provisioner and discovery cache, unit level (the IdP is a fake get_json)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import jose, oidc_discovery, tokens
from stepless.claims import Claims
from stepless.cli.sso import listen_address, pkce_pair
from stepless.errors import ClientError, ConfigError, Forbidden, ServiceUnavailable, Unauthorized
from stepless.provisioners import Provisioners, build
from stepless.provisioners.base import Context
from stepless.provisioners.oidc import (
    OIDCProvisioner,
    sanitize_email,
    sanitize_principal,
    ssh_principals,
    subject_uri,
)

ISSUER = "https://idp.example.com"
ENDPOINT = ISSUER + "/.well-known/openid-configuration"
CTX = Context(frozenset({"ca.example.com"}), dt.datetime.now(dt.UTC))


class FakeIdP:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "k1"
        self.published = [(self.kid, self.key)]
        self.calls: list[str] = []
        self.down = False

    def get_json(self, url: str, **_: Any) -> Any:
        self.calls.append(url)
        if self.down:
            raise ServiceUnavailable("down")
        if url == ENDPOINT:
            return {"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"}
        if url == ISSUER + "/jwks":
            return {"keys": [{**jose.public_jwk(k), "kid": kid, "use": "sig"} for kid, k in self.published]
                    + [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}
        raise AssertionError(url)

    def token(self, key: Any = None, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": ["cli", "other"], "sub": "u1", "email": "alice@example.com",
                   "iat": now, "exp": now + 3600, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.key, algorithm="ES256", headers={"kid": kid or self.kid})


@pytest.fixture
def idp(monkeypatch) -> FakeIdP:
    fake = FakeIdP()
    oidc_discovery.reset()
    monkeypatch.setattr(oidc_discovery, "get_json", fake.get_json)
    yield fake
    oidc_discovery.reset()


def provisioner(**extra: Any) -> OIDCProvisioner:
    p = build({"type": "OIDC", "name": "sso", "clientID": "cli", "clientSecret": "s",
               "configurationEndpoint": ISSUER, **extra}, Claims.defaults())
    assert isinstance(p, OIDCProvisioner)
    return p


def authorize(p: OIDCProvisioner, token: str):
    header, claims = tokens.unverified(token)
    return p.authorize_sign(token, header, claims, CTX)


# --- discovery ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:1/", "https://a.b/"])
def test_allowed_urls(url):
    assert oidc_discovery.check_url(url) == url


@pytest.mark.parametrize("url", ["http://idp.example.com/", "ftp://127.0.0.1/", "https:///x", "file:///etc"])
def test_refused_urls(url):
    with pytest.raises(ValueError):
        oidc_discovery.check_url(url)


def test_configuration_url():
    assert oidc_discovery.configuration_url("https://a.b") == "https://a.b" + oidc_discovery.WELL_KNOWN
    assert oidc_discovery.configuration_url("https://a.b/t/") == "https://a.b/t" + oidc_discovery.WELL_KNOWN
    assert oidc_discovery.configuration_url(ENDPOINT) == ENDPOINT


def test_parse_configuration_needs_issuer_and_jwks():
    with pytest.raises(ValueError, match="issuer"):
        oidc_discovery.parse_configuration({"jwks_uri": "https://a/j"})
    with pytest.raises(ValueError, match="https"):
        oidc_discovery.parse_configuration({"issuer": "x", "jwks_uri": "http://a.example/j"})


def test_jwks_keeps_only_signature_keys():
    rsa_jwk = {"kty": "RSA", "n": jose.b64e(b"\xc1" * 256), "e": "AQAB", "kid": "r"}
    ec_jwk = {**jose.public_jwk(ec.generate_private_key(ec.SECP384R1())), "kid": "e", "alg": "ES384"}
    enc = {**jose.public_jwk(ec.generate_private_key(ec.SECP256R1())), "kid": "enc", "use": "enc"}
    lying = {**jose.public_jwk(ec.generate_private_key(ec.SECP256R1())), "kid": "l", "alg": "HS256"}
    keys = oidc_discovery.parse_jwks({"keys": [rsa_jwk, ec_jwk, enc, lying, {"kty": "oct", "k": "AA"}, "junk"]})
    assert {k.kid: k.algorithms for k in keys} == {
        "r": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}), "e": frozenset({"ES384"})}


def test_keys_cached_and_refreshed_once_a_minute(idp, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(oidc_discovery, "monotonic", lambda: now[0])
    uri = ISSUER + "/jwks"
    assert [k.kid for k in oidc_discovery.keys(uri, "k1")] == ["k1"]
    assert oidc_discovery.keys(uri, "k1") and len(idp.calls) == 1
    assert oidc_discovery.keys(uri, "k2") == [] and len(idp.calls) == 2  # unknown kid: one refresh
    assert oidc_discovery.keys(uri, "k2") == [] and len(idp.calls) == 2  # not again within the minute
    now[0] += 61
    idp.published.append(("k2", ec.generate_private_key(ec.SECP256R1())))
    assert [k.kid for k in oidc_discovery.keys(uri, "k2")] == ["k2"] and len(idp.calls) == 3
    idp.down = True
    now[0] += oidc_discovery.JWKS_TTL
    assert oidc_discovery.keys(uri, "k1")  # stale keys kept when the IdP is down
    calls = len(idp.calls)
    assert oidc_discovery.keys(uri, "k1") and len(idp.calls) == calls  # and not retried at once


def test_configuration_cached(idp):
    assert oidc_discovery.cached(ISSUER) is None
    assert oidc_discovery.configuration(ISSUER).issuer == ISSUER
    assert oidc_discovery.configuration(ISSUER).jwks_uri == ISSUER + "/jwks"
    assert idp.calls == [ENDPOINT]
    assert oidc_discovery.cached(ISSUER).issuer == ISSUER


def test_idp_down_is_503(idp):
    idp.down = True
    with pytest.raises(ServiceUnavailable):
        authorize(provisioner(), idp.token())


# --- provisioner -----------------------------------------------------------------------------------------


def test_config_errors():
    with pytest.raises(ConfigError, match="clientID"):
        build({"type": "OIDC", "name": "x", "configurationEndpoint": ISSUER}, Claims.defaults())
    with pytest.raises(ConfigError, match="https"):
        provisioner(configurationEndpoint="http://idp.example.com")
    with pytest.raises(ConfigError, match="listenAddress"):
        provisioner(listenAddress="10000")
    with pytest.raises(ConfigError, match="admins"):
        provisioner(admins="alice@example.com")


def test_identity():
    p = provisioner()
    assert p.type_code == 2 and p.credential_id == "cli" and p.id == "cli"
    assert p.public_json()["clientSecret"] == "s"


def test_selection_without_idp_call_for_other_audiences(idp):
    p = provisioner()
    assert not p.claims_match({"iss": ISSUER, "aud": "someone"})
    assert idp.calls == []
    assert p.claims_match({"iss": ISSUER, "aud": "cli"})
    assert not p.claims_match({"iss": "https://other", "aud": ["cli"]})
    assert idp.calls == [ENDPOINT]
    header, claims = tokens.unverified(idp.token())
    assert Provisioners([p]).select(header, claims) is p


def test_good_token(idp):
    token = idp.token(nonce="abc")
    authz = authorize(provisioner(), token)
    # step-ca 0.19: the email and the URI <iss>#<sub>
    assert authz.subject == "u1" and authz.sans == ("alice@example.com", f"{ISSUER}#u1") and not authz.any_sans
    assert authz.token.id == f"{ISSUER}#abc"


@pytest.mark.parametrize(("issuer", "sub", "uri"), [  # the URIs Go's url.URL.String gives step-ca 0.19
    ("https://accounts.google.com", "b1417884-5c3e", "https://accounts.google.com#b1417884-5c3e"),
    ("https://accounts.google.com", "a b/c?d#e%f", "https://accounts.google.com#a%20b/c?d%23e%25f"),
    ("https://accounts.google.com", "zoë", "https://accounts.google.com#zo%C3%AB"),
    ("https://accounts.google.com", "user|x^y`z{}[]<>\"\\",
     "https://accounts.google.com#user%7Cx%5Ey%60z%7B%7D%5B%5D%3C%3E%22%5C"),
])
def test_subject_uri_escapes_like_go(issuer, sub, uri):
    assert subject_uri(issuer, sub) == (uri,)


def test_no_subject_uri_for_an_issuer_without_scheme():
    assert subject_uri("accounts.google.com", "x") == ()


def test_token_without_nonce_uses_its_hash(idp):
    token = idp.token()
    assert authorize(provisioner(), token).token.id == f"{ISSUER}#sha256:" + hashlib.sha256(token.encode()).hexdigest()


def test_an_hour_and_more_is_fine(idp):
    now = int(time.time())
    assert authorize(provisioner(), idp.token(iat=now - 60, exp=now + 12 * 3600))
    with pytest.raises(Unauthorized, match="24 hours"):
        authorize(provisioner(), idp.token(iat=now, exp=now + 25 * 3600))


def test_leeway(idp):
    now = int(time.time())
    assert authorize(provisioner(), idp.token(iat=now - 3600, exp=now - 30))
    with pytest.raises(Unauthorized, match="expired"):
        authorize(provisioner(), idp.token(iat=now - 3600, exp=now - 90))
    with pytest.raises(Unauthorized, match="not valid yet"):
        authorize(provisioner(), idp.token(nbf=now + 120))


def test_no_unverified_alg(idp):
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b'{"iss":"https://idp.example.com","aud":"cli"}').rstrip(b"=").decode()
    with pytest.raises(Unauthorized, match="algorithm"):
        authorize(provisioner(), f"{header}.{body}.")
    hs = jwt.encode({"iss": ISSUER, "aud": "cli"}, "x" * 32, algorithm="HS256", headers={"kid": "hmac"})
    with pytest.raises(Unauthorized, match="algorithm"):
        authorize(provisioner(), hs)


def test_es256_key_refuses_rs256_header(idp):
    token = idp.token()
    h, p, s = token.split(".")
    forged_header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k1","typ":"JWT"}').rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        authorize(provisioner(), f"{forged_header}.{p}.{s}")


def test_domains_and_admins(idp):
    p = provisioner(domains=["Example.com"], admins=["boss@partner.org", "admins-group"])
    assert authorize(p, idp.token(email="alice@EXAMPLE.com"))
    with pytest.raises(Forbidden, match="not allowed"):
        authorize(p, idp.token(email="alice@example.com.evil.org"))
    with pytest.raises(Forbidden, match="not found"):
        authorize(p, idp.token(email=None))
    assert authorize(p, idp.token(email="boss@Partner.ORG")).any_sans
    assert authorize(p, idp.token(email="x@other.org", groups=["admins-group"])).any_sans


def test_revoke_is_for_admins(idp):
    p = provisioner(admins=["alice@example.com"])
    token = idp.token()
    header, claims = tokens.unverified(token)
    assert p.authorize_revoke(token, header, claims, CTX, "/1.0/revoke").id.startswith(ISSUER)
    token = idp.token(email="bob@example.com")
    header, claims = tokens.unverified(token)
    with pytest.raises(Forbidden):
        p.authorize_revoke(token, header, claims, CTX, "/1.0/revoke")


def test_ssh(idp):
    token = idp.token(email="Jane.Doe+x@Example.com")
    header, claims = tokens.unverified(token)
    with pytest.raises(Unauthorized, match="disabled"):
        provisioner().authorize_ssh_sign(token, header, claims, CTX)
    authz = provisioner(claims={"enableSSHCA": True}).authorize_ssh_sign(token, header, claims, CTX)
    assert authz.cert_type == "user" and authz.key_id == "Jane.Doe+x@Example.com"
    assert authz.principals == ("janedoe_x", "Jane.Doe+x", "Jane.Doe+x@Example.com")
    assert not authz.any_principals


# --- helpers -----------------------------------------------------------------------------------------------


def test_sanitizers():
    assert sanitize_email("Alice@EXAMPLE.Com") == "Alice@example.com"
    assert sanitize_principal("First.Last-1@x") == "firstlast-1"
    assert ssh_principals("bob@x.org") == ["bob", "bob@x.org"]
    with pytest.raises(Unauthorized):
        ssh_principals("1bob@x.org")


def test_listen_address():
    assert listen_address({}, None) == ("127.0.0.1", 0)
    assert listen_address({"listenAddress": ":10000"}, None) == ("127.0.0.1", 10000)
    assert listen_address({"listenAddress": ":10000"}, "127.0.0.2:9") == ("127.0.0.2", 9)
    assert listen_address({}, "0.0.0.0:8000") == ("127.0.0.1", 8000)  # never beyond loopback
    with pytest.raises(ClientError):
        listen_address({}, ":http")


def test_pkce_pair():
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
