"""Fault injection: DynamoDB, KMS and Secrets Manager failing under the handlers.

Nothing lost, nothing issued in the dark: whatever fails, the client gets 429 (throttled) or 503, both with
a Retry-After header; no certificate leaves the CA; nothing is recorded (certificates, revocations, used
tokens); the token the client sent is not consumed, so the very same request succeeds once the fault
clears; and the next request works.

Faults are injected *below* botocore's retry layer — the moto backend operation raises the AWS error, or a
``before-send`` hook raises a connection error — so botocore's standard retries see every failure and the
tests can count the attempts a request makes (at most 3). Backoff sleeps are recorded instead of slept.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import types
from collections.abc import Callable
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from moto.core.botocore_stubber import MockRawResponse
from moto.core.exceptions import JsonRESTError
from moto.dynamodb.models import DynamoDBBackend
from moto.kms.models import KmsBackend
from moto.secretsmanager.models import SecretsManagerBackend

from stepless import authority, aws, awssession
from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.api import sign as sign_api
from stepless.api import ssh as ssh_api
from stepless.services import ssh as ssh_service
from stepless.ssh import parse_certificate
from stepless.x509 import profile
from tests.integration.test_renew import custom_leaf, issue, renew_token
from tests.integration.test_ssh_renew import host_cert, sshpop_token
from tests.integration.test_ssh_sign import b64key, ssh_token
from tests.support import ca as support
from tests.support.ca import event, make_csr, make_key

CN = "svc.example.com"
MAX_ATTEMPTS = 3
FUNCTION_TIMEOUT = 15  # seconds (template.yaml Globals.Function.Timeout)


# ---------------------------------------------------------------------------------------------- fault tools


@dataclasses.dataclass
class CAs:
    """Two initialized CAs over one set of moto tables and keys: the KMS and the Secrets backend."""

    kms: support.TestCA
    secrets: support.TestCA
    items: dict[str, dict[str, Any]]  # backend → its stored authority item


@pytest.fixture(scope="module")
def cas() -> CAs:
    """moto once per module (a CA initialization costs most of a test's time otherwise)."""
    with support.moto_environment():
        outputs = support.create_resources()
        ddb = boto3.client("dynamodb")
        key = {"pk": {"S": "authority"}}
        cas, items = {}, {}
        for backend in ("secrets", "kms"):
            ddb.delete_item(TableName="test-authority", Key=key)
            cas[backend] = support.initialize(outputs, backend=backend)
            items[backend] = ddb.get_item(TableName="test-authority", Key=key)["Item"]
        yield CAs(cas["kms"], cas["secrets"], items)


def use(cas: CAs, backend: str) -> support.TestCA:
    """Make ``backend``'s CA the stored one, on a cold container (no cached clients, authority, signers)."""
    boto3.client("dynamodb").put_item(TableName="test-authority", Item=cas.items[backend])
    aws.reset()
    authority.reset()
    return getattr(cas, backend)


@pytest.fixture
def test_ca(cas) -> support.TestCA:
    return use(cas, "kms")


@pytest.fixture
def secrets_ca(cas) -> support.TestCA:
    yield use(cas, "secrets")
    use(cas, "kms")


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """botocore's backoff sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=recorded.append))
    return recorded


@dataclasses.dataclass
class Fault:
    """An injected failure: on until :meth:`clear`; ``calls`` counts the attempts it failed."""

    calls: int = 0
    active: bool = True

    def clear(self) -> None:
        self.active = False

    def reset(self) -> None:
        self.calls = 0


def aws_error(monkeypatch, backend: type, operation: str, code: str, status: int = 400) -> Fault:
    """Make moto's ``backend.operation`` answer with the AWS error ``code`` (HTTP ``status``)."""
    fault = Fault()
    original = getattr(backend, operation)

    def failing(self, *args, **kwargs):
        if not fault.active:
            return original(self, *args, **kwargs)
        fault.calls += 1
        error = JsonRESTError(code, f"injected {code}")
        error.code = status
        raise error

    monkeypatch.setattr(backend, operation, failing)
    return fault


def unreachable(service: str, operation: str) -> Fault:
    """Make every attempt of ``operation`` on the container's ``service`` client fail to connect."""
    fault = Fault()
    client = aws.client(service)
    event_name = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"

    def hook(request, **kwargs):
        if fault.active:
            fault.calls += 1
            raise EndpointConnectionError(endpoint_url=request.url)
        return None

    client.meta.events.register_first(event_name, hook)
    return fault


def error_answer(service: str, operation: str, code: str, status: int) -> Fault:
    """Answer every attempt of a *read* ``operation`` with the AWS error ``code`` (moto's own handler still
    runs the read, harmlessly; ours answers first). For operations moto serves without calling the backend
    method of the same name (BatchGetItem loops over get_item)."""
    fault = Fault()
    client = aws.client(service)
    event_name = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"

    def hook(request, **kwargs):
        if not fault.active:
            return None
        fault.calls += 1
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.0"},
                           MockRawResponse(body))

    client.meta.events.register_first(event_name, hook)
    return fault


