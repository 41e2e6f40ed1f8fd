"""An HTTPS gateway that routes like template.yaml's HttpApi and invokes the handlers in-process.

Requests become payload-2.0 events (the client certificate, when one is presented, goes where API
Gateway's mTLS puts it: ``requestContext.authentication.clientCert.clientCertPem``).

Slow or many clients hold nothing forever: a request (its head and body, or the wait for it on a kept-alive
connection) must arrive whole within ``TIMEOUT`` seconds, however its bytes trickle in; at most
``MAX_CONNECTIONS`` connections are served at once (a thread each), further ones get a 503 and are closed.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless.local.template import Route, find_route

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
TEXT_TYPES = ("application/json", "text/", "application/x-pem-file", "application/x-www-form-urlencoded")
TIMEOUT = 30  # seconds for the TLS handshake, and for a whole request (head and body) to arrive
MAX_CONNECTIONS = 64  # connections served at once; more get a 503
MAX_REFUSING = 8  # connections being answered that 503 at once (beyond: closed at once)
REFUSE_TIMEOUT = 2.0  # seconds to hand a refused connection its 503
_BUSY_BODY = b'{"message":"Service Unavailable: too many connections"}'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))
MAX_LINE = 4096  # a chunk-size or trailer line
MAX_TRAILERS = 64
_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HTTPRefusal(Exception):
    """A request the gateway answers itself (before any handler), then closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def content_length(values: list[str]) -> int:
    """The body length one ``Content-Length`` header gives: plain decimal digits only (``int()`` would take
    ``-1``, ``+5``, ``1_0`` or non-ASCII digits), at most one such header (400 otherwise)."""
    if len(values) > 1:
        raise HTTPRefusal(400, "more than one Content-Length header")
    text = values[0].strip().encode("latin-1", "replace") if values else b"0"
    if not _DIGITS.fullmatch(text):
        raise HTTPRefusal(400, "malformed Content-Length header")
    length = int(text)
    if length > MAX_BODY:
        raise HTTPRefusal(413, "Request Entity Too Large")
    return length


def _line(rfile: Any) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE or not line.endswith(b"\r\n"):
        raise HTTPRefusal(400, "malformed chunked body")
    return line[:-2]


