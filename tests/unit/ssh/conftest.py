"""Fixtures for the SSH library tests: CA signers, subject keys, and an ssh-keygen runner."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from stepless.signers.memory import MemorySigner
from stepless.ssh import keys

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


class Ed25519Signer:
    """A Signer over an Ed25519 key (raw 64-byte signatures)."""

    ref = "memory:ed25519"

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA512()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class RSASHA512Signer:
    """A Signer over an RSA key signing PKCS#1 v1.5 with SHA-512."""

    ref = "memory:rsa512"

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(65537, 2048)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA512()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA512())


@pytest.fixture(scope="session")
def ec_ca() -> MemorySigner:
    return MemorySigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def ed_ca() -> Ed25519Signer:
    return Ed25519Signer()


@pytest.fixture(scope="session")
def rsa512_ca() -> RSASHA512Signer:
    return RSASHA512Signer()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def subject_keys(rsa_key: rsa.RSAPrivateKey) -> dict[str, keys.SSHPublicKey]:
    """One public key of every accepted type, by SSH key type name."""
    return {
        "ssh-ed25519": ed25519.Ed25519PrivateKey.generate().public_key(),
        "ecdsa-sha2-nistp256": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "ecdsa-sha2-nistp384": ec.generate_private_key(ec.SECP384R1()).public_key(),
        "ecdsa-sha2-nistp521": ec.generate_private_key(ec.SECP521R1()).public_key(),
        "ssh-rsa": rsa_key.public_key(),
    }


Runner = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def ssh_keygen() -> Runner:
    """Run ssh-keygen in UTC; returns the completed process (no check)."""
    if not Path(SSH_KEYGEN).exists():
        pytest.skip("ssh-keygen not installed")

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "TZ": "UTC"}
        return subprocess.run(
            [SSH_KEYGEN, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    return run