def count(table: str) -> int:
    return boto3.client("dynamodb").describe_table(TableName=table)["Table"]["ItemCount"]


def recorded() -> dict[str, int]:
    return {t: count(f"test-{t}") for t in ("certificates", "revocations", "tokens")}


def send(app: Any, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) of one request."""
    res = app.handler(event("POST", path, body, **kw), None)
    return res["statusCode"], json.loads(res["body"]), res["headers"]


def assert_refused_cleanly(result: tuple[int, dict, dict], status: int, before: dict[str, int]) -> None:
    got, body, headers = result
    assert got == status, (got, body)
    assert body["status"] == status, body
    assert int(headers.get("Retry-After", "-1")) >= 0, headers
    assert "crt" not in body and "certChain" not in body, body
    assert recorded() == before, "a failed request left a record behind"


# ---------------------------------------------------------------------------------------------- requests
# Each builder prepares (outside the fault) a request that carries a one-time token, and returns a
# function sending it — the very same request each time — and the success status.


Request = Callable[[], tuple[int, dict, dict]]


def _sign(ca: support.TestCA) -> tuple[Request, int]:
    body = {"csr": make_csr(CN)[0], "ott": ca.token(CN)}
    return (lambda: send(sign_api.app, "/1.0/sign", body)), 201


def _ssh_sign(ca: support.TestCA) -> tuple[Request, int]:
    body = {"publicKey": b64key(make_key()), "ott": ssh_token(ca, "alice@example.com")}
    return (lambda: send(ssh_api.app, "/1.0/ssh/sign", body)), 201


def _renew(ca: support.TestCA) -> tuple[Request, int]:
    cert, key, _ = issue(ca)
    headers = {"Authorization": f"Bearer {renew_token(cert, key)}"}
    return (lambda: send(renew_api.app, "/1.0/renew", headers=headers)), 201


def _renew_unmarked(ca: support.TestCA) -> tuple[Request, int]:
    """A renewal of a certificate without the provisioner extension: the one renewal that reads (its record
    names the provisioner) before signing."""
    cert, key, _ = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), extension=False)
    headers = {"Authorization": f"Bearer {renew_token(cert, key)}"}
    return (lambda: send(renew_api.app, "/1.0/renew", headers=headers)), 201


def _revoke(ca: support.TestCA) -> tuple[Request, int]:
    cert, _, _ = issue(ca)
    serial = str(cert.serial_number)
    body = {"serial": serial, "ott": ca.token(serial, path="/1.0/revoke")}
    return (lambda: send(revoke_api.app, "/1.0/revoke", body)), 200


def _ssh_renew(ca: support.TestCA) -> tuple[Request, int]:
    crt, key = host_cert(ca)
    body = {"ott": sshpop_token(crt, key, "/1.0/ssh/renew")}
    return (lambda: send(ssh_api.app, "/1.0/ssh/renew", body)), 201


ENDPOINTS = {"sign": _sign, "ssh-sign": _ssh_sign, "renew": _renew, "renew-unmarked": _renew_unmarked,
             "revoke": _revoke, "ssh-renew": _ssh_renew}


def survive(ca: support.TestCA, endpoint: str, inject: Callable[[], Fault], status: int, *,
            attempts: int | tuple[int, ...] = MAX_ATTEMPTS, sleeps: list[float] | None = None) -> Fault:
    """The whole contract for one fault: clean refusal, bounded attempts, same request works after."""
    request, ok = ENDPOINTS[endpoint](ca)
    before = recorded()
    fault = inject()
    if sleeps is not None:
        sleeps.clear()
    assert_refused_cleanly(request(), status, before)
    allowed = attempts if isinstance(attempts, tuple) else (attempts,)
    assert fault.calls in allowed, f"{fault.calls} attempts"
    assert fault.calls <= MAX_ATTEMPTS
    if sleeps is not None:  # jittered exponential backoff, bounded well within the function's timeout
        assert len(sleeps) == fault.calls - 1, sleeps
        assert all(0 <= s <= 2 ** i for i, s in enumerate(sleeps, start=1)), sleeps
        assert sum(sleeps) < FUNCTION_TIMEOUT / 2, sleeps
    fault.clear()
    got, body, _ = request()  # the same token: it was not consumed by the failed attempt
    assert got == ok, body
    assert "crt" in body or body == {"status": "ok"}, body
    again, _ = ENDPOINTS[endpoint](ca)  # and the next request works too
    got, body, _ = again()
    assert got == ok, body
    return fault


# ---------------------------------------------------------------------------------------------- DynamoDB


DDB_WRITE_ERRORS = [
    pytest.param("ProvisionedThroughputExceededException", 400, 429, id="provisioned-throughput-exceeded"),
    pytest.param("ThrottlingException", 400, 429, id="throttling"),
    pytest.param("RequestLimitExceeded", 400, 429, id="request-limit-exceeded"),
    pytest.param("InternalServerError", 500, 503, id="internal-server-error"),
    pytest.param("ServiceUnavailable", 503, 503, id="service-unavailable"),
]


@pytest.mark.parametrize(("code", "http", "status"), DDB_WRITE_ERRORS)
def test_dynamodb_recording_fault_on_sign(test_ca, monkeypatch, sleeps, code, http, status):
    survive(test_ca, "sign", lambda: aws_error(monkeypatch, DynamoDBBackend, "transact_write_items", code, http),
            status, sleeps=sleeps)


@pytest.mark.parametrize("endpoint", ["ssh-sign", "renew", "revoke", "ssh-renew"])
@pytest.mark.parametrize(("code", "http", "status"), [
    pytest.param("ThrottlingException", 400, 429, id="throttling"),
    pytest.param("InternalServerError", 500, 503, id="internal-server-error"),
])
def test_dynamodb_recording_fault_on_every_endpoint(test_ca, monkeypatch, sleeps, endpoint, code, http, status):
    survive(test_ca, endpoint,
            lambda: aws_error(monkeypatch, DynamoDBBackend, "transact_write_items", code, http), status,
            sleeps=sleeps)


@pytest.mark.parametrize("endpoint", ["sign", "renew", "revoke"])
def test_dynamodb_unreachable(test_ca, endpoint):
    survive(test_ca, endpoint, lambda: unreachable("dynamodb", "TransactWriteItems"), 503)


@pytest.mark.parametrize(("operation", "endpoint"), [
    pytest.param("get_item", "sign", id="authority-config-read"),
    pytest.param("batch_get_item", "renew-unmarked", id="renew-record-read"),  # a marked one reads nothing
    pytest.param("get_item", "revoke", id="revoke-record-read"),
])
@pytest.mark.parametrize(("code", "http", "status"), [
    pytest.param("ProvisionedThroughputExceededException", 400, 429, id="throttled"),
    pytest.param("InternalServerError", 500, 503, id="internal"),
])
def test_dynamodb_read_fault(test_ca, monkeypatch, operation, endpoint, code, http, status):
    """Reads fail before anything is signed or written (the authority is re-read: STEPLESS_CONFIG_TTL=0)."""
    if operation == "batch_get_item":
        inject = lambda: error_answer("dynamodb", "BatchGetItem", code, http)  # noqa: E731
    else:
        inject = lambda: aws_error(monkeypatch, DynamoDBBackend, operation, code, http)  # noqa: E731
    survive(test_ca, endpoint, inject, status)


def test_recording_retries_are_idempotent(test_ca, monkeypatch):
    """botocore retries the recording transaction with the same ClientRequestToken: on DynamoDB a retry
    after a lost answer is then a no-op, never a second write or a "token already used" for our own write."""
    tokens: list[str] = []
    client = aws.client("dynamodb")

    def observe(request, **kwargs):
        tokens.append(json.loads(request.body)["ClientRequestToken"])

    client.meta.events.register_first("before-send.dynamodb.TransactWriteItems", observe)
    fault = aws_error(monkeypatch, DynamoDBBackend, "transact_write_items", "InternalServerError", 500)
    original = DynamoDBBackend.transact_write_items

    def flaky(self, *args, **kwargs):  # the first two attempts fail, the third goes through
        fault.active = fault.calls < 2
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", flaky)
    before = recorded()
    request, _ = _sign(test_ca)
    got, body, _ = request()
    assert got == 201, body
    assert fault.calls == 2 and len(tokens) == 3, (fault.calls, tokens)
    assert len(set(tokens)) == 1 and tokens[0], tokens
    assert recorded()["certificates"] == before["certificates"] + 1


def test_serial_collision_on_sign(test_ca):
    """The certificate record's condition (a new serial) fails: 503 + Retry-After, token kept, no certificate."""
    taken, _, _ = issue(test_ca)
    request, _ = _sign(test_ca)
    before = recorded()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile, "new_serial", lambda: taken.serial_number)
        assert_refused_cleanly(request(), 503, before)
    got, body, _ = request()
    assert got == 201, body
    assert x509.load_pem_x509_certificate(body["crt"].encode()).serial_number != taken.serial_number


