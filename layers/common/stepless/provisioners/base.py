"""What every provisioner is and returns: a name, claims, and an authorization for what a token allows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from cryptography import x509

from stepless.claims import Claims
from stepless.errors import Forbidden, Unauthorized
from stepless.tokens import Audience
from stepless.x509.extensions import TYPE_CODES

# step's provisioner extension types (OID 1.3.6.1.4.1.37476.9000.64.1)


@dataclasses.dataclass(frozen=True)
class Context:
    """What a provisioner needs to know about the request and the CA."""

    hosts: frozenset[str]  # the CA's DNS names (token audiences must name one)
    now: dt.datetime
    # the service's check of a verified X5C path against the CA's own certificates (revoked leaves of
    # ours): revocation state is the service's business, it owns the stores
    check_path: Callable[[Sequence[x509.Certificate]], None] | None = None

    def audience(self, path: str) -> Audience:
        return Audience(path=path, hosts=self.hosts)


@dataclasses.dataclass(frozen=True)
class TokenUse:
    """The single-use record a verified token leaves: key and expiry (for the TTL)."""

    id: str
    expires: int  # the record of its use is kept a little longer: stores.tokens.UsedToken.of


@dataclasses.dataclass(frozen=True)
class SignAuthorization:
    """What a verified X.509 sign token allows."""

    provisioner: Provisioner
    subject: str
    sans: tuple[str, ...]
    token: TokenUse
    not_before_limit: dt.datetime | None = None  # e.g. the X5C leaf's validity
    not_after_limit: dt.datetime | None = None
    any_sans: bool = False  # admins: the CSR's SANs are accepted as they are


@dataclasses.dataclass(frozen=True)
class SSHAuthorization:
    """What a verified SSH sign token allows."""

    provisioner: Provisioner
    cert_type: str  # "user" | "host"
    key_id: str
    principals: tuple[str, ...]
    valid_after: str
    valid_before: str
    token: TokenUse
    any_principals: bool = False
    not_after_limit: dt.datetime | None = None


def ssh_request(claims: dict[str, Any], default_principals: Any) -> tuple[str, list[str], dict[str, Any]]:
    """(certType, principals, options) from a verified token's ``step.ssh`` claim; principals default to
    ``default_principals(cert_type)``."""
    opts = (claims.get("step") or {}).get("ssh") if isinstance(claims.get("step"), dict) else None
    if not isinstance(opts, dict):
        raise Unauthorized("token has no step.ssh claim", reason="ssh_not_allowed")
    cert_type = opts.get("certType") or "user"
    if cert_type not in ("user", "host"):
        raise Forbidden(f"invalid certificate type {cert_type!r}", reason="invalid_certificate_type")
    principals = opts.get("principals") or default_principals(cert_type)
    if not isinstance(principals, list) or not all(isinstance(p, str) and p for p in principals):
        raise Unauthorized("token principals must be a list of strings", reason="invalid_token")
    return cert_type, principals, opts


class Provisioner:
    """Base class: configuration, claims and the public listing entry."""

    type: ClassVar[str] = ""

    def __init__(self, data: dict[str, Any], authority_claims: Claims) -> None:
        self.data = data
        self.name: str = data["name"]
        self.claims = Claims.from_json(data.get("claims"), authority_claims)

    @property
    def type_code(self) -> int:
        return TYPE_CODES[self.type]

    @property
    def credential_id(self) -> str:
        """The credential named in issued certificates' provisioner extension."""
        return ""

    @property
    def id(self) -> str:
        """step-ca's provisioner id (also accepted as a token audience fragment)."""
        return f"{self.type.lower()}/{self.name}"

    def fragments(self) -> frozenset[str]:
        """Audience fragments that designate this provisioner."""
        return frozenset({self.id, self.name})

    def public_json(self) -> dict[str, Any]:
        """The entry GET /provisioners shows (never a secret)."""
        return dict(self.data)

    def authorize_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SignAuthorization:
        raise Unauthorized(f"provisioner {self.name} cannot sign X.509 certificates", reason="x509_not_allowed")

    def authorize_ssh_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SSHAuthorization:
        raise Unauthorized(f"provisioner {self.name} cannot sign SSH certificates", reason="ssh_not_allowed")

    # the refusal when the provisioner's enableSSHCA claim is off (step-ca words it per provisioner type)
    ssh_disabled: ClassVar[tuple[str, str]] = ("ssh certificates are disabled for provisioner '{name}'",
                                               "ssh_not_allowed")

    def check_ssh_enabled(self) -> None:
        """401 unless this provisioner's claims enable SSH certificates (``enableSSHCA``)."""
        if not self.claims.enable_ssh_ca:
            message, reason = self.ssh_disabled
            raise Unauthorized(message.format(name=self.name), reason=reason)

    def ssh_authorization(self, claims: dict, opts: dict, cert_type: str, principals: list[str], use: TokenUse,
                          **extra: Any) -> SSHAuthorization:
        """The SSH authorization a verified token carries (key ID defaults to the subject)."""
        return SSHAuthorization(
            provisioner=self, cert_type=cert_type, key_id=str(opts.get("keyID") or claims["sub"]),
            principals=tuple(principals), valid_after=str(opts.get("validAfter") or ""),
            valid_before=str(opts.get("validBefore") or ""), token=use, **extra,
        )

    def authorize_revoke(self, token: str, header: dict, claims: dict, ctx: Context, path: str) -> TokenUse:
        raise Unauthorized(f"provisioner {self.name} cannot revoke certificates", reason="revoke_not_allowed")
