"""`stepless ca certificate` builds its CSR from the token as step's certificate flow does (issue 11, item 2)."""

from __future__ import annotations

import jwt
import pytest

from stepless.cli.ca import is_oidc, request_names
from stepless.errors import ClientError

SUB = "b1417884-5c3e-4f7a-9d2b-6e0f8a1c3d57"


def token(**claims: object) -> str:
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def idp_token(**extra: object) -> str:
    """An ID token as Google/Okta/Azure AD shape it: opaque sub, the address in email."""
    return token(iss="https://idp.example.com", aud="client", sub=SUB, email="alice@example.com",
                 email_verified=True, **extra)


def test_idp_token_cn_is_sub_and_san_is_email():
    assert request_names(idp_token(), "alice@example.com", [], token_given=True) == (SUB, ["alice@example.com"])


def test_idp_token_with_extra_sans_for_an_admin():
    """step: --san names first, then the token's email; the subject must be the first email."""
    cn, sans = request_names(idp_token(), "alice@example.com", ["db.internal", "10.0.0.7"], token_given=True)
    assert (cn, sans) == (SUB, ["db.internal", "10.0.0.7", "alice@example.com"])


def test_idp_token_subject_must_be_the_email():
    with pytest.raises(ClientError, match="token email 'alice@example.com' and argument 'bob@example.com' do not"):
        request_names(idp_token(), "bob@example.com", [], token_given=True)
    with pytest.raises(ClientError, match="do not match"):
        request_names(idp_token(), SUB, [], token_given=True)  # the opaque id is not what the user asks for


def test_step_token_cn_is_sub_and_sans_are_the_tokens():
    tok = token(sub="svc.example.com", sans=["svc.example.com", "10.0.0.5"], sha="ab" * 32)
    assert request_names(tok, "SVC.example.com", [], token_given=True) == (
        "svc.example.com", ["svc.example.com", "10.0.0.5"])


def test_step_token_without_sans_names_its_subject():
    assert request_names(token(sub="ci-runner", sha="ab"), "ci-runner", [], token_given=True) == (
        "ci-runner", ["ci-runner"])


def test_step_token_checks_subject_and_refuses_san_flags():
    tok = token(sub="a.example.com", sans=["a.example.com"], sha="ab")
    with pytest.raises(ClientError, match="token subject 'a.example.com' and argument 'b.example.com' do not match"):
        request_names(tok, "b.example.com", [], token_given=True)
    with pytest.raises(ClientError, match="--token and --san are mutually exclusive"):
        request_names(tok, "a.example.com", ["x.example.com"], token_given=True)
    # a token the CLI made itself from --san flags carries them already
    assert request_names(tok, "a.example.com", ["a.example.com"], token_given=False)[1] == ["a.example.com"]


@pytest.mark.parametrize(("claims", "oidc"), [
    (dict(sub=SUB, email="a@example.com"), True),
    (dict(sub="x", email="a@example.com", sha="ab"), False),  # a step token with an email claim is not OIDC
    (dict(sub="x", sans=["x"]), False),
    (dict(sub="x"), False),
])
def test_token_type_as_step_tells_it(claims, oidc):
    assert is_oidc(claims) is oidc


def test_garbage_token():
    with pytest.raises(ClientError, match="error parsing token"):
        request_names("not-a-token", "x", [], token_given=True)


def test_ca_sign_checks_the_token_subject_against_the_csr(stepless, tmp_path):
    """As step's `ca sign`: 'token subject … and CSR CommonName … do not match', before any request."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from stepless.cli import keys

    (tmp_path / "r.csr").write_bytes(keys.make_csr(keys.generate_key(), "ci-runner", []).public_bytes(Encoding.PEM))
    from tests.unit.cli._cli_certs import make_cert

    (tmp_path / "root.crt").write_bytes(make_cert("Root", ca=True)[0].public_bytes(Encoding.PEM))  # no request made
    res = stepless("ca", "sign", "r.csr", "r.crt", "--token", token(sub="other", sans=["other"], sha="ab"),
                   "--ca-url", "https://127.0.0.1:1", "--root", "root.crt")
    assert res.returncode == 1 and not (tmp_path / "r.crt").exists()
    assert res.stderr.strip() == "error: token subject 'other' and CSR CommonName 'ci-runner' do not match"
