"""OIDC provisioner: ID tokens signed by an OpenID provider, obtained by a single sign-on flow.

Configuration (step-ca's JSON)::

    {"type": "OIDC", "name": "google", "clientID": "…", "clientSecret": "…",
     "configurationEndpoint": "https://accounts.google.com/.well-known/openid-configuration",
     "admins": ["alice@example.com"], "domains": ["example.com"], "groups": ["ops"],
     "listenAddress": ":10000", "claims": {…}}

Verification (``_verify``):

* the provider's discovery document and JWKS come from :mod:`stepless.oidc_discovery` (cached per
  container; a known ``kid`` costs no HTTP request, an unknown one refreshes the keys at most once a
  minute); the token's ``alg`` must be one the key allows (asymmetric only: never ``none`` or HMAC);
* ``iss`` = the discovered issuer; ``aud`` contains the client ID; ``azp``, when present, is the client ID;
* ``exp``/``nbf``/``iat`` with a minute of leeway; ID tokens live longer than step's one-time tokens
  (an hour is common, some IdPs allow more), so their lifetime may be up to ``MAX_LIFETIME`` (24 h);
* (the token is authentic from here on: what follows refuses with 403, not 401)
  ``email_verified`` must not be ``false``; with ``domains`` set, the email's domain must be one of them
  (admins excepted, as in step-ca; a token without an email is refused then); with ``groups`` set, the
  token's ``groups`` claim must share at least one of them;
* single use: the ``nonce`` (or the SHA-256 of the token when it has none) under the issuer's name.

What a token gets (as step-ca): a non-admin an X.509 certificate whose common name is the token's ``sub``
and whose SANs are its email and the URI ``<iss>#<sub>`` (step-ca 0.19; the CSR's names must pass the per-type
rule of ``services.sign``); an admin (email, or a group, listed in ``admins``) any SANs. SSH: user
certificates whose principals come from the email (sanitized local part, raw local part, email); admins
any principals and host certificates. Revocation: admins only. Provisioner extension type 2 with the
client ID as credential.

``public_json`` keeps ``clientSecret``, as step-ca does: the CLI's authorization-code flow needs it for
providers that require a secret even for installed applications (Google), and an OIDC client used by a
CLI is a *public* client (RFC 8252 §8.5) whose secret is distributed to every user anyway. Operators must
therefore register a native/desktop client, never reuse a confidential web client.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote, urlsplit

from stepless import oidc_discovery, tokens
from stepless.errors import ConfigError, Forbidden, Unauthorized
from stepless.provisioners.base import Context, Provisioner, SignAuthorization, SSHAuthorization, TokenUse

_FRAGMENT_SAFE = "$&+,/:;=?@!()*"  # kept unescaped in a URL fragment by Go (besides letters, digits and -._~)
MAX_LIFETIME = 24 * 3600  # seconds an ID token may live (exp - iat/nbf)
_SSH_USER = re.compile(r"^[a-z][-a-z0-9_]*$")


def sanitize_email(email: str) -> str:
    """step's sanitizeEmail: the domain part lower-cased."""
    local, at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}" if at else email


def sanitize_principal(email: str) -> str:
    """step's SanitizeSSHUserPrincipal: local part, lower-case, dots dropped, other symbols → ``_``."""
    local = email.rpartition("@")[0] if "@" in email else email
    out = []
    for ch in local.lower():
        if "a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-":
            out.append(ch)
        elif ch != ".":
            out.append("_")
    return "".join(out)


def ssh_principals(email: str) -> list[str]:
    """step-ca's default OIDC identity: sanitized local part, raw local part, email (no duplicates)."""
    name = sanitize_principal(email)
    if not _SSH_USER.match(name):
        raise Unauthorized(f"invalid principal '{name}' from email '{email}'")
    names = [name]
    if "@" in email:
        names.append(email.rpartition("@")[0])
    names.append(email)
    return list(dict.fromkeys(n for n in names if n))


def subject_uri(issuer: str, sub: str) -> tuple[str, ...]:
    """step-ca 0.19's URI SAN for an ID token: ``<iss>#<sub>`` when the issuer is a URL with a scheme (the sub
    escaped as Go's ``url.URL.String`` escapes a fragment), else nothing."""
    if not urlsplit(issuer).scheme:
        return ()
    return (f"{issuer.partition('#')[0]}#{quote(sub, safe=_FRAGMENT_SAFE)}",)


def _strings(data: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"provisioner {name}: {key} must be a list of strings")
    return tuple(value)


def _audiences(aud: object) -> list[str]:
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


