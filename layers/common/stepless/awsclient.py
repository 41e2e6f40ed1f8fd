"""The few AWS operations on the hot paths, made without loading botocore's client machinery.

A warm issuance makes one or two AWS calls, and botocore's per-call machinery (event hooks, endpoint ruleset
resolution, request objects built and prepared again, urllib3 + http.client) cost more CPU than the rest of
the issuance; at a cold start, importing that machinery (``botocore.compat`` pulls in urllib3) and creating
a client cost more than ``import boto3`` itself (issue 14; the README's Performance section has the figures).

:class:`LeanClient` is what :func:`stepless.aws.client` returns for DynamoDB, KMS and Secrets Manager. It
answers the operations in :data:`LEAN` itself, for the JSON protocol those services speak:

* serialization: the parameters as JSON, blobs base64-encoded (DynamoDB's ``B``/``BS`` attribute values,
  kms.Sign's ``Message``), idempotency tokens filled as botocore fills them (TransactWriteItems'
  ``ClientRequestToken``, the same token on every retry), the ``X-Amz-Target`` and content type of the
  service's model;
* SigV4, computed as ``botocore.auth.SigV4Auth`` computes it for these POST requests (see :func:`_sigv4`);
* parsing: the JSON answer with its blobs decoded and timestamps made datetimes, and botocore's
  ``ResponseMetadata``;
* HTTP/1.1 keep-alive on a plain socket (TLS for https, verified against the CA bundle botocore uses).

tests/unit/test_awsclient.py holds this to botocore: the same request bytes (the signature included), the
same parsed answers, and each operation's model checked for members this module does not know.

The inputs come from the environment when it says everything (Lambda's case): credentials from
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` (read at each call, so rotated ones are
used), the region, an ``AWS_ENDPOINT_URL[_<SERVICE>]`` override or the regional endpoint of the ``aws``
partition (FIPS too). Otherwise — a shared config file, another partition, dual-stack, account-based
endpoints, credentials from a profile, a container or SSO — they are asked once of the full botocore client
(its endpoint ruleset and credential chain), and the calls still take the lean path.

botocore's client itself is made only when needed (:attr:`LeanClient.full`): for every other operation and
attribute; for an error answer (botocore's parser and modeled exception classes: ``client.exceptions.<Code>``,
a ``ClientError``, so ``faults.translate_aws_errors`` and every ``except ClientError`` are unchanged); and for
retries (botocore's standard-mode retry handler decides: the same attempts, backoff, retry quota,
``amz-sdk-request`` header and DynamoDB CRC32 check). A warm success never touches it — until a retry has
been taken on that client: from then on botocore's handler sees every answer (it refills its retry quota).

tests/unit/test_awsclient_edges.py compares the two clients on what strangers and bad networks send: error
bodies that are HTML or empty, interim 1xx answers, chunked and split answers, dropped keep-alive connections,
timeouts, unicode, container credentials, threads, TLS failures; two documented differences remain (an
obsolete folded header's spelling, and a body cut short, which the lean path refuses where botocore takes it).

The full client answers everything (the lean path is off) when X-Ray tracing patches botocore, when moto's
in-process mock is active (it answers through botocore's ``before-send`` event), with a proxy configured,
or with ``STEPLESS_AWS_LEAN=0``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import select
import socket
import ssl
import sys
import threading
import uuid
import weakref
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    SSLError as BotoSSLError,
)


@dataclasses.dataclass(frozen=True)
class _Service:
    """What botocore's model says of a JSON-protocol service, for the lean operations."""

    target: str  # metadata.targetPrefix
    json_version: str  # metadata.jsonVersion
    signing_name: str  # metadata.signingName
    endpoint_prefix: str  # metadata.endpointPrefix
    env_name: str  # AWS_ENDPOINT_URL_<env_name>: the service id, upper case, spaces as underscores


SERVICES: dict[str, _Service] = {
    "dynamodb": _Service("DynamoDB_20120810", "1.0", "dynamodb", "dynamodb", "DYNAMODB"),
    "kms": _Service("TrentService", "1.1", "kms", "kms", "KMS"),
    "secretsmanager": _Service("secretsmanager", "1.1", "secretsmanager", "secretsmanager", "SECRETS_MANAGER"),
}

