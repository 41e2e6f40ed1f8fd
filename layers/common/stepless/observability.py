"""Logging, metrics and tracing shared by every function. Never log tokens, keys, passwords, CSRs or PEMs.

Logger — Powertools JSON logger (``logger``). :class:`App.handler <stepless.api.app.App>` appends
``request_id`` (API Gateway's), ``lambda_request_id`` and ``route`` (the route template, never the raw
path) to every line of a request, and the metric helpers below append ``provisioner`` and ``serial``
once a certificate is issued, renewed or revoked. A guard redacts, in every line (message, extra
fields, appended keys, exception text): values that look like a JWT/JWS/JWE, PEM blocks, and fields
named like a secret (``password``, ``ott``, ``token``, ``key``, ``clientSecret``, ``privateKey``,
``csr`` …, and a JWK's private members). A filter cleans each record once, on the ``stepless`` logger
(so the record every handler sees — pytest's caplog included — is already clean) and on its handler
(records of child loggers, which skip their parent's filters); keys appended with ``append_keys`` are
cleaned when appended, and the exception text the formatter renders when it renders it.

Metrics — CloudWatch Embedded Metric Format lines (no API call, no IAM), serialized by Powertools
(``EphemeralMetrics``, one per thread, cleared after each dimension set), namespace
``POWERTOOLS_METRICS_NAMESPACE`` (default ``stepless``), dimension ``service`` = ``POWERTOOLS_SERVICE_NAME``
plus, per metric:

================  ==============  =========================================================
metric            unit            extra dimensions
================  ==============  =========================================================
``Issued``        Count           ``kind`` (x509|ssh), ``provisioner_type`` (JWK, OIDC, X5C …)
``Renewed``       Count           ``kind``, ``provisioner_type``
``Revoked``       Count           ``kind``
``Rejected``      Count           ``reason`` (the error's code, one of :data:`REASONS`)
``Latency``       Milliseconds    ``route`` (the route template, e.g. ``POST /sign``)
``ServerErrors``  Count           — (what the ``ServerErrorsAlarm`` watches)
================  ==============  =========================================================

Metrics are buffered per invocation (a context variable, so threads in tests don't mix) and flushed
once, in ``App.handler``'s ``finally``: one EMF line per dimension set, written to the logger's stream
(stdout in Lambda, where CloudWatch extracts them; ``bench``'s quiet logger silences them with the
log lines). ``POWERTOOLS_METRICS_DISABLED=true`` turns them off. Outside an invocation (the CLI, the
scheduled renewal run, which has its own recorder in ``stepless.managed.events``) the helpers do
nothing.

Tracer — decision: **not loaded by default.** ``Tracing: Active`` already gives every function its
X-Ray segment (initialization, invocation, overhead) with no code. Powertools Tracer imports
``aws_xray_sdk`` and patching botocore adds, measured with ``python -X importtime`` on top of what
the sign function already imports (botocore included): ~125 ms, more than the whole cold-start budget
(``import boto3`` + 60 ms). So it is opt-in: with
``STEPLESS_TRACER=true`` *and* running in Lambda (``AWS_LAMBDA_FUNCTION_NAME``) with a trace id
(``_X_AMZN_TRACE_ID``) *and* ``POWERTOOLS_TRACE_DISABLED`` not true, the first request imports the
Tracer, patches ``botocore`` (a subsegment per DynamoDB/KMS/Secrets Manager call) and each
request runs in a ``## <route>`` subsegment annotated with the route and the status.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import numbers
import os
import re
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "stepless"

# ----------------------------------------------------------------------------------------- redaction

REDACTED = "[REDACTED]"

# JWS/JWE compact serializations: the protected header is a JSON object ('{"', '{ ', '{\\n' … in
# base64url: "eyJ", "eyA", "ewo" …) followed by 2 or 4 more segments; or any three long base64url segments.
_B64 = r"[A-Za-z0-9_-]"
_JWT = re.compile(
    rf"(?<!{_B64})(?:(?:eyJ|eyA|ewo|ew0|ewk){_B64}{{6,}}\.{_B64}*\.{_B64}*(?:\.{_B64}*\.{_B64}*)?"
    rf"|{_B64}{{16,}}\.{_B64}{{16,}}\.{_B64}{{16,}})"
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{1,40}-----.*?(?:-----END [A-Z0-9 ]{1,40}-----|\Z)", re.S)
# A password-protected JWK (PBES2 JWE in JSON serialization) or a JWK: their secret members.
_JWK_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})

# Field names (lowercased, without "_" and "-") whose values are secrets, wherever they appear.
_SECRET_NAMES = frozenset({
    "password", "passwd", "passphrase", "ott", "token", "key", "secret", "clientsecret", "privatekey",
    "encryptedkey", "jwk", "csr", "authorization", "cookie", "signature", "secretstring", "plaintext",
    "ciphertext", "secretbinary",
})
_SECRET_SUFFIXES = ("password", "passphrase", "token", "secret", "privatekey", "apikey", "accesskey",
                    "secretkey", "csr", "pem")


def secret_name(name: object) -> bool:
    """Whether a field called ``name`` holds a secret (``ott``, ``client_secret``, ``id_token`` …)."""
    return _secret_name(name if isinstance(name, str) else str(name))


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    n = name.lower().replace("_", "").replace("-", "")
    return n in _SECRET_NAMES or n.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """``text`` with JWT-like strings and PEM blocks replaced."""
    if "-----BEGIN " in text:
        text = _PEM.sub(REDACTED, text)
    if "." in text:
        text = _JWT.sub(REDACTED, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (str, dict, list …) safe to log; other objects are logged as their ``str``."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if _depth > 8:
        return REDACTED
    if isinstance(value, dict):
        jwk = "kty" in value
        return {k: REDACTED if secret_name(k) or (jwk and k in _JWK_PRIVATE) else redact(v, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, numbers.Number):  # Decimal, Fraction …: no secret, and "%d" still formats it
        return value
    return redact_text(str(value))


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

# ------------------------------------------------------------------------------------------ metrics

ISSUED, RENEWED, REVOKED, REJECTED, LATENCY, SERVER_ERRORS = (
    "Issued", "Renewed", "Revoked", "Rejected", "Latency", "ServerErrors")

REASONS = frozenset({
    "already_revoked", "bad_request", "certificate_expired", "certificate_not_found", "certificate_not_yet_valid",
    "certificate_revoked", "client_certificate_mismatch", "client_error", "forbidden", "forbidden_duration",
    "internal_error", "invalid_audience", "invalid_body_encoding", "invalid_certificate_type", "invalid_csr",
    "invalid_issuer", "invalid_json", "invalid_key_id", "invalid_oidc_token", "invalid_principals",
    "invalid_public_key", "invalid_reason", "invalid_serial", "invalid_sshpop_token", "invalid_token",
    "invalid_token_algorithm", "invalid_token_signature", "invalid_validity", "invalid_x5c_token",
    "malformed_token", "method_not_allowed", "missing_client_certificate", "missing_token", "no_client_auth",
    "no_route", "not_found", "not_implemented", "oidc_claims_refused", "payload_too_large", "principals_mismatch",
    "renewal_disabled", "revoke_not_allowed", "sans_mismatch", "serial_mismatch", "server_error",
    "ssh_not_allowed", "ssh_not_configured", "ssh_options_mismatch", "throttled", "token_already_used",
    "token_expired", "token_lifetime_too_long", "token_not_yet_valid", "unauthorized", "unavailable",
    "unknown_certificate", "unknown_provisioner", "unsupported_key", "x509_not_allowed",
})
"""Every value the ``reason`` dimension (and the ``reason_code`` log field) can take."""


def reason_code(error: object) -> str:
    """The short stable code of a refusal: the error's own ``reason`` (see :mod:`stepless.errors`), never
    text of its message; ``client_error`` for a code this list does not know."""
    code = getattr(error, "reason", None)
    return code if code in REASONS else "client_error"


_invocation: contextvars.ContextVar[list[tuple[str, str, float, tuple[tuple[str, str], ...]]] | None] = (
    contextvars.ContextVar("stepless_metrics", default=None))


def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "stepless"


class Metrics:
    """The per-invocation metric buffer; :meth:`begin` and :meth:`flush` are called by ``App.handler``."""

    def begin(self) -> None:
        _invocation.set([])

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        """Buffer one value (a no-op outside an invocation)."""
        pending = _invocation.get()
        if pending is not None:
            pending.append((name, unit, float(value), tuple(sorted((k, str(v) or "-") for k, v in
                                                                   dimensions.items()))))

    def _context(self, provisioner: str | None, serial: str | None) -> None:
        if _invocation.get() is not None:
            keys = {k: v for k, v in (("provisioner", provisioner), ("serial", serial)) if v}
            if keys:
                logger.append_keys(**keys)

    def issued(self, kind: str, provisioner_type: str, *, provisioner: str | None = None,
               serial: str | None = None) -> None:
        self._context(provisioner, serial)
        self.add(ISSUED, kind=kind, provisioner_type=provisioner_type)

    def renewed(self, kind: str, provisioner_type: str, *, provisioner: str | None = None,
                serial: str | None = None) -> None:
        self._context(provisioner, serial)
        self.add(RENEWED, kind=kind, provisioner_type=provisioner_type)

    def revoked(self, kind: str, *, provisioner: str | None = None, serial: str | None = None) -> None:
        self._context(provisioner, serial)
        self.add(REVOKED, kind=kind)

    def rejected(self, reason: str) -> None:
        self.add(REJECTED, reason=reason if reason in REASONS else "client_error")

    def latency(self, route: str, ms: float) -> None:
        self.add(LATENCY, ms, "Milliseconds", route=route)

    def server_error(self) -> None:
        self.add(SERVER_ERRORS)

    def flush(self, stream: Any = None) -> list[dict[str, Any]]:
        """Write the invocation's metrics (one EMF line per dimension set); returns the EMF objects."""
        pending = _invocation.get()
        _invocation.set(None)
        if not pending:
            return []
        try:
            return self._write(pending, stream)
        except Exception as e:  # noqa: BLE001 - metrics must never fail a request
            logger.warning("metrics not flushed", extra={"error": type(e).__name__})
            return []

    def _write(self, pending: list[tuple[str, str, float, tuple[tuple[str, str], ...]]],
               stream: Any) -> list[dict[str, Any]]:
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        groups: dict[tuple[tuple[str, str], ...], list[tuple[str, str, float]]] = {}
        for name, unit, value, dims in pending:
            groups.setdefault(dims, []).append((name, unit, value))
        emf = _emf()
        out = []
        for dims, values in groups.items():
            try:
                for k, v in dims:
                    emf.add_dimension(name=k, value=v)
                for name, unit, value in values:
                    emf.add_metric(name=name, unit=unit, value=value)
                out.append(emf.serialize_metric_set())
            finally:
                emf.clear_metrics()
        if not is_metrics_disabled():
            import json

            sink = stream or getattr(logger.registered_handler, "stream", None) or sys.stdout
            sink.write("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in out))
            with contextlib.suppress(Exception):
                sink.flush()
        return out


_local = threading.local()


def _emf() -> Any:
    """This thread's Powertools EMF serializer, made once and cleared after each use: building one per
    dimension set per request cost more than the rest of the request's metrics."""
    namespace = _namespace()
    emf = getattr(_local, "emf", None)
    if emf is None or getattr(_local, "namespace", None) != namespace:
        from aws_lambda_powertools.metrics import EphemeralMetrics

        emf = _local.emf = EphemeralMetrics(namespace=namespace, service=SERVICE)
        _local.namespace = namespace
    return emf


metrics = Metrics()

# ------------------------------------------------------------------------------------------- tracing

_TRUE = ("1", "true", "yes", "on")
_tracer: Any = None  # None: not decided yet; False: off; else the Powertools Tracer


def tracing_enabled() -> bool:
    """Opt-in X-Ray subsegments (see the module docstring): in Lambda, traced, and asked for."""
    env = os.environ
    return (env.get("STEPLESS_TRACER", "").lower() in _TRUE and bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
            and bool(env.get("_X_AMZN_TRACE_ID"))
            and env.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in _TRUE)


def tracer() -> Any:
    """The Tracer (boto3/botocore patched at first use), or None when tracing is off."""
    global _tracer
    if _tracer is None:
        _tracer = False
        if tracing_enabled():
            from aws_lambda_powertools import Tracer

            t = Tracer(service=SERVICE, auto_patch=False)
            t.patch(["botocore"])
            _tracer = t
    return _tracer or None


@contextlib.contextmanager
def traced(route: str) -> Iterator[Any]:
    """A ``## <route>`` subsegment when tracing is on; yields it (or None)."""
    t = tracer()
    if t is None:
        yield None
        return
    with t.provider.in_subsegment(f"## {route}") as sub:
        sub.put_annotation("route", route)
        yield sub
