"""Which identifiers an ACME provisioner issues for: its ``policy`` option.

``{"allow": {"dns": ["*.example.com", "example.com"], "ip": ["10.0.0.0/8"]}, "deny": {"dns": [...], "ip": [...]}}``
— a name is refused when a deny entry matches it, or when an allow list of its type exists and no entry
matches. ``*`` as the first label of a pattern stands for exactly one label (``*.example.com`` covers
``www.example.com`` and the wildcard ``*.example.com``, not ``a.b.example.com`` nor ``example.com``). IP
entries are addresses or CIDR ranges. No policy: every syntactically valid DNS name and IP address.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from stepless.acme.errors import AcmeError
from stepless.acme.messages import Identifier
from stepless.errors import ConfigError

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def dns_name_ok(name: str) -> bool:
    """A lower-case LDH DNS name (a leading ``*.`` allowed), at most 253 characters, two labels or more
    unless it is ``localhost``-like single label (the local CA)."""
    if len(name) > 253 or name != name.lower():
        return False
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            return False
    return bool(labels) and all(_LABEL.fullmatch(label) for label in labels)


def _dns_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _ip_match(pattern: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return False


class Policy:
    """A provisioner's identifier policy."""

    def __init__(self, data: Any) -> None:
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError("ACME policy must be an object")
        self.allow = self._lists(data.get("allow"))
        self.deny = self._lists(data.get("deny"))

    @staticmethod
    def _lists(value: Any) -> dict[str, list[str]]:
        value = value or {}
        if not isinstance(value, dict):
            raise ConfigError("ACME policy allow/deny must be objects")
        out = {}
        for kind in ("dns", "ip"):
            items = value.get(kind)
            if items is not None:
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise ConfigError(f"ACME policy {kind} must be a list of strings")
                out[kind] = items
        return out

    def _matches(self, kind: str, patterns: list[str], value: str) -> bool:
        match = _dns_match if kind == "dns" else _ip_match
        return any(match(p, value) for p in patterns)

    def check(self, ident: Identifier) -> None:
        """rejectedIdentifier (or malformed for a name that is not one) unless ``ident`` may be issued for."""
        if ident.type == "dns" and not dns_name_ok(ident.value):
            raise AcmeError("rejectedIdentifier", f"{ident.value[:255]!r} is not a valid DNS name")
        if ident.type == "ip":
            try:
                if str(ipaddress.ip_address(ident.value)) != ident.value:
                    raise ValueError
            except ValueError as e:
                raise AcmeError("rejectedIdentifier",
                                f"{ident.value[:64]!r} is not an IP address in canonical form") from e
        if self._matches(ident.type, self.deny.get(ident.type, []), ident.value):
            raise AcmeError("rejectedIdentifier", f"the policy denies {ident.type} identifier {ident.value}")
        allowed = self.allow.get(ident.type)
        if allowed is not None and not self._matches(ident.type, allowed, ident.value):
            raise AcmeError("rejectedIdentifier", f"the policy does not allow {ident.type} identifier {ident.value}")
        if (self.allow and ident.type not in self.allow):
            raise AcmeError("rejectedIdentifier", f"the policy allows no {ident.type} identifiers")