# The operations answered here (python method name → operation), per service; the rest go to the full client.
METHODS: dict[str, dict[str, str]] = {
    "dynamodb": {"transact_write_items": "TransactWriteItems", "get_item": "GetItem",
                 "batch_get_item": "BatchGetItem", "update_item": "UpdateItem", "put_item": "PutItem"},
    "kms": {"sign": "Sign", "get_public_key": "GetPublicKey"},
    "secretsmanager": {"get_secret_value": "GetSecretValue"},
}
LEAN: dict[str, frozenset[str]] = {service: frozenset(ops.values()) for service, ops in METHODS.items()}
_PY: dict[str, dict[str, str]] = {service: {op: py for py, op in ops.items()} for service, ops in METHODS.items()}

# Members filled with a uuid4 when absent (botocore's ``idempotencyToken`` trait).
IDEMPOTENT: dict[tuple[str, str], tuple[str, ...]] = {("dynamodb", "TransactWriteItems"): ("ClientRequestToken",)}

# Each operation's input members (botocore's serializer refuses any other: KeyError, validation being off).
INPUTS: dict[tuple[str, str], frozenset[str]] = {
    ("dynamodb", "TransactWriteItems"): frozenset({"TransactItems", "ReturnConsumedCapacity",
                                                   "ReturnItemCollectionMetrics", "ClientRequestToken"}),
    ("dynamodb", "GetItem"): frozenset({"TableName", "Key", "AttributesToGet", "ConsistentRead",
                                        "ReturnConsumedCapacity", "ProjectionExpression",
                                        "ExpressionAttributeNames"}),
    ("dynamodb", "BatchGetItem"): frozenset({"RequestItems", "ReturnConsumedCapacity"}),
    ("dynamodb", "UpdateItem"): frozenset({"TableName", "Key", "AttributeUpdates", "Expected", "ConditionalOperator",
                                           "ReturnValues", "ReturnConsumedCapacity", "ReturnItemCollectionMetrics",
                                           "UpdateExpression", "ConditionExpression", "ExpressionAttributeNames",
                                           "ExpressionAttributeValues", "ReturnValuesOnConditionCheckFailure"}),
    ("dynamodb", "PutItem"): frozenset({"TableName", "Item", "Expected", "ReturnValues", "ReturnConsumedCapacity",
                                        "ReturnItemCollectionMetrics", "ConditionalOperator", "ConditionExpression",
                                        "ExpressionAttributeNames", "ExpressionAttributeValues",
                                        "ReturnValuesOnConditionCheckFailure"}),
    ("kms", "Sign"): frozenset({"KeyId", "Message", "MessageType", "GrantTokens", "SigningAlgorithm", "DryRun"}),
    ("kms", "GetPublicKey"): frozenset({"KeyId", "GrantTokens"}),
    ("secretsmanager", "GetSecretValue"): frozenset({"SecretId", "VersionId", "VersionStage"}),
}

# Each operation's output members (botocore's parser keeps only the modeled ones).
OUTPUTS: dict[tuple[str, str], frozenset[str]] = {
    ("dynamodb", "TransactWriteItems"): frozenset({"ConsumedCapacity", "ItemCollectionMetrics"}),
    ("dynamodb", "GetItem"): frozenset({"Item", "ConsumedCapacity"}),
    ("dynamodb", "BatchGetItem"): frozenset({"Responses", "UnprocessedKeys", "ConsumedCapacity"}),
    ("dynamodb", "UpdateItem"): frozenset({"Attributes", "ConsumedCapacity", "ItemCollectionMetrics"}),
    ("dynamodb", "PutItem"): frozenset({"Attributes", "ConsumedCapacity", "ItemCollectionMetrics"}),
    ("kms", "Sign"): frozenset({"KeyId", "Signature", "SigningAlgorithm"}),
    ("kms", "GetPublicKey"): frozenset({"KeyId", "PublicKey", "CustomerMasterKeySpec", "KeySpec", "KeyUsage",
                                        "EncryptionAlgorithms", "SigningAlgorithms", "KeyAgreementAlgorithms",
                                        "EncapsulationAlgorithms"}),
    ("secretsmanager", "GetSecretValue"): frozenset({"ARN", "Name", "VersionId", "SecretBinary", "SecretString",
                                                     "VersionStages", "CreatedDate"}),
}

# Top-level blob and timestamp members of the non-DynamoDB operations (DynamoDB's are its attribute values'
# ``B`` and ``BS``, wherever they sit): (inputs, outputs).
BLOBS_IN: dict[tuple[str, str], frozenset[str]] = {("kms", "Sign"): frozenset({"Message"})}
BLOBS_OUT: dict[tuple[str, str], frozenset[str]] = {("kms", "Sign"): frozenset({"Signature"}),
                                                    ("kms", "GetPublicKey"): frozenset({"PublicKey"}),
                                                    ("secretsmanager", "GetSecretValue"): frozenset({"SecretBinary"})}
