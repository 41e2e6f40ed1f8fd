"""A lean call path for the few AWS operations on the hot paths, as a drop-in for a botocore client.

A warm issuance makes one or two AWS calls, and botocore's per-call machinery (event hooks, endpoint
ruleset resolution, request objects built and prepared again, urllib3 + http.client) cost more CPU than
the rest of the issuance (issue 14; the README's Performance section has the profile). :class:`LeanClient`
wraps the full botocore client and answers the operations in :data:`LEAN` itself, keeping botocore for what
it is good at and does not repeat needlessly:

* the service model and serialization (``botocore.serialize``, idempotency tokens filled as botocore does,
  e.g. TransactWriteItems' ``ClientRequestToken``, the same token on every retry of the call);
* SigV4 as ``botocore.auth.SigV4Auth`` signs (its canonical request, string to sign and headers, computed
  directly for these POST requests, byte-identical, see :func:`_sigv4`) with the client's credentials,
  refreshed as botocore refreshes them; environment credentials (Lambda's) are read from the environment at
  each call, so rotated ones are used;
* response and error parsing (``botocore.parsers``, modeled error fields), errors raised as the full client
  raises them (``client.exceptions.<Code>``, a ``ClientError``), so ``faults.translate_aws_errors`` and
  every ``except ClientError`` are unchanged;
* retries: botocore's own standard-mode retry handler of the full client (the same attempts, backoff,
  retry quota and ``amz-sdk-request`` header), and the connection errors botocore raises.

What is skipped: the endpoint is resolved once per operation (botocore's ruleset, on the first call; its
inputs — region, ``AWS_ENDPOINT_URL``, FIPS/dual-stack settings — don't change in a container), the
user-agent string is built once, no ``provide-client-params``/``before-call``/``request-created``/
``before-send`` events, no ``AWSRequest.prepare``, and HTTP/1.1 keep-alive on a plain socket (TLS for
https, verified as botocore verifies) instead of urllib3 + http.client.

Every other operation and attribute is the full client's. The full client is used for everything (the
lean path is off) when X-Ray tracing patches botocore, when moto's in-process mock is active (it answers
through botocore's ``before-send`` event), with a proxy configured, or with ``STEPLESS_AWS_LEAN=0``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import select
import socket
import ssl
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.auth
import botocore.endpoint
from botocore.auth import SIGNED_HEADERS_BLACKLIST, SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.context import with_current_context
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    SSLError as BotoSSLError,
)
from botocore.hooks import first_non_none_response
from botocore.utils import normalize_url_path

# The operations answered here, per service (botocore's names); everything else goes to the full client.
LEAN: dict[str, frozenset[str]] = {
    "dynamodb": frozenset({"TransactWriteItems", "GetItem", "BatchGetItem", "UpdateItem", "PutItem"}),
    "kms": frozenset({"Sign", "GetPublicKey"}),
    "secretsmanager": frozenset({"GetSecretValue"}),
}

# Called with (service, operation) for each call made on the lean path (the benchmarks count calls here;
# calls on the full client are seen by botocore's ``before-call`` event as before).
observers: list[Callable[[str, str], None]] = []

_made: weakref.WeakSet[LeanClient] = weakref.WeakSet()
MAX_IDLE = 10  # idle keep-alive connections kept per endpoint (botocore's max_pool_connections)


def enabled() -> bool:
    """Whether new clients may take the lean path (see the module docstring)."""
    if os.environ.get("STEPLESS_AWS_LEAN", "1").lower() in ("0", "false", "no", "off"):
        return False
    from stepless.observability import tracing_enabled

    return not tracing_enabled()


def _moto_mock_active() -> bool:
    stubber = getattr(sys.modules.get("moto.core.models"), "botocore_stubber", None)
    return bool(getattr(stubber, "enabled", False))


def wrap(full: Any) -> Any:
    """``full`` itself, or a :class:`LeanClient` over it when its service has lean operations."""
    service = full.meta.service_model.service_name
    if service not in LEAN or not enabled() or full.meta.config.retries.get("mode") != "standard":
        return full
    session = full._endpoint.http_session
    if getattr(getattr(session, "_proxy_config", None), "_proxies", None):
        return full
    lean = LeanClient(full)
    _made.add(lean)
    return lean


def close_idle() -> None:
    """Close every lean client's idle connections (``stepless.aws.reset``: clients forgotten)."""
    for lean in list(_made):
        lean.transport.close()


