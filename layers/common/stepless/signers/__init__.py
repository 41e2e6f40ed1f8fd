"""CA key backends behind one :class:`Signer` protocol (KMS, Secrets Manager, in-memory).

:mod:`~stepless.signers.base` holds the protocol and what the backends share; each backend imports it,
and :func:`load_signer` (here, above the backends) picks one: no module imports a module that imports it.
"""

from __future__ import annotations

from stepless.errors import ConfigError
from stepless.signers.base import Signer, as_private_key


def load_signer(ref: str) -> Signer:
    """Open the signer a key reference names (``kms:…`` or ``secretsmanager:…``)."""
    scheme, _, ident = ref.partition(":")
    if scheme == "kms":
        from stepless.signers.kms import KMSSigner  # a cold start loads only the backend it names

        return KMSSigner(ident)
    if scheme == "secretsmanager":
        from stepless.signers.secrets import SecretsManagerSigner

        return SecretsManagerSigner(ident)
    if scheme == "file":
        from stepless.signers.files import FileSigner

        return FileSigner(ident)
    raise ConfigError(f"unknown key reference scheme {scheme!r}")


__all__ = ["Signer", "as_private_key", "load_signer"]
