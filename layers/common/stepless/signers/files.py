"""File signer (the local CA): a PEM private key encrypted at rest, decrypted once per process.

Reference ``file:<path>``. The key is PKCS#8 PEM encrypted with a password (cryptography's best available
encryption), like step-ca's ``secrets/*_key`` files; the password is read from ``STEPLESS_KEY_PASSWORD_FILE``
or, by default, from ``key-password`` beside the key. A wrong password or a damaged key is a one-line
ConfigError naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from stepless.errors import ConfigError
from stepless.signers.memory import LoadedSigner, MemorySigner

PASSWORD_FILE = "STEPLESS_KEY_PASSWORD_FILE"
DEFAULT_PASSWORD_NAME = "key-password"


def password_file(key_path: Path) -> Path:
    """Where the password of the key at ``key_path`` is read from."""
    env = os.environ.get(PASSWORD_FILE)
    return Path(env) if env else key_path.parent / DEFAULT_PASSWORD_NAME


def read_password(path: Path) -> bytes:
    try:
        value = path.read_text().splitlines()[0].strip() if path.stat().st_size else ""
    except OSError as e:
        raise ConfigError(f"cannot read the CA key password file {path}: {e.strerror}") from e
    if not value:
        raise ConfigError(f"the CA key password file {path} is empty")
    return value.encode()


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (its directory 0700 when created), replacing an existing file
    atomically: a run killed mid-write leaves the old file or the new one, never a torn or empty one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a temporary file left by a killed run keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_key(path: Path, key: PrivateKeyTypes, password: bytes) -> None:
    """Write ``key`` encrypted with ``password`` (mode 0600; an existing file is replaced atomically)."""
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(password)))


def load_key(path: Path) -> PrivateKeyTypes:
    """The decrypted key at ``path`` (ConfigError: missing, unreadable, wrong password)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the CA key {path}: {e.strerror}") from e
    try:
        return serialization.load_pem_private_key(data, password=read_password(password_file(path)))
    except ValueError as e:  # "Bad decrypt. Incorrect password?" and damaged PEM alike
        raise ConfigError(f"cannot decrypt the CA key {path}: wrong password in {password_file(path)} "
                          "or a damaged key file") from e
    except TypeError as e:
        raise ConfigError(f"the CA key {path} is not encrypted") from e


class FileSigner(LoadedSigner):
    """Signs with the encrypted PEM key at ``path`` (decrypted on first use, then kept in memory)."""

    def __init__(self, path: str, public_key: PublicKeyTypes | None = None) -> None:
        self.ref = f"file:{path}"
        self.stated = public_key
        self.path = Path(path)

    def _load(self) -> MemorySigner:
        key = load_key(self.path)
        if not hasattr(key, "sign"):
            raise ConfigError(f"the CA key {self.path} is not a signing key")
        return MemorySigner(key, self.ref)  # type: ignore[arg-type]