class LeanClient:
    """The botocore client ``full``, with the operations in :data:`LEAN` made on the lean path."""

    def __init__(self, full: Any) -> None:
        self._full = full
        self.meta = full.meta
        self._service = full.meta.service_model.service_name
        self._names = {py: api for py, api in full.meta.method_to_api_mapping.items() if api in LEAN[self._service]}
        self._ops: dict[str, _Operation] = {}
        self._lock = threading.Lock()
        http = full._endpoint.http_session
        self.transport = Transport(connect_timeout=full.meta.config.connect_timeout,
                                   read_timeout=full.meta.config.read_timeout,
                                   keepalive=bool(full.meta.config.tcp_keepalive),
                                   verify=getattr(http, "_verify", True))

    def __getattr__(self, name: str) -> Any:
        api = self._names.get(name)
        if api is None:
            return getattr(self._full, name)
        full_method = getattr(self._full, name)

        def method(**kwargs: Any) -> Any:
            if _moto_mock_active():
                return full_method(**kwargs)
            return self._call(api, kwargs)

        method.__name__ = name
        self.__dict__[name] = method  # found directly from now on
        return method

    @property
    def full(self) -> Any:
        """The botocore client underneath."""
        return self._full

    @functools.cached_property
    def exceptions(self) -> Any:
        """The full client's exception classes, made on first use (an error answer, an ``except``): building
        them for every modeled error costs a cold start ~5 ms per client."""
        return self._full.exceptions

    def close(self) -> None:
        self.transport.close()
        self._full.close()

    def _operation(self, name: str, params: dict[str, Any]) -> _Operation:
        op = self._ops.get(name)
        if op is None:
            with self._lock:
                op = self._ops.get(name) or _Operation(self._full, name, params)
                self._ops[name] = op
        return op

    def _call(self, name: str, params: dict[str, Any]) -> Any:
        for observe in observers:
            observe(self._service, name)
        op = self._operation(name, params)
        full = self._full
        for member in op.idempotent:  # as botocore's generate_idempotent_uuid: once, kept across retries
            if member not in params:
                params[member] = str(uuid.uuid4())
        request = op.serializer.serialize_to_request(params, op.model)
        body: bytes = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
        base_headers = {**request["headers"], **op.extra_headers, "User-Agent": op.user_agent}
        context: dict[str, Any] = {"client_config": full.meta.config, "client_region": full.meta.region_name}
        request_dict = {"context": context, "url": op.url, "method": request["method"], "body": body,
                        "headers": base_headers}
        endpoint = full._endpoint
        attempts = 1
        endpoint._update_retries_context(context, attempts)  # invocation id, attempt number
        while True:
            response, exc = self._attempt(op, request_dict, context)
            if not self._needs_retry(op, attempts, request_dict, response, exc):
                break
            attempts += 1
            endpoint._update_retries_context(context, attempts, response)
        if exc is not None:
            raise exc
        assert response is not None
        http, parsed = response
        if "ResponseMetadata" in parsed:
            parsed["ResponseMetadata"]["RetryAttempts"] = attempts - 1
        full.meta.events.emit(op.after_call, http_response=http, parsed=parsed, model=op.model, context=context)
        if http.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            raise self.exceptions.from_code(code)(parsed, name)
        return parsed

    def _attempt(self, op: _Operation, request_dict: dict[str, Any], context: dict[str, Any],
                 ) -> tuple[tuple[_Response, dict[str, Any]] | None, Exception | None]:
        """One signed request and its parsed answer: ((http response, parsed), None) or (None, exception)."""
        retries = context["retries"]
        retries.setdefault("max", op.max_attempts)  # as botocore's MaxAttemptsSeeder
        body = request_dict["body"]
        try:
            signed = self._sign(op, request_dict["method"], request_dict["url"], request_dict["headers"], body)
            # after signing, as botocore adds them (add_retry_headers, then AWSRequest.prepare)
            signed.append(("amz-sdk-invocation-id", retries["invocation-id"]))
            signed.append(("amz-sdk-request", "; ".join(f"{k}={retries[k]}" for k in ("ttl", "attempt", "max")
                                                        if k in retries)))
            signed.append(("Content-Length", str(len(body))))
            status, reply_headers, reply = self.transport.send(request_dict["method"], op.url, op.path, signed,
                                                               body)
        except Exception as e:  # noqa: BLE001 - as botocore's endpoint: the retry handler judges it
            return None, e
        http = _Response(op.url, status, reply_headers, reply)
        response_dict = {"headers": http.headers, "status_code": status, "body": reply,
                         "context": {"operation_name": op.model.name}}
        parsed = op.parser.parse(response_dict, op.model.output_shape)
        if status >= 300:
            self._full._endpoint._add_modeled_error_fields(response_dict, parsed, op.model, op.parser)
        return (http, parsed), None

    def _sign(self, op: _Operation, method: str, url: str, headers: dict[str, str], body: bytes,
              ) -> list[tuple[str, str]]:
        """``headers`` and the SigV4 ones (X-Amz-Date, X-Amz-Security-Token, Authorization), as sent."""
        signer = self._full._request_signer
        creds = signer._credentials
        if creds is None:
            raise NoCredentialsError()
        env = os.environ
        if creds.method == "env" and env.get("AWS_ACCESS_KEY_ID"):  # Lambda's: follow the environment
            frozen = ReadOnlyCredentials(env["AWS_ACCESS_KEY_ID"], env.get("AWS_SECRET_ACCESS_KEY", ""),
                                         env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN"))
        else:
            frozen = creds.get_frozen_credentials()
        return _sigv4(frozen, op, method, headers, body)

    def _needs_retry(self, op: _Operation, attempts: int, request_dict: dict[str, Any],
                     response: Any, exc: Exception | None) -> bool:
        """botocore's own answer (the full client's standard-mode retry handler), and its sleep."""
        responses = self._full.meta.events.emit(
            op.needs_retry, response=response, endpoint=self._full._endpoint, operation=op.model,
            attempts=attempts, caught_exception=exc, request_dict=request_dict)
        delay = first_non_none_response(responses)
        if delay is None or delay is False:
            return False
        botocore.endpoint.time.sleep(delay)  # looked up at call time: tests record the sleeps
        return True


_SIGNING_KEYS: dict[tuple[str, str, str, str], bytes] = {}
_BLACKLIST = frozenset(SIGNED_HEADERS_BLACKLIST)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _sigv4(creds: ReadOnlyCredentials, op: _Operation, method: str, headers: dict[str, str], body: bytes,
           ) -> list[tuple[str, str]]:
    """``headers`` with the ones ``botocore.auth.SigV4Auth.add_auth`` adds (X-Amz-Date, X-Amz-Security-Token,
    Authorization), in the order it adds them, its signature computed as it computes it for these requests
    (no query, no Date or X-Amz-Content-SHA256 header, payload signed): the canonical request, the string to
    sign, the signing key (kept per secret, day, region and service) — byte-identical, the tests compare.
    Done directly: SigV4Auth's generic request handling (email.message headers, URL parsing, its logger's
    debug calls) cost a warm call more than the hashing."""
    timestamp = botocore.auth.get_current_datetime().strftime(SIGV4_TIMESTAMP)  # looked up at call time
    day = timestamp[:8]
    out = [(k, v) for k, v in headers.items() if k.lower() not in ("x-amz-date", "x-amz-security-token",
                                                                      "authorization")]
    out.append(("X-Amz-Date", timestamp))
    if creds.token:
        out.append(("X-Amz-Security-Token", creds.token))
    signed = {}
    for name, value in out:
        lname = name.lower()
        if lname not in _BLACKLIST:
            signed[lname] = " ".join(value.split())
    if "host" not in signed:
        signed["host"] = op.host
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical = "\n".join((method.upper(), op.canonical_path, op.canonical_query,
                           "\n".join(f"{n}:{signed[n]}" for n in names) + "\n", signed_headers,
                           hashlib.sha256(body).hexdigest()))
    scope = f"{day}/{op.signing_region}/{op.signing_name}/aws4_request"
    string_to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    cache_key = (creds.secret_key, day, op.signing_region, op.signing_name)
    k_signing = _SIGNING_KEYS.get(cache_key)
    if k_signing is None:
        k_date = _hmac(f"AWS4{creds.secret_key}".encode(), day)
        k_signing = _hmac(_hmac(_hmac(k_date, op.signing_region), op.signing_name), "aws4_request")
        if len(_SIGNING_KEYS) > 8:
            _SIGNING_KEYS.clear()
        _SIGNING_KEYS[cache_key] = k_signing
    signature = hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                 f"SignedHeaders={signed_headers}, Signature={signature}"))
    return out


