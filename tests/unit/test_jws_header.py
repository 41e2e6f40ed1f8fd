"""tokens.parse refuses protected headers it cannot honour, for every token type (they all go through it)."""

from __future__ import annotations

import base64
import json

import pytest

from stepless import tokens
from stepless.errors import Unauthorized


def compact(header: dict) -> str:
    enc = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header)}.{enc({'sub': 'x'})}.c2ln"


@pytest.mark.parametrize(("header", "message"), [
    ({"alg": "ES256", "crit": ["exp"]}, "critical header"),
    ({"alg": "ES256", "crit": []}, "critical header"),
    ({"alg": "ES256", "b64": False, "crit": ["b64"]}, "critical header"),
    ({"alg": "ES256", "b64": False}, "unencoded payload"),
    ({"alg": "ES256", "b64": "false"}, "unencoded payload"),
    ({"alg": ["ES256"]}, "malformed token header"),
    ({"alg": "ES256", "kid": ["a"]}, "malformed token header"),
    ({"alg": "ES256", "kid": 5}, "malformed token header"),
    ({"alg": "ES256", "typ": {"a": 1}}, "malformed token header"),
    ({"kid": "a"}, "malformed token header"),
])
def test_refused(header: dict, message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        tokens.parse(compact(header))


@pytest.mark.parametrize("header", [{"alg": "ES256"}, {"alg": "ES256", "kid": "k", "typ": "JWT", "b64": True},
                                    {"alg": "RS256", "x5c": ["AAAA"], "sshpop": "AAAA", "jwk": {"kty": "EC"}}])
def test_accepted(header: dict) -> None:
    assert tokens.parse(compact(header)).header == header
