"""An HTTPS gateway that routes like template.yaml's HttpApi and invokes the handlers in-process.

Requests become payload-2.0 events (the client certificate, when one is presented, goes where API
Gateway's mTLS puts it: ``requestContext.authentication.clientCert.clientCertPem``).
"""

from __future__ import annotations

import base64
import importlib.util
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless.local.template import Route, find_route

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
TEXT_TYPES = ("application/json", "text/", "application/x-pem-file", "application/x-www-form-urlencoded")


def load_handler(root: Path, route: Route, _cache: dict[str, Any] = {}) -> Any:  # noqa: B006 - a cache
    """Import ``CodeUri/<module>.py`` and return its handler function (once per function)."""
    module_name, _, func = route.handler.rpartition(".")
    path = (root / route.code_uri / f"{module_name}.py").resolve()
    key = str(path)
    if key not in _cache:
        spec = importlib.util.spec_from_file_location(f"stepless_fn_{route.function_id}", path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load handler {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _cache[key] = getattr(module, func)
    return _cache[key]


def build_event(method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes,
                route: Route, params: dict[str, str], client_cert: bytes | None, source_ip: str) -> dict[str, Any]:
    """A payload-2.0 event as API Gateway sends it."""
    ctype = headers.get("content-type", "")
    text = None
    if not ctype or ctype.startswith(TEXT_TYPES):
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = None
    now = time.time()
    ctx: dict[str, Any] = {
        "accountId": "000000000000", "apiId": "local", "domainName": headers.get("host", ""),
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": headers.get("user-agent", "")},
        "requestId": uuid.uuid4().hex, "routeKey": route.route_key, "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
    }
    if client_cert:
        cert = x509.load_der_x509_certificate(client_cert)
        ctx["authentication"] = {"clientCert": {
            "clientCertPem": cert.public_bytes(Encoding.PEM).decode(),
            "subjectDN": cert.subject.rfc4514_string(),
            "issuerDN": cert.issuer.rfc4514_string(),
            "serialNumber": format(cert.serial_number, "x"),
            "validity": {"notBefore": cert.not_valid_before_utc.isoformat(),
                         "notAfter": cert.not_valid_after_utc.isoformat()},
        }}
    return {
        "version": "2.0", "routeKey": route.route_key, "rawPath": raw_path, "rawQueryString": query,
        "headers": headers, "queryStringParameters": dict(parse_qsl(query, keep_blank_values=True)) or None,
        "pathParameters": params or None, "requestContext": ctx,
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: with Nagle's algorithm the body of every response on a keep-alive
    # connection would wait for the client's delayed ACK of the headers (~40 ms)
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.access_log:
            sys.stderr.write(f"gateway: {self.address_string()} {fmt % args}\n")

    def _serve(self) -> None:
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self._reply(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
        body = self.rfile.read(length) if length else b""
        found = find_route(self.server.routes, self.command, url.path)
        if found is None:
            return self._reply(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
        route, params = found
        peer = self.connection.getpeercert(binary_form=True) if isinstance(self.connection, ssl.SSLSocket) else None
        event = build_event(self.command, url.path, url.query, headers, body, route, params, peer,
                            self.client_address[0])
        try:
            result = load_handler(self.server.root, route)(event, None)
        except Exception as e:  # a handler must never raise; show it like API Gateway would
            sys.stderr.write(f"gateway: handler {route.function_id} raised {type(e).__name__}\n")
            return self._reply(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
        status = int(result.get("statusCode", 200))
        out = result.get("body") or ""
        data = base64.b64decode(out) if result.get("isBase64Encoded") else out.encode()
        self._reply(status, result.get("headers") or {}, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # every method goes through the routes: an undeclared one is API Gateway's 404, not http.server's 501
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_QUERY = _serve  # noqa: N815


class Gateway(ThreadingHTTPServer):
    """HTTPS server over the template's routes."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: list[Route], root: Path, context: ssl.SSLContext,
                 *, access_log: bool = False) -> None:
        super().__init__(address, _Handler)
        self.routes, self.root, self.access_log = routes, root, access_log
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def start(self) -> threading.Thread:
        """Serve in a background thread."""
        t = threading.Thread(target=self.serve_forever, name="gateway", daemon=True)
        t.start()
        return t


def tls_context(cert_chain: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Server context: our certificate, and an optional client certificate checked against ``client_ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_chain, key)
    ctx.load_verify_locations(client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