class _LowerDict(dict):
    """Response headers keyed in lower case, looked up in any case (as botocore's HeadersDict)."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class _Response:
    """The parts of botocore's AWSResponse its parsers, retry checks and after-call handlers read."""

    __slots__ = ("url", "status_code", "headers", "content", "raw")

    def __init__(self, url: str, status: int, headers: dict[str, str], body: bytes) -> None:
        self.url, self.status_code, self.content = url, status, body
        self.headers = _LowerDict((k.lower(), v) for k, v in headers.items())
        self.raw = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


class _Operation:
    """What never changes between calls of one operation on one client."""

    @with_current_context()  # as _make_api_call: the features endpoint resolution registers go in the UA
    def __init__(self, full: Any, name: str, params: dict[str, Any]) -> None:
        from botocore import parsers, serialize
        from botocore.retries import standard

        model = full.meta.service_model.operation_model(name)
        if model.http_checksum or model.has_streaming_input or model.has_streaming_output or model.endpoint:
            raise ValueError(f"{name} is not an operation the lean path can make")
        self.model = model
        protocol = full.meta.service_model.resolved_protocol
        self.serializer = serialize.create_serializer(protocol, include_validation=False)
        self.parser = parsers.create_parser(protocol)
        self.idempotent = tuple(model.idempotent_members)
        context = {"client_region": full.meta.region_name, "client_config": full.meta.config,
                   "has_streaming_input": False, "auth_type": model.resolved_auth_type}
        url, extra, properties = full._resolve_endpoint_ruleset(model, dict(params), context)
        self.extra_headers = dict(extra or {})
        scheme = next(iter((properties or {}).get("authSchemes") or [{}]))
        self.signing_name = scheme.get("signingName") or model.service_model.signing_name
        self.signing_region = scheme.get("signingRegion") or full.meta.region_name
        from botocore.auth import _host_from_url

        self.host = _host_from_url(url)  # as SigV4Auth.headers_to_sign derives it
        parts = urlsplit(url)  # as SigV4Auth.canonical_request reads the URL
        self.canonical_path = quote(normalize_url_path(parts.path), safe="/~")
        self.canonical_query = SigV4Auth(None, "", "")._canonical_query_string_url(parts)
        self.path = (urlsplit(url).path.rstrip("/") or "") + "/"
        self.url = url.rstrip("/") + "/" if urlsplit(url).path in ("", "/") else url
        service_id = model.service_model.service_id.hyphenize()
        self.user_agent = _user_agent(full, url, name, f"request-created.{service_id}.{name}")
        self.max_attempts = full.meta.config.retries.get("total_max_attempts") or standard.DEFAULT_MAX_ATTEMPTS
        self.needs_retry = f"needs-retry.{service_id}.{name}"
        self.after_call = f"after-call.{service_id}.{name}"


