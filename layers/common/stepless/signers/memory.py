"""A signer over a private key held in memory (unit tests, and the Secrets Manager backend)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from stepless.signers.base import hash_for_key


class MemorySigner:
    """Signs with a cryptography private key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, ref: str = "memory:") -> None:
        self.ref = ref
        self._key = key
        self._public = key.public_key()
        self._hash = hash_for_key(self._public)

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(self._hash))
        return self._key.sign(data, padding.PKCS1v15(), self._hash)
