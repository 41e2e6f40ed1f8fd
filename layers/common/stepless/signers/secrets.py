"""Secrets Manager signer: a PEM private key loaded once per container, then signing is local."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from stepless import aws
from stepless.errors import ConfigError
from stepless.faults import translate_aws_errors
from stepless.signers.memory import LoadedSigner, MemorySigner


class SecretsManagerSigner(LoadedSigner):
    """Signs with a PEM key kept in a Secrets Manager secret (SecretString)."""

    def __init__(self, secret_id: str, public_key: PublicKeyTypes | None = None) -> None:
        self.ref = f"secretsmanager:{secret_id}"
        self.stated = public_key
        self.secret_id, _, self.version_id = secret_id.partition("#")  # ``ARN#VersionId`` pins a version

    def _load(self) -> MemorySigner:
        with translate_aws_errors("Secrets Manager"):
            kwargs = {"SecretId": self.secret_id, **({"VersionId": self.version_id} if self.version_id else {})}
            pem = aws.client("secretsmanager").get_secret_value(**kwargs)["SecretString"]
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not hasattr(key, "sign"):
            raise ConfigError("the CA key secret does not hold a signing key")
        return MemorySigner(key, self.ref)  # type: ignore[arg-type]