TIMESTAMPS_OUT: dict[tuple[str, str], frozenset[str]] = {
    ("secretsmanager", "GetSecretValue"): frozenset({"CreatedDate"})}

MAX_IDLE = 10  # idle keep-alive connections kept per endpoint (botocore's max_pool_connections)
MAX_HEADERS = 100  # response header lines (http.client's limit)
MAX_BODY = 64 << 20  # a response body larger than this is refused (DynamoDB's largest answers are ~16 MB)

# Called with (service, operation) for each call made on the lean path (the benchmarks count calls here;
# calls on the full client are seen by botocore's ``before-call`` event as before).
observers: list[Callable[[str, str], None]] = []

_made: weakref.WeakSet[LeanClient] = weakref.WeakSet()


def enabled() -> bool:
    """Whether new clients may take the lean path (see the module docstring)."""
    env = os.environ
    if env.get("STEPLESS_AWS_LEAN", "1").lower() in ("0", "false", "no", "off"):
        return False
    # botocore's proxies: urllib's getproxies(), i.e. any non-empty <scheme>_proxy variable
    if any(v and k.lower().endswith("_proxy") and k.lower() != "no_proxy" for k, v in env.items()):
        return False
    from stepless.observability import tracing_enabled

    return not tracing_enabled()


def _moto_mock_active() -> bool:
    stubber = getattr(sys.modules.get("moto.core.models"), "botocore_stubber", None)
    return bool(getattr(stubber, "enabled", False))


def close_idle() -> None:
    """Close every lean client's idle connections (``stepless.aws.reset``: clients forgotten)."""
    for lean in list(_made):
        lean.transport.close()


def _now() -> dt.datetime:
    """The signing time (tests freeze it)."""
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------------------- wire format


def _b64(value: Any) -> str:
    """A blob as botocore's serializer writes it (a str is UTF-8 encoded first)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


_SCALARS = (str, int, float, bool, type(None))
_SEQUENCES = (list, tuple, set, frozenset)


def _ddb_in(value: Any) -> Any:
    """DynamoDB parameters with their attribute values' blobs (``B``, ``BS``) base64-encoded. A member named
    ``B``/``BS`` whose value is not a map is an attribute value's blob; an attribute *named* B has a map.
    (This walk runs over every item written, on every warm request: exact type checks first, and a map
    with nothing to encode is returned as it is, not copied.)"""
    kind = type(value)
    if kind is dict or (kind not in _SCALARS and isinstance(value, dict)):
        out = None
        for k, v in value.items():
            vk = type(v)
            if k == "B" and vk is not dict:
                new = _b64(v)
            elif vk in _SCALARS:
                continue
            elif k == "BS" and vk in _SEQUENCES:
                new = [_b64(b) for b in v]
            else:
                new = _ddb_in(v)
                if new is v:
                    continue
            if out is None:
                out = dict(value)
            out[k] = new
        return value if out is None else out
    if kind in _SEQUENCES or (kind not in _SCALARS and isinstance(value, list | tuple | set | frozenset)):
        return [_ddb_in(v) for v in value]
    return value


def _ddb_out(value: Any) -> Any:
    """A DynamoDB answer with its attribute values' blobs decoded (the inverse of :func:`_ddb_in`)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            if k == "B" and isinstance(v, str):
                out[k] = base64.b64decode(v)
            elif k == "BS" and isinstance(v, list):
                out[k] = [base64.b64decode(b) for b in v]
            else:
                out[k] = _ddb_out(v)
        return out
    if isinstance(value, list):
        return [_ddb_out(v) for v in value]
    return value


def serialize(service: str, operation: str, params: dict[str, Any]) -> bytes:
    """The request body botocore's JSON serializer writes for these parameters (an unknown top-level member
    raises KeyError, as botocore's serializer does with validation off)."""
    known = INPUTS[(service, operation)]
    for name in params:
        if name not in known:
            raise KeyError(name)
    if service == "dynamodb":
        body = _ddb_in(params)
    else:
        blobs = BLOBS_IN.get((service, operation), frozenset())
        body = {k: _b64(v) if k in blobs else v for k, v in params.items()}
    return json.dumps(body).encode("utf-8")


