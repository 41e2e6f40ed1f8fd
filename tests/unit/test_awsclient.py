"""The lean AWS call path (stepless.awsclient) sends what botocore sends and behaves as botocore behaves.

Both clients talk to a scripted HTTP/1.1 responder on loopback that records the raw bytes of every request
and answers from a script (canned answers, AWS errors, 5xx, a connection closed without an answer). Time
and uuids are frozen, so the full botocore client and the lean one must send the same bytes: method, path,
every header (the SigV4 Authorization included) and the body. Answers, errors (class and parsed response),
retries (attempts, headers, sleeps, idempotency token kept) must be the same too.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import json
import socket
import ssl
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import botocore
import botocore.endpoint
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepless import aws, awsclient, awssession
from stepless.faults import translate_aws_errors

Answer = tuple[int, dict[str, str], bytes] | None  # None: close the connection without answering


def ok(body: dict[str, Any] | None = None) -> Answer:
    data = json.dumps(body or {}).encode()
    return 200, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "req-1",
                 "x-amz-crc32": str(zlib.crc32(data)), "Date": "Fri, 02 Jan 2026 03:04:05 GMT"}, data


def error(code: str, status: int = 400, **fields: Any) -> Answer:
    data = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": f"injected {code}",
                       **fields}).encode()
    return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "req-err",
                    "Date": "Fri, 02 Jan 2026 03:04:05 GMT"}, data


def read_request(reader: Any) -> tuple[str, str, dict[str, str], bytes] | None:
    """One request off a connection: (method, path, lower-cased headers, body); None at its end."""
    line = reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (h := reader.readline()) not in (b"\r\n", b""):
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers, reader.read(int(headers.get("content-length", 0)))


class Responder:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 answering from ``script`` (then ``ok()``), recording requests."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.script: list[Answer] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return
        reader = conn.makefile("rb")
        with conn, reader:
            while (request := read_request(reader)) is not None:
                self.requests.append(request)
                answer = self.script.pop(0) if self.script else ok()
                if answer is None:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                status, reply, data = answer
                head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in reply.items())
                conn.sendall(head.encode() + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def responder(monkeypatch) -> Iterator[Responder]:
    server = Responder()
    for k, v in {"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
                 "AWS_SESSION_TOKEN": "session-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("STEPLESS_AWS_LEAN", raising=False)
    aws.reset()
    yield server
    aws.reset()
    server.close()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", mock.Mock(sleep=recorded.append))
    return recorded


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    """The same signing time and the same uuids (invocation id, idempotency token) for both clients."""
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at), \
            mock.patch("botocore.endpoint.get_current_datetime", return_value=at), \
            mock.patch("stepless.awsclient._now", return_value=at), \
            mock.patch("uuid.uuid4", return_value=uuid.UUID(int=7)):
        yield


def both(service: str) -> tuple[Any, Any]:
    """(the full botocore client, the lean client over it) for ``service``, as stepless makes them."""
    lean = aws.client(service)
    assert isinstance(lean, awsclient.LeanClient), type(lean)
    return lean.full, lean


# One call per lean operation, with the parameters the stores and signers send.
CALLS: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    ("dynamodb", "transact_write_items", lambda: {"TransactItems": [
        {"Put": {"TableName": "tokens", "Item": {"id": {"S": "jti"}, "expires": {"N": "1700000000"}},
                 "ConditionExpression": "attribute_not_exists(id)"}},
        {"Put": {"TableName": "certificates", "Item": {"serial": {"S": "123"}, "der": {"B": b"\x30\x82" * 300}},
                 "ConditionExpression": "attribute_not_exists(serial)"}}]}),
    ("dynamodb", "get_item", lambda: {"TableName": "certificates", "Key": {"serial": {"S": "123"}},
                                      "ConsistentRead": True}),
    ("dynamodb", "batch_get_item", lambda: {"RequestItems": {"certificates": {"Keys": [{"serial": {"S": "1"}}]},
                                                             "revocations": {"Keys": [{"serial": {"S": "1"}}]}}}),
    ("dynamodb", "update_item", lambda: {"TableName": "certificates", "Key": {"serial": {"S": "1"}},
                                         "UpdateExpression": "ADD children :c",
                                         "ExpressionAttributeValues": {":c": {"SS": ["2"]}}}),
    ("dynamodb", "put_item", lambda: {"TableName": "tokens", "Item": {"id": {"S": "x"}},
                                      "ConditionExpression": "attribute_not_exists(id)"}),
    ("kms", "sign", lambda: {"KeyId": "key-1", "Message": b"tbs" * 100, "MessageType": "RAW",
                             "SigningAlgorithm": "ECDSA_SHA_256"}),
    ("kms", "get_public_key", lambda: {"KeyId": "key-1"}),
    ("secretsmanager", "get_secret_value", lambda: {"SecretId": "ca-key", "VersionId": "v1"}),
]


def _last(server: Responder) -> tuple[str, str, dict[str, str], bytes]:
    return server.requests[-1]


@pytest.mark.parametrize(("service", "method", "params"), CALLS, ids=[f"{s}.{m}" for s, m, _ in CALLS])
def test_lean_sends_the_bytes_botocore_sends(responder, service, method, params):
    full, lean = both(service)
    with frozen():
        getattr(full, method)(**params())
        sent_full = _last(responder)
        getattr(lean, method)(**params())
        sent_lean = _last(responder)
    assert sent_lean[:2] == sent_full[:2]  # method, path
    agent = sent_lean[2].pop("user-agent")
    assert agent.startswith("Botocore/") and "md/stepless#lean" in agent and sent_full[2].pop("user-agent")
    assert sent_lean[2] == sent_full[2]  # every other header, Authorization (the SigV4 signature) included
    assert sent_lean[3] == sent_full[3]  # the body
    assert "authorization" in sent_lean[2] and sent_lean[2]["x-amz-security-token"] == "session-1"


@pytest.mark.parametrize(("service", "method", "params"), CALLS, ids=[f"{s}.{m}" for s, m, _ in CALLS])
def test_lean_answers_what_botocore_answers(responder, service, method, params):
    answer = ok({"Item": {"serial": {"S": "1"}, "der": {"B": "MIIB"}}, "Signature": "c2ln", "KeyId": "key-1",
                 "SigningAlgorithm": "ECDSA_SHA_256", "PublicKey": "MFkw", "SecretString": "pem",
                 "Responses": {"certificates": [{"serial": {"S": "1"}}]}})
    full, lean = both(service)
    responder.script = [answer, answer]
    assert getattr(lean, method)(**params()) == getattr(full, method)(**params())


def test_errors_are_botocores(responder, sleeps):
    """The modeled exception class, its parsed response (CancellationReasons included), and error_code."""
    full, lean = both("dynamodb")
    cancelled = error("TransactionCanceledException", CancellationReasons=[
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}, {"Code": "None"}])
    params = CALLS[0][2]
    raised = []
    for client in (full, lean):
        responder.script = [cancelled]
        with pytest.raises(ClientError) as info:
            client.transact_write_items(**params())
        raised.append(info.value)
    assert type(raised[1]) is type(raised[0]) is full.exceptions.TransactionCanceledException
    assert raised[1].response == raised[0].response
    assert raised[1].response["CancellationReasons"][0]["Code"] == "ConditionalCheckFailed"
    assert str(raised[1]) == str(raised[0])
    assert aws.error_code(raised[1]) == "TransactionCanceledException"
    assert sleeps == []  # not retryable


@pytest.mark.parametrize(("script", "attempts", "outcome"), [
    pytest.param([error("ThrottlingException"), ok()], 2, None, id="throttled-then-ok"),
    pytest.param([error("InternalServerError", 500), error("InternalServerError", 500), ok()], 3, None,
                 id="5xx-twice-then-ok"),
    pytest.param([None, ok()], 2, None, id="connection-reset-then-ok"),
    pytest.param([error("ProvisionedThroughputExceededException")] * 3, 3, "ProvisionedThroughputExceededException",
                 id="throttled-to-the-end"),
    pytest.param([error("InternalServerError", 500)] * 3, 3, "InternalServerError", id="5xx-to-the-end"),
    pytest.param([None] * 3, 3, ConnectionClosedError, id="reset-to-the-end"),
    pytest.param([error("ValidationException")], 1, "ValidationException", id="not-retryable"),
])
def test_retries_are_botocores(responder, sleeps, script, attempts, outcome):
    """Same attempts, same headers on each (amz-sdk-request attempt=N; max=3, same idempotency token), same
    number of backoff sleeps, same outcome (and the same 429/503 from translate_aws_errors)."""
    full, lean = both("dynamodb")
    params = CALLS[0][2]
    seen: dict[str, Any] = {}
    for name, client in (("full", full), ("lean", lean)):
        responder.requests.clear()
        responder.script = list(script)
        sleeps.clear()
        with frozen():
            try:
                out = client.transact_write_items(**params())
                result: Any = out["ResponseMetadata"]["RetryAttempts"]
            except ClientError as e:
                result = (aws.error_code(e), e.response["ResponseMetadata"]["RetryAttempts"], str(e))
            except ConnectionClosedError as e:
                result = type(e)
        seen[name] = {"result": result, "sleeps": len(sleeps),
                      "requests": [(m, p, {k: v for k, v in h.items() if k != "user-agent"}, b)
                                   for m, p, h, b in responder.requests]}
        assert len(responder.requests) == attempts, name
        if outcome is None:
            assert result == attempts - 1
        elif isinstance(outcome, str):
            assert result[0] == outcome
        else:
            assert result is outcome
    assert seen["lean"]["result"] == seen["full"]["result"]
    assert seen["lean"]["sleeps"] == seen["full"]["sleeps"] == attempts - 1 if outcome != "ValidationException" \
        else seen["lean"]["sleeps"] == 0
    assert seen["lean"]["requests"] == seen["full"]["requests"]
    tokens = {json.loads(b)["ClientRequestToken"] for _, _, _, b in seen["lean"]["requests"]}
    assert len(tokens) == 1
    headers = [h["amz-sdk-request"] for _, _, h, _ in seen["lean"]["requests"]]
    assert [h.split("; ")[-2:] if "ttl" in h else h.split("; ") for h in headers] == [
        [f"attempt={n}", "max=3"] for n in range(1, attempts + 1)]


def test_throttling_and_5xx_map_to_429_and_503(responder, sleeps):
    from stepless.errors import ServiceUnavailable, Throttled

    lean = aws.client("dynamodb")
    responder.script = [error("ThrottlingException")] * 3
    with pytest.raises(Throttled), translate_aws_errors("DynamoDB"):
        lean.get_item(TableName="t", Key={"serial": {"S": "1"}})
    responder.script = [error("InternalServerError", 500)] * 3
    with pytest.raises(ServiceUnavailable), translate_aws_errors("DynamoDB"):
        lean.get_item(TableName="t", Key={"serial": {"S": "1"}})


def test_unreachable_is_botocores_connection_error(monkeypatch, sleeps):
    """Nothing listening: EndpointConnectionError after 3 attempts, as botocore; translate_aws_errors → 503."""
    from botocore.exceptions import EndpointConnectionError

    from stepless.errors import ServiceUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    aws.reset()
    try:
        lean = aws.client("kms")
        with pytest.raises(EndpointConnectionError):
            lean.sign(KeyId="k", Message=b"m", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
        assert len(sleeps) == 2
        with pytest.raises(ServiceUnavailable), translate_aws_errors("KMS"):
            lean.sign(KeyId="k", Message=b"m", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    finally:
        aws.reset()


def test_one_keep_alive_connection(responder):
    lean = aws.client("dynamodb")
    for _ in range(5):
        lean.get_item(TableName="t", Key={"serial": {"S": "1"}})
    assert responder.connections == 1 and len(responder.requests) == 5


def test_rotated_environment_credentials_are_used(responder, monkeypatch):
    """Lambda's session credentials come from the environment: new ones are signed with at the next call."""
    lean = aws.client("dynamodb")
    lean.get_item(TableName="t", Key={"serial": {"S": "1"}})
    assert "Credential=AKIDTEST/" in _last(responder)[2]["authorization"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDROTATED")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-2")
    lean.get_item(TableName="t", Key={"serial": {"S": "1"}})
    headers = _last(responder)[2]
    assert "Credential=AKIDROTATED/" in headers["authorization"] and headers["x-amz-security-token"] == "session-2"