class OIDCProvisioner(Provisioner):
    """step-ca's OIDC provisioner."""

    type = "OIDC"

    def __init__(self, data: dict[str, Any], authority_claims: Any) -> None:
        super().__init__(data, authority_claims)
        self.client_id = data.get("clientID")
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigError(f"provisioner {self.name}: clientID cannot be empty")
        self.client_secret = str(data.get("clientSecret") or "")
        endpoint = data.get("configurationEndpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise ConfigError(f"provisioner {self.name}: configurationEndpoint cannot be empty")
        try:
            self.configuration_url = oidc_discovery.configuration_url(endpoint)
        except ValueError as e:
            raise ConfigError(f"provisioner {self.name}: {e}") from e
        self.endpoint = endpoint
        self.admins = frozenset(sanitize_email(a) for a in _strings(data, "admins", self.name))
        self.admin_groups = frozenset(_strings(data, "admins", self.name))
        self.domains = tuple(d.lower().lstrip("@") for d in _strings(data, "domains", self.name))
        self.groups = frozenset(_strings(data, "groups", self.name))
        listen = data.get("listenAddress") or ""
        if not isinstance(listen, str) or (listen and ":" not in listen):
            raise ConfigError(f"provisioner {self.name}: listenAddress must be host:port (e.g. ':10000')")
        self.listen_address = listen

    # --- identity -------------------------------------------------------------------------------

    @property
    def credential_id(self) -> str:
        return self.client_id

    @property
    def id(self) -> str:
        return self.client_id  # step-ca's GetID for OIDC

    def fragments(self) -> frozenset[str]:
        return frozenset({self.client_id, self.name})

    def claims_match(self, claims: dict[str, Any]) -> bool:
        """Whether an unverified token is aimed at this provisioner: aud has the client ID, iss the issuer.

        No IdP request unless the audience already names our client ID (then the discovery document is
        fetched once per container, as verification needs it anyway).
        """
        if self.client_id not in _audiences(claims.get("aud")):
            return False
        try:
            config = oidc_discovery.cached(self.endpoint) or oidc_discovery.configuration(self.endpoint)
        except Exception:  # noqa: BLE001 - an unreachable IdP simply does not match
            return False
        return claims.get("iss") == config.issuer

    def is_admin(self, claims: dict[str, Any]) -> bool:
        """The email (domain case-insensitive) or one of the groups is listed in ``admins``."""
        email = claims.get("email")
        if isinstance(email, str) and email and sanitize_email(email) in self.admins:
            return True
        groups = claims.get("groups")
        return isinstance(groups, list) and any(isinstance(g, str) and g in self.admin_groups for g in groups)

    # --- verification ---------------------------------------------------------------------------

    def _verify(self, token: str, header: dict[str, Any]) -> tuple[dict[str, Any], TokenUse]:
        config = oidc_discovery.configuration(self.endpoint)
        alg = tokens.check_algorithm(header)
        kid = header.get("kid")
        candidates = oidc_discovery.keys(config.jwks_uri, kid if isinstance(kid, str) else None)
        claims: dict[str, Any] | None = None
        for key in candidates:
            if alg not in key.algorithms:
                continue
            try:
                claims = tokens.verify_signature(token, key.key, alg)
                break
            except Unauthorized:
                continue
        if claims is None:
            if not candidates:
                raise Unauthorized("cannot validate oidc token: unknown key id (kid)")
            raise Unauthorized("cannot validate oidc token: token signature is invalid")
        self._check_payload(claims, config.issuer)
        nonce = claims.get("nonce")
        jti = nonce if isinstance(nonce, str) and nonce else "sha256:" + hashlib.sha256(token.encode()).hexdigest()
        use = TokenUse(tokens.token_id(config.issuer, {"jti": jti}, token), int(claims["exp"]))
        return claims, use

    def _check_payload(self, claims: dict[str, Any], issuer: str) -> None:
        if claims.get("iss") != issuer:
            raise Unauthorized("invalid oidc token issuer")
        if self.client_id not in _audiences(claims.get("aud")):
            raise Unauthorized("invalid oidc token audience")
        azp = claims.get("azp")
        if azp not in (None, "") and azp != self.client_id:
            raise Unauthorized("failed to validate oidc token payload: invalid azp")
        try:
            tokens.check_times(claims, max_lifetime=MAX_LIFETIME)
        except Unauthorized as e:
            if "lifetime" in e.detail:
                raise Unauthorized(f"oidc token lifetime is longer than {MAX_LIFETIME // 3600} hours") from e
            raise
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise Unauthorized("oidc token subject cannot be empty")
        email = claims.get("email")
        if email is not None and not isinstance(email, str):
            raise Unauthorized("oidc token email claim is not a string")
        if email and claims.get("email_verified") is False:
            raise Forbidden("failed to validate oidc token payload: email is not verified")
        admin = self.is_admin(claims)
        if self.domains and not admin:
            if not email:
                raise Forbidden("failed to validate oidc token payload: email not found")
            domain = sanitize_email(email).rpartition("@")[2]
            if "@" not in email or domain not in self.domains:
                raise Forbidden("failed to validate oidc token payload: email is not allowed")
        if self.groups:
            groups = claims.get("groups")
            if not isinstance(groups, list) or not self.groups.intersection(g for g in groups if isinstance(g, str)):
                raise Forbidden("failed to validate oidc token payload: invalid group")

    # --- what a token allows ----------------------------------------------------------------------

    def authorize_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SignAuthorization:
        claims, use = self._verify(token, header)
        email = claims.get("email") or ""
        sub = claims["sub"]
        if self.is_admin(claims):
            return SignAuthorization(self, sub, (email,) if email else (), use, any_sans=True)
        return SignAuthorization(self, sub, (*((email,) if email else ()), *subject_uri(claims["iss"], sub)), use)

    def authorize_ssh_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SSHAuthorization:
        if not self.claims.enable_ssh_ca:
            raise Unauthorized(f"ssh certificates are disabled for oidc provisioner '{self.name}'")
        claims, use = self._verify(token, header)
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise Unauthorized("failed to validate oidc token payload: email not found")
        principals = ssh_principals(email)
        return SSHAuthorization(
            provisioner=self,
            cert_type="user",
            key_id=email,
            principals=tuple(principals),
            valid_after="",
            valid_before="",
            token=use,
            any_principals=self.is_admin(claims),
        )

    def authorize_revoke(self, token: str, header: dict, claims: dict, ctx: Context, path: str) -> TokenUse:
        claims, use = self._verify(token, header)
        if not self.is_admin(claims):
            raise Forbidden("cannot revoke with a non-admin oidc token")
        return use
