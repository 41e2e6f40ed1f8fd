"""Readable request lines for ``stepless dev`` in a terminal: one line per request instead of the functions'
JSON log lines and EMF metric lines (which stay the default when the output is not a terminal, and with
``--log-format json``).

    12:03:04 POST /1.0/sign 201 svc.example.com serial=306712…4495 12 ms
    12:03:09 POST /1.0/sign 403 requested duration of 240h0m0s is more than the authorized maximum of 24h0m0s 4 ms

The functions' log records (already redacted by ``stepless.observability``) are collected per gateway request
thread; the line is printed when the gateway has answered.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Any, TextIO

# log record fields worth a place on the line, in order (what the services log on success and refusal)
_NAMED = ("subject", "key_id")
_SERIAL = "serial"
_REASON = "reason"
_MAX_REASON = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # shown escaped: a request must not drive the terminal


class RequestLog(logging.Handler):
    """A logging handler that gathers a request's fields, and the gateway observer that prints its line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream or sys.stderr
        self._local = threading.local()
        self._write_lock = threading.Lock()

    # ---- logging.Handler

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(self._local, "fields", None)
        if fields is None:  # outside a gateway request (the scheduled renewal …): only what needs attention
            if record.levelno >= logging.WARNING:
                self._write(f"{_clock()} {record.levelname.lower()}: {record.getMessage()}{_exception(record)}")
            return
        for key in (*_NAMED, _SERIAL, _REASON):
            value = record.__dict__.get(key)
            if value not in (None, "") and key not in fields:
                fields[key] = str(value)
        if record.levelno >= logging.ERROR:
            fields.setdefault(_REASON, f"{record.getMessage()}{_exception(record)}")

    # ---- the gateway's observer

    def begin(self) -> None:
        self._local.fields = {}

    def end(self, method: str, path: str, status: int, ms: float) -> None:
        fields = getattr(self._local, "fields", None) or {}
        self._local.fields = None
        self._write(format_line(method, path, status, ms, fields))

    def _write(self, line: str) -> None:
        with self._write_lock:
            self.stream.write(_CONTROL.sub(lambda m: repr(m.group())[1:-1], line) + "\n")
            self.stream.flush()


def format_line(method: str, path: str, status: int, ms: float, fields: dict[str, str]) -> str:
    """``HH:MM:SS METHOD PATH STATUS [subject] [serial=N] [reason] N ms``."""
    parts = [_clock(), method, path, str(status)]
    parts += [fields[k] for k in _NAMED if k in fields]
    if _SERIAL in fields:
        parts.append(f"serial={fields[_SERIAL]}")
    if _REASON in fields:
        reason = " ".join(fields[_REASON].split())
        parts.append(reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…")
    parts.append(f"{ms:.0f} ms")
    return " ".join(parts)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _exception(record: logging.LogRecord) -> str:
    text = record.exc_text or ""
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return f" ({last})" if last else ""


def wanted(log_format: str, stream: TextIO) -> bool:
    """Readable lines: asked for (``text``), or ``auto`` and the output is a terminal."""
    return log_format == "text" or (log_format == "auto" and stream.isatty())


def install(stream: TextIO | None = None) -> RequestLog:
    """Readable lines instead of JSON: the functions' JSON handler and EMF metrics are silenced in this
    process, and a :class:`RequestLog` collects their records. Returns it (the gateway's observer)."""
    from stepless.observability import logger

    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    handler = logger.registered_handler
    handler.setLevel(logging.CRITICAL + 1)  # the JSON lines stay in a deployed function's logs only
    collector = RequestLog(stream)
    logger._logger.addHandler(collector)  # noqa: SLF001 - the records, after the logger's redacting filter
    return collector


def uninstall(collector: Any) -> None:
    """Undo :func:`install` (tests)."""
    from stepless.observability import logger

    logger._logger.removeHandler(collector)  # noqa: SLF001
    logger.registered_handler.setLevel(logging.NOTSET)
    os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
