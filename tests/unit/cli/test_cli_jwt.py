"""``stepless crypto jwt inspect --insecure``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import jwt as pyjwt
import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric import ec

from stepless.cli.crypto import decode_token

Run = Callable[..., subprocess.CompletedProcess[str]]


def _token() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {
        "aud": "https://ca.test/1.0/sign",
        "iss": "admin",
        "sub": "svc",
        "sans": ["svc", "10.0.0.1"],
        "jti": "abc",
        "nbf": 1,
        "exp": 2,
    }
    return pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "kid-1", "typ": "JWT"})


def test_round_trip(invoke: Callable[..., Result]) -> None:
    token = _token()
    res = invoke("crypto", "jwt", "inspect", "--insecure", input=f"  {token}\n\n")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert list(doc) == ["header", "payload", "signature"]
    assert doc["header"] == {"alg": "ES256", "kid": "kid-1", "typ": "JWT"}
    assert doc["payload"] == pyjwt.decode(token, options={"verify_signature": False})
    assert doc["signature"] == token.split(".")[2]
    assert res.stdout.startswith('{\n  "header": {\n    "alg": "ES256",\n')


def test_subprocess_round_trip(stepless: Run) -> None:
    token = _token()
    proc = stepless("crypto", "jwt", "inspect", "--insecure", input=token + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["payload"]["sans"] == ["svc", "10.0.0.1"]


def test_requires_insecure(stepless: Run) -> None:
    proc = stepless("crypto", "jwt", "inspect", input=_token())
    assert proc.returncode == 1
    assert proc.stderr == "error: 'stepless crypto jwt inspect' requires the '--insecure' flag\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("garbage", "compact JWS format must have three parts"),
        ("", "no token"),
        ("a.b.c", "error parsing token"),
        ("e30.!!!.c", "error parsing token"),
        ("WzFd.e30.c2ln", "header is not a JSON object"),
        ("\xff\xfe", "error parsing token"),
    ],
)
def test_malformed(stepless: Run, data: str, message: str) -> None:
    proc = stepless("crypto", "jwt", "inspect", "--insecure", input=data)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_decode_token_unit() -> None:
    token = _token()
    assert decode_token(token)["header"]["kid"] == "kid-1"
