"""Claims: the lifetimes a provisioner may grant (step-ca's ``claims`` block), merged over the authority's."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from stepless.durations import format_duration, parse_duration
from stepless.errors import ConfigError

_DURATIONS = {
    "min_tls": ("minTLSCertDuration", "5m"),
    "max_tls": ("maxTLSCertDuration", "24h"),
    "default_tls": ("defaultTLSCertDuration", "24h"),
    "min_user_ssh": ("minUserSSHCertDuration", "5m"),
    "max_user_ssh": ("maxUserSSHCertDuration", "24h"),
    "default_user_ssh": ("defaultUserSSHCertDuration", "16h"),
    "min_host_ssh": ("minHostSSHCertDuration", "5m"),
    "max_host_ssh": ("maxHostSSHCertDuration", "720h"),
    "default_host_ssh": ("defaultHostSSHCertDuration", "720h"),
}
_FLAGS = {
    "enable_ssh_ca": ("enableSSHCA", False),
    "disable_renewal": ("disableRenewal", False),
    "allow_renewal_after_expiry": ("allowRenewalAfterExpiry", False),
}


@dataclasses.dataclass(frozen=True)
class Claims:
    """Resolved claims; every field set."""

    min_tls: dt.timedelta
    max_tls: dt.timedelta
    default_tls: dt.timedelta
    min_user_ssh: dt.timedelta
    max_user_ssh: dt.timedelta
    default_user_ssh: dt.timedelta
    min_host_ssh: dt.timedelta
    max_host_ssh: dt.timedelta
    default_host_ssh: dt.timedelta
    enable_ssh_ca: bool
    disable_renewal: bool
    allow_renewal_after_expiry: bool

    @classmethod
    def defaults(cls) -> Claims:
        """step-ca's global defaults."""
        return cls.from_json({}, None)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, base: Claims | None) -> Claims:
        """Claims from step's JSON keys; unset keys fall back to ``base`` (else step-ca defaults)."""
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError("claims must be a JSON object")
        values: dict[str, Any] = {}
        for attr, (key, default) in _DURATIONS.items():
            raw = data.get(key)
            if raw in (None, ""):
                values[attr] = getattr(base, attr) if base else parse_duration(default)
                continue
            try:
                values[attr] = parse_duration(str(raw))
            except ValueError as e:
                raise ConfigError(f"claims: {key}: {e}") from e
        for attr, (key, default) in _FLAGS.items():
            raw = data.get(key)
            if raw is not None and not isinstance(raw, bool):
                raise ConfigError(f"claims: {key} must be true or false")
            values[attr] = raw if raw is not None else (getattr(base, attr) if base else default)
        claims = cls(**values)
        claims.check()
        return claims

    def check(self) -> None:
        """min ≤ default ≤ max for each kind of certificate, and min > 0."""
        for kind in ("tls", "user_ssh", "host_ssh"):
            lo, de, hi = (getattr(self, f"{p}_{kind}") for p in ("min", "default", "max"))
            if lo <= dt.timedelta(0):
                raise ConfigError(f"claims: minimum {kind} duration must be positive")
            if not lo <= de <= hi:
                raise ConfigError(
                    f"claims: {kind} durations must satisfy min ({format_duration(lo)}) <= "
                    f"default ({format_duration(de)}) <= max ({format_duration(hi)})"
                )

    def to_json(self) -> dict[str, Any]:
        """step's JSON form."""
        out: dict[str, Any] = {key: format_duration(getattr(self, a)) for a, (key, _) in _DURATIONS.items()}
        out.update({key: getattr(self, a) for a, (key, _) in _FLAGS.items()})
        return out
