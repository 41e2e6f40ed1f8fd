"""Create or open the CA keys in the chosen backend (KMS keys from the stack, or PEM secrets)."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import aws
from stepless.aws import error_code
from stepless.errors import ConfigError
from stepless.signers import Signer, load_signer

ROLES = ("root", "intermediate", "ssh-user", "ssh-host")
KMS_OUTPUTS = {"root": "RootKeyId", "intermediate": "IntermediateKeyId",
               "ssh-user": "SshUserKeyId", "ssh-host": "SshHostKeyId"}


def secret_name(prefix: str, role: str) -> str:
    """The Secrets Manager name of a CA key: ``<stack>/<role>-key``."""
    return f"{prefix}/{role}-key"


def _put_secret(name: str, pem: str, force: bool) -> str:
    """Store the key; returns ``ARN#VersionId`` so a replaced key is a new reference (warm functions,
    which cache signers by reference, pick up the new key with the new configuration)."""
    sm = aws.client("secretsmanager")
    try:
        out = sm.create_secret(Name=name, SecretString=pem, Description="stepless CA key")
    except Exception as e:  # ResourceExistsException
        if error_code(e) != "ResourceExistsException":
            raise
        if not force:
            raise ConfigError(f"secret {name} already exists (use --force to replace the CA)") from e
        out = sm.put_secret_value(SecretId=name, SecretString=pem)
    return f"{out['ARN']}#{out['VersionId']}"


def _key_path(outputs: dict[str, str], role: str) -> Path:
    """The local CA's key file of ``role`` (step-ca's names: ``root_ca_key``, ``ssh_user_ca_key`` …)."""
    return Path(outputs["KeyDirectory"]) / f"{role.replace('-', '_')}_ca_key"


def _prefix(outputs: dict[str, str]) -> str:
    return outputs.get("SecretsPrefix") or "stepless"


def existing(role: str, backend: str, outputs: dict[str, str]) -> Signer:
    """The signer of the key ``role`` has now: the stack's KMS key, or the current version of its secret."""
    if backend == "kms":
        key_id = outputs.get(KMS_OUTPUTS[role])
        if not key_id:
            raise ConfigError(f"the stack has no {KMS_OUTPUTS[role]} output (is KeyBackend=kms?)")
        return load_signer(f"kms:{key_id}")
    if backend == "secrets":
        return load_signer(f"secretsmanager:{secret_name(_prefix(outputs), role)}")
    if backend == "files":
        return load_signer(f"file:{_key_path(outputs, role)}")
    raise ConfigError(f"unknown key backend {backend!r} (kms or secrets)")


def provide(role: str, backend: str, outputs: dict[str, str], *, force: bool) -> Signer:
    """The signer for ``role``: the stack's KMS key, or a new P-256 key stored as a secret, or (``files``,
    the local CA) as an encrypted PEM file in ``outputs["KeyDirectory"]``."""
    if backend == "files":
        from stepless.signers import files

        path = _key_path(outputs, role)
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists (use --force to replace the CA)")
        if path.exists():  # a new file, so a new reference (processes cache signers by reference)
            path = path.with_name(f"{path.name}.{time.time_ns()}")
        files.write_key(path, ec.generate_private_key(ec.SECP256R1()),
                        files.read_password(files.password_file(path)))
        return load_signer(f"file:{path}")
    if backend == "secrets":
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        arn = _put_secret(secret_name(_prefix(outputs), role), pem, force)
        return load_signer(f"secretsmanager:{arn}")
    return existing(role, backend, outputs)