def read_chunked(rfile: Any) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1), decoded: the whole of it, trailers skipped, so
    nothing of it is ever read as a next request; 400 when malformed or truncated, 413 beyond ``MAX_BODY``."""
    body = bytearray()
    while True:
        size_text = _line(rfile).split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise HTTPRefusal(400, "malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise HTTPRefusal(413, "Request Entity Too Large")
        chunk = rfile.read(size)
        if len(chunk) != size or _line(rfile) != b"":
            raise HTTPRefusal(400, "malformed chunked body")
        body += chunk
    for _ in range(MAX_TRAILERS):
        if _line(rfile) == b"":
            return bytes(body)
    raise HTTPRefusal(400, "too many trailer fields")


def read_body(headers: Any, rfile: Any) -> bytes:
    """The request body as its headers frame it: ``Content-Length``, or ``Transfer-Encoding: chunked``
    (decoded). Both at once is ambiguous (request smuggling), so is any other transfer coding: 400."""
    codings = [c.strip().lower() for v in headers.get_all("transfer-encoding") or [] for c in v.split(",")]
    lengths = headers.get_all("content-length") or []
    if codings:
        if codings != ["chunked"]:
            raise HTTPRefusal(400, "unsupported Transfer-Encoding")
        if lengths:
            raise HTTPRefusal(400, "both Content-Length and Transfer-Encoding")
        return read_chunked(rfile)
    length = content_length(lengths)
    body = rfile.read(length) if length else b""
    if len(body) != length:
        raise HTTPRefusal(400, "request body shorter than its Content-Length")
    return body


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


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each read waiting only until the current request's deadline: a client that
    trickles a byte just inside the socket timeout still runs out of time (slowloris)."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.deadline = sock, time.monotonic() + TIMEOUT

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT
    # headers and body leave in two writes: with Nagle's algorithm the body of every response on a keep-alive
    # connection would wait for the client's delayed ACK of the headers (~40 ms)
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request, read by ``timeout`` seconds from now (waiting for it included); the response is
        written under the plain per-operation timeout."""
        self._reader.deadline = time.monotonic() + self.timeout
        super().handle_one_request()

    def handle(self) -> None:
        try:
            if isinstance(self.connection, ssl.SSLSocket):  # in this connection's thread, under its timeout
                self.connection.do_handshake()
            super().handle()
        except OSError:  # a stalled or broken client (timeouts and TLS errors included): close its connection quietly
            self.close_connection = True

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.access_log:
            sys.stderr.write(f"gateway: {self.address_string()} {fmt % args}\n")

    def _serve(self) -> None:
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = read_body(self.headers, self.rfile)
            self.connection.settimeout(self.timeout)  # the request is in: the response gets the whole timeout
        except HTTPRefusal as e:  # the body was not (wholly) read: the rest must never be taken as a request
            self.close_connection = True
            return self._reply(e.status, {"content-type": "application/json", "connection": "close"},
                               json.dumps({"message": e.message}).encode())
        found = find_route(self.server.routes, self.command, url.path)
        if found is None:
            return self._reply(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
        route, params = found
        self.server.reload_if_changed()
        peer = self.connection.getpeercert(binary_form=True) if isinstance(self.connection, ssl.SSLSocket) else None
        event = build_event(self.command, url.path, url.query, headers, body, route, params, peer,
                            self.client_address[0])
        start = time.perf_counter()
        observer = self.server.observer
        if observer is not None:
            observer.begin()
        try:
            result = load_handler(self.server.root, route)(event, None)
        except Exception as e:  # a handler must never raise; show it like API Gateway would
            sys.stderr.write(f"gateway: handler {route.function_id} raised {type(e).__name__}\n")
            if observer is not None:
                observer.end(self.command, url.path, 500, (time.perf_counter() - start) * 1000)
            return self._reply(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
        status = int(result.get("statusCode", 200))
        out = result.get("body") or ""
        data = base64.b64decode(out) if result.get("isBase64Encoded") else out.encode()
        self._reply(status, result.get("headers") or {}, data)
        if observer is not None:
            observer.end(self.command, url.path, status, (time.perf_counter() - start) * 1000)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":  # RFC 9110 §9.3.2: the length a GET would have, never the bytes
            self.wfile.write(data)

    # every method goes through the routes: an undeclared one is API Gateway's 404, not http.server's 501
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_QUERY = _serve  # noqa: N815


class RequestObserver(Protocol):
    """Told when a routed request starts (in its thread) and how it ended (``stepless.local.requestlog``)."""

    def begin(self) -> None: ...

    def end(self, method: str, path: str, status: int, ms: float) -> None: ...


class Gateway(ThreadingHTTPServer):
    """HTTPS server over the template's routes."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: list[Route], root: Path, context: ssl.SSLContext,
                 *, access_log: bool = False, config_stamp: Path | None = None,
                 observer: RequestObserver | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(address, _Handler)
        self._serving = threading.BoundedSemaphore(max_connections)
        self._refusing = threading.BoundedSemaphore(MAX_REFUSING)
        self.routes, self.root, self.access_log = routes, root, access_log
        self.observer = observer
        self.config_stamp = config_stamp
        self._stamp = self._stamp_now()
        # the handshake happens in each connection's thread (_Handler.setup), under its timeout: done in
        # accept(), one client that never sends a ClientHello would stop the gateway accepting anyone
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection while fewer than MAX_CONNECTIONS are served; else a 503 (from a
        short-lived thread, at most MAX_REFUSING at once) or, past that too, an immediate close."""
        if self._serving.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._serving.release()
                raise
        elif self._refusing.acquire(blocking=False):
            threading.Thread(target=self._refuse, args=(request,), daemon=True).start()
        else:
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._serving.release()

    def _refuse(self, request: Any) -> None:
        """Answer 503 within REFUSE_TIMEOUT (the handshake, what the client sent so far read first so the
        close does not reset the answer), then close."""
        try:
            request.settimeout(REFUSE_TIMEOUT)
            if isinstance(request, ssl.SSLSocket):
                request.do_handshake()
            request.recv(65536)
            request.sendall(BUSY)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
            self._refusing.release()

    def _stamp_now(self) -> bytes | None:
        try:
            return self.config_stamp.read_bytes() if self.config_stamp else None
        except OSError:
            return None

    def reload_if_changed(self) -> None:
        """An administrator command rewrote the config stamp: the next configuration read goes to the store
        (reading a few bytes per request instead of the configuration)."""
        stamp = self._stamp_now()
        if stamp != self._stamp:
            self._stamp = stamp
            from stepless import authority

            authority.expire()

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