class Unusual(ValueError):
    """An answer :func:`parse` leaves to botocore's parser (not JSON, not an object, a timestamp as text)."""


def parse(service: str, operation: str, data: bytes) -> dict[str, Any]:
    """A successful answer's body as botocore's JSON parser returns it (``ResponseMetadata`` aside);
    :class:`Unusual` for one it does not take the usual shape of."""
    try:
        doc = json.loads(data.decode("utf-8")) if data else {}
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise Unusual("not JSON") from e
    if not isinstance(doc, dict):
        raise Unusual("not a JSON object")
    known = OUTPUTS[(service, operation)]
    doc = {k: v for k, v in doc.items() if k in known}
    if service == "dynamodb":
        return _ddb_out(doc)
    blobs = BLOBS_OUT.get((service, operation), frozenset())
    stamps = TIMESTAMPS_OUT.get((service, operation), frozenset())
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if v is None:
            continue
        if k in blobs:
            v = base64.b64decode(v)
        elif k in stamps:
            if type(v) not in (int, float):
                raise Unusual("a timestamp that is not a number")
            v = dt.datetime.fromtimestamp(v, dt.UTC)
        out[k] = v
    return out


# ------------------------------------------------------------------------------------- endpoints


_AWS_REGION_PREFIXES = ("us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx")  # the aws partition's regionRegex


def _aws_partition(region: str) -> bool:
    r"""``^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$`` (botocore's partitions.json), without importing re."""
    parts = region.split("-")
    return (len(parts) == 3 and parts[0] in _AWS_REGION_PREFIXES and parts[1].isidentifier()
            and parts[1].isascii() and parts[2].isdigit() and parts[2].isascii())


def _valid_region(region: str) -> bool:
    r"""``^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$`` (botocore's ``validate_region_name``), without re."""
    return (0 < len(region) <= 63 and region.isascii() and region[0] != "-" and region[-1] != "-"
            and region.replace("-", "").isalnum())


def _true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _config_file() -> bool:
    """A shared config file or a named profile may set endpoints, FIPS, CA bundles: botocore reads those."""
    env = os.environ
    if env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE"):
        return True
    return os.path.exists(os.path.expanduser(env.get("AWS_CONFIG_FILE") or "~/.aws/config"))


def environment_endpoint(service: str, region: str) -> str | None:
    """The endpoint botocore resolves for ``service`` in ``region`` when the environment alone decides it,
    else None (the full client's ruleset decides). Checked against botocore's ruleset by the tests."""
    env = os.environ
    spec = SERVICES[service]
    if (_config_file() or env.get("AWS_ACCOUNT_ID") or _true("AWS_USE_DUALSTACK_ENDPOINT")
            or not _valid_region(region)):
        return None  # botocore decides (and refuses a region name that is not one)
    if not _true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        url = env.get(f"AWS_ENDPOINT_URL_{spec.env_name}") or env.get("AWS_ENDPOINT_URL")
        if url:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname and parts.path in ("", "/") \
                    and not parts.query and "@" not in parts.netloc:
                return url
            return None
    if not _aws_partition(region):
        return None
    fips = "-fips" if _true("AWS_USE_FIPS_ENDPOINT") else ""
    return f"https://{spec.endpoint_prefix}{fips}.{region}.amazonaws.com"


