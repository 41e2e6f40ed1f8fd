"""Provisioner types, and the collection that picks the one a token names."""

from __future__ import annotations

from typing import Any

from stepless.claims import Claims
from stepless.errors import ConfigError, Unauthorized
from stepless.provisioners.base import (
    Context,
    Provisioner,
    SignAuthorization,
    SSHAuthorization,
    TokenUse,
)

__all__ = ["Context", "Provisioner", "Provisioners", "SSHAuthorization", "SignAuthorization", "TokenUse",
           "register", "build"]

_TYPES: dict[str, type[Provisioner]] = {}


def register(cls: type[Provisioner]) -> type[Provisioner]:
    """Make a provisioner type known by its ``type`` name."""
    _TYPES[cls.type] = cls
    return cls


# type name -> (module under stepless.provisioners, class): a type's module is imported when a configured
# provisioner has that type (a cold start skips the modules of the types not configured, ~5-9 ms each)
_MODULES = {"JWK": ("jwk", "JWKProvisioner"), "SSHPOP": ("sshpop", "SSHPOPProvisioner"),
            "OIDC": ("oidc", "OIDCProvisioner"), "X5C": ("x5c", "X5CProvisioner"),
            "ACME": ("acme", "ACMEProvisioner")}


def _load_type(name: str) -> type[Provisioner] | None:
    if name not in _TYPES and name in _MODULES:
        import importlib

        module, cls = _MODULES[name]
        register(getattr(importlib.import_module(f"stepless.provisioners.{module}"), cls))
    return _TYPES.get(name)


def _load_types() -> None:
    """Every known type loaded (what needs them all at once)."""
    for name in _MODULES:
        _load_type(name)


def build(data: dict[str, Any], claims: Claims) -> Provisioner:
    """A provisioner object from its configuration entry."""
    cls = _load_type(str(data.get("type")))
    if cls is None:
        raise ConfigError(f"unsupported provisioner type {data.get('type')!r}")
    return cls(data, claims)


class Provisioners:
    """The configured provisioners, in configuration order."""

    def __init__(self, items: list[Provisioner]) -> None:
        self.items = items
        self.by_name = {p.name: p for p in items}
        self._jwk = {(p.name, getattr(p, "kid", "")): p for p in items if p.type == "JWK"}

    def __iter__(self):  # noqa: ANN204
        return iter(self.items)

    def get(self, name: str) -> Provisioner | None:
        return self.by_name.get(name)

    def by_kid(self, kid: str) -> Provisioner | None:
        """The JWK provisioner whose key id is ``kid``."""
        return next((p for (_, k), p in self._jwk.items() if k == kid), None)

    def select(self, header: dict[str, Any], claims: dict[str, Any]) -> Provisioner:
        """The provisioner an (unverified) token names; only a hint, the provisioner verifies it."""
        iss = claims.get("iss")
        if "sshpop" in header:
            p = next((p for p in self.items if p.type == "SSHPOP"), None)
        elif "x5c" in header:
            p = self.by_name.get(iss) if isinstance(iss, str) else None
            p = p if p is not None and p.type == "X5C" else None
        elif isinstance(iss, str) and (iss, header.get("kid")) in self._jwk:
            p = self._jwk[(iss, header.get("kid"))]
        else:
            p = next((p for p in self.items if p.type == "OIDC" and p.claims_match(claims)), None)  # type: ignore[attr-defined]
            if p is None and isinstance(iss, str) and iss in self.by_name:
                raise Unauthorized("token key id (kid) is not the provisioner's", reason="invalid_key_id")
        if p is None:
            raise Unauthorized("no provisioner matches the token (unknown issuer or key id)",
                               reason="unknown_provisioner")
        return p
