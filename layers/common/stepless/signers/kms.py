"""AWS KMS signer: the key never leaves KMS; one ``kms:Sign`` per signature.

The public half is what the configuration says it is (the certificate or SSH public key the key signs
for), so a cold start reads nothing from KMS; without one, ``kms:GetPublicKey`` (administrator commands).
A stated public key is checked on the container's first signature: a KMS key that does not match it
never yields a certificate (a :class:`~stepless.errors.ConfigError`, rendered as 500).
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from stepless import aws
from stepless.faults import translate_aws_errors
from stepless.signers.base import check_signature, hash_for_key

RAW_LIMIT = 4096  # KMS refuses RAW messages longer than this


class KMSSigner:
    """Signs with an asymmetric KMS key (ECC_NIST_P256/P384 or RSA)."""

    def __init__(self, key_id: str, public_key: PublicKeyTypes | None = None) -> None:
        self.ref = f"kms:{key_id}"
        self.key_id = key_id
        self._stated = public_key
        self._checked = public_key is None  # a key read from KMS is the key by definition

    @functools.cached_property
    def _public(self) -> PublicKeyTypes:
        if self._stated is not None:
            return self._stated
        with translate_aws_errors("KMS"):
            der = aws.client("kms").get_public_key(KeyId=self.key_id)["PublicKey"]
        return serialization.load_der_public_key(der)

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hash_for_key(self._public)

    @functools.cached_property
    def _algorithm(self) -> str:
        h = self.hash_algorithm().name.upper().replace("SHA", "SHA_")
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            return f"ECDSA_{h}"
        return f"RSASSA_PKCS1_V1_5_{h}"

    def sign(self, data: bytes) -> bytes:
        if len(data) <= RAW_LIMIT:
            kwargs = {"Message": data, "MessageType": "RAW"}
        else:
            digest = hashes.Hash(self.hash_algorithm())
            digest.update(data)
            kwargs = {"Message": digest.finalize(), "MessageType": "DIGEST"}
        with translate_aws_errors("KMS"):
            out = aws.client("kms").sign(KeyId=self.key_id, SigningAlgorithm=self._algorithm, **kwargs)
        signature = out["Signature"]
        if not self._checked:
            check_signature(self, data, signature)
            self._checked = True
        return signature
