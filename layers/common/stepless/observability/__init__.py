"""Logging, metrics and tracing shared by every function. Never log tokens, keys, passwords, CSRs or PEMs.

One package, a module per concern: :mod:`~stepless.observability.redaction` (the one list of secret
names and value patterns), :mod:`~stepless.observability.log` (the redacting Powertools logger),
:mod:`~stepless.observability.metrics` (the one EMF metrics path: per-request metrics and the scheduled
renewal run's counters) and :mod:`~stepless.observability.tracing` (opt-in X-Ray subsegments). The names
below are re-exported so callers keep ``from stepless.observability import logger, metrics …``.
"""

from stepless.observability.log import SERVICE, RedactingFilter, RedactingFormatter, logger
from stepless.observability.metrics import (
    ISSUED,
    LATENCY,
    REASONS,
    REJECTED,
    RENEWED,
    REVOKED,
    SERVER_ERRORS,
    Metrics,
    metrics,
    namespace,
    reason_code,
)
from stepless.observability.redaction import REDACTED, redact, redact_text, secret_name
from stepless.observability.tracing import traced, tracer, tracing_enabled

__all__ = [
    "ISSUED", "LATENCY", "REASONS", "REDACTED", "REJECTED", "RENEWED", "REVOKED", "SERVER_ERRORS", "SERVICE",
    "Metrics", "RedactingFilter", "RedactingFormatter", "logger", "metrics", "namespace", "reason_code", "redact",
    "redact_text", "secret_name", "traced", "tracer", "tracing_enabled",
]
