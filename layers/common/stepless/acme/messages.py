"""The ACME objects (RFC 8555 §7.1), typed: stored as their ``to_doc`` form, sent as their ``to_json`` form
(which adds the URLs the :class:`Links` of the request make)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Any

from stepless.acme.errors import AcmeError, malformed

PENDING, READY, PROCESSING, VALID, INVALID, DEACTIVATED, REVOKED = (
    "pending", "ready", "processing", "valid", "invalid", "deactivated", "revoked")


def new_id() -> str:
    """A random URL-safe id (128 bits)."""
    return secrets.token_urlsafe(16)


def rfc3339(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(cls: Any, doc: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


@dataclasses.dataclass(frozen=True)
class Links:
    """The URLs of one provisioner's ACME server as the request reached it (``https://host[/1.0]/acme/<p>``)."""

    base: str

    def directory(self) -> str:
        return f"{self.base}/directory"

    def link(self, kind: str, *ids: str) -> str:
        return "/".join([self.base, kind, *ids])

    def account(self, id: str) -> str:
        return self.link("account", id)

    def order(self, id: str) -> str:
        return self.link("order", id)

    def authz(self, id: str) -> str:
        return self.link("authz", id)

    def challenge(self, authz_id: str, ch_id: str) -> str:
        return self.link("challenge", authz_id, ch_id)

    def certificate(self, serial: str, *alternate: str) -> str:
        return self.link("certificate", serial, *alternate)


@dataclasses.dataclass(frozen=True)
class Identifier:
    type: str
    value: str

    @classmethod
    def parse(cls, value: Any) -> Identifier:
        if not isinstance(value, dict) or not isinstance(value.get("type"), str) \
                or not isinstance(value.get("value"), str) or not value["value"]:
            raise malformed("an identifier must be {\"type\": \"dns\"|\"ip\", \"value\": \"...\"}")
        if value["type"] not in ("dns", "ip"):
            raise AcmeError("unsupportedIdentifier", f"identifier type {value['type'][:32]!r} is not supported")
        return cls(value["type"], value["value"])

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclasses.dataclass(frozen=True)
class Account:
    id: str
    key: dict[str, Any]  # the public JWK
    thumbprint: str
    status: str = VALID
    contact: tuple[str, ...] = ()
    terms_agreed: bool = False
    eab_key_id: str | None = None
    orders: tuple[str, ...] = ()
    created_at: int = 0

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Account:
        out = _fields(cls, doc)
        out["contact"], out["orders"] = tuple(doc.get("contact") or ()), tuple(doc.get("orders") or ())
        return cls(**out)

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, links: Links) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "contact": list(self.contact),
                               "orders": links.link("account", self.id, "orders")}
        if self.terms_agreed:
            out["termsOfServiceAgreed"] = True
        return out


@dataclasses.dataclass(frozen=True)
class Challenge:
    id: str
    type: str
    token: str
    status: str = PENDING
    validated: int | None = None
    error: dict[str, Any] | None = None
    started: int | None = None  # when validation began (status processing; epoch s)

    def to_json(self, links: Links, authz_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "url": links.challenge(authz_id, self.id),
                               "status": self.status, "token": self.token}
        if self.validated is not None:
            out["validated"] = rfc3339(self.validated)
        if self.error:
            out["error"] = self.error
        return out


@dataclasses.dataclass(frozen=True)
class Authorization:
    id: str
    account_id: str
    identifier: Identifier
    challenges: tuple[Challenge, ...]
    expires: int
    status: str = PENDING
    wildcard: bool = False

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Authorization:
        out = _fields(cls, doc)
        out["identifier"] = Identifier(**doc["identifier"])
        out["challenges"] = tuple(Challenge(**c) for c in doc["challenges"])
        return cls(**out)

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def current_status(self, now: int) -> str:
        return INVALID if self.status == PENDING and now > self.expires else self.status

    def to_json(self, links: Links, now: int) -> dict[str, Any]:
        out: dict[str, Any] = {"identifier": self.identifier.to_json(), "status": self.current_status(now),
                               "expires": rfc3339(self.expires),
                               "challenges": [c.to_json(links, self.id) for c in self.challenges]}
        if self.wildcard:
            out["wildcard"] = True
        return out


@dataclasses.dataclass(frozen=True)
class Order:
    id: str
    account_id: str
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    expires: int
    status: str = PENDING
    not_before: int | None = None
    not_after: int | None = None
    certificate: str | None = None  # the issued certificate's serial (its URL names it)
    error: dict[str, Any] | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Order:
        out = _fields(cls, doc)
        out["identifiers"] = tuple(Identifier(**i) for i in doc["identifiers"])
        out["authorizations"] = tuple(doc["authorizations"])
        return cls(**out)

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, links: Links, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": status, "expires": rfc3339(self.expires),
                               "identifiers": [i.to_json() for i in self.identifiers],
                               "authorizations": [links.authz(a) for a in self.authorizations],
                               "finalize": links.link("order", self.id, "finalize")}
        if self.not_before is not None:
            out["notBefore"] = rfc3339(self.not_before)
        if self.not_after is not None:
            out["notAfter"] = rfc3339(self.not_after)
        if self.certificate:
            out["certificate"] = links.certificate(self.certificate)
        if self.error:
            out["error"] = self.error
        return out
