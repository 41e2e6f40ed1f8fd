"""Requests and responses in API Gateway's payload format 2.0."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any
from urllib.parse import unquote

from stepless.errors import BadRequest, PayloadTooLarge
from stepless.observability import logger
from stepless.settings import MAX_BODY_BYTES, mtls_domains


@dataclasses.dataclass
class Request:
    """The parts of a payload-2.0 event a handler uses."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    client_cert_pem: str | None = None
    request_id: str = ""
    params: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        ctx = event.get("requestContext") or {}
        http = ctx.get("http") or {}
        raw = event.get("body") or ""
        if len(raw) > MAX_BODY_BYTES * 4 // 3 + 4:
            raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
        try:
            body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        except ValueError as e:
            raise BadRequest("the request body is not valid base64") from e
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
        cert = ((ctx.get("authentication") or {}).get("clientCert") or {}).get("clientCertPem")
        if cert and not _mtls_domain(ctx.get("domainName")):
            logger.warning("client certificate ignored: the request did not arrive on the mTLS custom domain",
                           extra={"domain": str(ctx.get("domainName") or "")[:255]})
            cert = None
        return cls(
            method=str(http.get("method") or "GET").upper(),
            path=unquote(event.get("rawPath") or http.get("path") or "/"),
            headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
            body=body,
            client_cert_pem=cert or None,
            request_id=str(ctx.get("requestId") or ""),
        )

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; empty body → {}; anything else → 400."""
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (ValueError, RecursionError) as e:
            raise BadRequest("error reading request body: invalid JSON") from e
        if not isinstance(value, dict):
            raise BadRequest("error reading request body: a JSON object is required")
        return value


def _mtls_domain(domain: Any) -> bool:
    """Whether a client certificate may be honoured on ``domain`` (the event's requestContext.domainName).

    Defence in depth for the mTLS paths (renew, rekey, revoke by certificate): API Gateway passes a
    verified client certificate only on the custom domain with a truststore, so one arriving with any
    other domain was not verified by API Gateway (a direct invoke, another integration). Whoever may
    invoke the function directly can forge the domain too: IAM is the boundary (docs/deployment.md).
    """
    allowed = mtls_domains()
    if allowed is None:
        return True
    return _host(str(domain or "").strip().lower()) in allowed


def _host(domain: str) -> str:
    """``ca.example.com:8443`` → ``ca.example.com``, ``[::1]:8443`` → ``::1`` (API Gateway's has no port)."""
    if domain.startswith("[") and "]" in domain:
        return domain[1:domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A payload-2.0 response; dict/list bodies become JSON, bytes are base64-encoded."""
    out_headers = {"content-type": "application/json"}
    is_b64 = False
    if isinstance(body, (dict, list)):
        text = json.dumps(body)
    elif isinstance(body, bytes):
        text, is_b64 = base64.b64encode(body).decode(), True
        out_headers["content-type"] = "application/octet-stream"
    else:
        text = str(body)
        out_headers["content-type"] = "text/plain; charset=utf-8"
    out_headers.update(headers or {})
    return {"statusCode": status, "headers": out_headers, "body": text, "isBase64Encoded": is_b64}
