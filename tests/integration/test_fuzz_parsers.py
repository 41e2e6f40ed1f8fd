"""Property tests over every parser an outsider reaches: CSRs, SSH public keys and certificates, JWS
tokens and their headers (x5c, x5cInsecure, sshpop, crit, b64, alg, kid…). Whatever the input, the
handlers answer a step-style error (``{"status": N, "message": "..."}``) below 500, never a traceback.

Examples are drawn from mutations of valid inputs (flipped bytes, truncations, insertions) and from
free-form values; the project's hypothesis profile draws the same ones on every run (``HYPOTHESIS_PROFILE=
explore`` searches anew).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stepless import authority, jose
from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.api import sign as sign_api
from stepless.api import ssh as ssh_api
from stepless.stores import authority as authority_store
from tests.integration.test_renew import issue, renew_token
from tests.integration.test_ssh_renew import host_cert, sshpop_token
from tests.integration.test_ssh_sign import b64key
from tests.support import ca as support
from tests.support.ca import call, make_csr, make_key

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclasses.dataclass
class Fuzz:
    ca: support.TestCA
    csr_der: bytes
    ssh_key_blob: bytes
    host_crt: str  # base64 wire blob of an SSH host certificate of ours
    host_key: Any
    leaf_pem: str
    leaf_key: Any

    @property
    def leaf_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.leaf_pem.encode()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def fuzz() -> Iterator[Fuzz]:
    with support.moto_environment():
        ca = support.initialize(support.create_resources())
        doc, version = authority_store.load()
        doc["provisioners"].append({"type": "X5C", "name": "ours", "roots": authority.get().root_pems[0],
                                    "claims": {"enableSSHCA": True}})
        authority_store.save(doc, expected_version=version)
        authority.reset()
        csr_pem, _ = make_csr("fuzz.example.com")
        csr_der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(Encoding.DER)
        crt, host_key = host_cert(ca)
        _, leaf_key, leaf_pem = issue(ca, "leaf.example.com")
        yield Fuzz(ca, csr_der, base64.b64decode(b64key(make_key())), crt, host_key, leaf_pem, leaf_key)


def answered(got: tuple[int, Any]) -> int:
    """The status, after asserting a step-style error body and no 5xx."""
    status, body = got
    assert status < 500, (status, body)
    if status >= 400:
        assert isinstance(body, dict) and body.get("status") == status, body
        assert isinstance(body.get("message"), str) and body["message"], body
    return status


# --- mutations ---------------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few byte flips, truncations, insertions, deletions or bytes pushed off by one (never
    ``original`` itself)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "bump"]))
        if not data:
            break
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if kind == "flip":
            data[at] ^= draw(st.integers(min_value=1, max_value=255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(min_value=1, max_value=8))]
        else:
            data[at] = (data[at] + draw(st.sampled_from([1, -1, 0x80]))) % 256
    assume(bytes(data) != original)  # two mutations may undo each other
    return bytes(data)


def pem(der: bytes, label: str = "CERTIFICATE REQUEST") -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


JSON = st.recursive(st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                    | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)
B64ISH = st.one_of(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_- ",
                           max_size=120), st.binary(max_size=90).map(lambda b: base64.b64encode(b).decode()))


# --- CSRs --------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_malformed_csrs_never_answer_500(fuzz: Fuzz, data: st.DataObject) -> None:
    csr = data.draw(st.one_of(mutated(fuzz.csr_der).map(pem), st.text(max_size=200), B64ISH.map(
        lambda t: f"-----BEGIN CERTIFICATE REQUEST-----\n{t}\n-----END CERTIFICATE REQUEST-----\n"), JSON))
    ott = fuzz.ca.token("fuzz.example.com")
    answered(call(sign_api.app, "POST", "/1.0/sign", {"csr": csr, "ott": ott}))
    answered(call(renew_api.app, "POST", "/1.0/rekey", {"csr": csr}, client_cert_pem=fuzz.leaf_pem))


# --- SSH public keys and certificates ---------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_malformed_ssh_keys_never_answer_500(fuzz: Fuzz, data: st.DataObject) -> None:
    blob = data.draw(mutated(fuzz.ssh_key_blob))
    key = data.draw(st.one_of(st.just(base64.b64encode(blob).decode()),
                              st.just("ecdsa-sha2-nistp256 " + base64.b64encode(blob).decode() + " c"),
                              B64ISH, JSON))
    token = fuzz.ca.token("alice", path="/1.0/ssh/sign", step={"ssh": {}})
    answered(call(ssh_api.app, "POST", "/1.0/ssh/sign", {"publicKey": key, "ott": token}))
    rekey = sshpop_token(fuzz.host_crt, fuzz.host_key, "/1.0/ssh/rekey")
    answered(call(ssh_api.app, "POST", "/1.0/ssh/rekey", {"publicKey": key, "ott": rekey}))


@FUZZ
@given(data=st.data())
def test_malformed_sshpop_certificates_never_answer_500(fuzz: Fuzz, data: st.DataObject) -> None:
    blob = data.draw(mutated(base64.b64decode(fuzz.host_crt)))
    token = sshpop_token(base64.b64encode(blob).decode(), fuzz.host_key, "/1.0/ssh/renew")
    assert answered(call(ssh_api.app, "POST", "/1.0/ssh/renew", {"ott": token})) == 401


# --- JWS tokens and headers --------------------------------------------------------------------------


HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64", "x5c", "x5cInsecure", "sshpop", "jwk", "jku", "cty", "zip", "enc"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: dict[str, Any], claims: Any, key: Any) -> str:
    """A compact JWS over ``header``/``claims`` signed with ``key`` when ``alg`` names a usable algorithm."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    try:
        signature = jwt.get_algorithm_by_name(header.get("alg")).sign(signing_input.encode(), key)
    except Exception:  # noqa: BLE001 - an alg the key cannot make (or none at all): a junk signature
        signature = b"\x00" * 64
    return signing_input + "." + b64url(signature)