def _host_from_url(url: str) -> str:
    """The Host SigV4 signs, as ``botocore.auth._host_from_url`` derives it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _ca_bundle() -> str:
    """botocore's default CA bundle (``botocore.httpsession.get_cert_path(True)``): certifi's, else its own."""
    try:
        from certifi import where
    except ImportError:  # pragma: no cover - certifi is a dependency of the runtime's botocore
        import botocore

        return os.path.join(os.path.dirname(botocore.__file__), "cacert.pem")
    return where()


@functools.cache
def _user_agent() -> str:
    """Our User-Agent: botocore's version (its model and protocol), the lean path named."""
    import botocore

    py = sys.version_info
    return (f"Botocore/{botocore.__version__} ua/2.0 os/{sys.platform} lang/python#{py[0]}.{py[1]}.{py[2]} "
            "cfg/retry-mode#standard md/stepless#lean")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where and how one operation is sent: what never changes between its calls on one client. The lean path
    sends only to an endpoint's root (``POST /``, the JSON protocol's path): an endpoint URL with a path or a
    query is left to botocore (see :func:`environment_endpoint` and :func:`_full_plan`)."""

    url: str
    host: str  # the Host header, as SigV4 signs it
    signing_region: str
    signing_name: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, url: str, signing_region: str, signing_name: str,
           extra_headers: tuple[tuple[str, str], ...] = ()) -> Plan:
        return cls(url=url.rstrip("/") + "/", host=_host_from_url(url), signing_region=signing_region,
                   signing_name=signing_name, extra_headers=extra_headers)


def _full_plan(full: Any, name: str, params: dict[str, Any]) -> Plan | None:
    """The plan from the full client: its endpoint ruleset for this operation (as ``_make_api_call``)."""
    from botocore.context import with_current_context

    model = full.meta.service_model.operation_model(name)
    context = {"client_region": full.meta.region_name, "client_config": full.meta.config,
               "has_streaming_input": False, "auth_type": model.resolved_auth_type}
    url, extra, properties = with_current_context()(full._resolve_endpoint_ruleset)(model, dict(params), context)
    scheme = next(iter((properties or {}).get("authSchemes") or [{}]))
    parts = urlsplit(url)
    if parts.query or parts.path not in ("", "/") or "@" in parts.netloc:
        return None
    return Plan.of(url, scheme.get("signingRegion") or full.meta.region_name,
                   scheme.get("signingName") or model.service_model.signing_name, tuple((extra or {}).items()))


# ---------------------------------------------------------------------------------------------- client


class LeanClient:
    """A drop-in for botocore's client of ``service``: the operations in :data:`LEAN` answered here, every
    other operation and attribute by the full client, made on first use by ``make_full``."""

    def __init__(self, service: str, region: str, make_full: Callable[[], Any], *, max_attempts: int,
                 connect_timeout: float, read_timeout: float, keepalive: bool) -> None:
        self._service = service
        self._spec = SERVICES[service]
        self._region = region
        self._make_full = make_full
        self._max_attempts = max_attempts  # as the full client's Config (total_max_attempts)
        self._full: Any = None
        self._plans: dict[str, Plan | None] = {}
        self._retries: dict[str, _Retry] = {}
        self._lock = threading.Lock()
        self._retrying = False  # botocore's retry handler has been engaged: it sees every answer from then on
        verify: bool | str | None = os.environ.get("AWS_CA_BUNDLE") or None
        self.transport = Transport(connect_timeout=connect_timeout, read_timeout=read_timeout, keepalive=keepalive,
                                   verify=verify)
        _made.add(self)

    @property
    def full(self) -> Any:
        """botocore's client, made on first use."""
        if self._full is None:
            with self._lock:
                if self._full is None:
                    self._full = self._make_full()
                    if _config_file():  # botocore may verify against another CA bundle (a profile's ca_bundle)
                        verify = getattr(self._full._endpoint.http_session, "_verify", True)
                        self.transport.verify = None if verify is True else verify
                        self.transport.__dict__.pop("_tls", None)  # made again with it
        return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        api = METHODS[self._service].get(name)
        if api is None:
            return getattr(self.full, name)

        def method(**kwargs: Any) -> Any:
            if _moto_mock_active():
                return getattr(self.full, name)(**kwargs)
            return self._call(api, kwargs)

        method.__name__ = name
        self.__dict__[name] = method  # found directly from now on
        return method

    @property
    def exceptions(self) -> Any:
        """The full client's exception classes."""
        return self.full.exceptions

    def close(self) -> None:
        self.transport.close()
        if self._full is not None:
            self._full.close()

    def plan(self, name: str, params: dict[str, Any]) -> Plan | None:
        """Where ``name`` is sent and how it is signed: from the environment, else the full client's ruleset
        (None: an endpoint the lean path does not send to)."""
        if name in self._plans:
            return self._plans[name]
        url = environment_endpoint(self._service, self._region)
        plan = (Plan.of(url, self._region, self._spec.signing_name) if url is not None
                else _full_plan(self.full, name, params))
        self._plans[name] = plan
        return plan

    def _credentials(self) -> tuple[str, str, str | None]:
        """(access key, secret key, session token): the environment's (read at each call: Lambda rotates
        them), else the full client's credential chain (refreshed as botocore refreshes them)."""
        env = os.environ
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            # botocore's EnvProvider.TOKENS order
            return key, secret, env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None
        creds = self.full._request_signer._credentials
        if creds is None:
            raise NoCredentialsError()
        frozen = creds.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    def _call(self, name: str, params: dict[str, Any]) -> Any:
        for observe in observers:
            observe(self._service, name)
        plan = self.plan(name, params)
        if plan is None:  # an endpoint this path does not send to (a path or query in it)
            return getattr(self.full, _PY[self._service][name])(**params)
        for member in IDEMPOTENT.get((self._service, name), ()):  # once, kept across retries
            if member not in params:
                params[member] = str(uuid.uuid4())
        body = serialize(self._service, name, params)
        headers = [("X-Amz-Target", f"{self._spec.target}.{name}"),
                   ("Content-Type", f"application/x-amz-json-{self._spec.json_version}"),
                   *plan.extra_headers, ("User-Agent", _user_agent())]
        context: dict[str, Any] = {"retries": {"attempt": 1, "invocation-id": str(uuid.uuid4()),
                                               "max": self._max_attempts}, "client_region": self._region}
        attempts = 1
        while True:
            answer, exc = self._attempt(plan, headers, body, context)
            if answer is not None and answer[0] < 300 and not self._retrying and self._intact(answer):
                return self._parsed(name, answer, attempts)  # the warm path: botocore not involved
            retry = self._retry(name)
            response = None
            if answer is not None:
                http = _Response(plan.url, *answer)
                response = (http, self._parsed(name, answer, attempts) if answer[0] < 300 else retry.error(http))
            if not retry.needed(attempts, context, plan, headers, body, response, exc):
                break
            self._retrying = True  # a retry took quota: botocore's handler sees every answer from now on
            attempts += 1
            self.full._endpoint._update_retries_context(context, attempts, response)
        if exc is not None:
            raise exc
        assert response is not None
        http, parsed = response
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = attempts - 1
        if http.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            raise self.exceptions.from_code(code)(parsed, name)
        return parsed

    def _retry(self, name: str) -> _Retry:
        retry = self._retries.get(name)
        if retry is None:
            retry = self._retries[name] = _Retry.of(self.full, name)
        return retry

    def _intact(self, answer: tuple[int, dict[str, str], bytes]) -> bool:
        """DynamoDB's CRC32 of the body, when it sends one, matches (else botocore's retry handler retries)."""
        if self._service != "dynamodb":
            return True
        checksum = answer[1].get("x-amz-crc32")
        return checksum is None or (zlib.crc32(answer[2]) & 0xFFFFFFFF) == int(checksum)

    def _parsed(self, name: str, answer: tuple[int, dict[str, str], bytes], attempts: int) -> dict[str, Any]:
        status, headers, data = answer
        try:
            parsed = parse(self._service, name, data)
        except Unusual:  # botocore's parser answers (an empty success, a datetime, its own exception)
            parsed = self._retry(name).success(_Response("", status, headers, data))
        metadata: dict[str, Any] = {}
        if "x-amzn-requestid" in headers:
            metadata["RequestId"] = headers["x-amzn-requestid"]
        metadata.update(HTTPStatusCode=status, HTTPHeaders=dict(headers), RetryAttempts=attempts - 1)
        parsed["ResponseMetadata"] = metadata
        return parsed

    def _attempt(self, plan: Plan, headers: list[tuple[str, str]], body: bytes, context: dict[str, Any],
                 ) -> tuple[tuple[int, dict[str, str], bytes] | None, Exception | None]:
        """One signed request: ((status, lower-cased headers, body), None) or (None, the exception)."""
        retries = context["retries"]
        try:
            signed = _sigv4(self._credentials(), plan, "POST", headers, body)
            # after signing, as botocore adds them (add_retry_headers, then AWSRequest.prepare)
            signed.append(("amz-sdk-invocation-id", retries["invocation-id"]))
            signed.append(("amz-sdk-request", "; ".join(f"{k}={retries[k]}" for k in ("ttl", "attempt", "max")
                                                        if k in retries)))
            signed.append(("Content-Length", str(len(body))))
            status, reply_headers, reply = self.transport.send("POST", plan.url, "/", signed, body,
                                                               host=plan.host)
        except Exception as e:  # noqa: BLE001 - as botocore's endpoint: the retry handler judges it
            return None, e
        return (status, reply_headers, reply), None


