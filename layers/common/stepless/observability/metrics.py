"""Metrics — CloudWatch Embedded Metric Format lines (no API call, no IAM), serialized by Powertools
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
scheduled renewal run) the helpers do nothing; the renewal run counts with
``stepless.managed.events.Recorder`` and writes its one line with :meth:`Metrics.emit`, the same path.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import Any

from stepless.observability.log import SERVICE, logger

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


def namespace() -> str:
    """The metrics namespace: ``POWERTOOLS_METRICS_NAMESPACE``, default ``stepless``."""
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

    def emit(self, values: dict[str, float], unit: str = "Count", *, stream: Any = None) -> dict[str, Any] | None:
        """Write ``values`` now, as one EMF line (dimension ``service`` only): the scheduled renewal run's
        counters, outside any API invocation. Returns the EMF object (None when it could not be written)."""
        pending = [(name, unit, float(value), ()) for name, value in values.items()]
        try:
            return self._write(pending, stream)[0] if pending else None
        except Exception as e:  # noqa: BLE001 - metrics must never fail a run
            logger.warning("metrics not flushed", extra={"error": type(e).__name__})
            return None

    def _write(self, pending: list[tuple[str, str, float, tuple[tuple[str, str], ...]]],
               stream: Any) -> list[dict[str, Any]]:
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        groups: dict[tuple[tuple[str, str], ...], list[tuple[str, str, float]]] = {}
        for name, unit, value, dims in pending:
            groups.setdefault(dims, []).append((name, unit, value))
        out = []
        for dims, values in groups.items():
            shape = (namespace(), tuple(k for k, _ in dims), tuple((name, unit) for name, unit, _ in values))
            template = _TEMPLATES.get(shape)
            if template is None:
                obj = _serialize(dims, values)
                if len(_TEMPLATES) < 256:
                    _TEMPLATES[shape] = obj
            else:
                obj = _from_template(template, dims, values)
            out.append(obj)
        if not is_metrics_disabled():
            import json

            sink = stream or getattr(logger.registered_handler, "stream", None) or sys.stdout
            sink.write("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in out))
            with contextlib.suppress(Exception):
                sink.flush()
        return out


_local = threading.local()

# EMF objects Powertools serialized, per (namespace, dimension names, metric names and units): a later set of
# the same shape is the same object with its own values and timestamp (Powertools' validation and layout
# ran on the first; tests/unit/test_observability.py compares the two).
_TEMPLATES: dict[tuple[Any, ...], dict[str, Any]] = {}


def _serialize(dims: tuple[tuple[str, str], ...], values: list[tuple[str, str, float]]) -> dict[str, Any]:
    """One EMF object, serialized by this thread's Powertools serializer."""
    emf = _emf()
    try:
        for k, v in dims:
            emf.add_dimension(name=k, value=v)
        for name, unit, value in values:
            emf.add_metric(name=name, unit=unit, value=value)
        return emf.serialize_metric_set()
    finally:
        emf.clear_metrics()


def _from_template(template: dict[str, Any], dims: tuple[tuple[str, str], ...],
                   values: list[tuple[str, str, float]]) -> dict[str, Any]:
    """``template`` (an EMF object Powertools made for this shape) with these values, timestamped now."""
    obj = dict(template)
    obj["_aws"] = {**template["_aws"], "Timestamp": int(time.time() * 1000)}
    for k, v in dims:
        obj[k] = v
    lists: dict[str, list[float]] = {}
    for name, _, value in values:
        lists.setdefault(name, []).append(value)
    obj.update(lists)
    return obj


def _emf() -> Any:
    """This thread's Powertools EMF serializer, made once and cleared after each use: building one per
    dimension set per request cost more than the rest of the request's metrics."""
    ns = namespace()
    emf = getattr(_local, "emf", None)
    if emf is None or getattr(_local, "namespace", None) != ns:
        from aws_lambda_powertools.metrics import EphemeralMetrics

        emf = _local.emf = EphemeralMetrics(namespace=ns, service=SERVICE)
        _local.namespace = ns
    return emf


metrics = Metrics()
