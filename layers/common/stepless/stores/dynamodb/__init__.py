"""The AWS backend (the Lambda functions; the AWS-emulated local stack): DynamoDB tables named by the
functions' environment (and S3 for CRL/KRL objects, Secrets Manager for managed certificates' secrets), one
module per concern. Items are marshalled by :mod:`stepless.stores.dynamo`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from stepless.stores.backend import Stores

# concern -> (module of stepless.stores.dynamodb, class)
_IMPLEMENTATIONS = {
    "tokens": ("tokens", "DynamoTokens"), "certificates": ("certificates", "DynamoCertificates"),
    "revocations": ("revocations", "DynamoRevocations"), "authority": ("authority", "DynamoAuthority"),
    "audit": ("authority", "DynamoAudit"), "managed": ("managed", "DynamoManaged"),
    "objects": ("objects", "DynamoObjects"), "secrets": ("secrets", "AWSSecrets"), "hosts": ("hosts", "DynamoHosts"),
    "ssh_revoked": ("ssh_revoked", "DynamoSSHRevoked"), "ocsp": ("ocsp_responses", "DynamoOCSPResponses"),
    "acme": ("acme", "DynamoAcme"),
}


def _factory(module: str, cls: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module(f"stepless.stores.dynamodb.{module}"), cls)()


def stores() -> Stores:
    """Every concern on DynamoDB (and S3 for the CRL/KRL objects), each module imported on its first use."""
    return Stores("dynamodb", {concern: _factory(*impl) for concern, impl in _IMPLEMENTATIONS.items()})