def test_other_operations_and_attributes_are_the_full_clients(responder):
    lean = aws.client("dynamodb")
    responder.script = [ok({"Items": [], "Count": 0})]
    assert lean.scan(TableName="t")["Count"] == 0  # not lean: botocore's own method
    assert lean.meta.service_model.service_name == "dynamodb"
    assert lean.exceptions.ConditionalCheckFailedException.__name__ == "ConditionalCheckFailedException"
    assert lean.get_paginator("scan") is not None
    assert not isinstance(aws.client("s3"), awsclient.LeanClient)


def test_lean_path_off_when_asked_or_traced(responder, monkeypatch):
    monkeypatch.setenv("STEPLESS_AWS_LEAN", "0")
    aws.reset()
    assert not isinstance(aws.client("dynamodb"), awsclient.LeanClient)
    monkeypatch.delenv("STEPLESS_AWS_LEAN")
    for k, v in {"STEPLESS_TRACER": "true", "AWS_LAMBDA_FUNCTION_NAME": "f", "_X_AMZN_TRACE_ID": "Root=1-2-3"}.items():
        monkeypatch.setenv(k, v)
    aws.reset()
    assert not isinstance(aws.client("kms"), awsclient.LeanClient)  # X-Ray patches botocore's client


def test_moto_in_process_answers_through_botocore(monkeypatch):
    """moto's mock answers at botocore's before-send: with it active, lean calls go through the full client."""
    from tests.support import ca as support

    with support.moto_environment():
        client = aws.client("dynamodb")
        client.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        client.put_item(TableName="t", Item={"k": {"S": "v"}})
        assert client.get_item(TableName="t", Key={"k": {"S": "v"}})["Item"] == {"k": {"S": "v"}}


