"""SSH certificate validity, as step-ca: ``validAfter``/``validBefore`` from the token or the body
(both set must agree), counted from now, backdated, within the provisioner's SSH duration claims."""

from __future__ import annotations

import datetime as dt
from typing import Any

from stepless.durations import TimeArg, format_duration
from stepless.errors import BadRequest, Forbidden
from stepless.ssh import USER


def _same(a: TimeArg, b: TimeArg) -> bool:
    return a.duration == b.duration and a.instant == b.instant


def choose(token_value: str, body: TimeArg, field: str) -> TimeArg:
    """The token's time argument (the body's when the token has none); both set must agree (403)."""
    mine = TimeArg.parse(token_value, field)
    if mine.is_zero:
        return body
    if not body.is_zero and not _same(mine, body):
        raise Forbidden(f"ssh certificate {field} does not match - got {body_text(body)}, want {token_value}",
                        reason="ssh_options_mismatch")
    return mine


def body_text(arg: TimeArg) -> str:
    if arg.duration is not None:
        return format_duration(arg.duration)
    return _fmt(arg.instant) if arg.instant else ""


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def validity(valid_after: TimeArg, valid_before: TimeArg, *, cert_type: int, claims: Any,
             backdate: dt.timedelta, now: dt.datetime,
             not_after_limit: dt.datetime | None = None) -> tuple[int, int]:
    """(validAfter, validBefore) in Unix seconds under the provisioner's claims (400/403 otherwise)."""
    try:
        return _validity(valid_after, valid_before, cert_type=cert_type, claims=claims, backdate=backdate,
                         now=now, not_after_limit=not_after_limit)
    except OverflowError as e:  # an instant near year 1 or 9999 plus or minus a duration
        raise BadRequest("ssh certificate validAfter or validBefore is out of range", reason="invalid_validity") from e


def _validity(valid_after: TimeArg, valid_before: TimeArg, *, cert_type: int, claims: Any,
              backdate: dt.timedelta, now: dt.datetime,
              not_after_limit: dt.datetime | None) -> tuple[int, int]:
    kind = "user" if cert_type == USER else "host"
    default = getattr(claims, f"default_{kind}_ssh")
    minimum = getattr(claims, f"min_{kind}_ssh")
    maximum = getattr(claims, f"max_{kind}_ssh")
    va = valid_after.resolve(now)
    applied = dt.timedelta(0)
    if va is None:
        va, applied = now, backdate
    vb = valid_before.resolve(now)
    if vb is None:
        vb = va + default
        if not_after_limit is not None and vb > not_after_limit:
            vb = not_after_limit
    elif not_after_limit is not None and vb > not_after_limit:
        raise Forbidden(f"provisioning credential expiration ({_fmt(not_after_limit)}) is before "
                        f"requested certificate validBefore ({_fmt(vb)})", reason="forbidden_duration")
    va -= applied
    if vb <= now:
        raise BadRequest("ssh certificate validBefore cannot be in the past", reason="invalid_validity")
    if va > vb:
        raise BadRequest("ssh certificate validAfter cannot be greater than validBefore", reason="invalid_validity")
    duration = vb - va
    if duration < minimum:
        raise Forbidden(f"requested duration of {format_duration(duration)} is less than the authorized "
                        f"minimum ssh certificate duration of {format_duration(minimum)}", reason="forbidden_duration")
    if duration > maximum + backdate:
        raise Forbidden(f"requested duration of {format_duration(duration)} is more than the authorized "
                        f"maximum ssh certificate duration of {format_duration(maximum + backdate)}",
                        reason="forbidden_duration")
    return int(va.timestamp()), int(vb.timestamp())
