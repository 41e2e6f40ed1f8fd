"""A test CA: tables and keys in moto, initialized like ``stepless ca init``, plus token/CSR factories."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import uuid
from typing import Any

import boto3
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stepless import authority, aws, jose
from stepless.admin.init import InitResult, init
from stepless.stores import backend

TABLES = {
    "STEPLESS_AUTHORITY_TABLE": ("test-authority", "pk"),
    "STEPLESS_TOKENS_TABLE": ("test-tokens", "id"),
    "STEPLESS_CERTIFICATES_TABLE": ("test-certificates", "serial"),
    "STEPLESS_REVOCATIONS_TABLE": ("test-revocations", "serial"),
    "STEPLESS_HOSTS_TABLE": ("test-hosts", "pk", "principal"),
    "STEPLESS_OCSP_TABLE": ("test-ocsp", "serial"),
    "STEPLESS_ACME_TABLE": ("test-acme", "pk"),
}
PASSWORD = "test-password"
CA_URL = "https://localhost:8443"


def create_resources(region: str = "us-east-1") -> dict[str, str]:
    """Create the tables and four KMS keys; returns stack-like outputs."""
    ddb = boto3.client("dynamodb", region_name=region)
    for table, *keys in TABLES.values():
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ("HASH", "RANGE"), strict=False)],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    kms = boto3.client("kms", region_name=region)
    outputs = {
        name: kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        for name in ("RootKeyId", "IntermediateKeyId", "SshUserKeyId", "SshHostKeyId")
    }
    outputs["SecretsPrefix"] = "stepless-test"
    return outputs


@contextlib.contextmanager
def moto_environment():  # noqa: ANN201 - a generator context manager
    """moto in-process with the functions' environment variables set, and fresh (then forgotten) caches."""
    import pytest
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env().items():
            mp.setenv(k, v)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv(backend.STORE, raising=False)
        with mock_aws():
            aws.reset()
            authority.reset()
            backend.reset()
            try:
                yield
            finally:
                aws.reset()
                authority.reset()
                backend.reset()


@contextlib.contextmanager
def sqlite_environment(home):  # noqa: ANN001, ANN201 - a generator context manager
    """The local CA's engine: the SQLite store and encrypted key files under ``home``, no AWS; yields the
    outputs for ``initialize(..., backend="files")``."""
    import pytest

    from stepless.local.devstack import local_environment
    from stepless.signers.files import PASSWORD_FILE

    with pytest.MonkeyPatch.context() as mp:
        for var in list(__import__("os").environ):
            if var.startswith(("AWS_", "STEPLESS_")):
                mp.delenv(var)
        values = local_environment(home)
        for k, v in values.items():
            mp.setenv(k, v)
        mp.setenv("STEPLESS_CONFIG_TTL", "0")
        secrets_dir = home / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        (secrets_dir / "key-password").write_text("test-key-password\n")
        assert values[PASSWORD_FILE] == str(secrets_dir / "key-password")
        aws.reset()
        authority.reset()
        backend.reset()
        try:
            yield {"KeyDirectory": str(secrets_dir)}
        finally:
            backend.reset()
            authority.reset()


def env() -> dict[str, str]:
    """Environment variables the functions need."""
    return {var: name for var, (name, *_) in TABLES.items()} | {
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "STEPLESS_CONFIG_TTL": "0",
    }


@dataclasses.dataclass
class TestCA:
    """An initialized CA and the means to ask it for certificates."""

    __test__ = False  # not a pytest test class

    result: InitResult
    provisioner_key: Any  # the JWK provisioner's private key (decrypted)
    kid: str
    name: str = "admin"
    url: str = CA_URL

    @property
    def authority(self) -> authority.Authority:
        return authority.get()

    def token(self, sub: str, *, sans: list[str] | None = None, aud: str | None = None,
              path: str = "/1.0/sign", lifetime: int = 300, headers: dict | None = None,
              key: Any = None, **claims: Any) -> str:
        """A JWK one-time token as the step CLI makes it."""
        now = int(time.time())
        payload = {
            "iss": self.name, "aud": aud or self.url + path, "sub": sub,
            "sans": sans if sans is not None else [sub],
            "iat": now, "nbf": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.provisioner_key, algorithm="ES256",
                          headers={"kid": self.kid, **(headers or {})})


def make_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(cn: str, sans: list[str] | None = None, key: Any = None) -> tuple[str, Any]:
    """(CSR PEM, key) with CN and DNS/IP SANs (default: [cn])."""
    import ipaddress

    key = key or make_key()
    names: list[x509.GeneralName] = []
    for s in sans if sans is not None else [cn]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(s)))
        except ValueError:
            names.append(x509.RFC822Name(s) if "@" in s else x509.DNSName(s))
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def initialize(outputs: dict[str, str], *, backend: str = "kms", ssh: bool = True,
               claims: dict | None = None) -> TestCA:
    """Run ``ca init`` and decrypt the provisioner key (as the CLI would)."""
    aws.reset()
    authority.reset()
    result = init(outputs=outputs, backend=backend, name="Test", dns_names=["localhost", "127.0.0.1"],
                  provisioner="admin", password=PASSWORD, ssh=ssh, force=False, claims=claims, p2c=1000)
    entry = authority.get().provisioners.get("admin")
    assert entry is not None
    private = jose.decrypt_jwk(entry.data["encryptedKey"], PASSWORD)
    return TestCA(result, jose.key_from_jwk(private), result.kid)


def event(method: str, path: str, body: Any = None, *, headers: dict | None = None,
          client_cert_pem: str | None = None, query: dict | None = None) -> dict[str, Any]:
    """A payload-2.0 API Gateway event."""
    ctx: dict[str, Any] = {"http": {"method": method, "path": path}, "requestId": uuid.uuid4().hex}
    if client_cert_pem:
        ctx["authentication"] = {"clientCert": {"clientCertPem": client_cert_pem}}
    return {
        "version": "2.0", "rawPath": path, "routeKey": f"{method} {path}",
        "headers": headers or {}, "queryStringParameters": query,
        "requestContext": ctx,
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def call(app: Any, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    """Invoke a handler; returns (status, decoded JSON body or text)."""
    res = app.handler(event(method, path, body, **kw), None)
    try:
        return res["statusCode"], json.loads(res["body"])
    except ValueError:
        return res["statusCode"], res["body"]
