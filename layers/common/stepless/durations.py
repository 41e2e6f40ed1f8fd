"""Go-style durations (``5m``, ``1h30m``, ``2h0m0s``) and step-ca's time arguments."""

from __future__ import annotations

import datetime as dt
import re

from stepless.errors import BadRequest

_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
    "s": 1.0, "m": 60.0, "h": 3600.0,
}
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_SECONDS = 100 * 365 * 86400  # sanity bound: a century


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go duration; raises ValueError on anything else."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
        if not s:
            raise ValueError(f"invalid duration {text!r}")
    if s == "0":
        return dt.timedelta(0)
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if total > _MAX_SECONDS:
        raise ValueError(f"duration {text!r} is too long")
    return dt.timedelta(seconds=sign * total)


def format_duration(td: dt.timedelta) -> str:
    """Format like Go's ``time.Duration.String`` for whole seconds: ``24h0m0s``, ``5m0s``, ``0s``."""
    total = int(td.total_seconds())
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse an RFC 3339 instant into an aware UTC datetime; raises ValueError."""
    s = text.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}", s):
        raise ValueError(f"invalid time {text!r}")
    s = s.replace("z", "Z").replace("Z", "+00:00")
    value = dt.datetime.fromisoformat(s)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return value.astimezone(dt.UTC)


class TimeArg:
    """A step-ca time argument: unset, a duration (relative) or an absolute instant."""

    __slots__ = ("duration", "instant")

    def __init__(self, duration: dt.timedelta | None = None, instant: dt.datetime | None = None) -> None:
        self.duration = duration
        self.instant = instant

    @classmethod
    def parse(cls, value: object, field: str) -> TimeArg:
        """Parse ``""``/None, a Go duration or RFC 3339; a bad value is a 400 naming ``field``."""
        if value is None or value == "":
            return cls()
        if not isinstance(value, str):
            raise BadRequest(f"{field} must be a string", reason="invalid_validity")
        try:
            return cls(duration=parse_duration(value))
        except ValueError:
            pass
        try:
            return cls(instant=parse_rfc3339(value))
        except (ValueError, OverflowError) as e:
            raise BadRequest(f"invalid {field} {value!r}: use a duration like 5m or an RFC 3339 time",
                             reason="invalid_validity") from e

    @property
    def is_zero(self) -> bool:
        return self.duration is None and self.instant is None

    def resolve(self, base: dt.datetime) -> dt.datetime | None:
        """The instant this argument names, counting a duration from ``base``."""
        if self.instant is not None:
            return self.instant
        if self.duration is not None:
            return base + self.duration
        return None
