"""Certificates checked by the real ``ssh-keygen -L``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from stepless.errors import BadRequest
from stepless.signers.memory import MemorySigner
from stepless.ssh import keys
from stepless.ssh.certificate import (
    DEFAULT_USER_EXTENSIONS,
    HOST,
    USER,
    SSHCertificate,
    build_and_sign,
    option_value,
    to_line,
)

Runner = Callable[..., subprocess.CompletedProcess]
AFTER = 1_700_000_000
BEFORE = AFTER + 16 * 3600


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_listing(text: str) -> dict[str, object]:
    """``ssh-keygen -L`` output as a dict (lists for Principals / Critical Options / Extensions)."""
    info: dict[str, object] = {}
    current: list[str] | None = None
    for line in text.splitlines()[1:]:
        stripped = line.strip()
        if line.startswith("\t\t") or line.startswith(" " * 16):
            assert current is not None
            current.append(stripped)
            continue
        name, _, value = stripped.partition(":")
        value = value.strip()
        if name in ("Principals", "Critical Options", "Extensions"):
            current = []
            info[name] = current if value != "(none)" else []
        else:
            info[name] = value
    return info


def _user_cert(key: object, signer: MemorySigner, serial: int = 1, **fields: object) -> SSHCertificate:
    """A user certificate for ``key`` with key ID "k" and principal "u", valid AFTER..BEFORE."""
    return build_and_sign(key, serial=serial, cert_type=USER, key_id="k", principals=["u"], valid_after=AFTER,
                          valid_before=BEFORE, signer=signer, **fields)


def listing(cert: SSHCertificate, tmp_path: Path, run: Runner) -> dict[str, object]:
    path = tmp_path / "id-cert.pub"
    path.write_text(to_line(cert, "test") + "\n")
    result = run("-L", "-f", str(path))
    assert result.returncode == 0, result.stderr
    return parse_listing(result.stdout)


def test_user_certificate(
    ec_ca: MemorySigner, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner
) -> None:
    key = subject_keys["ecdsa-sha2-nistp256"]
    cert = build_and_sign(
        key,
        serial=18446744073709551615 - 1,
        cert_type=USER,
        key_id="alice@example.com",
        principals=["alice", "root"],
        valid_after=AFTER,
        valid_before=BEFORE,
        critical_options={"source-address": option_value("10.0.0.0/8,192.168.1.1")},
        extensions=dict(DEFAULT_USER_EXTENSIONS),
        signer=ec_ca,
    )
    info = listing(cert, tmp_path, ssh_keygen)
    assert info["Type"] == "ecdsa-sha2-nistp256-cert-v01@openssh.com user certificate"
    assert info["Public key"] == f"ECDSA-CERT {keys.fingerprint(key)}"
    ca_fp = keys.fingerprint(ec_ca.public_key())
    assert info["Signing CA"] == f"ECDSA {ca_fp} (using ecdsa-sha2-nistp256)"
    assert info["Key ID"] == '"alice@example.com"'
    assert info["Serial"] == str(cert.serial)
    assert info["Valid"] == f"from {_iso(AFTER)} to {_iso(BEFORE)}"
    assert info["Principals"] == ["alice", "root"]
    assert info["Critical Options"] == ["source-address 10.0.0.0/8,192.168.1.1"]
    assert info["Extensions"] == sorted(DEFAULT_USER_EXTENSIONS)


def test_host_certificate_ed25519_ca(ed_ca, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner) -> None:  # noqa: ANN001
    cert = build_and_sign(
        subject_keys["ssh-ed25519"],
        serial=42,
        cert_type=HOST,
        key_id="web1",
        principals=["web1.example.com", "10.0.0.5"],
        valid_after=AFTER,
        valid_before=AFTER + 30 * 86400,
        critical_options={},
        extensions={},
        signer=ed_ca,
    )
    info = listing(cert, tmp_path, ssh_keygen)
    assert info["Type"] == "ssh-ed25519-cert-v01@openssh.com host certificate"
    assert info["Signing CA"] == f"ED25519 {keys.fingerprint(ed_ca.public_key())} (using ssh-ed25519)"
    assert info["Serial"] == "42"
    assert info["Principals"] == ["web1.example.com", "10.0.0.5"]
    assert info["Critical Options"] == []
    assert info["Extensions"] == []


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("ssh-ed25519", "ED25519-CERT"),
        ("ecdsa-sha2-nistp256", "ECDSA-CERT"),
        ("ecdsa-sha2-nistp384", "ECDSA-CERT"),
        ("ecdsa-sha2-nistp521", "ECDSA-CERT"),
        ("ssh-rsa", "RSA-CERT"),
    ],
)
def test_every_subject_key_type(
    name: str, label: str, ec_ca: MemorySigner, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner
) -> None:
    key = subject_keys[name]
    cert = _user_cert(key, ec_ca, serial=7, critical_options={}, extensions=dict(DEFAULT_USER_EXTENSIONS))
    info = listing(cert, tmp_path, ssh_keygen)
    assert info["Type"] == f"{name}-cert-v01@openssh.com user certificate"
    assert info["Public key"] == f"{label} {keys.fingerprint(key)}"


@pytest.mark.parametrize("ca_name", ["rsa256", "rsa512"])
def test_rsa_ca(ca_name: str, rsa512_ca, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner) -> None:  # noqa: ANN001
    signer = rsa512_ca if ca_name == "rsa512" else MemorySigner(rsa.generate_private_key(65537, 3072))
    cert = _user_cert(subject_keys["ssh-ed25519"], signer)
    info = listing(cert, tmp_path, ssh_keygen)
    algorithm = "rsa-sha2-512" if ca_name == "rsa512" else "rsa-sha2-256"
    assert info["Signing CA"] == f"RSA {keys.fingerprint(signer.public_key())} (using {algorithm})"


def test_ssh_keygen_rejects_bad_signature(
    ec_ca: MemorySigner, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner
) -> None:
    cert = _user_cert(subject_keys["ssh-ed25519"], ec_ca)
    raw = cert.raw.replace(b"\x00\x00\x00\x01k", b"\x00\x00\x00\x01K")  # key ID "k" -> "K"
    forged = SSHCertificate(**{**cert.__dict__, "raw": raw})
    path = tmp_path / "forged-cert.pub"
    path.write_text(to_line(forged) + "\n")
    assert ssh_keygen("-L", "-f", str(path)).returncode != 0


def test_refused_keys_from_ssh_keygen(tmp_path: Path, ssh_keygen: Runner) -> None:
    from stepless.ssh import parse_public_key

    for args in (("-t", "rsa", "-b", "1024"), ("-t", "dsa")):
        path = tmp_path / f"id_{args[1]}"
        result = ssh_keygen(*args, "-N", "", "-q", "-f", str(path))
        if result.returncode != 0:  # DSA may be compiled out of newer OpenSSH
            continue
        with pytest.raises(BadRequest):
            parse_public_key(path.with_suffix(".pub").read_text())
