"""Property tests: Go durations, step's time arguments, the validity window, and claims."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stepless.claims import Claims
from stepless.durations import TimeArg, format_duration, parse_duration, parse_rfc3339
from stepless.errors import BadRequest, ConfigError, Forbidden
from stepless.x509.validity import Limits, window

CENTURY = 100 * 365 * 86400  # durations.py's sanity bound, in seconds
UTC = dt.UTC
GO_STRING = re.compile(r"^-?(?:(\d+)h(\d+)m(\d+)s|(\d+)m(\d+)s|(\d+)s)$")

seconds = st.integers(min_value=-CENTURY, max_value=CENTURY)


# ---------------------------------------------------------------------------------------- Go durations


@given(seconds)
@example(0)
@example(59)
@example(60)
@example(3600)
@example(86400)
@example(-1)
@example(CENTURY)
def test_format_then_parse_round_trips(total):
    td = dt.timedelta(seconds=total)
    text = format_duration(td)
    assert parse_duration(text) == td
    assert format_duration(parse_duration(text)) == text


@given(seconds)
def test_format_is_gos_duration_string(total):
    """Go's ``Duration.String`` for whole seconds: ``[-]XhYmZs`` / ``YmZs`` / ``Zs``, Y and Z < 60."""
    text = format_duration(dt.timedelta(seconds=total))
    m = GO_STRING.match(text)
    assert m, text
    h, m1, s1, m2, s2, s3 = (int(g) if g else None for g in m.groups())
    if h is not None:
        assert h > 0 and m1 < 60 and s1 < 60 and h * 3600 + m1 * 60 + s1 == abs(total)
    elif m2 is not None:
        assert 0 < m2 < 60 and s2 < 60 and m2 * 60 + s2 == abs(total)
    else:
        assert s3 < 60 and s3 == abs(total)
    assert text.startswith("-") == (total < 0)


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("0s", 0), ("5m", 300), ("5m0s", 300), ("2h0m0s", 7200), ("1h30m", 5400), ("24h", 86400),
    ("1.5h", 5400), (".5h", 1800), ("1.h", 3600), ("300ms", 0.3), ("1500ms", 1.5), ("1us", 1e-6),
    ("1µs", 1e-6), ("1μs", 1e-6), ("1000ns", 1e-6), ("-5m", -300), ("+5m", 300), ("1h1h", 7200),
    ("876000h", CENTURY),
])
def test_parse_go_examples(text, expected):
    assert parse_duration(text) == dt.timedelta(seconds=expected)