def test_serial_collision_on_renew(test_ca):
    taken, _, _ = issue(test_ca, "taken.example.com")
    request, _ = _renew(test_ca)
    before = recorded()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile, "new_serial", lambda: taken.serial_number)
        assert_refused_cleanly(request(), 503, before)
    assert request()[0] == 201


def test_serial_collision_on_ssh_sign(test_ca):
    request, _ = _ssh_sign(test_ca)
    got, body, _ = request()
    assert got == 201, body
    serial = parse_certificate(base64.b64decode(body["crt"])).serial
    request, _ = _ssh_sign(test_ca)
    before = recorded()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ssh_service, "new_serial", lambda: serial)
        assert_refused_cleanly(request(), 503, before)
    assert request()[0] == 201


# ---------------------------------------------------------------------------------------------- KMS


KMS_SIGN_ERRORS = [
    pytest.param("ThrottlingException", 400, 429, MAX_ATTEMPTS, id="throttling"),
    pytest.param("DisabledException", 400, 503, 1, id="disabled-key"),
    pytest.param("KMSInvalidStateException", 400, 503, 1, id="invalid-state"),
    pytest.param("KMSInternalException", 500, 503, MAX_ATTEMPTS, id="internal"),
    pytest.param("DependencyTimeoutException", 503, 503, MAX_ATTEMPTS, id="dependency-timeout"),
]


