"""X5C provisioner: tokens signed by the key of an X.509 certificate that chains to a configured root.

Configuration (step-ca's JSON)::

    {"type": "X5C", "name": "devices", "roots": "<base64 of concatenated PEM roots>", "claims": {…},
     "allowAnyNames": false}

``roots`` is step-ca's form (its Go ``[]byte`` marshals as base64); a PEM string or a list of PEM strings
is accepted too. ``allowAnyNames`` is a stepless extension (see below).

A token's protected header carries ``x5c``: [standard base64 DER leaf, intermediates…] (RFC 7515 §4.1.6).

* The chain is verified to one of the configured roots at the current time with cryptography's
  path validation (``cryptography.x509.verification``): signatures, issuer/subject chaining, validity of
  every certificate, basicConstraints/pathLen/keyUsage of the CAs, name constraints and the signature
  algorithms, under the Web PKI CA profile. The leaf is checked with a permissive extension policy (device
  certificates need no SAN, no AKI…) plus what step-ca (Go's crypto/x509 with ``ExtKeyUsageClientAuth``)
  checks: an extended key usage, on the leaf and on every CA of the path, must include clientAuth or
  anyExtendedKeyUsage when present; and the leaf's keyUsage must include digitalSignature.
* The token is signed by the leaf's key, with an algorithm that key allows (never ``none``/HMAC);
  ``iss`` = the provisioner name; ``aud`` = the CA's endpoint (``#x5c/<name>`` or ``#<name>`` fragment
  accepted); times, ``sub`` and ``jti`` as every one-time token (one hour at most, used once).
* Names: ``sub`` and the ``sans`` claim (``[sub]`` when absent) must all be names of the leaf (its SANs
  or its common name; DNS names case-insensitively), so a device can only get certificates for itself —
  unless the provisioner says ``"allowAnyNames": true`` (step-ca's behaviour: the token's names, whatever
  they are). SSH principals likewise (for user certificates the local parts of the leaf's emails count).
* When the verified path runs through this CA's own PKI (an X5C provisioner rooted at our root or
  intermediate), the service refuses a leaf of ours that we revoked (``Context.check_path``: one
  consistent read, none for foreign chains) — step-ca 0.19 accepts it.
* The issued certificate never outlives the leaf: its validity is bounded by the leaf's notBefore and
  notAfter (``SignAuthorization.not_before_limit/not_after_limit``; the default duration is capped, an
  explicit notAfter beyond the leaf is refused).
* Provisioner extension type 7, empty credential ID (as step-ca).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from stepless import tokens
from stepless.errors import ConfigError, Forbidden, Unauthorized
from stepless.provisioners.base import Context, Provisioner, SignAuthorization, SSHAuthorization, TokenUse, ssh_request
from stepless.provisioners.sshpop import token_algorithms
from stepless.x509 import chain as x509_chain
from stepless.x509.csr import SANs

SIGN_PATH = "/1.0/sign"
SSH_SIGN_PATH = "/1.0/ssh/sign"
MAX_CHAIN = 10  # certificates in an x5c header
MAX_DEPTH = 8  # intermediates + root


def parse_roots(value: object, name: str = "") -> list[x509.Certificate]:
    """The roots of a configuration entry: base64 of PEMs (step-ca), PEM text, or a list of PEMs."""
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"provisioner {name}: roots must be PEM strings")
        text = "\n".join(value)
    elif isinstance(value, str) and "-----BEGIN" in value:
        text = value
    elif isinstance(value, str) and value.strip():
        try:
            text = base64.b64decode(value.strip(), validate=False).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"provisioner {name}: roots is not base64 of PEM certificates") from e
    else:
        raise ConfigError(f"provisioner {name}: provisioner root(s) cannot be empty")
    try:
        roots = x509.load_pem_x509_certificates(text.encode())
    except ValueError as e:
        raise ConfigError(f"provisioner {name}: no x509 certificates found in roots") from e
    if not roots:
        raise ConfigError(f"provisioner {name}: no x509 certificates found in roots")
    return roots


def encode_roots(roots: list[x509.Certificate]) -> str:
    """step-ca's ``roots`` value for certificates (base64 of the concatenated PEMs)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return base64.b64encode(b"".join(c.public_bytes(Encoding.PEM) for c in roots)).decode()


def chain_from_header(header: dict[str, Any]) -> list[x509.Certificate]:
    """The certificates of the ``x5c`` header, leaf first (401 when missing or malformed)."""
    value = header.get("x5c")
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise Unauthorized("x5c token has no x5c header")
    if len(value) > MAX_CHAIN:
        raise Unauthorized(f"x5c header has more than {MAX_CHAIN} certificates")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in value]
    except (binascii.Error, ValueError) as e:
        raise Unauthorized("error parsing the x5c header certificates") from e