def _user_agent(full: Any, url: str, name: str, event: str) -> str:
    """The User-Agent as botocore sends it: its own string, then what ``request-created`` handlers append
    (Powertools adds its feature); learned once, on a throwaway request (the signer signs it too)."""
    agent = full._user_agent_creator.to_string()
    probe = AWSRequest(method="POST", url=url, data=b"", headers={"User-Agent": agent})
    try:
        full.meta.events.emit(event, request=probe, operation_name=name)
    except Exception:  # noqa: BLE001 - e.g. no credentials yet: botocore's own string then
        return agent
    # a handler's ``headers["User-Agent"] = ...`` adds a header; the prepared request keeps the last one
    value = (probe.headers.get_all("User-Agent") or [agent])[-1]
    return value.decode() if isinstance(value, bytes) else value


# ------------------------------------------------------------------------------------------- transport


class _Connection:
    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def dropped(self) -> bool:
        """An idle keep-alive connection the server closed (readable = EOF or unexpected bytes)."""
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


class Transport:
    """HTTP/1.1 with keep-alive: one pool of idle connections per (scheme, host, port).

    Errors are botocore's (what its urllib3 session raises), so its retry handler treats them alike:
    connection refused/unreachable → EndpointConnectionError, connect timeout → ConnectTimeoutError,
    read timeout → ReadTimeoutError, the connection closed or reset mid-exchange → ConnectionClosedError,
    TLS failure → SSLError.
    """

    def __init__(self, *, connect_timeout: float, read_timeout: float, keepalive: bool,
                 verify: bool | str | None = True) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.verify = verify
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    @functools.cached_property
    def _tls(self) -> ssl.SSLContext:
        from botocore.httpsession import get_cert_path

        if self.verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=get_cert_path(True if self.verify is None else self.verify))

    def _connect(self, scheme: str, host: str, port: int, url: str) -> _Connection:
        # an ASCII host name (AWS endpoints, IP literals) as bytes: given a str, getaddrinfo and ssl encode it
        # with the idna codec, whose import (stringprep, unicodedata) costs a cold start ~6 ms; for an ASCII
        # name that encoding is the name itself
        name: str | bytes = host.encode("ascii") if host.isascii() else host
        try:
            sock = socket.create_connection((name, port), timeout=self.connect_timeout)
        except TimeoutError as e:
            raise ConnectTimeoutError(endpoint_url=url, error=e) from e
        except OSError as e:
            raise EndpointConnectionError(endpoint_url=url, error=e) from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(self.read_timeout)
        if scheme == "https":
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=name)
            except ssl.SSLError as e:
                sock.close()
                raise BotoSSLError(endpoint_url=url, error=e) from e
            except OSError as e:
                sock.close()
                raise EndpointConnectionError(endpoint_url=url, error=e) from e
        return _Connection(sock)

    def send(self, method: str, url: str, path: str, headers: list[tuple[str, str]], body: bytes,
             ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request; the connection goes back to the pool if it may."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        idle = self._idle.setdefault(key, [])
        conn = None
        while idle:
            try:
                conn = idle.pop()
            except IndexError:
                break
            if not conn.dropped():
                break
            conn.close()
            conn = None
        if conn is None:
            conn = self._connect(scheme, host, port, url)
        host_header = parts.netloc.rpartition("@")[2]
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "Accept-Encoding: identity"]
        lines += [f"{k}: {v}" for k, v in headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            conn.sock.sendall(head + body)
            status, reply_headers, reply, reusable = self._read(conn)
        except TimeoutError as e:
            conn.close()
            raise ReadTimeoutError(endpoint_url=url, error=e) from e
        except (OSError, ValueError) as e:
            conn.close()
            raise ConnectionClosedError(endpoint_url=url, error=e) from e
        if reusable and len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()
        return status, reply_headers, reply

    @staticmethod
    def _read(conn: _Connection) -> tuple[int, dict[str, str], bytes, bool]:
        reader = conn.reader
        status_line = reader.readline(65537)
        if not status_line:
            raise ConnectionResetError("the server closed the connection without answering")
        version, _, rest = status_line.decode("latin-1").partition(" ")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        while True:
            line = reader.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionResetError("the connection closed in the response headers")
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip(), value.strip()
            prior = headers.get(name)
            headers[name] = f"{prior}, {value}" if prior is not None else value
        lower = {k.lower(): v for k, v in headers.items()}
        if lower.get("transfer-encoding", "").lower() == "chunked":
            body = _read_chunked(reader)
        elif "content-length" in lower:
            length = int(lower["content-length"])
            body = reader.read(length)
            if len(body) != length:
                raise ConnectionResetError("the connection closed in the response body")
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            return status, headers, reader.read(), False
        reusable = version == "HTTP/1.1" and lower.get("connection", "").lower() != "close"
        return status, headers, body, reusable

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


def _read_chunked(reader: Any) -> bytes:
    out = []
    while True:
        size = int(reader.readline(65537).split(b";")[0].strip(), 16)
        if size == 0:
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(out)
        chunk = reader.read(size)
        if len(chunk) != size:
            raise ConnectionResetError("the connection closed in a chunked body")
        out.append(chunk)
        reader.readline(65537)
