"""stepless.local.requestlog: `stepless dev`'s readable request lines."""

from __future__ import annotations

import io
import re

import pytest

from stepless.local import requestlog
from stepless.observability import logger


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_text_in_a_terminal_json_otherwise_or_as_asked():
    assert requestlog.wanted("auto", Stream(True)) and not requestlog.wanted("auto", Stream(False))
    assert requestlog.wanted("text", Stream(False)) and not requestlog.wanted("json", Stream(True))


@pytest.fixture
def json_lines():
    """What the functions' JSON handler writes (stdout in Lambda)."""
    sink = io.StringIO()
    previous = logger.registered_handler.setStream(sink)
    yield sink
    logger.registered_handler.setStream(previous)


@pytest.fixture
def collected(json_lines):
    out = Stream(True)
    collector = requestlog.install(out)
    try:
        yield collector, out
    finally:
        requestlog.uninstall(collector)


def test_one_line_per_request_with_subject_serial_reason(collected, json_lines):
    collector, out = collected
    collector.begin()
    logger.info("certificate issued", extra={"serial": "1234", "subject": "svc.example.com", "provisioner": "admin"})
    collector.end("POST", "/1.0/sign", 201, 12.4)
    collector.begin()
    logger.info("request refused", extra={"status": 403, "reason": "requested duration of 240h is too long\n",
                                           "reason_code": "forbidden_duration"})
    collector.end("POST", "/sign", 403, 3.0)
    collector.begin()
    logger.info("request refused", extra={"reason": "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlAAAA"})
    collector.end("POST", "/sign", 401, 1.0)
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d POST /1\.0/sign 201 svc\.example\.com serial=1234 12 ms", lines[0])
    assert lines[1].endswith("POST /sign 403 requested duration of 240h is too long 3 ms")
    assert "eyJ" not in lines[2] and "[REDACTED]" in lines[2]  # the redacting filter ran first
    assert len(lines) == 3
    assert json_lines.getvalue() == ""  # no JSON line from the functions' handler


def test_outside_a_request_only_warnings(collected):
    collector, out = collected
    logger.info("scheduled CRL refresh")
    logger.warning("metrics not flushed", extra={"error": "X"})
    assert out.getvalue().splitlines()[-1].endswith("warning: metrics not flushed")
    assert len(out.getvalue().splitlines()) == 1


def test_errors_name_the_exception(collected):
    collector, out = collected
    collector.begin()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("unhandled error")
    collector.end("GET", "/health", 500, 2.0)
    assert "GET /health 500 unhandled error (RuntimeError: boom) 2 ms" in out.getvalue()


def test_uninstall_restores_json(collected, json_lines):
    collector, out = collected
    requestlog.uninstall(collector)
    logger.info("hello")
    assert '"message":"hello"' in json_lines.getvalue().replace(" ", "") and out.getvalue() == ""
