"""Typed errors. Each carries the HTTP status and step-ca style message the API layer renders."""

from __future__ import annotations


class StepError(Exception):
    """Base error: ``status`` and a public ``detail`` (never a secret)."""

    status = 500
    prefix = "The certificate authority encountered an Internal Server Error"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

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
    prefix = "The request could not be completed"


class Unauthorized(StepError):
    status = 401
    prefix = "The request lacked necessary authorization to be completed"


class Forbidden(StepError):
    status = 403
    prefix = "The request was forbidden by the certificate authority"


class NotFound(StepError):
    status = 404
    prefix = "The requested resource could not be found"


class MethodNotAllowed(StepError):
    status = 405
    prefix = "The request method is not allowed"


class PayloadTooLarge(StepError):
    status = 413
    prefix = "The request body is too large"


class Throttled(StepError):
    status = 429
    prefix = "The certificate authority is busy, retry later"


class NotImplementedYet(StepError):
    status = 501
    prefix = "The requested method is not implemented by the certificate authority"


class ServiceUnavailable(StepError):
    status = 503
    prefix = "The certificate authority is temporarily unavailable, retry later"


class InternalError(StepError):
    status = 500


class ConfigError(Exception):
    """The authority is not (or wrongly) initialized; an operator problem, rendered as 500."""


class NotInitialized(ConfigError):
    """No authority configuration is stored yet (`stepless ca init` has not run)."""


class ClientError(Exception):
    """A CLI-side error: printed as one line on stderr, exit code 1."""