@pytest.mark.parametrize("backend", ["secrets", "kms"])
def test_handlers_on_the_lean_path_against_moto_server(backend):
    """sign, renew over mTLS, SSH sign and SSHPOP renew through the real handlers, their AWS calls made by
    the lean client over keep-alive HTTP to moto in another process (bench.motoserver)."""
    from bench import real
    from bench.common import expect

    calls: list[str] = []
    awsclient.observers.append(lambda service, operation: calls.append(f"{service}.{operation}"))
    try:
        with real._stack(backend) as ca:
            cases = [("sign", real._sign_events(ca, 2))]
            if backend == "kms":
                cases += [("renew", real._renew_events(ca, 2)), ("ssh", real._ssh_events(ca, 2)),
                          ("ssh", real._sshpop_events(ca, 2))]
            for app, events in cases:
                for ev in events:
                    calls.clear()
                    body = json.loads(expect(real._app(app).handler(ev, None), 201)["body"])
                    assert body.get("crt"), body
                    assert isinstance(aws.client("dynamodb"), awsclient.LeanClient)
                    assert "dynamodb.TransactWriteItems" in calls, calls  # the record went over the lean path
                    if backend == "kms":
                        assert "kms.Sign" in calls, calls
    finally:
        awsclient.observers.clear()


