"""What every provisioner is and returns: a name, claims, and an authorization for what a token allows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, ClassVar

from stepless.claims import Claims
from stepless.errors import Unauthorized
from stepless.tokens import Audience

# step's provisioner extension types (OID 1.3.6.1.4.1.37476.9000.64.1)
TYPE_CODES = {"JWK": 1, "OIDC": 2, "GCP": 3, "AWS": 4, "Azure": 5, "ACME": 6, "X5C": 7, "K8sSA": 8, "SSHPOP": 9}


@dataclasses.dataclass(frozen=True)
class Context:
    """What a provisioner needs to know about the request and the CA."""

    hosts: frozenset[str]  # the CA's DNS names (token audiences must name one)
    now: dt.datetime

    def audience(self, path: str) -> Audience:
        return Audience(path=path, hosts=self.hosts)


@dataclasses.dataclass(frozen=True)
class TokenUse:
    """The single-use record a verified token leaves: key and expiry (for the TTL)."""

    id: str
    expires: int


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
        raise Unauthorized(f"provisioner {self.name} cannot sign X.509 certificates")

    def authorize_ssh_sign(self, token: str, header: dict, claims: dict, ctx: Context) -> SSHAuthorization:
        raise Unauthorized(f"provisioner {self.name} cannot sign SSH certificates")

    def authorize_revoke(self, token: str, header: dict, claims: dict, ctx: Context, path: str) -> TokenUse:
        raise Unauthorized(f"provisioner {self.name} cannot revoke certificates")
