"""HTTP client for the CA: TLS pinned to our root, step-ca JSON errors turned into one-line errors."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from stepless.errors import ClientError

TIMEOUT = 30


class CAClient:
    """Talks to ``ca_url`` trusting only ``root`` (or nothing, for bootstrap)."""

    def __init__(self, ca_url: str, root: str | None, *, client_cert: tuple[str, str] | None = None) -> None:
        self.ca_url = ca_url.rstrip("/")
        url = urlsplit(self.ca_url)
        self.host, self.port = url.hostname or "", url.port or 443
        self.prefix = url.path.rstrip("/")
        if root is None:
            self.context = ssl._create_unverified_context()  # bootstrap only: checked by fingerprint
        else:
            self.context = ssl.create_default_context(cafile=root)
        if client_cert:
            self.context.load_cert_chain(*client_cert)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bool = False) -> Any:
        """Send a request; returns decoded JSON (or bytes with ``raw``); raises ClientError."""
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=TIMEOUT)
        try:
            conn.request(method, self.prefix + path, body=data,
                         headers={"Content-Type": "application/json", **(headers or {})})
            res = conn.getresponse()
            payload = res.read()
        except ssl.SSLCertVerificationError as e:
            raise ClientError(
                f"the CA at {self.ca_url} is not trusted by the root certificate: {e.verify_message}"
            ) from e
        except (OSError, http.client.HTTPException) as e:
            raise ClientError(f"cannot connect to the CA at {self.ca_url}: {e}") from e
        finally:
            conn.close()
        if res.status >= 400:
            raise ClientError(_error_message(res.status, payload))
        if raw:
            return payload
        try:
            return json.loads(payload) if payload else {}
        except ValueError as e:
            raise ClientError(f"the CA sent an invalid response to {method} {path}") from e

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def provisioners(self) -> list[dict[str, Any]]:
        """Every provisioner, following the pagination cursor."""
        out: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(1000):
            page = self.get(f"/provisioners?limit=100&cursor={cursor}")
            out.extend(page.get("provisioners") or [])
            cursor = page.get("nextCursor") or ""
            if not cursor:
                return out
        raise ClientError("the CA's provisioner list does not end")


def _error_message(status: int, payload: bytes) -> str:
    try:
        body = json.loads(payload)
        message = body.get("message") or body.get("detail")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"the CA answered HTTP {status}"
