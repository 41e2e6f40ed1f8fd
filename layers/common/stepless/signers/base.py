"""The Signer protocol, a cryptography private-key adapter, and the key-reference loader.

A key reference is a string stored in the authority configuration:
``kms:<key id or ARN>``, ``secretsmanager:<secret id or ARN>`` or ``file:<path>`` (an encrypted PEM key,
the local CA's).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from stepless.errors import ConfigError


@runtime_checkable
class Signer(Protocol):
    """A CA key that signs but never leaves its backend."""

    ref: str

    def public_key(self) -> PublicKeyTypes:
        """The public half."""

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The digest the key signs with (SHA-256 for P-256, SHA-384 for P-384, ...)."""

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (hashing it with :meth:`hash_algorithm`); ECDSA signatures are DER."""


def hash_for_key(key: PublicKeyTypes) -> hashes.HashAlgorithm:
    """The conventional digest for a CA key."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
    if isinstance(key, rsa.RSAPublicKey):
        return hashes.SHA256()
    raise ConfigError(f"unsupported CA key type {type(key).__name__}")


def mismatch(signer: Signer) -> ConfigError:
    """The error of a CA key that is not the one its configuration states (certificate, SSH public key)."""
    return ConfigError(f"the CA key {signer.ref} does not match the public key its certificate (or SSH "
                       "configuration) states")


def check_signature(signer: Signer, data: bytes, signature: bytes) -> None:
    """Raise :func:`mismatch` unless ``signature`` (of ``data``) verifies under ``signer.public_key()``."""
    key = signer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(signer.hash_algorithm()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), signer.hash_algorithm())
        else:
            raise ConfigError(f"unsupported CA key type {type(key).__name__}")
    except InvalidSignature:
        raise mismatch(signer) from None


class _ECAdapter(ec.EllipticCurvePrivateKey):
    """Lets cryptography's builders sign through a :class:`Signer` (no key material here)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = signer.public_key()

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return self._signer.sign(data)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public  # type: ignore[return-value]

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve  # type: ignore[union-attr]

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size  # type: ignore[union-attr]

    def exchange(self, algorithm, peer_public_key):  # noqa: ANN001
        raise NotImplementedError("a CA signer does not do key exchange")

    def private_numbers(self):  # noqa: ANN201
        raise NotImplementedError("a CA signer does not export its key")

    def private_bytes(self, encoding, format, encryption_algorithm):  # noqa: ANN001, A002
        raise NotImplementedError("a CA signer does not export its key")

    def __copy__(self) -> _ECAdapter:
        return self

    def __deepcopy__(self, memo: dict) -> _ECAdapter:
        return self


class _RSAAdapter(rsa.RSAPrivateKey):
    """RSA twin of :class:`_ECAdapter` (PKCS#1 v1.5 with the signer's digest)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = signer.public_key()

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm) -> bytes:  # noqa: ANN001
        return self._signer.sign(data)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public  # type: ignore[return-value]

    @property
    def key_size(self) -> int:
        return self._public.key_size  # type: ignore[union-attr]

    def decrypt(self, ciphertext, padding):  # noqa: ANN001
        raise NotImplementedError("a CA signer does not decrypt")

    def private_numbers(self):  # noqa: ANN201
        raise NotImplementedError("a CA signer does not export its key")

    def private_bytes(self, encoding, format, encryption_algorithm):  # noqa: ANN001, A002
        raise NotImplementedError("a CA signer does not export its key")

    def __copy__(self) -> _RSAAdapter:
        return self

    def __deepcopy__(self, memo: dict) -> _RSAAdapter:
        return self


def as_private_key(signer: Signer) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A cryptography private-key object whose ``sign`` calls ``signer`` (for x509 builders)."""
    if isinstance(signer.public_key(), ec.EllipticCurvePublicKey):
        return _ECAdapter(signer)
    return _RSAAdapter(signer)
