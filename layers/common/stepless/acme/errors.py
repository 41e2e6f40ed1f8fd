"""RFC 8555 §6.7 problem documents: ``{"type": "urn:ietf:params:acme:error:<type>", "detail", "status"}``,
rendered with ``Content-Type: application/problem+json``. Statuses as step-ca 0.19's ``acme/errors.go``."""

from __future__ import annotations

from typing import Any

from stepless.errors import StepError

PREFIX = "urn:ietf:params:acme:error:"
PROBLEM_JSON = "application/problem+json"

# type → (status, step-ca's default detail)
TYPES: dict[str, tuple[int, str]] = {
    "accountDoesNotExist": (400, "Account does not exist"),
    "alreadyRevoked": (400, "Certificate already revoked"),
    "badCSR": (400, "The CSR is unacceptable"),
    "badNonce": (400, "Unacceptable anti-replay nonce"),
    "badPublicKey": (400, "The jws was signed by a public key the server does not support"),
    "badRevocationReason": (400, "The revocation reason provided is not allowed by the server"),
    "badSignatureAlgorithm": (400, "The JWS was signed with an algorithm the server does not support"),
    "connection": (400, "The server could not connect to validation target"),
    "dns": (400, "There was a problem with a DNS query during identifier validation"),
    "externalAccountRequired": (400, 'The request must include a value for the "externalAccountBinding" field'),
    "incorrectResponse": (400, "Response received didn't match the challenge's requirements"),
    "malformed": (400, "The request message was malformed"),
    "orderNotReady": (400, "The request attempted to finalize an order that is not ready to be finalized"),
    "rateLimited": (429, "The request exceeds a rate limit"),
    "rejectedIdentifier": (400, "The server will not issue certificates for the identifier"),
    "serverInternal": (500, "The server experienced an internal error"),
    "tls": (400, "The server received a TLS error during validation"),
    "unauthorized": (401, "The client lacks sufficient authorization"),
    "unsupportedContact": (400, "A contact URL for an account used an unsupported protocol scheme"),
    "unsupportedIdentifier": (400, "An identifier is of an unsupported type"),
    "userActionRequired": (400, "Visit the “instance” URL and take actions specified there"),
    "notImplemented": (501, "The requested operation is not implemented"),
}


# a problem's status → the ``reason`` code its ``Rejected`` metric counts (StepError's default is internal_error)
REASONS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 413: "payload_too_large",
           429: "throttled", 501: "not_implemented", 503: "unavailable"}


class AcmeError(StepError):
    """An RFC 8555 problem: ``kind`` is the error type without the URN prefix."""

    def __init__(self, kind: str, detail: str = "", *, status: int | None = None,
                 headers: dict[str, str] | None = None, reason: str | None = None) -> None:
        default_status, default_detail = TYPES[kind]
        super().__init__(detail or default_detail, headers={"content-type": PROBLEM_JSON, **(headers or {})})
        self.kind = kind
        self.status = status or default_status
        self.reason = reason or REASONS.get(self.status, "internal_error")

    @property
    def type(self) -> str:
        return PREFIX + self.kind

    @property
    def message(self) -> str:
        return self.detail

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "detail": self.detail, "status": self.status}


def from_step_error(e: StepError) -> AcmeError:
    """Any other typed error of the library (a store's 503, a throttle's 429) as a problem document."""
    if isinstance(e, AcmeError):
        return e
    kind = {400: "malformed", 401: "unauthorized", 403: "unauthorized", 404: "malformed", 405: "malformed",
            413: "malformed", 429: "rateLimited"}.get(e.status, "serverInternal")
    return AcmeError(kind, e.detail or e.message, status=e.status, headers=e.headers, reason=e.reason)


def malformed(detail: str) -> AcmeError:
    return AcmeError("malformed", detail)


def unauthorized(detail: str) -> AcmeError:
    return AcmeError("unauthorized", detail)
