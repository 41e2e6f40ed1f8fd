"""HTTP client for the CA: TLS pinned to our root, step-ca JSON errors turned into one-line errors."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from stepless.errors import ClientError

TIMEOUT = 30
_OPENSSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")

# TLS alerts a CA sends about the client certificate (mTLS renew, rekey, revoke): reason → (kind, message)
_CLIENT_CERT_ALERTS = {
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": ("expired", "the CA refused the client certificate: it has expired"),
    "TLSV1_ALERT_UNKNOWN_CA": (
        "unknown_ca", "the CA does not know the issuer of the client certificate: the CA's root has changed since "
                      "it was issued; bootstrap again (stepless ca bootstrap --ca-url URL --fingerprint FP) and get "
                      "a new certificate (stepless ca certificate)"),
    "SSLV3_ALERT_CERTIFICATE_REVOKED": ("revoked", "the CA refused the client certificate: it has been revoked"),
    "SSLV3_ALERT_BAD_CERTIFICATE": ("bad", "the CA refused the client certificate"),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": ("bad", "the CA refused the client certificate (unsupported)"),
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": ("bad", "the CA refused the client certificate"),
    "TLSV1_ALERT_DECRYPT_ERROR": ("bad", "the CA refused the client certificate: the key does not match it"),
}


class TLSRefused(ClientError):
    """The CA refused the client certificate during the TLS handshake; ``kind`` says why (see above)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def describe(e: OSError, where: str = "") -> str:
    """One readable line for a network, TLS or file error (never a raw ``[SSL: …] … (_ssl.c:…)``)."""
    at = f" {where}" if where else ""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"the server{at} is not trusted by the root certificate: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        reason = e.reason or ""
        if reason in _CLIENT_CERT_ALERTS:
            return _CLIENT_CERT_ALERTS[reason][1]
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"):
            return f"the server{at} does not speak TLS (is the URL the CA's https:// URL?)"
        if reason == "KEY_VALUES_MISMATCH":
            return "the certificate and the private key do not match"
        if reason in ("NO_CERTIFICATE_OR_CRL_FOUND", "PEM_LIB"):
            return "the file is not a PEM certificate (or key)"
        if isinstance(e, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
            return f"the server{at} closed the connection during the TLS handshake"
        words = reason.replace("_", " ").lower() if reason else _OPENSSL_SOURCE.sub("", e.strerror or str(e))
        return f"TLS error{at}: {words}"
    if isinstance(e, ConnectionRefusedError):
        return f"connection refused{at}: is the CA running?"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host name{at}"
    if isinstance(e, TimeoutError | socket.timeout):
        return f"no answer{at} within {TIMEOUT} s"
    if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return f"the connection{at} was closed during the request"
    text = e.strerror or str(e) or type(e).__name__
    return f"{text}: {e.filename}" if e.filename else text


class CAClient:
    """Talks to ``ca_url`` trusting only ``root`` (or nothing, for bootstrap)."""

    def __init__(self, ca_url: str, root: str | None, *, client_cert: tuple[str, str] | None = None) -> None:
        self.ca_url = ca_url.rstrip("/")
        url = urlsplit(self.ca_url)
        self.host, self.port = url.hostname or "", url.port or 443
        self.prefix = url.path.rstrip("/")
        try:
            if root is None:
                self.context = ssl._create_unverified_context()  # bootstrap only: checked by fingerprint
            else:
                self.context = ssl.create_default_context(cafile=root)
        except OSError as e:
            raise ClientError(f"error reading the root certificate {root}: {describe(e)}") from e
        if client_cert:
            try:
                self.context.load_cert_chain(*client_cert)
            except OSError as e:
                raise ClientError(f"error loading the client certificate {client_cert[0]}: {describe(e)}") from e

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
        except ssl.SSLError as e:
            if (e.reason or "") in _CLIENT_CERT_ALERTS:
                raise TLSRefused(*_CLIENT_CERT_ALERTS[e.reason]) from e
            raise ClientError(f"cannot connect to the CA: {describe(e, f'at {self.ca_url}')}") from e
        except OSError as e:
            raise ClientError(f"cannot connect to the CA: {describe(e, f'at {self.ca_url}')}") from e
        except http.client.HTTPException as e:
            raise ClientError(f"the CA at {self.ca_url} sent an invalid HTTP answer ({type(e).__name__})") from e
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
