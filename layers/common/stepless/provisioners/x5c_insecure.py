"""step's renew token: a JWT with an ``x5cInsecure`` header, signed by the key of the leaf it carries.

Header ``{"alg": …, "x5cInsecure": [b64 DER leaf, b64 DER intermediate…]}``. The leaf must be one our
intermediate issued (the chain is checked as of leaf.notAfter − 1m, so an expired leaf still parses:
whether it may renew is the renew rules' business). Claims: ``iss`` ``step-ca-client/1.0`` (or, from
older clients, the issuing provisioner's name), ``sub`` the leaf's CN, ``aud`` …/1.0/renew, times as
every token, a ``jti`` that is used once (by the caller, together with the record of the new certificate).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from stepless import tokens
from stepless.errors import Unauthorized
from stepless.provisioners.base import TokenUse
from stepless.x509 import chain, extensions

CLIENT_ISSUER = "step-ca-client/1.0"
RENEW_PATH = "/1.0/renew"
PREFIX = "error validating renew token"


@dataclasses.dataclass(frozen=True)
class RenewToken:
    """A verified renew token: the certificate to renew and the single-use record it leaves."""

    leaf: x509.Certificate
    claims: dict[str, Any]
    use: TokenUse


def _fail(why: str, code: str = "invalid_token") -> Unauthorized:
    return Unauthorized(f"{PREFIX}: {why}", reason=code)


def leaf_of(header: dict[str, Any]) -> x509.Certificate:
    """The leaf certificate in the ``x5cInsecure`` header."""
    chain_b64 = header.get("x5cInsecure")
    if not isinstance(chain_b64, list) or not chain_b64 or not all(isinstance(c, str) for c in chain_b64):
        raise _fail("missing x5cInsecure header", "invalid_x5c_token")
    try:
        return chain.well_formed(x509.load_der_x509_certificate(base64.b64decode(chain_b64[0], validate=True)))
    except (ValueError, binascii.Error) as e:
        raise _fail("invalid certificate in x5cInsecure header", "invalid_x5c_token") from e


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _provisioner_name(leaf: x509.Certificate) -> str | None:
    try:
        ext = extensions.of(leaf)
    except ValueError:
        return None
    return ext[1] if ext else None


def verify(token: str, intermediates: Sequence[x509.Certificate], hosts: frozenset[str]) -> RenewToken:
    """Check a renew token completely except the jti (consumed when the new certificate is recorded)."""
    header, _ = tokens.unverified(token)
    leaf = leaf_of(header)
    issuers = [i for i in intermediates if chain.issued_by(leaf, i)]
    if not issuers:
        raise _fail(chain.NOT_OURS)
    if chain.is_ca(leaf):
        raise _fail("certificate is a CA certificate")
    as_of = leaf.not_valid_after_utc - dt.timedelta(minutes=1)
    # after a rotation that kept the key, old and new intermediate both verify the leaf: either will do
    if not any(chain.within(i, as_of) for i in issuers):
        raise _fail("the intermediate was not valid when the certificate was")
    if not chain.allows_digital_signature(leaf):
        raise _fail("certificate used to sign the token cannot be used for digital signature")
    alg = tokens.check_algorithm(header)
    claims = tokens.verify_signature(token, leaf.public_key(), alg)
    tokens.check_times(claims)
    cn = common_name(leaf)
    if cn and claims.get("sub") != cn:  # as step-ca: a leaf without CN (a name over 64) leaves sub unchecked
        raise _fail("invalid subject claim (sub)")
    name = _provisioner_name(leaf)
    issuers = {CLIENT_ISSUER} | ({name} if name else set())
    if claims.get("iss") not in issuers:
        raise _fail("invalid issuer claim (iss)", "invalid_issuer")
    if not tokens.Audience(RENEW_PATH, hosts).matches(claims.get("aud")):
        raise _fail("invalid audience claim (aud)", "invalid_audience")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _fail("token has no jti claim")
    use = TokenUse(tokens.token_id(f"renew/{leaf.serial_number}", claims, token), int(claims["exp"]))
    return RenewToken(leaf, claims, use)
