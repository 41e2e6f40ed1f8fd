"""stepless.observability: EMF metrics per invocation, reason codes, the redaction guard, lazy tracing."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepless import observability
from stepless.api.app import App, route_label
from stepless.api.http import response
from stepless.errors import (
    BadRequest,
    ConfigError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Throttled,
    Unauthorized,
)
from stepless.observability import REASONS, REDACTED, logger, metrics, reason_code, redact
from tests.support.ca import event

ROOT = Path(__file__).resolve().parents[2]
JWT = ("eyJhbGciOiJFUzI1NiIsImtpZCI6ImFiYyJ9.eyJzdWIiOiJ3d3cuZXhhbXBsZS5jb20iLCJqdGkiOiIxMjMifQ."
       "MEUCIQDb6V0yq7o2Xj3gE5Jbq4Jm9O1u4bJt1mZ9aFJm2Q")
PEM_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIGx1c3Rz\n-----END EC PRIVATE KEY-----\n"
CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """What the Powertools handler writes (log lines and EMF lines), at DEBUG."""
    handler = logger.registered_handler
    buf = io.StringIO()
    old_stream = handler.setStream(buf)  # type: ignore[attr-defined]
    old_level = logger.log_level
    logger.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        handler.setStream(old_stream)  # type: ignore[attr-defined]
        logger.setLevel(old_level)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def emf(buf: io.StringIO) -> list[dict[str, Any]]:
    """EMF objects as (name, value list, dimension dict, unit) rows."""
    rows = []
    for obj in lines(buf):
        if "_aws" not in obj:
            continue
        (directive,) = obj["_aws"]["CloudWatchMetrics"]
        (dims,) = directive["Dimensions"]
        assert directive["Namespace"] == "stepless"
        for m in directive["Metrics"]:
            rows.append({"name": m["Name"], "unit": m["Unit"], "value": obj[m["Name"]],
                         "dims": {d: obj[d] for d in dims}})
    return rows


def by_name(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["name"] == name]


# A small app whose routes issue, refuse and crash.
demo = App("demo")


@demo.route("POST", "/sign")
def _sign(req: Any) -> dict:
    metrics.issued("x509", "JWK", provisioner="admin", serial="1234")
    logger.info("certificate issued")
    return response(201, {"crt": "x"})


@demo.route("POST", "/refuse/{what}")
def _refuse(req: Any) -> dict:
    what = req.params["what"]
    if what == "used":
        raise Unauthorized("token already used", reason="token_already_used")
    if what == "busy":
        raise Throttled("kms is throttling requests")
    if what == "down":
        raise ServiceUnavailable("dynamodb is unreachable")
    if what == "config":
        raise ConfigError("no authority")
    raise RuntimeError("bug")


# ------------------------------------------------------------------------------------------- metrics


def test_issuance_metrics(out: io.StringIO) -> None:
    res = demo.handler(event("POST", "/1.0/sign", {}), None)
    assert res["statusCode"] == 201
    rows = emf(out)
    (issued,) = by_name(rows, "Issued")
    assert issued["dims"] == {"kind": "x509", "provisioner_type": "JWK", "service": "stepless"}
    assert issued["value"] == [1.0] and issued["unit"] == "Count"
    (latency,) = by_name(rows, "Latency")
    assert latency["dims"] == {"route": "POST /sign", "service": "stepless"}
    assert latency["unit"] == "Milliseconds" and 0 <= latency["value"][0] < 10_000
    assert not by_name(rows, "Rejected") and not by_name(rows, "ServerErrors")
    # the log line after the metric carries the request's keys, provisioner and serial
    (log,) = [line for line in lines(out) if line.get("message") == "certificate issued"]
    assert log["route"] == "POST /sign" and log["path"] == "/1.0/sign" and log["request_id"]
    assert (log["provisioner"], log["serial"]) == ("admin", "1234")


def test_keys_do_not_leak_into_the_next_request(out: io.StringIO) -> None:
    demo.handler(event("POST", "/sign", {}), None)
    demo.handler(event("POST", "/refuse/used", {}), None)
    refused = [line for line in lines(out) if line.get("message") == "request refused"]
    assert refused and "serial" not in refused[0] and "provisioner" not in refused[0]
    assert refused[0]["route"] == "POST /refuse/{what}"


def test_rejection_metrics(out: io.StringIO) -> None:
    res = demo.handler(event("POST", "/refuse/used", {}), None)
    assert res["statusCode"] == 401
    rows = emf(out)
    (rejected,) = by_name(rows, "Rejected")
    assert rejected["dims"] == {"reason": "token_already_used", "service": "stepless"}
    assert rejected["value"] == [1.0]
    assert not by_name(rows, "Issued") and not by_name(rows, "ServerErrors")
    (log,) = [line for line in lines(out) if line.get("message") == "request refused"]
    assert log["reason_code"] == "token_already_used" and log["status"] == 401


def test_throttled_is_a_rejection(out: io.StringIO) -> None:
    assert demo.handler(event("POST", "/refuse/busy", {}), None)["statusCode"] == 429
    (rejected,) = by_name(emf(out), "Rejected")
    assert rejected["dims"]["reason"] == "throttled"


@pytest.mark.parametrize("what", ["down", "config", "bug"])
def test_server_errors(out: io.StringIO, what: str) -> None:
    res = demo.handler(event("POST", f"/refuse/{what}", {}), None)
    assert res["statusCode"] in (500, 503)
    rows = emf(out)
    (errors,) = by_name(rows, "ServerErrors")
    assert errors["dims"] == {"service": "stepless"}  # exactly what ServerErrorsAlarm watches
    assert not by_name(rows, "Rejected")


def test_unrouted_requests_share_one_latency_label(out: io.StringIO) -> None:
    demo.handler(event("GET", "/no/such/path/eyJhbGciOiJub25lIn0.e30.", {}), None)
    demo.handler(event("GET", "/sign", {}), None)  # 405
    rows = emf(out)
    assert {r["dims"]["route"] for r in by_name(rows, "Latency")} == {"unmatched"}
    assert [r["dims"]["reason"] for r in by_name(rows, "Rejected")] == ["no_route", "method_not_allowed"]
    assert "eyJhbGciOiJub25lIn0" not in out.getvalue()


def test_one_flush_per_invocation_and_nothing_outside(out: io.StringIO) -> None:
    metrics.issued("x509", "JWK")  # outside an invocation: ignored
    assert metrics.flush() == []
    demo.handler(event("POST", "/sign", {}), None)
    assert len([o for o in lines(out) if "_aws" in o]) == 2  # Issued, Latency: one line per dimension set
    assert metrics.flush() == []


def test_metrics_disabled(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert demo.handler(event("POST", "/sign", {}), None)["statusCode"] == 201
    assert not emf(out)


def test_namespace_from_environment(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "other")
    metrics.begin()
    metrics.revoked("ssh")
    (obj,) = metrics.flush()
    assert obj["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "other"


def test_a_failing_flush_never_fails_the_request(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.metrics import EphemeralMetrics

    def boom(*args: Any, **kwargs: Any) -> None:
        raise ValueError("schema")

    monkeypatch.setattr(EphemeralMetrics, "add_metric", boom)
    monkeypatch.setattr(sys.modules["stepless.observability.metrics"], "_TEMPLATES", {})  # Powertools runs
    assert demo.handler(event("POST", "/sign", {}), None)["statusCode"] == 201
    assert any(line.get("message") == "metrics not flushed" for line in lines(out))


def test_one_serializer_per_thread_keeps_dimension_sets_apart(out: io.StringIO) -> None:
    for _ in range(2):
        metrics.begin()
        metrics.issued("x509", "JWK")
        metrics.rejected("token_expired")
        issued, rejected = metrics.flush(stream=io.StringIO())
        assert issued["kind"] == "x509" and "reason" not in issued and issued["Issued"] == [1.0]
        assert rejected["reason"] == "token_expired" and "kind" not in rejected and "Issued" not in rejected
        assert issued["service"] == rejected["service"] == "stepless"


def test_unknown_reason_is_not_a_dimension_value() -> None:
    metrics.begin()
    metrics.rejected("Bearer eyJ...")
    (obj,) = metrics.flush(stream=io.StringIO())
    assert obj["reason"] == "client_error"


def test_route_labels() -> None:
    from stepless.api import renew, revoke, sign, ssh

    labels = set()
    for app in (sign.app, renew.app, revoke.app, ssh.app):
        labels |= {route_label(m, p.pattern) for m, p, _ in app._routes}
    assert {"POST /sign", "GET /root/{sha}", "GET /roots.pem", "POST /renew", "GET /ocsp/{request}",
            "POST /ssh/config/{type}", "GET /provisioners/{kid}/encrypted-key"} <= labels
    assert not any("/1.0" in label or "\\" in label or "(" in label for label in labels)


# -------------------------------------------------------------------------------------- reason codes


@pytest.mark.parametrize(("error", "code"), [
    (Unauthorized("token already used", reason="token_already_used"), "token_already_used"),
    (Unauthorized("the Authorization header must be 'Bearer <renew token>'"), "unauthorized"),
    (Forbidden("something nobody anticipated"), "forbidden"),
    (BadRequest("something nobody anticipated"), "bad_request"),
    (NotFound("no such thing"), "not_found"),
    (MethodNotAllowed("GET is not allowed on /sign"), "method_not_allowed"),
    (PayloadTooLarge("the request body is larger than 64 KiB"), "payload_too_large"),
    (Throttled("kms is throttling requests"), "throttled"),
])
def test_reason_codes(error: Any, code: str) -> None:
    """The code is the error's (the codes of the library's own raise sites: test_reason_codes.py)."""
    assert reason_code(error) == code
    assert code in REASONS


def test_every_reason_is_a_short_code() -> None:
    assert all(CODE.match(code) for code in REASONS), sorted(REASONS)


@settings(max_examples=300, deadline=None)
@given(cls=st.sampled_from([BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, PayloadTooLarge,
                            Throttled, ServiceUnavailable]), detail=st.text(max_size=200),
       reason=st.none() | st.text(max_size=30))
def test_reason_never_carries_request_text(cls: Any, detail: str, reason: str | None) -> None:
    code = reason_code(cls(detail, reason=reason))
    assert code in REASONS and CODE.match(code)


@given(user=st.text(min_size=12, alphabet=st.characters(codec="ascii", categories=["L", "N"])))
def test_user_input_in_the_detail_is_not_the_code(user: str) -> None:
    """Request text in the detail never changes the code (even text that spells a code, like 'UNAUTHORIZED')."""
    def detail(name: str) -> str:
        return f"invalid principal '{name}' from email {name}@example.com"

    assert reason_code(Unauthorized(detail(user))) == reason_code(Unauthorized(detail("x"))) == "unauthorized"
    assert reason_code(Forbidden(detail(user))) == reason_code(Forbidden(detail("x")))


# ----------------------------------------------------------------------------------------- redaction


def test_redact_values() -> None:
    assert redact(f"bad token {JWT} here") == f"bad token {REDACTED} here"
    assert redact(f"key: {PEM_KEY.strip()} end") == f"key: {REDACTED} end"
    assert redact("-----BEGIN CERTIFICATE REQUEST-----\nMIIB") == REDACTED  # truncated PEM
    jwe = "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJlbmMiOiJBMTI4R0NNIn0.aGVsbG8.aXY.Y2lwaGVy.dGFn"
    assert redact(jwe) == REDACTED
    for harmless in ("www.example.com", "eyeglasses.example.com", "1.2.840.10045.4.3.2", "POST /sign",
                     "admin#5f1e2d", "ssh:1234", "v1.2.3"):
        assert redact(harmless) == harmless


def test_redact_fields() -> None:
    doc = {"ott": "x", "password": "p", "clientSecret": "s", "key": "k", "private_key": "pk", "id_token": "t",
           "csr": "c", "Authorization": "Bearer x", "serial": "12", "key_id": "alice", "token_id": "admin#1",
           "provisioner": "admin", "jwk": {"kty": "EC"},
           "nested": [{"kty": "EC", "crv": "P-256", "x": "xx", "y": "yy", "d": "secret-d"}]}
    clean = redact(doc)
    for name in ("ott", "password", "clientSecret", "key", "private_key", "id_token", "csr", "Authorization", "jwk"):
        assert clean[name] == REDACTED, name
    assert (clean["serial"], clean["key_id"], clean["token_id"], clean["provisioner"]) == ("12", "alice",
                                                                                          "admin#1", "admin")
    assert clean["nested"][0]["d"] == REDACTED and clean["nested"][0]["x"] == "xx"
    assert doc["ott"] == "x", "the input is not modified"


def test_logger_guard(out: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logger.append_keys(token=JWT)
    try:
        logger.info("refused %s", JWT, extra={"ott": "abc", "password": "hunter2", "clientSecret": "cs",
                                               "detail": f"csr {PEM_KEY}", "serial": "77"})
        try:
            raise ValueError(f"cannot parse {JWT}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.remove_keys(["token"])
    # what every handler renders (the records' exc_info still holds the exception object: handlers
    # render the redacted exc_text the filter put on the record)
    extras = [{k: v for k, v in r.__dict__.items() if k not in ("exc_info", "args")} for r in caplog.records]
    text = out.getvalue() + caplog.text + str(extras)
    for secret in (JWT, "hunter2", "PRIVATE KEY", "MHcCAQEEIGx1c3Rz", '"abc"', "'abc'", '"cs"'):
        assert secret not in text, secret
    first = lines(out)[0]
    assert first["message"] == f"refused {REDACTED}" and first["serial"] == "77"
    assert first["ott"] == first["password"] == first["token"] == REDACTED
    assert "cannot parse" in out.getvalue() and REDACTED in lines(out)[1]["exception"]


# ------------------------------------------------------------------------------------------- tracing


def test_tracing_off_outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability.tracing, "_tracer", None)
    for var in ("AWS_LAMBDA_FUNCTION_NAME", "_X_AMZN_TRACE_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STEPLESS_TRACER", "true")
    assert observability.tracer() is None
    with observability.traced("POST /sign") as segment:
        assert segment is None


@pytest.mark.parametrize(("env", "on"), [
    ({"STEPLESS_TRACER": "true", "AWS_LAMBDA_FUNCTION_NAME": "f", "_X_AMZN_TRACE_ID": "Root=1"}, True),
    ({"AWS_LAMBDA_FUNCTION_NAME": "f", "_X_AMZN_TRACE_ID": "Root=1"}, False),  # not asked for
    ({"STEPLESS_TRACER": "true", "AWS_LAMBDA_FUNCTION_NAME": "f"}, False),  # not traced
    ({"STEPLESS_TRACER": "1", "AWS_LAMBDA_FUNCTION_NAME": "f", "_X_AMZN_TRACE_ID": "Root=1",
      "POWERTOOLS_TRACE_DISABLED": "true"}, False),
])
def test_tracer_only_when_asked_in_traced_lambda(monkeypatch: pytest.MonkeyPatch, env: dict, on: bool) -> None:
    import aws_lambda_powertools

    patched: list[list[str]] = []

    class FakeSegment:
        annotations: dict[str, Any] = {}

        def put_annotation(self, k: str, v: Any) -> None:
            self.annotations[k] = v

    class FakeProvider:
        def in_subsegment(self, name: str) -> Any:
            import contextlib

            FakeSegment.annotations = {"name": name}
            return contextlib.nullcontext(FakeSegment())

    class FakeTracer:
        def __init__(self, **kwargs: Any) -> None:
            assert kwargs["auto_patch"] is False
            self.provider = FakeProvider()

        def patch(self, modules: list[str]) -> None:
            patched.append(modules)

    for var in ("STEPLESS_TRACER", "AWS_LAMBDA_FUNCTION_NAME", "_X_AMZN_TRACE_ID", "POWERTOOLS_TRACE_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(aws_lambda_powertools, "Tracer", FakeTracer, raising=False)
    monkeypatch.setattr(observability.tracing, "_tracer", None)
    assert (observability.tracer() is not None) is on
    observability.tracer()  # decided once
    assert patched == ([["botocore"]] if on else [])
    if on:
        res = demo.handler(event("POST", "/sign", {}), None)
        assert res["statusCode"] == 201
        assert FakeSegment.annotations == {"name": "## POST /sign", "route": "POST /sign", "status": 201}


def test_importing_the_functions_does_not_load_the_xray_sdk() -> None:
    """The cold-start budget: the X-Ray SDK (~125 ms with the boto3 patch) is not imported.

    (``aws_lambda_powertools``'s package init already imports its metrics and tracing modules; the Tracer
    imports ``aws_xray_sdk`` only when it is created.)"""
    code = ("import sys; sys.path.insert(0, 'functions/sign'); import app; "
            "bad = [m for m in sys.modules if m.startswith(('aws_xray_sdk', 'wrapt'))]; assert not bad, bad")
    env = {k: v for k, v in os.environ.items() if k != "STEPLESS_TRACER"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def test_child_logger_records_are_redacted_too(out: io.StringIO) -> None:
    logging.getLogger(f"{logger.name}.child").warning("token %s", JWT, extra={"password": "hunter2"})
    (line,) = [x for x in lines(out) if x.get("level") == "WARNING"]
    assert line["message"] == f"token {REDACTED}" and line["password"] == REDACTED
    assert "hunter2" not in out.getvalue() and JWT not in out.getvalue()


def test_format_arguments_are_redacted_before_formatting(out: io.StringIO) -> None:
    logger.info("%s", {"password": "hunter2", "ok": 1})
    logger.info("%s and %s", "x", PEM_KEY.strip())
    assert "hunter2" not in out.getvalue() and "PRIVATE KEY" not in out.getvalue()
    messages = [x["message"] for x in lines(out)]
    assert "'ok': 1" in messages[0] and messages[1] == f"x and {REDACTED}"


def test_numbers_still_format_after_redaction(out: io.StringIO) -> None:
    from decimal import Decimal

    logger.info("count %d of %s", Decimal(3), Decimal("1.5"))
    assert lines(out)[0]["message"] == "count 3 of 1.5"


@settings(max_examples=40, deadline=None)
@given(sets=st.lists(st.tuples(
    st.dictionaries(st.sampled_from(["kind", "route", "reason", "provisioner_type"]),
                    st.sampled_from(["x509", "ssh", "POST /sign", "JWK", "token_expired", "é ✓"]), max_size=3),
    st.lists(st.tuples(st.sampled_from(["Issued", "Latency", "Rejected"]), st.sampled_from(["Count", "Milliseconds"]),
                       st.floats(min_value=0, max_value=1e6)), min_size=1, max_size=3)), min_size=1, max_size=4))
def test_emf_objects_of_a_known_shape_are_powertools_own(sets: list) -> None:
    """A metric set whose shape (namespace, dimension names, metric names and units) was seen before is built
    from that first object: equal to what Powertools serializes for it, its timestamp aside."""
    module = sys.modules["stepless.observability.metrics"]
    for dims, values in sets:
        dims_t = tuple(sorted(dims.items()))
        ours = module.metrics._write([(n, u, v, dims_t) for n, u, v in values], io.StringIO())
        theirs = module._serialize(dims_t, [(n, u, v) for n, u, v in values])
        for obj in (*ours, theirs):
            obj["_aws"] = {**obj["_aws"], "Timestamp": 0}
        assert ours == [theirs]
