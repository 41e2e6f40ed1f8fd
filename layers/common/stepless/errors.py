"""Typed errors. Each carries the HTTP status and step-ca style message the API layer renders, and the
short ``reason`` code the ``Rejected`` metric and the ``reason_code`` log field report (set where the error
is raised, ``reason="token_expired"``, or by the class; never derived from the message, so rewording a
message never changes a metric). Every code is one of :data:`stepless.observability.REASONS`."""

from __future__ import annotations


class StepError(Exception):
    """Base error: ``status``, a public ``detail`` (never a secret) and a ``reason`` code."""

    status = 500
    reason = "internal_error"
    prefix = "The certificate authority encountered an Internal Server Error"

    def __init__(self, detail: str = "", *, reason: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        """The step-ca shaped message: ``<prefix>: <detail>.``"""
        if not self.detail:
            return self.prefix + "."
        detail = self.detail.rstrip(".")
        return f"{self.prefix}: {detail}."

    def to_json(self) -> dict:
        return {"status": self.status, "message": self.message}


class BadRequest(StepError):
    status = 400
    reason = "bad_request"
    prefix = "The request could not be completed"


class InvalidCSR(BadRequest):
    """A certificate request that cannot be taken (:mod:`stepless.x509.csr`)."""

    reason = "invalid_csr"


class Unauthorized(StepError):
    status = 401
    reason = "unauthorized"
    prefix = "The request lacked necessary authorization to be completed"


class Forbidden(StepError):
    status = 403
    reason = "forbidden"
    prefix = "The request was forbidden by the certificate authority"


class NotFound(StepError):
    status = 404
    reason = "not_found"
    prefix = "The requested resource could not be found"


class MethodNotAllowed(StepError):
    status = 405
    reason = "method_not_allowed"
    prefix = "The request method is not allowed"


class PayloadTooLarge(StepError):
    status = 413
    reason = "payload_too_large"
    prefix = "The request body is too large"


class Throttled(StepError):
    status = 429
    reason = "throttled"
    prefix = "The certificate authority is busy, retry later"


class NotImplementedYet(StepError):
    status = 501
    reason = "not_implemented"
    prefix = "The requested method is not implemented by the certificate authority"


class ServiceUnavailable(StepError):
    status = 503
    reason = "unavailable"
    prefix = "The certificate authority is temporarily unavailable, retry later"


class InternalError(StepError):
    status = 500


class ConfigError(Exception):
    """The authority is not (or wrongly) initialized; an operator problem, rendered as 500."""


class NotInitialized(ConfigError):
    """No authority configuration is stored yet (`stepless ca init` has not run)."""


class CLIError(Exception):
    """A CLI-side error: printed as one line on stderr, exit code 1."""
