"""Logger — Powertools JSON logger (``logger``). :class:`App.handler <stepless.api.app.App>` appends
``request_id`` (API Gateway's), ``lambda_request_id`` and ``route`` (the route template, never the raw
path) to every line of a request, and the metric helpers below append ``provisioner`` and ``serial``
once a certificate is issued, renewed or revoked. A guard redacts, in every line (message, extra
fields, appended keys, exception text): values that look like a JWT/JWS/JWE, PEM blocks, and fields
named like a secret (``password``, ``ott``, ``token``, ``key``, ``clientSecret``, ``privateKey``,
``csr`` …, and a JWK's private members). A filter cleans each record once, on the ``stepless`` logger
(so the record every handler sees — pytest's caplog included — is already clean) and on its handler
(records of child loggers, which skip their parent's filters); keys appended with ``append_keys`` are
cleaned when appended, and the exception text the formatter renders when it renders it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from stepless.observability.redaction import REDACTED, redact, redact_text, secret_name

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "stepless"

_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_CLEANED: weakref.WeakSet[logging.LogRecord] = weakref.WeakSet()


class RedactingFilter(logging.Filter):
    """Cleans the record itself (message, args, extra fields, exception text) before any handler."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record in _CLEANED:  # the logger's filter ran; this is its handler's
            return True
        _CLEANED.add(record)
        if record.args:  # the arguments are cleaned before they are formatted (a dict keeps its key names)
            args = record.args
            record.args = redact(args) if isinstance(args, dict) else tuple(redact(list(args)))
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                record.msg = str(record.msg)
            record.args = None
        record.msg = redact(record.msg)
        for name in [k for k in record.__dict__ if k not in _RECORD_ATTRS]:
            value = record.__dict__[name]
            record.__dict__[name] = REDACTED if secret_name(name) else redact(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(self._formatter.formatException(record.exc_info))
        return True


def _clean(keys: dict[str, Any]) -> dict[str, Any]:
    return {k: REDACTED if secret_name(k) else redact(v) for k, v in keys.items()}


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, redacting what :class:`RedactingFilter` does not see.

    The filter cleans each record (message, extras, exception text); appended keys are cleaned once,
    when appended, and the exception fields the formatter renders itself on each line. So a line is
    never redacted twice.
    """

    _RENDERED = ("exception", "exception_notes", "stack_trace")

    def append_keys(self, **additional_keys: Any) -> None:
        super().append_keys(**_clean(additional_keys))

    def thread_safe_append_keys(self, **additional_keys: Any) -> None:
        super().thread_safe_append_keys(**_clean(additional_keys))

    @contextlib.contextmanager
    def append_context_keys(self, **additional_keys: Any) -> Iterator[None]:
        with super().append_context_keys(**_clean(additional_keys)):
            yield

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        for key in self._RENDERED:
            if key in log:
                log[key] = redact(log[key])
        return super().serialize(log)


def _no_caller(stack_info: bool = False, stacklevel: int = 1) -> tuple[str, int, str, None]:
    """What ``logging.Logger.findCaller`` returns when it has no frame to report."""
    return "(unknown file)", 0, "(unknown function)", None


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
for _target in (logger._logger, logger.registered_handler):  # noqa: SLF001
    if not any(isinstance(f, RedactingFilter) for f in _target.filters):
        _target.addFilter(RedactingFilter())
# No "location" key: logging's frame walk for it cost more than the rest of a log line (each message
# names its event; the function is the log group).
logger._logger.findCaller = _no_caller  # type: ignore[method-assign]  # noqa: SLF001
logger.remove_keys(["location"])