def test_regional_and_service_endpoints_are_botocores(monkeypatch):
    """No endpoint override: the regional endpoint botocore resolves, signed for that region; an
    AWS_ENDPOINT_URL_<SERVICE> override is honoured as botocore honours it (no request is sent here)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    aws.reset()
    try:
        for service, operation, url in (("dynamodb", "GetItem", "https://dynamodb.eu-west-1.amazonaws.com/"),
                                        ("kms", "Sign", "https://kms.eu-west-1.amazonaws.com/")):
            lean = aws.client(service)
            op = lean.plan(operation, {"TableName": "t", "KeyId": "k"})
            assert op.url == url and lean.full.meta.endpoint_url + "/" == url
            assert (op.signing_region, op.signing_name) == ("eu-west-1", service)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
        aws.reset()
        lean = aws.client("dynamodb")
        assert lean.plan("GetItem", {"TableName": "t"}).url == "http://127.0.0.1:8000/"
    finally:
        aws.reset()


@pytest.fixture
def tls_responder(monkeypatch, tmp_path) -> Iterator[Responder]:
    """The responder over TLS with a certificate for 127.0.0.1, trusted through AWS_CA_BUNDLE."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = Responder(tls=ctx)
    for k, v in {"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
                 "AWS_REGION": "us-east-1", "AWS_CA_BUNDLE": str(tmp_path / "cert.pem")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    aws.reset()
    yield server
    aws.reset()
    server.close()


def test_https_with_the_ca_bundle_botocore_uses(tls_responder):
    """Over TLS (as AWS), verified against botocore's CA bundle (AWS_CA_BUNDLE here): the same bytes as
    botocore, one kept-alive connection."""
    full, lean = both("dynamodb")
    with frozen():
        full.get_item(TableName="t", Key={"serial": {"S": "1"}})
        sent_full = _last(tls_responder)
        for _ in range(3):
            lean.get_item(TableName="t", Key={"serial": {"S": "1"}})
    sent_lean = _last(tls_responder)
    assert sent_lean[2].pop("user-agent") and sent_full[2].pop("user-agent")
    assert sent_lean == sent_full
    assert tls_responder.connections == 2  # one for botocore's pool, one for the lean path's


def test_https_refuses_an_untrusted_certificate(tls_responder, monkeypatch, sleeps):
    from botocore.exceptions import SSLError

    monkeypatch.delenv("AWS_CA_BUNDLE")
    aws.reset()
    with pytest.raises(SSLError):
        aws.client("dynamodb").get_item(TableName="t", Key={"serial": {"S": "1"}})


def test_the_sessions_data_loader_answers_as_botocores():
    """stepless's session decodes botocore's data without OrderedDicts and checks a service name without
    listing every service: the same services, models and errors as botocore's own loader."""
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    ours, theirs = awssession.session(), botocore.session.get_session()
    assert ours.get_available_services() == theirs.get_available_services()
    for service in ("dynamodb", "kms", "secretsmanager", "s3", "sts", "events", "cloudformation"):
        for type_name in ("service-2", "endpoint-rule-set-1", "paginators-1"):
            assert (ours.get_component("data_loader").load_service_model(service, type_name)
                    == theirs.get_component("data_loader").load_service_model(service, type_name))
    assert ours.get_data("endpoints") == theirs.get_data("endpoints")
    with pytest.raises(UnknownServiceError) as info:
        ours.create_client("no-such-service", region_name="us-east-1")
    assert "dynamodb" in str(info.value)  # botocore's message, listing the known services


def test_the_sessions_emitter_still_checks_handlers_that_are_not_botocores():
    """The session skips botocore's kwargs check only for botocore's own handlers: a handler of ours (or of a
    library) without ``**kwargs`` is refused as botocore refuses it; botocore's builtin ones are registered."""
    session = awssession.session()

    def no_kwargs(request):  # noqa: ARG001 - its signature is the point
        return None

    with pytest.raises(ValueError, match="must accept keyword arguments"):
        session.register("before-send.dynamodb", no_kwargs)
    assert session.get_component("event_emitter")._emitter._handlers.prefix_search(
        "before-parameter-build.s3.PutObject")  # botocore's builtin handlers are there
    lean = aws.client("dynamodb")
    assert lean.exceptions is lean.full.exceptions  # made on first use, the full client's own


# --- the lean path's own knowledge of the services, held to botocore's model -----------------------------


def _model(service: str) -> Any:
    return _botocore_session().get_service_model(service)


def _members_of_type(shape: Any, types: tuple[str, ...], path: str = "", seen: frozenset[str] = frozenset(),
                     ) -> set[str]:
    """Paths of members of these shape types under ``shape`` (recursive shapes visited once per path)."""
    if shape.name in seen:
        return set()
    seen = seen | {shape.name}
    if shape.type_name in types:
        return {path}
    if shape.type_name == "structure":
        return {p for name, member in shape.members.items()
                for p in _members_of_type(member, types, f"{path}.{name}", seen)}
    if shape.type_name == "list":
        return _members_of_type(shape.member, types, f"{path}[]", seen)
    if shape.type_name == "map":
        return _members_of_type(shape.value, types, f"{path}{{}}", seen)
    return set()


@pytest.mark.parametrize("service", sorted(awsclient.SERVICES))
def test_each_service_is_what_botocores_model_says(service):
    """Target prefix, JSON version, signing name, endpoint prefix, the AWS_ENDPOINT_URL_<SERVICE> name; each
    lean operation's HTTP method, idempotency tokens, output members, and no streaming, checksum or host
    prefix that the lean path would not honour."""
    model, spec = _model(service), awsclient.SERVICES[service]
    assert model.protocol == "json" and model.metadata["targetPrefix"] == spec.target
    assert model.metadata["jsonVersion"] == spec.json_version
    assert (model.signing_name, model.endpoint_prefix) == (spec.signing_name, spec.endpoint_prefix)
    assert model.service_id.upper().replace(" ", "_") == spec.env_name
    assert "awsQueryCompatible" not in model.metadata
    for py_name, name in awsclient.METHODS[service].items():
        op = model.operation_model(name)
        assert botocore_py_name(name) == py_name
        assert op.http["method"] == "POST" and op.http["requestUri"] == "/"
        assert not (op.has_streaming_input or op.has_streaming_output or op.http_checksum or op.endpoint)
        assert op.auth_type in (None, "v4") and op.resolved_auth_type in (None, "v4")
        assert tuple(op.idempotent_members) == awsclient.IDEMPOTENT.get((service, name), ())
        assert set(op.output_shape.members) == awsclient.OUTPUTS[(service, name)]
        assert set(op.input_shape.members) == awsclient.INPUTS[(service, name)]


def botocore_py_name(name: str) -> str:
    from botocore import xform_name

    return xform_name(name)


@pytest.mark.parametrize(("service", "name"), [(s, n) for s, ops in awsclient.LEAN.items() for n in sorted(ops)])
def test_the_blobs_and_timestamps_the_lean_path_converts_are_the_models(service, name):
    """Every blob and timestamp member in the operation's input and output is one the lean path converts:
    DynamoDB's only sit in attribute values (``B``, ``BS``), the others' at the top level of the table."""
    op = _model(service).operation_model(name)
    for shape, blobs, stamps in ((op.input_shape, awsclient.BLOBS_IN, {}),
                                 (op.output_shape, awsclient.BLOBS_OUT, awsclient.TIMESTAMPS_OUT)):
        found_blobs = _members_of_type(shape, ("blob",))
        found_stamps = _members_of_type(shape, ("timestamp",))
        if service == "dynamodb":
            assert {p.rsplit(".", 1)[-1] for p in found_blobs} <= {"B", "BS[]"}, found_blobs
            assert not found_stamps
        else:
            assert found_blobs == {f".{m}" for m in blobs.get((service, name), ())}
            assert found_stamps == {f".{m}" for m in stamps.get((service, name), ())}
    av = _model("dynamodb").shape_for("AttributeValue")
    assert av.members["B"].type_name == "blob" and av.members["BS"].member.type_name == "blob"


_TEXT = st.text(max_size=8)
_AV = st.recursive(
    st.one_of(st.builds(lambda v: {"S": v}, _TEXT), st.builds(lambda v: {"N": str(v)}, st.integers()),
              st.builds(lambda v: {"B": v}, st.binary(max_size=16)),
              st.builds(lambda v: {"BS": v}, st.lists(st.binary(max_size=8), max_size=3)),
              st.builds(lambda v: {"SS": v}, st.lists(_TEXT, max_size=3)),
              st.builds(lambda v: {"BOOL": v}, st.booleans()), st.just({"NULL": True})),
    lambda children: st.one_of(st.builds(lambda v: {"L": v}, st.lists(children, max_size=3)),
                               st.builds(lambda v: {"M": v}, st.dictionaries(
                                   st.sampled_from(["B", "BS", "M", "S", "x", "é"]), children, max_size=3))),
    max_leaves=12)
_ITEM = st.dictionaries(st.sampled_from(["serial", "B", "BS", "der", "n"]), _AV, min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=_ITEM, key=_ITEM)
def test_dynamodb_items_serialize_and_parse_as_botocore_does(item, key):
    """Random attribute values (blobs, sets, nested maps and lists, attributes named B or BS): the lean body is
    botocore's body, and a DynamoDB answer holding them parses to what botocore's parser returns."""
    from botocore import parsers, serialize

    model = _model("dynamodb")
    serializer = serialize.create_serializer("json", include_validation=False)
    parser = parsers.create_parser("json")
    calls = {"TransactWriteItems": {"TransactItems": [
                 {"Put": {"TableName": "t", "Item": item, "ConditionExpression": "attribute_not_exists(k)"}},
                 {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "SET a = :a",
                             "ExpressionAttributeValues": {":a": next(iter(item.values()))}}}],
                                    "ClientRequestToken": "tok"},
             "PutItem": {"TableName": "t", "Item": item},
             "GetItem": {"TableName": "t", "Key": key, "ConsistentRead": True}}
    for name, params in calls.items():
        theirs = serializer.serialize_to_request(params, model.operation_model(name))["body"]
        assert awsclient.serialize("dynamodb", name, params) == theirs
    wire = json.loads(json.dumps(awsclient._ddb_in({"Item": item, "Key": key})))  # the items as DynamoDB sends them
    answers = {"GetItem": {"Item": wire["Item"], "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}},
               "BatchGetItem": {"Responses": {"t": [wire["Item"], wire["Key"]]},
                                "UnprocessedKeys": {"t": {"Keys": [wire["Key"]], "ConsistentRead": True}}},
               "UpdateItem": {"Attributes": wire["Item"],
                              "ItemCollectionMetrics": {"ItemCollectionKey": wire["Key"],
                                                        "SizeEstimateRangeGB": [0.0, 1.0]}},
               "PutItem": {}, "TransactWriteItems": {"ConsumedCapacity": [{"TableName": "t"}]}}
    for name, answer in answers.items():
        body = json.dumps({**answer, "FutureMember": {"B": "AA=="}}).encode()
        theirs = parser.parse({"headers": {}, "status_code": 200, "body": body},
                              model.operation_model(name).output_shape)
        theirs.pop("ResponseMetadata")
        assert awsclient.parse("dynamodb", name, body) == theirs


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=64), signature=st.binary(max_size=80), secret=st.binary(max_size=40),
       created=st.integers(min_value=0, max_value=4_000_000_000))
