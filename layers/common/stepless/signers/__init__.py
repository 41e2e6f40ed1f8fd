"""CA key backends behind one :class:`Signer` protocol (KMS, Secrets Manager, in-memory).

:mod:`~stepless.signers.base` holds the protocol and what the backends share; each backend imports it,
and :func:`load_signer` (here, above the backends) picks one: no module imports a module that imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepless.errors import ConfigError
from stepless.signers.base import Signer, as_private_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


def load_signer(ref: str, public_key: PublicKeyTypes | None = None) -> Signer:
    """Open the signer a key reference names (``kms:…``, ``secretsmanager:…`` or ``file:…``).

    ``public_key``: the key's public half as the configuration states it (the certificate it signs for, the
    SSH CA public key): KMS then needs no GetPublicKey, and every backend refuses a key that does not match
    it (:func:`~stepless.signers.base.mismatch`: KMS on its first signature, the others when loaded)."""
    scheme, _, ident = ref.partition(":")
    if scheme == "kms":
        from stepless.signers.kms import KMSSigner  # a cold start loads only the backend it names

        return KMSSigner(ident, public_key)
    if scheme == "secretsmanager":
        from stepless.signers.secrets import SecretsManagerSigner

        return SecretsManagerSigner(ident, public_key)
    if scheme == "file":
        from stepless.signers.files import FileSigner

        return FileSigner(ident, public_key)
    raise ConfigError(f"unknown key reference scheme {scheme!r}")


__all__ = ["Signer", "as_private_key", "load_signer"]
