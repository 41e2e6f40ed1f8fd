"""A signer over a private key held in memory (unit tests, and the Secrets Manager backend)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from stepless.signers.base import hash_for_key, mismatch


class MemorySigner:
    """Signs with a cryptography private key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, ref: str = "memory:") -> None:
        self.ref = ref
        self._key = key
        self._public = key.public_key()
        self._hash = hash_for_key(self._public)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            ecdsa = ec.ECDSA(self._hash)
            self._sign: Callable[[bytes], bytes] = lambda data: key.sign(data, ecdsa)
        else:
            pkcs1 = padding.PKCS1v15()
            self._sign = lambda data: key.sign(data, pkcs1, self._hash)

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    def sign(self, data: bytes) -> bytes:
        return self._sign(data)


class LoadedSigner:
    """A signer over a key loaded on first use (:meth:`_load`: Secrets Manager, an encrypted file), then kept
    in memory for the container's life. ``stated``: the public key the configuration states for it (its
    certificate's), checked when the key is loaded."""

    ref: str
    stated: PublicKeyTypes | None = None

    def _load(self) -> MemorySigner:
        raise NotImplementedError

    @functools.cached_property
    def _inner(self) -> MemorySigner:
        inner = self._load()
        if self.stated is not None and inner.public_key() != self.stated:
            raise mismatch(self)  # type: ignore[arg-type]
        return inner

    def public_key(self) -> PublicKeyTypes:
        return self._inner.public_key()

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._inner.hash_algorithm()

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(data)