def test_kms_and_secrets_serialize_and_parse_as_botocore_does(message, signature, secret, created):
    from botocore import parsers, serialize

    serializer = serialize.create_serializer("json", include_validation=False)
    parser = parsers.create_parser("json")
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731 - a one-line helper
    cases = [("kms", "Sign", {"KeyId": "k", "Message": message, "MessageType": "RAW",
                              "SigningAlgorithm": "ECDSA_SHA_256"},
              {"KeyId": "arn:k", "Signature": b64(signature), "SigningAlgorithm": "ECDSA_SHA_256"}),
             ("kms", "GetPublicKey", {"KeyId": "k"},
              {"KeyId": "arn:k", "PublicKey": b64(signature), "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
               "SigningAlgorithms": ["ECDSA_SHA_256"]}),
             ("secretsmanager", "GetSecretValue", {"SecretId": "s", "VersionStage": "AWSCURRENT"},
              {"ARN": "arn:s", "Name": "s", "VersionId": "v", "SecretBinary": b64(secret), "SecretString": "pem",
               "VersionStages": ["AWSCURRENT"], "CreatedDate": created + 0.5})]
    for service, name, params, answer in cases:
        op = _model(service).operation_model(name)
        assert awsclient.serialize(service, name, params) == serializer.serialize_to_request(params, op)["body"]
        body = json.dumps({**answer, "Unmodeled": 1}).encode()
        theirs = parser.parse({"headers": {}, "status_code": 200, "body": body}, op.output_shape)
        theirs.pop("ResponseMetadata")
        assert awsclient.parse(service, name, body) == theirs


