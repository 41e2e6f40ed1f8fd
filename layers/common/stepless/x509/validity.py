"""The validity window of a new certificate: step-ca's notBefore/notAfter rules and the claims."""

from __future__ import annotations

import dataclasses
import datetime as dt

from stepless.durations import TimeArg, format_duration
from stepless.errors import BadRequest, Forbidden


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Limits:
    """Default, minimum and maximum durations, and the backdate applied when notBefore is unset."""

    default: dt.timedelta
    minimum: dt.timedelta
    maximum: dt.timedelta
    backdate: dt.timedelta = dt.timedelta(minutes=1)
    not_before_limit: dt.datetime | None = None  # credential validity (X5C leaf, …)
    not_after_limit: dt.datetime | None = None


def window(
    not_before: TimeArg, not_after: TimeArg, limits: Limits, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """(notBefore, notAfter) for a request, or a 400/403 with step-ca's reason (never an overflow).

    A duration notBefore counts from now; a duration notAfter counts from notBefore. When notBefore is
    unset the certificate is backdated; the maximum always allows one backdate more (as step-ca does).
    """
    try:
        return _window(not_before, not_after, limits, now)
    except OverflowError as e:
        raise BadRequest("notBefore or notAfter is out of range", reason="invalid_validity") from e


def _window(
    not_before: TimeArg, not_after: TimeArg, limits: Limits, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    backdate = dt.timedelta(0)
    nb = not_before.resolve(now)
    if nb is None:
        nb, backdate = now, limits.backdate
    na = not_after.resolve(nb)
    if limits.not_before_limit is not None and nb < limits.not_before_limit:
        raise Forbidden(
            f"requested certificate notBefore ({_fmt(nb)}) is before the active validity window of the "
            f"provisioning credential ({_fmt(limits.not_before_limit)})"
        )
    if na is None:
        na = nb + limits.default
        if limits.not_after_limit is not None and na > limits.not_after_limit:
            na = limits.not_after_limit
    elif limits.not_after_limit is not None and na > limits.not_after_limit:
        raise Forbidden(
            f"requested certificate notAfter ({_fmt(na)}) is after the expiration of the provisioning "
            f"credential ({_fmt(limits.not_after_limit)})"
        )
    nb = nb - backdate
    duration = na - nb
    if na < now:
        raise BadRequest(f"notAfter cannot be in the past; na={_fmt(na)}", reason="invalid_validity")
    if na < nb:
        raise BadRequest(f"notAfter cannot be before notBefore; na={_fmt(na)}, nb={_fmt(nb)}",
                         reason="invalid_validity")
    if duration < limits.minimum:
        raise Forbidden(
            f"requested duration of {format_duration(duration)} is less than the authorized minimum "
            f"certificate duration of {format_duration(limits.minimum)}"
        , reason="forbidden_duration")
    if duration > limits.maximum + limits.backdate:  # step-ca allows the backdate on top, always
        raise Forbidden(
            f"requested duration of {format_duration(duration)} is more than the authorized maximum "
            f"certificate duration of {format_duration(limits.maximum + limits.backdate)}"
        , reason="forbidden_duration")
    return nb, na
