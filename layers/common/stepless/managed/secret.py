"""The secret of a managed certificate: ``<prefix>/managed/<name>`` (Secrets Manager; see stores.secrets).

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

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from stepless.stores import secrets

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
    return secrets.current().create(name_of(prefix, name), value,
                                    description=description or f"stepless managed certificate {name}",
                                    tags={"stepless:managed": name})


def read(arn: str) -> str:
    """The AWSCURRENT value."""
    return secrets.current().read(arn)


def write(arn: str, value: str, request_token: str) -> str:
    """Put ``value`` as the new AWSCURRENT version (the old one becomes AWSPREVIOUS); its VersionId."""
    return secrets.current().write(arn, value, request_token)


def delete(arn: str) -> None:
    """Schedule the secret's deletion (Secrets Manager's default 30-day recovery window)."""
    secrets.current().delete(arn)


def versions(arn: str) -> dict[str, list[str]]:
    """VersionId → stages (inspection, tests)."""
    return secrets.current().versions(arn)