@functools.cache
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


def _ruleset_endpoint(service: str, region: str) -> str:
    client = _botocore_session().create_client(service, region_name=region, aws_access_key_id="a",
                                                          aws_secret_access_key="b")
    name = {"dynamodb": "GetItem", "kms": "Sign", "secretsmanager": "GetSecretValue"}[service]
    model = client.meta.service_model.operation_model(name)
    url, _, props = client._resolve_endpoint_ruleset(model, {"TableName": "t", "KeyId": "k", "SecretId": "s"},
                                                     {"client_region": region})
    scheme = next(iter((props or {}).get("authSchemes") or [{}]))
    assert scheme.get("signingRegion", region) == region
    return url


def test_environment_endpoints_are_the_rulesets(monkeypatch):
    """For every region of botocore's partitions, FIPS on and off: the endpoint the lean path takes from the
    environment is the one botocore's endpoint ruleset resolves, or None (then the ruleset is asked)."""
    partitions = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    regions = sorted(r for p in partitions["partitions"] for r in p["regions"])
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCOUNT_ID", "AWS_USE_DUALSTACK_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/stepless-test-config")
    taken = 0
    for fips in ("false", "true"):
        monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", fips)
        for service in awsclient.SERVICES:
            for region in regions:
                ours = awsclient.environment_endpoint(service, region)
                if ours is not None:
                    taken += 1
                    assert ours == _ruleset_endpoint(service, region), (service, region, fips)
    assert taken >= 2 * 3 * 30  # the aws partition's regions, for each service, FIPS on and off
    assert awsclient.environment_endpoint("kms", "cn-north-1") is None
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
    assert awsclient.environment_endpoint("kms", "us-east-1") is None


