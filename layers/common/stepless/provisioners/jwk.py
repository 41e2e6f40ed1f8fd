"""JWK provisioner: tokens signed by a provisioner key whose encrypted private half the CA publishes."""

from __future__ import annotations

from typing import Any

from stepless import jose, tokens
from stepless.errors import ConfigError, Unauthorized
from stepless.provisioners.base import Context, Provisioner, SignAuthorization, SSHAuthorization, TokenUse, ssh_request


def email_principals(subject: str) -> list[str]:
    """step's default user principals: ``alice@example.com`` → ``alice``, ``alice@example.com``."""
    if "@" in subject:
        return [subject.split("@", 1)[0], subject]
    return [subject]


class JWKProvisioner(Provisioner):
    """step-ca's JWK provisioner."""

    type = "JWK"
    ssh_disabled = ("provisioner {name} is not allowed to sign SSH certificates", "ssh_not_allowed")

    def __init__(self, data: dict[str, Any], authority_claims: Any) -> None:
        super().__init__(data, authority_claims)
        key = data.get("key") or {}
        try:
            self.public_key = jose.key_from_jwk(jose.public_part(key))
        except ValueError as e:
            raise ConfigError(f"provisioner {self.name}: {e}") from e
        self.kid: str = key.get("kid") or jose.thumbprint(key)
        self.alg: str = key.get("alg") or jose.default_alg(key)

    @property
    def credential_id(self) -> str:
        return self.kid

    @property
    def id(self) -> str:
        return f"{self.name}:{self.kid}"

    def _verify(self, token: str, header: dict, path: str, ctx: Context) -> tuple[dict, TokenUse]:
        if header.get("kid") != self.kid:
            raise Unauthorized("token kid does not match the provisioner key", reason="invalid_key_id")
        alg = tokens.check_algorithm(header, {self.alg})
        claims = tokens.verify_signature(token, self.public_key, alg)
        tokens.check_common(claims, ctx.audience(path), self.name, self.fragments())
        return claims, TokenUse(tokens.token_id(self.name, claims, token), int(claims["exp"]))

    def authorize_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SignAuthorization:
        claims, use = self._verify(token, header, "/1.0/sign", ctx)
        sans = claims.get("sans") or [claims["sub"]]
        if not isinstance(sans, list) or not all(isinstance(s, str) and s for s in sans):
            raise Unauthorized("token sans claim must be a list of names", reason="invalid_token")
        return SignAuthorization(self, claims["sub"], tuple(sans), use)

    def authorize_ssh_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SSHAuthorization:
        self.check_ssh_enabled()
        claims, use = self._verify(token, header, "/1.0/ssh/sign", ctx)
        cert_type, principals, opts = ssh_request(
            claims, lambda kind: email_principals(claims["sub"]) if kind == "user" else [claims["sub"]])
        return self.ssh_authorization(claims, opts, cert_type, principals, use)

    def authorize_revoke(self, token: str, header: dict, claims: dict, ctx: Context, path: str) -> TokenUse:
        _, use = self._verify(token, header, path, ctx)
        return use