@st.composite
def header_member(draw: st.DrawFn, fuzz: Fuzz) -> tuple[str, Any]:
    name = draw(st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=6)))
    der = fuzz.leaf_der
    value = draw(st.one_of(
        JSON,
        st.sampled_from(["ES256", "none", "HS256", "EdDSA", "RS256", "PS512"]),
        st.lists(st.one_of(B64ISH, mutated(der).map(lambda b: base64.b64encode(b).decode())), max_size=3),
        mutated(base64.b64decode(fuzz.host_crt)).map(lambda b: base64.b64encode(b).decode()),
    ))
    return name, value


def endpoints(fuzz: Fuzz, token: str) -> list[tuple[Any, str, Any, dict[str, Any]]]:
    return [
        (sign_api.app, "/1.0/sign", {"csr": make_csr("fuzz.example.com")[0], "ott": token}, {}),
        (revoke_api.app, "/1.0/revoke", {"serial": "1234", "ott": token}, {}),
        (ssh_api.app, "/1.0/ssh/sign", {"publicKey": b64key(make_key()), "ott": token}, {}),
        (ssh_api.app, "/1.0/ssh/renew", {"ott": token}, {}),
        (ssh_api.app, "/1.0/ssh/revoke", {"serial": "1234", "ott": token}, {}),
        (renew_api.app, "/1.0/renew", None, {"headers": {"Authorization": f"Bearer {token}"}}),
    ]


@FUZZ
@given(data=st.data())
def test_malformed_jws_headers_never_answer_500(fuzz: Fuzz, data: st.DataObject) -> None:
    """A valid token's header with members added or replaced, signed again by the same key."""
    base = data.draw(st.sampled_from(["jwk", "sshpop", "renew"]))
    if base == "jwk":
        token, key = fuzz.ca.token("1234", path="/1.0/revoke"), fuzz.ca.provisioner_key
    elif base == "sshpop":
        token, key = sshpop_token(fuzz.host_crt, fuzz.host_key, "/1.0/ssh/renew"), fuzz.host_key
    else:
        token = renew_token(x509.load_pem_x509_certificate(fuzz.leaf_pem.encode()), fuzz.leaf_key)
        key = fuzz.leaf_key
    head, payload, _ = token.split(".")
    header = json.loads(jose.b64d(head))
    header.update(data.draw(st.lists(header_member(fuzz), min_size=1, max_size=3)))
    claims = json.loads(jose.b64d(payload))
    if data.draw(st.booleans()):
        names = st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "sans", "step"])
        values = st.one_of(JSON, st.sampled_from(["ours", "admin", "sshpop", "step-ca-client/1.0", "1234"]))
        claims.update(data.draw(st.dictionaries(names, values, max_size=3)))
    forged = signed(header, claims, key)
    app, path, body, kw = data.draw(st.sampled_from(endpoints(fuzz, forged)))
    answered(call(app, "POST", path, body, **kw))


@FUZZ
@given(token=st.one_of(
    st.text(max_size=300),
    st.lists(B64ISH, min_size=1, max_size=5).map(".".join),
    st.tuples(JSON, JSON).map(lambda hc: ".".join([b64url(json.dumps(hc[0]).encode()),
                                                   b64url(json.dumps(hc[1]).encode()), "c2ln"])),
), which=st.integers(min_value=0, max_value=5))
def test_malformed_tokens_never_answer_500(fuzz: Fuzz, token: str, which: int) -> None:
    app, path, body, kw = endpoints(fuzz, token)[which]
    answered(call(app, "POST", path, body, **kw))
