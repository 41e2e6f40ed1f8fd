"""The OIDC provisioner through the handlers, against moto and a test OpenID provider on loopback."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import authority, oidc_discovery
from stepless.api.sign import app
from stepless.cli.ca import request_names
from stepless.cli.sso import oidc_login
from stepless.errors import CLIError
from stepless.ssh import encode_public_key, parse_certificate
from stepless.stores import authority as store
from stepless.x509 import extensions
from tests.support.ca import call, make_csr
from tests.support.oidc_provider import ALICE, new_key

ADMIN = "root@example.com"


def add_provisioner(entry: dict, *, ssh: bool = False) -> None:
    doc, version = store.load()
    if ssh:
        entry = {**entry, "claims": {**entry.get("claims", {}), "enableSSHCA": True}}
    doc["provisioners"] = [*doc["provisioners"], entry]
    store.save(doc, expected_version=version)
    authority.reset()


@pytest.fixture
def oidc_ca(test_ca, idp):
    add_provisioner(idp.entry(admins=[ADMIN], domains=["example.com"]), ssh=True)
    return test_ca


def sign(token: str, cn: str | None = None, sans: list[str] | None = None, **body):
    """POST /sign; by default with the CSR `stepless ca certificate EMAIL` (and step) build for an ID token:
    CN = its opaque sub, SAN = its email."""
    if cn is None:
        cn, default_sans = request_names(token, ALICE["email"], [], token_given=True)
        sans = default_sans if sans is None else sans
    csr, _ = make_csr(cn, sans if sans is not None else [cn])
    return call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token, **body})


def leaf_of(body) -> x509.Certificate:
    return x509.load_pem_x509_certificate(body["crt"].encode())


def emails(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name)


# --- X.509 ----------------------------------------------------------------------------------------


def test_good_token_gets_its_email(oidc_ca, idp):
    status, body = sign(idp.issue())
    assert status == 201, body
    leaf = leaf_of(body)
    assert emails(leaf) == ["alice@example.com"]
    assert leaf.subject.rfc4514_string() == f"CN={ALICE['sub']}"  # step-ca: the CN is the token's sub
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert uris == [f"{idp.issuer}#{ALICE['sub']}"]  # step-ca 0.19: <iss>#<sub>
    assert extensions.of(leaf) == (2, "sso", idp.client_id)


def test_step_cli_style_csr(oidc_ca, idp):
    # step's CLI: CN = sub, SAN = the email
    status, body = sign(idp.issue(), cn=ALICE["sub"], sans=["alice@example.com"])
    assert status == 201, body


def test_email_csr_of_the_old_cli_is_refused_and_the_cn_of_a_real_idp_token_is_its_sub(oidc_ca, idp):
    """Before: `stepless ca certificate alice@… --token ID` asked for CN=email, SAN=DNS:<sub> (from ``sub``):
    refused. What step and now our CLI send passes; CN=email with SAN=email passes too (CN among the SANs)."""
    status, body = sign(idp.issue(), cn="alice@example.com", sans=[ALICE["sub"]])
    assert status == 403 and "DNS names requested" in body["message"], body
    status, body = sign(idp.issue(), cn="alice@example.com", sans=["alice@example.com"])
    assert status == 201, body
    assert leaf_of(body).subject.rfc4514_string() == f"CN={ALICE['sub']}"


def test_wrong_audience(oidc_ca, idp):
    status, body = sign(idp.issue(aud="someone-else", azp=None))
    assert status == 401, body


def test_wrong_azp(oidc_ca, idp):
    status, body = sign(idp.issue(azp="someone-else"))
    assert status == 401 and "azp" in body["message"]


def test_wrong_issuer(oidc_ca, idp):
    status, body = sign(idp.issue(iss="https://evil.example.com"))
    assert status == 401, body


def test_expired(oidc_ca, idp):
    now = int(time.time())
    status, body = sign(idp.issue(iat=now - 7200, exp=now - 3600))
    assert status == 401 and "expired" in body["message"]


def test_lifetime_over_a_day(oidc_ca, idp):
    now = int(time.time())
    status, body = sign(idp.issue(iat=now, exp=now + 2 * 86400))
    assert status == 401 and "lifetime" in body["message"]


def test_bad_signature(oidc_ca, idp):
    forged = new_key("RS256", kid=idp.current.kid)  # same kid, another key
    status, body = sign(idp.issue(key=forged))
    assert status == 401 and "signature" in body["message"]


def test_hmac_token_refused(oidc_ca, idp):
    import jwt

    token = jwt.encode({"iss": idp.issuer, "aud": idp.client_id, "sub": "x", "exp": int(time.time()) + 60},
                       "secret-secret-secret-secret-secret", algorithm="HS256", headers={"kid": idp.current.kid})
    status, body = sign(token, cn="x")
    assert status == 401 and "algorithm" in body["message"]


def test_key_rotation_picked_up_once(oidc_ca, idp):
    assert sign(idp.issue())[0] == 201
    assert idp.hits["/jwks"] == 1
    idp.rotate("ES256")
    status, body = sign(idp.issue())
    assert status == 201, body
    assert idp.hits["/jwks"] == 2
    assert sign(idp.issue())[0] == 201
    assert idp.hits["/jwks"] == 2  # the new kid is cached now


def test_unknown_kid_refreshes_at_most_once_a_minute(oidc_ca, idp, monkeypatch):
    assert sign(idp.issue())[0] == 201
    stranger = new_key("RS256")
    assert sign(idp.issue(key=stranger))[0] == 401
    assert idp.hits["/jwks"] == 2
    assert sign(idp.issue(key=stranger))[0] == 401
    assert idp.hits["/jwks"] == 2  # no second refresh within the minute
    later = time.monotonic() + 61
    monkeypatch.setattr(oidc_discovery, "monotonic", lambda: later)
    idp.keys.append(stranger)  # published meanwhile
    status, body = sign(idp.issue(key=stranger))
    assert status == 201, body
    assert idp.hits["/jwks"] == 3


def test_replayed_nonce(oidc_ca, idp):
    token = idp.issue(nonce="n-1")
    assert sign(token)[0] == 201
    status, body = sign(token)
    assert status == 401 and "already used" in body["message"]
    status, body = sign(idp.issue(nonce="n-1"))  # another token, same nonce
    assert status == 401 and "already used" in body["message"]


def test_token_without_nonce_is_single_use_too(oidc_ca, idp):
    token = idp.issue(nonce=None)
    assert sign(token)[0] == 201
    assert sign(token)[0] == 401


def test_non_admin_asking_for_another_name(oidc_ca, idp):
    status, body = sign(idp.issue(), cn="bob@example.com")
    assert status == 403, body
    status, body = sign(idp.issue(), cn="alice@example.com", sans=["alice@example.com", "www.example.com"])
    assert status == 403, body


def test_domain_not_allowed(oidc_ca, idp):
    idp.user = {"sub": "00u8xk2mallory0h7", "email": "mallory@other.org", "email_verified": True}
    status, body = sign(idp.issue(), cn="mallory@other.org")
    assert status == 403 and "email is not allowed" in body["message"]


def test_unverified_email(oidc_ca, idp):
    status, body = sign(idp.issue(email_verified=False))
    assert status == 403 and "not verified" in body["message"]


def test_admin_asks_for_any_name(oidc_ca, idp):
    # the domain's case is ignored
    idp.user = {"sub": "AAAAAAAAAAAAAAAAAAAAAJ3bq0rT-root", "email": "root@EXAMPLE.com", "email_verified": True}
    status, body = sign(idp.issue(), cn="db.internal", sans=["db.internal", "10.0.0.7"])
    assert status == 201, body
    leaf = leaf_of(body)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["db.internal"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]


def test_admin_from_another_domain(oidc_ca, idp):
    # step-ca: admins are exempt from the domain list
    add_provisioner(idp.entry(name="sso2", admins=["ops@partner.org"], domains=["example.com"]))
    doc, version = store.load()
    doc["provisioners"] = [p for p in doc["provisioners"] if p["name"] != "sso"]
    store.save(doc, expected_version=version)
    authority.reset()
    idp.user = {"sub": "115038462211993456789", "email": "ops@partner.org", "email_verified": True}
    status, body = sign(idp.issue(), cn="anything.example.net")
    assert status == 201, body


def test_groups(test_ca, idp):
    add_provisioner(idp.entry(groups=["ops", "sre"]))
    status, body = sign(idp.issue())
    assert status == 403 and "group" in body["message"]
    status, body = sign(idp.issue(groups=["dev", "sre"]))
    assert status == 201, body


def test_no_idp_call_on_a_warm_container(oidc_ca, idp):
    assert sign(idp.issue())[0] == 201  # cold: discovery + JWKS
    assert idp.hits["/.well-known/openid-configuration"] == 1 and idp.hits["/jwks"] == 1
    before = sum(idp.hits.values())
    for _ in range(3):
        assert sign(idp.issue())[0] == 201
    assert sum(idp.hits.values()) == before


def test_selection_does_not_call_the_idp_for_other_tokens(oidc_ca, idp):
    status, _ = call(app, "POST", "/1.0/sign", {"csr": make_csr("svc.example.com")[0],
                                                "ott": oidc_ca.token("svc.example.com")})
    assert status == 201
    assert sum(idp.hits.values()) == 0


def test_provisioner_listed(oidc_ca, idp):
    status, body = call(app, "GET", "/provisioners")
    assert status == 200
    entry = next(p for p in body["provisioners"] if p["type"] == "OIDC")
    assert entry["clientID"] == idp.client_id
    assert entry["configurationEndpoint"] == idp.configuration_endpoint
    assert entry["clientSecret"] == idp.client_secret  # as step-ca: the CLI's flow needs it


# --- SSH ------------------------------------------------------------------------------------------


def ssh_sign(token: str, **body):
    from stepless.api.ssh import app as ssh_app

    key = ec.generate_private_key(ec.SECP256R1())
    blob = base64.b64encode(encode_public_key(key.public_key())).decode()
    return call(ssh_app, "POST", "/1.0/ssh/sign", {"publicKey": blob, "ott": token, **body})


def test_ssh_user_certificate_from_email(oidc_ca, idp):
    idp.user = {"sub": "d3c1f7e2-0b5a-4a8e-9f61-jane", "email": "Jane.Doe@Example.com", "email_verified": True}
    status, body = ssh_sign(idp.issue())
    assert status == 201, body
    cert = parse_certificate(base64.b64decode(body["crt"]))
    assert cert.is_user
    assert list(cert.principals) == ["janedoe", "Jane.Doe", "Jane.Doe@Example.com"]
    assert cert.key_id == "Jane.Doe@Example.com"


def test_ssh_non_admin_cannot_choose_principals(oidc_ca, idp):
    status, body = ssh_sign(idp.issue(), principals=["root"])
    assert status == 403, body


def test_ssh_admin_chooses_principals(oidc_ca, idp):
    idp.user = {"sub": "AAAAAAAAAAAAAAAAAAAAAJ3bq0rT-root", "email": ADMIN, "email_verified": True}
    status, body = ssh_sign(idp.issue(), principals=["root", "deploy"])
    assert status == 201, body
    assert list(parse_certificate(base64.b64decode(body["crt"])).principals) == ["root", "deploy"]


# --- the login flow (client side) -------------------------------------------------------------------


def browser(url: str) -> threading.Thread:
    """A 'browser' that follows the authorize redirect to the loopback listener."""
    def run() -> None:
        with contextlib.suppress(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=10).read()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_oidc_login_end_to_end(oidc_ca, idp):
    opened: list[str] = []
    entry = idp.entry()

    def open_url(url: str) -> None:
        opened.append(url)
        browser(url)

    token = oidc_login(entry, console=False, listen=None, timeout=20, open_url=open_url)
    assert "code_challenge_method=S256" in opened[0]
    assert idp.hits["/token"] == 1
    status, body = sign(token)  # the CSR `stepless ca certificate alice@example.com … --provisioner sso` sends
    assert status == 201, body
    assert emails(leaf_of(body)) == ["alice@example.com"]
    assert leaf_of(body).subject.rfc4514_string() == f"CN={ALICE['sub']}"


def test_oidc_login_on_the_listen_address(idp):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opened: list[str] = []

    def open_url(url: str) -> None:
        opened.append(url)
        browser(url)

    token = oidc_login(idp.entry(listenAddress=f":{port}"), console=False, listen=None, timeout=20,
                       open_url=open_url)
    assert f"127.0.0.1%3A{port}" in opened[0]
    assert token.count(".") == 2


def test_oidc_login_wrong_secret(idp):
    entry = idp.entry(clientSecret="wrong")
    with pytest.raises(CLIError, match="exchanging"):
        oidc_login(entry, console=False, listen=None, timeout=20, open_url=browser)


def test_oidc_login_console_times_out(idp, capsys):
    with pytest.raises(CLIError, match="timed out"):
        oidc_login(idp.entry(), console=True, listen=None, timeout=0.5)
    assert "/authorize?" in capsys.readouterr().err