@dataclasses.dataclass(frozen=True)
class _Retry:
    """botocore's parts for an error answer and a retry decision on one operation (the full client's)."""

    full: Any
    model: Any
    parser: Any
    needs_retry: str

    @classmethod
    def of(cls, full: Any, name: str) -> _Retry:
        from botocore import parsers

        model = full.meta.service_model.operation_model(name)
        service_id = model.service_model.service_id.hyphenize()
        return cls(full, model, parsers.create_parser(full.meta.service_model.resolved_protocol),
                   f"needs-retry.{service_id}.{name}")

    def success(self, http: _Response) -> dict[str, Any]:
        """A successful answer parsed by botocore's parser (``ResponseMetadata`` aside)."""
        parsed = self.parser.parse({"headers": http.headers, "status_code": http.status_code, "body": http.content,
                                    "context": {"operation_name": self.model.name}}, self.model.output_shape)
        parsed.pop("ResponseMetadata", None)
        return parsed

    def error(self, http: _Response) -> dict[str, Any]:
        """An error answer parsed as botocore parses it (its modeled fields, e.g. CancellationReasons)."""
        response_dict = {"headers": http.headers, "status_code": http.status_code, "body": http.content,
                         "context": {"operation_name": self.model.name}}
        parsed = self.parser.parse(response_dict, self.model.output_shape)
        self.full._endpoint._add_modeled_error_fields(response_dict, parsed, self.model, self.parser)
        return parsed

    def needed(self, attempts: int, context: dict[str, Any], plan: Plan, headers: list[tuple[str, str]],
               body: bytes, response: Any, exc: Exception | None) -> bool:
        """botocore's own answer (the full client's standard-mode retry handler), and its sleep."""
        import botocore.endpoint
        from botocore.hooks import first_non_none_response

        full = self.full
        context.setdefault("client_config", full.meta.config)
        request_dict = {"context": context, "url": plan.url, "method": "POST", "body": body,
                        "headers": dict(headers)}
        responses = full.meta.events.emit(
            self.needs_retry, response=response, endpoint=full._endpoint, operation=self.model,
            attempts=attempts, caught_exception=exc, request_dict=request_dict)
        delay = first_non_none_response(responses)
        if delay is None or delay is False:
            return False
        botocore.endpoint.time.sleep(delay)  # looked up at call time: tests record the sleeps
        return True


