"""CA key backends behind one :class:`Signer` protocol (KMS, Secrets Manager, in-memory)."""

from stepless.signers.base import Signer, as_private_key, load_signer

__all__ = ["Signer", "as_private_key", "load_signer"]
