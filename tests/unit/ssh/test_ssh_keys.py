"""Parsing, encoding and fingerprinting SSH public keys."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless.errors import BadRequest
from stepless.ssh import keys, wire

OFF_CURVE = b"\x04" + b"\x01" * 64  # an uncompressed P-256 point not on the curve


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def _openssh(key: keys.SSHPublicKey) -> str:
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def test_encoding_matches_cryptography(subject_keys: dict[str, keys.SSHPublicKey]) -> None:
    for name, key in subject_keys.items():
        assert keys.key_type(key) == name
        assert keys.to_authorized_key(key) == _openssh(key)
        assert keys.to_authorized_key(key, "me@host") == _openssh(key) + " me@host"


def test_parse_every_form(subject_keys: dict[str, keys.SSHPublicKey]) -> None:
    for key in subject_keys.values():
        blob = keys.encode_public_key(key)
        b64 = base64.b64encode(blob).decode()
        line = keys.to_authorized_key(key, "a comment with spaces")
        for form in (blob, b64, line, line.encode(), "  " + b64 + "\n"):
            parsed = keys.parse_public_key(form)
            assert keys.encode_public_key(parsed) == blob


def test_fingerprint_matches_ssh_keygen(
    subject_keys: dict[str, keys.SSHPublicKey],
    tmp_path: Path,
    ssh_keygen: Callable[..., subprocess.CompletedProcess],
) -> None:
    for name, key in subject_keys.items():
        path = tmp_path / f"{name}.pub"
        path.write_text(keys.to_authorized_key(key, "x") + "\n")
        result = ssh_keygen("-l", "-E", "sha256", "-f", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[1] == keys.fingerprint(key)
        blob_digest = hashlib.sha256(keys.encode_public_key(key)).digest()
        assert keys.fingerprint(keys.encode_public_key(key)).endswith(
            base64.b64encode(blob_digest).decode().rstrip("=")
        )


def test_small_rsa_refused() -> None:
    small = rsa.generate_private_key(65537, 1024).public_key()
    with pytest.raises(BadRequest, match="RSA keys must be at least 2048 bits"):
        keys.parse_public_key(_openssh(small))


def test_dsa_refused() -> None:
    numbers = dsa.generate_private_key(1024).public_key().public_numbers()
    params = numbers.parameter_numbers
    blob = wire.string("ssh-dss") + b"".join(wire.mpint(v) for v in (params.p, params.q, params.g, numbers.y))
    with pytest.raises(BadRequest, match="unsupported SSH key type ssh-dss"):
        keys.parse_public_key("ssh-dss " + base64.b64encode(blob).decode())
    with pytest.raises(BadRequest, match="unsupported SSH key type ssh-dss"):
        keys.parse_public_key(blob)


def test_unsupported_curve_refused() -> None:
    with pytest.raises(BadRequest, match="unsupported"):
        keys.encode_public_key(ec.generate_private_key(ec.SECP256K1()).public_key())


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ssh-ed25519 !!!notbase64",
        base64.b64encode(wire.string("ssh-ed25519") + wire.string(b"short")).decode(),
        _b64(wire.string("ecdsa-sha2-nistp256") + wire.string("nistp384") + wire.string(b"x")),
        _b64(wire.string("ecdsa-sha2-nistp256") + wire.string("nistp256") + wire.string(OFF_CURVE)),
        base64.b64encode(wire.string("ssh-ed25519") + wire.string(b"\x00" * 32) + b"extra").decode(),
        base64.b64encode(wire.string("sk-ssh-ed25519@openssh.com")).decode(),
    ],
)
def test_malformed_keys_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        keys.parse_public_key(bad)


def test_declared_type_must_match(subject_keys: dict[str, keys.SSHPublicKey]) -> None:
    b64 = keys.to_authorized_key(subject_keys["ssh-ed25519"]).split()[1]
    with pytest.raises(BadRequest, match="does not match"):
        keys.parse_public_key(f"ssh-rsa {b64}")