def leaf_names(leaf: x509.Certificate) -> SANs:
    """The names a leaf vouches for: its SANs and its common name."""
    sans = SANs.of(leaf)
    cn = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    extra = SANs.split(cn)
    return SANs(*(tuple(dict.fromkeys(getattr(sans, f) + getattr(extra, f)))
                  for f in ("dns", "ips", "emails", "uris")))


def _beyond(names: list[str], allowed: SANs) -> list[str]:
    """The names not among ``allowed``."""
    out = []
    for name in names:
        one = SANs.split([name])
        if not all(set(getattr(one, f)) <= set(getattr(allowed, f)) for f in ("dns", "ips", "emails", "uris")):
            out.append(name)
    return out


class X5CProvisioner(Provisioner):
    """step-ca's X5C provisioner."""

    type = "X5C"

    def __init__(self, data: dict[str, Any], authority_claims: Any) -> None:
        super().__init__(data, authority_claims)
        self.roots = parse_roots(data.get("roots"), self.name)
        self.store = Store(self.roots)
        allow = data.get("allowAnyNames", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"provisioner {self.name}: allowAnyNames must be a boolean")
        self.allow_any_names = allow

    def verify_chain(self, chain: list[x509.Certificate], now: dt.datetime) -> list[x509.Certificate]:
        """The verified path (leaf … root) of ``chain`` to a configured root at ``now`` (401 otherwise)."""
        verifier = (
            PolicyBuilder()
            .store(self.store)
            .time(now)
            .max_chain_depth(MAX_DEPTH)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        leaf = chain[0]
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise Unauthorized("error verifying x5c certificate chain in token: the leaf certificate has "
                               "expired or is not yet valid")
        try:
            path = list(verifier.verify(leaf, chain[1:]).chain)
        except VerificationError as e:
            reason = str(e).split(" (encountered", 1)[0]
            raise Unauthorized(f"error verifying x5c certificate chain in token: {reason}") from e
        if not all(x509_chain.has_client_auth(c, absent_ok=True) for c in path):
            raise Unauthorized("error verifying x5c certificate chain in token: "
                               "certificate specifies an incompatible key usage")
        if not x509_chain.allows_digital_signature(leaf):
            raise Unauthorized("certificate used to sign x5c token cannot be used for digital signature")
        return path

    def _verify(self, token: str, header: dict, path: str, ctx: Context) -> tuple[dict, x509.Certificate, TokenUse]:
        chain = chain_from_header(header)
        verified = self.verify_chain(chain, ctx.now)
        if ctx.check_path is not None:
            ctx.check_path(verified)
        leaf = verified[0]
        alg = tokens.check_algorithm(header, token_algorithms(leaf.public_key()))
        claims = tokens.verify_signature(token, leaf.public_key(), alg)
        tokens.check_common(claims, ctx.audience(path), self.name, self.fragments())
        return claims, leaf, TokenUse(tokens.token_id(self.name, claims, token), int(claims["exp"]))

    def _check_names(self, names: list[str], leaf: x509.Certificate, *, user_principals: bool = False) -> None:
        if self.allow_any_names:
            return
        allowed = leaf_names(leaf)
        if user_principals:
            locals_ = tuple(e.rpartition("@")[0] for e in allowed.emails)
            allowed = SANs(allowed.dns + tuple(n.lower() for n in locals_), allowed.ips, allowed.emails, allowed.uris)
        beyond = _beyond(names, allowed)
        if beyond:
            raise Forbidden(f"x5c token names {beyond} are not names of the x5c certificate "
                            f"(allowed: {sorted(allowed.names())})")

    def authorize_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SignAuthorization:
        claims, leaf, use = self._verify(token, header, SIGN_PATH, ctx)
        sans = claims.get("sans") or [claims["sub"]]
        if not isinstance(sans, list) or not all(isinstance(s, str) and s for s in sans):
            raise Unauthorized("token sans claim must be a list of names")
        self._check_names([claims["sub"], *sans], leaf)
        return SignAuthorization(self, claims["sub"], tuple(sans), use,
                                 not_before_limit=leaf.not_valid_before_utc,
                                 not_after_limit=leaf.not_valid_after_utc)

    def authorize_ssh_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SSHAuthorization:
        if not self.claims.enable_ssh_ca:
            raise Unauthorized(f"ssh certificates are disabled for x5c provisioner '{self.name}'")
        claims, leaf, use = self._verify(token, header, SSH_SIGN_PATH, ctx)
        cert_type, principals, opts = ssh_request(claims, lambda kind: [claims["sub"]])
        self._check_names(principals, leaf, user_principals=cert_type == "user")
        return self.ssh_authorization(claims, opts, cert_type, principals, use,
                                      not_after_limit=leaf.not_valid_after_utc)

    def authorize_revoke(self, token: str, header: dict, claims: dict, ctx: Context, path: str) -> TokenUse:
        _, _, use = self._verify(token, header, path, ctx)
        return use