@pytest.mark.parametrize("text", [
    "", " ", "5", "h", "1d", "1w", "5 m", "5M", ".", ".h", "1e3s", "--5m", "+-5m", "5m-1s", "1h30",
    "0x10s", "inf", "nan", "infh", "876001h", "1" * 400 + "h",
])
def test_parse_rejects_what_go_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-", "+"])
def test_parse_rejects_a_bare_sign(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_rejects_non_ascii_digits():
    with pytest.raises(ValueError):
        parse_duration("\u0665m")


@st.composite
def go_durations(draw):
    """A Go duration string made of unit parts (ints or decimals), and its value in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = draw(st.lists(st.tuples(st.sampled_from(sorted(units)), st.integers(0, 500),
                                    st.none() | st.integers(0, 999)), min_size=1, max_size=6))
    sign = draw(st.sampled_from(["", "-", "+"]))
    text, total = sign, 0.0
    for unit, whole, frac in parts:
        if frac is None:
            text += f"{whole}{unit}"
            total += whole * units[unit]
        else:
            text += f"{whole}.{frac:03d}{unit}"
            total += (whole + frac / 1000) * units[unit]
    return text, -total if sign == "-" else total


@given(go_durations())
def test_parse_sums_its_parts(case):
    text, total = case
    got = parse_duration(text).total_seconds()
    assert abs(got - total) <= 1e-6 + abs(total) * 1e-12, (text, got, total)


# ---------------------------------------------------------------------------------------- TimeArg


def _rfc3339_texts():
    instants = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
    offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59)

    def fmt(t: dt.datetime, off: int, sep: str, frac: bool, zulu: str) -> str:
        base = t.strftime("%Y-%m-%d") + sep + t.strftime("%H:%M:%S") + (f".{t.microsecond:06d}" if frac else "")
        if off == 0 and zulu:
            return base + zulu
        sign = "+" if off >= 0 else "-"
        return base + f"{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}"

    return st.builds(fmt, instants, offsets, st.sampled_from(["T", "t", " "]), st.booleans(),
                     st.sampled_from(["", "Z", "z"]))


edge_texts = st.sampled_from([
    "0001-01-01T00:00:00+00:01", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00", "2024-01-01T00:00:00Zjunk", "2024-01-01T00:00:00\x00",
    "-", "+", "1h", "-876000h", "876000h", "1e400h", "0.0000000001ns",
])
time_args = st.one_of(
    st.none(), st.just(""), st.text(), st.text(alphabet="0123456789.hmsuµn+- :TZ-"), _rfc3339_texts(), edge_texts,
    st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.binary(max_size=8),
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(time_args)
def test_time_arg_parse_raises_only_bad_request(value):
    try:
        arg = TimeArg.parse(value, "notAfter")
    except BadRequest as e:
        assert "notAfter" in e.detail
        return
    if value is None or value == "":
        assert arg.is_zero
    else:
        assert isinstance(value, str)
        assert (arg.duration is None) != (arg.instant is None)
        if arg.instant is not None:
            assert arg.instant.tzinfo is not None and arg.instant.utcoffset() == dt.timedelta(0)


@given(_rfc3339_texts())
def test_rfc3339_is_read_as_the_same_instant(text):
    try:
        got = TimeArg.parse(text, "notBefore").instant
    except BadRequest:  # only when the offset pushes the instant out of datetime's range
        return
    assert got == parse_rfc3339(text)
    naive = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    if naive.tzinfo is None:
        naive = naive.replace(tzinfo=UTC)
    assert got == naive


# ---------------------------------------------------------------------------------------- validity window

nows = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC))
spans = st.timedeltas(min_value=dt.timedelta(seconds=-CENTURY), max_value=dt.timedelta(seconds=CENTURY))


@st.composite
def time_arg_for(draw, now: dt.datetime):
    kind = draw(st.sampled_from(["unset", "duration", "instant"]))
    if kind == "unset":
        return TimeArg()
    if kind == "duration":
        return TimeArg(duration=draw(st.one_of(spans, st.timedeltas(dt.timedelta(hours=-2), dt.timedelta(days=2)))))
    return TimeArg(instant=now + draw(st.one_of(spans, st.timedeltas(dt.timedelta(hours=-2), dt.timedelta(days=2)))))


@st.composite
def limits_for(draw, now: dt.datetime):
    dur = st.one_of(st.timedeltas(dt.timedelta(0), dt.timedelta(days=1000)),
                    st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(hours=24), dt.timedelta(0)]))
    near = st.none() | st.builds(lambda d: now + d, st.timedeltas(dt.timedelta(days=-30), dt.timedelta(days=30)))
    return Limits(
        default=draw(dur), minimum=draw(dur), maximum=draw(dur),
        backdate=draw(st.timedeltas(dt.timedelta(0), dt.timedelta(hours=1))),
        not_before_limit=draw(near), not_after_limit=draw(near),
    )


@st.composite
def window_cases(draw):
    now = draw(nows)
    return draw(time_arg_for(now)), draw(time_arg_for(now)), draw(limits_for(now)), now


@settings(max_examples=1000)
@given(window_cases())
def test_window_respects_limits_or_refuses(case):
    nb_arg, na_arg, limits, now = case
    try:
        nb, na = window(nb_arg, na_arg, limits, now)
    except (BadRequest, Forbidden):
        return
    assert limits.minimum <= na - nb <= limits.maximum + limits.backdate
    assert na >= now
    assert nb <= na
    if limits.not_after_limit is not None:
        assert na <= limits.not_after_limit


@given(nows)
def test_window_defaults_match_step_ca(now):
    limits = Limits(dt.timedelta(hours=24), dt.timedelta(minutes=5), dt.timedelta(hours=24))
    minute = dt.timedelta(minutes=1)
    assert window(TimeArg(), TimeArg(), limits, now) == (now - minute, now + dt.timedelta(hours=24))
    five = TimeArg.parse("5m", "notAfter")
    assert window(TimeArg(), five, limits, now) == (now - minute, now + 5 * minute)
    nb, na = window(five, TimeArg.parse("1h", "notAfter"), limits, now)
    assert (nb, na) == (now + 5 * minute, now + 65 * minute)  # a duration notAfter counts from notBefore
    with pytest.raises(Forbidden, match="less than the authorized minimum"):
        window(TimeArg(), TimeArg.parse("1m", "notAfter"), limits, now)
    with pytest.raises(Forbidden, match="more than the authorized maximum certificate duration of 24h1m0s"):
        window(five, TimeArg.parse("240h", "notAfter"), limits, now)


NOW = dt.datetime(2030, 1, 1, tzinfo=UTC)
TLS = Limits(dt.timedelta(hours=24), dt.timedelta(minutes=5), dt.timedelta(hours=24))


@pytest.mark.parametrize(("nb", "na"), [
    ("9999-12-31T00:00:00Z", ""),
    ("9999-12-31T00:00:00Z", "48h"),
    ("0001-01-01T00:00:00Z", "-1h"),
], ids=["year-9999-default", "year-9999-duration", "year-1-negative"])
def test_window_out_of_range_is_a_bad_request(nb, na):
    with pytest.raises((BadRequest, Forbidden)):
        window(TimeArg.parse(nb, "notBefore"), TimeArg.parse(na, "notAfter"), TLS, NOW)


# ---------------------------------------------------------------------------------------- claims

KINDS = {
    "tls": ("minTLSCertDuration", "defaultTLSCertDuration", "maxTLSCertDuration"),
    "user_ssh": ("minUserSSHCertDuration", "defaultUserSSHCertDuration", "maxUserSSHCertDuration"),
    "host_ssh": ("minHostSSHCertDuration", "defaultHostSSHCertDuration", "maxHostSSHCertDuration"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("lo", "de", "hi"), [
    ("1h", "5m", "24h"),  # min > default
    ("5m", "48h", "24h"),  # default > max
    ("2h", "1h", "30m"),  # min > max
    ("0s", "1h", "24h"),  # min not positive
    ("-5m", "1h", "24h"),
    ("5m", "1h", "soon"),  # not a duration
    ("5m", 3600, "24h"),  # not a string duration
])
def test_claims_reject_inconsistent_durations(kind, lo, de, hi):
    keys = KINDS[kind]
    with pytest.raises(ConfigError):
        Claims.from_json(dict(zip(keys, (lo, de, hi), strict=True)), None)


def test_claims_provisioner_override_is_checked_against_merged_values():
    base = Claims.defaults()  # TLS 5m / 24h / 24h
    with pytest.raises(ConfigError):  # the inherited 24h default is above the provisioner's 1h max
        Claims.from_json({"maxTLSCertDuration": "1h"}, base)
    merged = Claims.from_json({"maxTLSCertDuration": "1h", "defaultTLSCertDuration": "30m"}, base)
    assert (merged.min_tls, merged.default_tls, merged.max_tls) == (
        dt.timedelta(minutes=5), dt.timedelta(minutes=30), dt.timedelta(hours=1))
    assert merged.max_user_ssh == base.max_user_ssh


def test_claims_defaults_are_step_cas():
    c = Claims.defaults()
    h = dt.timedelta(hours=1)
    assert (c.min_tls, c.default_tls, c.max_tls) == (dt.timedelta(minutes=5), 24 * h, 24 * h)
    assert (c.min_user_ssh, c.default_user_ssh, c.max_user_ssh) == (dt.timedelta(minutes=5), 16 * h, 24 * h)
    assert (c.min_host_ssh, c.default_host_ssh, c.max_host_ssh) == (dt.timedelta(minutes=5), 720 * h, 720 * h)
    assert not (c.enable_ssh_ca or c.disable_renewal or c.allow_renewal_after_expiry)


claim_values = st.one_of(
    st.none(), st.just(""),
    st.sampled_from(["1s", "5m", "30m", "1h", "16h", "24h", "720h", "0s", "-5m", "1h30m", "forever", "5"]),
    st.builds(lambda s: format_duration(dt.timedelta(seconds=s)), st.integers(-3600, 40 * 86400)),
    st.integers(-10, 10**6),
)
claim_docs = st.fixed_dictionaries({}, optional={
    key: claim_values for keys in KINDS.values() for key in keys
} | {flag: st.booleans() | st.none() for flag in ("enableSSHCA", "disableRenewal", "allowRenewalAfterExpiry")})


@settings(max_examples=500)
@given(claim_docs, st.booleans())
def test_claims_are_consistent_or_config_error(doc, on_defaults):
    base = Claims.defaults() if on_defaults else None
    try:
        c = Claims.from_json(doc, base)
    except ConfigError:
        return
    for kind in KINDS:
        lo, de, hi = (getattr(c, f"{p}_{kind}") for p in ("min", "default", "max"))
        assert dt.timedelta(0) < lo <= de <= hi
    assert Claims.from_json(c.to_json(), None) == c  # step's JSON form round-trips


@pytest.mark.parametrize("flag", ["enableSSHCA", "disableRenewal", "allowRenewalAfterExpiry"])
def test_claims_flags_must_be_booleans(flag):
    with pytest.raises(ConfigError):
        Claims.from_json({flag: "false"}, None)


@pytest.mark.parametrize("doc", [["maxTLSCertDuration", "1h"], "maxTLSCertDuration=1h"])
def test_claims_block_must_be_an_object(doc):
    with pytest.raises(ConfigError):
        Claims.from_json(doc, None)  # type: ignore[arg-type]