_SIGNING_KEYS: dict[tuple[str, str, str, str], bytes] = {}
# botocore.auth.SIGNED_HEADERS_BLACKLIST (the tests compare)
UNSIGNED_HEADERS = frozenset({
    "baggage", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "traceparent", "tracestate", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id"})


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _sigv4(creds: tuple[str, str, str | None], plan: Plan, method: str, headers: list[tuple[str, str]],
           body: bytes) -> list[tuple[str, str]]:
    """``headers`` with the ones ``botocore.auth.SigV4Auth.add_auth`` adds (X-Amz-Date, X-Amz-Security-Token,
    Authorization), in the order it adds them, its signature computed as it computes it for these requests
    (no query, no Date or X-Amz-Content-SHA256 header, payload signed): the canonical request, the string to
    sign, the signing key (kept per secret, day, region and service) — byte-identical, the tests compare."""
    access_key, secret_key, token = creds
    timestamp = _now().strftime("%Y%m%dT%H%M%SZ")  # botocore.auth.SIGV4_TIMESTAMP
    day = timestamp[:8]
    out = [(k, v) for k, v in headers if k.lower() not in ("x-amz-date", "x-amz-security-token", "authorization")]
    out.append(("X-Amz-Date", timestamp))
    if token:
        out.append(("X-Amz-Security-Token", token))
    signed = {}
    for name, value in out:
        lname = name.lower()
        if lname not in UNSIGNED_HEADERS:
            signed[lname] = " ".join(value.split())
    if "host" not in signed:
        signed["host"] = plan.host
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical = "\n".join((method.upper(), "/", "",
                           "\n".join(f"{n}:{signed[n]}" for n in names) + "\n", signed_headers,
                           hashlib.sha256(body).hexdigest()))
    scope = f"{day}/{plan.signing_region}/{plan.signing_name}/aws4_request"
    string_to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    cache_key = (secret_key, day, plan.signing_region, plan.signing_name)
    k_signing = _SIGNING_KEYS.get(cache_key)
    if k_signing is None:
        k_date = _hmac(f"AWS4{secret_key}".encode(), day)
        k_signing = _hmac(_hmac(_hmac(k_date, plan.signing_region), plan.signing_name), "aws4_request")
        if len(_SIGNING_KEYS) > 8:
            _SIGNING_KEYS.clear()
        _SIGNING_KEYS[cache_key] = k_signing
    signature = hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
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
    """The parts of botocore's AWSResponse its parsers and retry checks read."""

    __slots__ = ("url", "status_code", "headers", "content", "raw")

    def __init__(self, url: str, status: int, headers: dict[str, str], body: bytes) -> None:
        self.url, self.status_code, self.content = url, status, body
        self.headers = _LowerDict(headers)
        self.raw = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


# ------------------------------------------------------------------------------------------- transport


class _Connection:
    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def dropped(self) -> bool:
        """An idle keep-alive connection the server closed (readable = EOF or unexpected bytes)."""
        try:
            poller = select.poll()  # not select(): it fails for a descriptor number of 1024 or more
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
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
        """A client context as botocore's ``create_urllib3_context`` makes it (not ``create_default_context``,
        whose Python 3.13 X.509-strict flags refuse certificates botocore accepts), verifying against
        botocore's CA bundle."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.verify is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx.load_verify_locations(cafile=_ca_bundle() if self.verify in (None, True) else self.verify)
        return ctx

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
        if scheme == "https":  # the handshake within the connect timeout, as urllib3
            try:
                tls = self._tls
            except (ssl.SSLError, OSError, ValueError) as e:  # e.g. a CA bundle that is a directory
                sock.close()
                raise BotoSSLError(endpoint_url=url, error=e) from e
            try:
                sock = tls.wrap_socket(sock, server_hostname=name)
            except ssl.SSLError as e:
                sock.close()
                raise BotoSSLError(endpoint_url=url, error=e) from e
            except TimeoutError as e:
                sock.close()
                raise ReadTimeoutError(endpoint_url=url, error=e) from e
            except OSError as e:
                sock.close()
                raise EndpointConnectionError(endpoint_url=url, error=e) from e
        sock.settimeout(self.read_timeout)
        return _Connection(sock)

    def send(self, method: str, url: str, path: str, headers: list[tuple[str, str]], body: bytes, *,
             host: str) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-cased headers, body) of one request, ``host`` its Host header (the one SigV4 signed);
        the connection goes back to the pool if it may. A header that would not be one header (CR, LF, NUL,
        or not Latin-1) is refused before anything is sent, its value not echoed (it may be a credential)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
        for k, v in headers:
            line = f"{k}: {v}"
            if "\r" in line or "\n" in line or "\0" in line:
                raise HTTPClientError(error="a request header name or value holds CR, LF or NUL; nothing was sent")
            lines.append(line)
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise HTTPClientError(error="a request header is not Latin-1; nothing was sent") from None
        key = _pool_key(url)
        scheme, hostname, port = key
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
            conn = self._connect(scheme, hostname, port, url)
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
        """One answer: interim 1xx answers skipped (as http.client), headers lower-cased and joined."""
        reader = conn.reader
        while True:
            status_line = reader.readline(65537)
            if not status_line:
                raise ConnectionResetError("the server closed the connection without answering")
            version, _, rest = status_line.decode("latin-1").partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/") or not (code.isdigit() and code.isascii()) or rest[3:4].strip():
                raise ConnectionResetError("not an HTTP status line")
            status = int(code)
            headers = _read_headers(reader)
            if not (100 <= status < 200) or status == 101:
                break
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = _read_chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"].split(",")[0])
            if not 0 <= length <= MAX_BODY:
                raise ConnectionResetError("a response body length out of bounds")
            body = reader.read(length)
            if len(body) != length:
                raise ConnectionResetError("the connection closed in the response body")
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            return status, headers, reader.read(MAX_BODY), False
        reusable = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return status, headers, body, reusable

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


@functools.lru_cache(maxsize=64)
def _pool_key(url: str) -> tuple[str, str, int]:
    """(scheme, host name, port) of an endpoint URL: its pool of keep-alive connections (parsed once)."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _read_headers(reader: Any) -> dict[str, str]:
    """Header lines up to the blank line, keyed in lower case; repeated ones joined with ", " (as urllib3's
    HTTPHeaderDict), a continuation line (obsolete folding) appended to the header before it."""
    headers: dict[str, str] = {}
    last = None
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise ConnectionResetError("the connection closed in the response headers")
        text = line.decode("latin-1")
        if text[:1] in (" ", "\t") and last is not None:
            headers[last] = f"{headers[last]}\r\n{text.rstrip(chr(13) + chr(10))}"
            continue
        name, _, value = text.partition(":")
        last = name.strip().lower()
        value = value.strip()
        prior = headers.get(last)
        headers[last] = f"{prior}, {value}" if prior is not None else value
    raise ConnectionResetError(f"more than {MAX_HEADERS} response headers")


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
