"""KRLs checked by the real ``ssh-keygen -Q``."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stepless.signers.memory import MemorySigner
from stepless.ssh import krl, wire
from stepless.ssh.certificate import USER, SSHCertificate, build_and_sign, to_line

Runner = Callable[..., subprocess.CompletedProcess]
AFTER = 1_700_000_000


def _cert_file(signer: MemorySigner, key, serial: int, tmp_path: Path) -> Path:  # noqa: ANN001
    cert: SSHCertificate = build_and_sign(
        key,
        serial=serial,
        cert_type=USER,
        key_id=f"cert-{serial}",
        principals=["u"],
        valid_after=AFTER,
        valid_before=AFTER + 3600,
        signer=signer,
    )
    path = tmp_path / f"serial{serial}-cert.pub"
    path.write_text(to_line(cert, f"s{serial}") + "\n")
    return path


def data_subsection_types(data: bytes) -> list[int]:
    """The certificate subsection types of a KRL with one certificates section."""
    reader = wire.Reader(data[len(krl.KRL_MAGIC) :])
    reader.uint32(), reader.uint64(), reader.uint64(), reader.uint64(), reader.string(), reader.string()
    assert reader.byte() == krl.KRL_SECTION_CERTIFICATES
    section = wire.Reader(reader.string())
    reader.expect_end()
    section.string(), section.string()
    types = []
    while not section.at_end():
        types.append(section.byte())
        section.string()
    return types


def test_header_layout(ec_ca: MemorySigner) -> None:
    data = krl.build_krl(ec_ca.public_key(), [], version=9, generated_at=AFTER, comment="c")
    reader = wire.Reader(data[len(krl.KRL_MAGIC) :])
    assert data.startswith(b"SSHKRL\n\x00")
    assert reader.uint32() == 1
    assert (reader.uint64(), reader.uint64(), reader.uint64()) == (9, AFTER, 0)
    assert reader.string() == b""
    assert reader.text() == "c"
    reader.expect_end()


def test_revoked_and_ok(ec_ca: MemorySigner, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner) -> None:
    path = tmp_path / "krl"
    path.write_bytes(krl.build_krl(ec_ca.public_key(), [7, 5], version=1, generated_at=AFTER))
    key = subject_keys["ecdsa-sha2-nistp256"]
    revoked = ssh_keygen("-Q", "-f", str(path), str(_cert_file(ec_ca, key, 5, tmp_path)))
    assert revoked.returncode == 1
    assert "REVOKED" in revoked.stdout
    ok = ssh_keygen("-Q", "-f", str(path), str(_cert_file(ec_ca, key, 6, tmp_path)))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith(": ok")


def test_other_ca_not_revoked(
    ec_ca: MemorySigner, ed_ca, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner  # noqa: ANN001
) -> None:
    path = tmp_path / "krl"
    path.write_bytes(krl.build_krl(ed_ca.public_key(), [5], version=1, generated_at=AFTER))
    cert = _cert_file(ec_ca, subject_keys["ssh-ed25519"], 5, tmp_path)
    assert ssh_keygen("-Q", "-f", str(path), str(cert)).returncode == 0


def test_listing_with_ranges(ec_ca: MemorySigner, tmp_path: Path, ssh_keygen: Runner) -> None:
    serials = [0, 1, 2, 10, 11, 12, 13, 20, 2**64 - 1, 10]
    path = tmp_path / "krl"
    path.write_bytes(krl.build_krl(ec_ca.public_key(), serials, version=3, generated_at=AFTER, comment="x"))
    result = ssh_keygen("-Q", "-l", "-f", str(path))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("serial")]
    # ssh-keygen merges adjacent serials when listing: 1 and 2 (list entries) show as one range
    assert sorted(lines) == sorted(["serial: 1-2", "serial: 10-13", "serial: 20", f"serial: {2**64 - 1}"])
    subsections = data_subsection_types(path.read_bytes())
    assert subsections == [krl.KRL_SECTION_CERT_SERIAL_LIST, krl.KRL_SECTION_CERT_SERIAL_RANGE]
    assert "# KRL version 3" in result.stdout


def test_bad_serial(ec_ca: MemorySigner) -> None:
    with pytest.raises(ValueError):
        krl.build_krl(ec_ca.public_key(), [-1], version=1, generated_at=AFTER)
    with pytest.raises(ValueError):
        krl.build_krl(ec_ca.public_key(), [2**64], version=1, generated_at=AFTER)


def test_hundred_thousand_serials(
    ec_ca: MemorySigner, subject_keys: dict, tmp_path: Path, ssh_keygen: Runner
) -> None:
    rng = random.Random(1)
    serials = {rng.getrandbits(64) for _ in range(100_000)} | set(range(1000, 1100))
    start = time.perf_counter()
    data = krl.build_krl(ec_ca.public_key(), serials, version=1, generated_at=AFTER)
    assert time.perf_counter() - start < 2.0
    assert len(data) < 8 * 100_000 + 1000
    path = tmp_path / "krl"
    path.write_bytes(data)
    key = subject_keys["ssh-ed25519"]
    inside = sorted(serials)[50_000]
    outside = next(s for s in range(1100, 1200) if s not in serials)
    for serial, expected in ((inside, 1), (1050, 1), (outside, 0)):
        result = ssh_keygen("-Q", "-f", str(path), str(_cert_file(ec_ca, key, serial, tmp_path)))
        assert result.returncode == expected, (serial, result.stdout, result.stderr)