def test_endpoint_overrides_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/stepless-test-config")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://sm.example:8443/")
    assert awsclient.environment_endpoint("dynamodb", "eu-west-1") == "http://127.0.0.1:5000"
    assert awsclient.environment_endpoint("secretsmanager", "eu-west-1") == "https://sm.example:8443/"
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:5000/prefix")  # a path: botocore's ruleset
    assert awsclient.environment_endpoint("kms", "eu-west-1") is None
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert awsclient.environment_endpoint("dynamodb", "eu-west-1") == "https://dynamodb.eu-west-1.amazonaws.com"


def test_a_shared_config_file_is_left_to_botocore(responder, monkeypatch, tmp_path):
    """With a config file and no credentials in the environment, the endpoint (the profile's endpoint_url) and
    the credentials (the profile's) are botocore's; the call still takes the lean path."""
    (tmp_path / "config").write_text(f"[profile ci]\nendpoint_url = {responder.url}\n")
    (tmp_path / "credentials").write_text("[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "ci")
    aws.reset()
    calls: list[str] = []
    awsclient.observers.append(lambda service, operation: calls.append(operation))
    try:
        lean = aws.client("dynamodb")
        assert isinstance(lean, awsclient.LeanClient)
        lean.get_item(TableName="t", Key={"serial": {"S": "1"}})
    finally:
        awsclient.observers.clear()
    assert calls == ["GetItem"]
    assert "Credential=AKIDPROFILE/" in _last(responder)[2]["authorization"]


_NO_BOTOCORE_CLIENT = """
import http.server, json, os, sys, threading, zlib
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"Item": {"k": {"B": "AAE="}}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-crc32", str(zlib.crc32(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.server_port}", AWS_ACCESS_KEY_ID="a",
                  AWS_SECRET_ACCESS_KEY="b", AWS_REGION="us-east-1", AWS_CONFIG_FILE="/nonexistent/config")
before = set(sys.modules)
from stepless import aws
out = aws.client("dynamodb").get_item(TableName="t", Key={"k": {"S": "1"}})
assert out["Item"] == {"k": {"B": b"\\x00\\x01"}}, out
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_a_lean_call_loads_no_botocore_client_machinery():
    """In a fresh interpreter, a lean call imports neither botocore's session/client/endpoint machinery nor
    urllib3 (their import is most of a cold start's AWS cost); only botocore's exception classes."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for var in ("AWS_PROFILE", "STEPLESS_AWS_LEAN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", _NO_BOTOCORE_CLIENT], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    assert "botocore.exceptions" in loaded
    heavy = {m for m in loaded if m.startswith(("urllib3", "botocore.session", "botocore.client", "botocore.endpoint",
                                                "botocore.compat", "botocore.auth", "botocore.awsrequest", "boto3",
                                                "stepless.awssession"))}
    assert not heavy, sorted(heavy)