@pytest.mark.parametrize(("code", "http", "status", "attempts"), KMS_SIGN_ERRORS)
def test_kms_sign_fault_on_sign(test_ca, monkeypatch, sleeps, code, http, status, attempts):
    survive(test_ca, "sign", lambda: aws_error(monkeypatch, KmsBackend, "sign", code, http), status,
            attempts=attempts, sleeps=sleeps)


@pytest.mark.parametrize("endpoint", ["ssh-sign", "renew", "ssh-renew"])
@pytest.mark.parametrize(("code", "http", "status", "attempts"), [
    pytest.param("ThrottlingException", 400, 429, MAX_ATTEMPTS, id="throttling"),
    pytest.param("DisabledException", 400, 503, 1, id="disabled-key"),
])
def test_kms_sign_fault_on_every_signing_endpoint(test_ca, monkeypatch, endpoint, code, http, status, attempts):
    survive(test_ca, endpoint, lambda: aws_error(monkeypatch, KmsBackend, "sign", code, http), status,
            attempts=attempts)


def test_kms_unreachable(test_ca):
    survive(test_ca, "sign", lambda: unreachable("kms", "Sign"), 503)


@pytest.mark.parametrize("endpoint", ["sign", "ssh-sign", "renew"])
def test_kms_fault_on_a_cold_container(test_ca, monkeypatch, endpoint):
    """A new container reads nothing from KMS before its first Sign (the CA key's public half is the one its
    certificate or SSH configuration states): KMS failing there is a 503, and GetPublicKey is never called."""
    get_public_key = aws_error(monkeypatch, KmsBackend, "get_public_key", "KMSInternalException", 500)

    def inject() -> Fault:
        authority.reset()  # cold: no signer yet
        return aws_error(monkeypatch, KmsBackend, "sign", "KMSInternalException", 500)

    survive(test_ca, endpoint, inject, 503)
    assert get_public_key.calls == 0


# ---------------------------------------------------------------------------------------------- Secrets Manager


@pytest.mark.parametrize(("code", "http", "status", "attempts"), [
    pytest.param("ThrottlingException", 400, 429, MAX_ATTEMPTS, id="throttling"),
    pytest.param("InternalServiceError", 500, 503, MAX_ATTEMPTS, id="internal"),
    pytest.param("DecryptionFailure", 400, 503, 1, id="decryption-failure"),
])
def test_secrets_manager_fault_on_a_cold_container(secrets_ca, monkeypatch, code, http, status, attempts):
    """The Secrets backend loads the CA key once per container: that load failing must not stick."""

    def inject() -> Fault:
        authority.reset()
        return aws_error(monkeypatch, SecretsManagerBackend, "get_secret_value", code, http)

    survive(secrets_ca, "sign", inject, status, attempts=attempts)


def test_secrets_manager_unreachable_on_a_cold_container(secrets_ca):
    def inject() -> Fault:
        authority.reset()
        return unreachable("secretsmanager", "GetSecretValue")

    survive(secrets_ca, "ssh-sign", inject, 503)


def test_retry_configuration_is_bounded():
    """Three attempts in all (not 1 + 3), standard mode (jittered exponential backoff)."""
    retries = awssession.config().retries
    assert retries.get("mode") == "standard"
    assert retries.get("total_max_attempts", (retries.get("max_attempts") or 0) + 1) == MAX_ATTEMPTS
