"""Secrets Manager signer: a PEM private key loaded once per container, then signing is local."""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from stepless import aws
from stepless.errors import ConfigError
from stepless.faults import translate_aws_errors
from stepless.signers.memory import MemorySigner


class SecretsManagerSigner:
    """Signs with a PEM key kept in a Secrets Manager secret (SecretString)."""

    def __init__(self, secret_id: str) -> None:
        self.ref = f"secretsmanager:{secret_id}"
        self.secret_id, _, self.version_id = secret_id.partition("#")  # ``ARN#VersionId`` pins a version

    @functools.cached_property
    def _inner(self) -> MemorySigner:
        with translate_aws_errors("Secrets Manager"):
            kwargs = {"SecretId": self.secret_id, **({"VersionId": self.version_id} if self.version_id else {})}
            pem = aws.client("secretsmanager").get_secret_value(**kwargs)["SecretString"]
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not hasattr(key, "sign"):
            raise ConfigError("the CA key secret does not hold a signing key")
        return MemorySigner(key, self.ref)  # type: ignore[arg-type]

    def public_key(self) -> PublicKeyTypes:
        return self._inner.public_key()

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._inner.hash_algorithm()

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(data)
