"""The Secrets Manager secret of a managed certificate: ``<prefix>/managed/<name>``.

Its value is JSON::

    {"certificate": leaf PEM, "chain": [leaf PEM, intermediate PEM], "privateKey": PKCS#8 PEM,
     "serial": "<decimal>", "notAfter": "<RFC 3339>"}

Workloads read the AWSCURRENT version. A renewal is ``PutSecretValue``: the new version becomes
AWSCURRENT and Secrets Manager moves AWSPREVIOUS to the version it replaced, so a consumer that has
not reloaded yet can still find the previous certificate and key.

The administrator creates the secret (``CreateSecret``, with their own credentials); the renew
function only reads and puts values (IAM: ``<stack>/managed/*``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from stepless import aws
from stepless.aws import error_code
from stepless.errors import BadRequest
from stepless.faults import translate_aws_errors

_TOKENS = uuid.UUID("6f1f3c1e-4b5e-4d4e-9a57-7e5c2a3b9d10")  # namespace of the idempotency tokens


def name_of(prefix: str, name: str) -> str:
    return f"{prefix}/managed/{name}"


def key_pem(key: PrivateKeyTypes) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def payload(cert: x509.Certificate, intermediate_pem: str, key: PrivateKeyTypes) -> str:
    """The secret value for ``cert`` and its ``key``."""
    leaf = cert.public_bytes(serialization.Encoding.PEM).decode()
    return json.dumps({
        "certificate": leaf,
        "chain": [leaf, intermediate_pem],
        "privateKey": key_pem(key),
        "serial": str(cert.serial_number),
        "notAfter": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


def parse(value: str) -> tuple[x509.Certificate, PrivateKeyTypes]:
    """(certificate, private key) of a secret value."""
    data = json.loads(value)
    cert = x509.load_pem_x509_certificate(data["certificate"].encode())
    key = serialization.load_pem_private_key(data["privateKey"].encode(), None)
    return cert, key


def token(name: str, version: int) -> str:
    """The ClientRequestToken of the write made under claim ``version`` (same claim, same token)."""
    return str(uuid.uuid5(_TOKENS, f"{name}#{version}"))


def create(prefix: str, name: str, value: str, *, description: str = "") -> str:
    """Create the secret (or, when it survived a ``managed remove``, put a new version); its ARN."""
    sm = aws.client("secretsmanager")
    secret_name = name_of(prefix, name)
    with translate_aws_errors("Secrets Manager"):
        try:
            return sm.create_secret(Name=secret_name, SecretString=value,
                                    Description=description or f"stepless managed certificate {name}",
                                    Tags=[{"Key": "stepless:managed", "Value": name}])["ARN"]
        except Exception as e:
            if error_code(e) != "ResourceExistsException":
                if error_code(e) == "InvalidRequestException":
                    raise BadRequest(f"secret {secret_name}: {e} (restore it or choose another name)") from e
                raise
        return sm.put_secret_value(SecretId=secret_name, SecretString=value)["ARN"]


def read(arn: str) -> str:
    """The AWSCURRENT value."""
    with translate_aws_errors("Secrets Manager"):
        return aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


def write(arn: str, value: str, request_token: str) -> str:
    """Put ``value`` as the new AWSCURRENT version (the old one becomes AWSPREVIOUS); its VersionId."""
    with translate_aws_errors("Secrets Manager"):
        out = aws.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=value,
                                                            ClientRequestToken=request_token)
    return str(out["VersionId"])


def delete(arn: str) -> None:
    """Schedule the secret's deletion (Secrets Manager's default 30-day recovery window)."""
    with translate_aws_errors("Secrets Manager"):
        aws.client("secretsmanager").delete_secret(SecretId=arn)


def versions(arn: str) -> dict[str, list[str]]:
    """VersionId → stages (inspection, tests)."""
    out: dict[str, Any] = aws.client("secretsmanager").list_secret_version_ids(SecretId=arn)
    return {v["VersionId"]: list(v.get("VersionStages") or []) for v in out.get("Versions", [])}
