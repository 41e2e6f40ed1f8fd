"""``stepless certificate create``: CSRs, keys, passwords, SAN typing and every error path."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepless.cli import keys

OPENSSL = "/usr/bin/openssl"
Run = Callable[..., subprocess.CompletedProcess[str]]


def _csr(path: Path) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(path.read_bytes())


def _san(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName:
    return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_csr_without_password(invoke: Callable[..., Result], tmp_path: Path) -> None:
    csr_path, key_path = tmp_path / "foo.csr", tmp_path / "foo.key"
    res = invoke(
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        "foo.example.com",
        str(csr_path),
        str(key_path),
    )
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        f"Your certificate signing request has been saved in {csr_path}.",
        f"Your private key has been saved in {key_path}.",
    ]
    assert res.stdout == ""
    csr = _csr(csr_path)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=foo.example.com"
    assert _san(csr).get_values_for_type(x509.DNSName) == ["foo.example.com"]
    assert key_path.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----\nMH")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(csr_path.stat().st_mode) == 0o644
    key = keys.load_private_key(str(key_path))
    assert keys.public_key_pem(key) == keys.public_key_pem(csr.public_key())  # type: ignore[arg-type]
    subprocess.run(
        [OPENSSL, "req", "-verify", "-noout", "-in", str(csr_path)], check=True, capture_output=True
    )


def test_csr_with_password_file_flags_after_positionals(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    csr_path, key_path = tmp_path / "foo.csr", tmp_path / "foo.key"
    res = invoke(
        "certificate",
        "create",
        "foo.example.com",
        str(csr_path),
        str(key_path),
        "--csr",
        "--password-file",
        str(pw),
    )
    assert res.exit_code == 0, res.output
    pem = key_path.read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in pem and b"DEK-Info: AES-256-CBC" in pem
    subprocess.run(
        [OPENSSL, "pkey", "-in", str(key_path), "-passin", f"file:{pw}", "-noout"],
        check=True,
        capture_output=True,
    )
    bad = subprocess.run(
        [OPENSSL, "pkey", "-in", str(key_path), "-passin", "pass:wrong", "-noout"], capture_output=True
    )
    assert bad.returncode != 0
    subprocess.run(
        [OPENSSL, "req", "-verify", "-noout", "-in", str(csr_path)], check=True, capture_output=True
    )


def test_csr_san_typing(invoke: Callable[..., Result], tmp_path: Path) -> None:
    csr_path = tmp_path / "svc.csr"
    res = invoke(
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        "svc",
        str(csr_path),
        str(tmp_path / "svc.key"),
        "--san",
        "svc.example.com",
        "--san",
        "10.1.2.3",
        "--san",
        "2001:db8::1",
        "--san",
        "ops@example.com",
        "--san",
        "spiffe://example.com/svc",
    )
    assert res.exit_code == 0, res.output
    san = _san(_csr(csr_path))
    assert san.get_values_for_type(x509.DNSName) == ["svc.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("2001:db8::1"),
    ]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.com/svc"]
    subprocess.run(
        [OPENSSL, "req", "-verify", "-noout", "-in", str(csr_path)], check=True, capture_output=True
    )


@pytest.mark.parametrize(
    ("flags", "desc", "header"),
    [
        (["--kty", "RSA", "--size", "2048"], "RSA 2048", b"-----BEGIN RSA PRIVATE KEY-----"),
        (["--kty", "EC", "--crv", "P-384"], "ECDSA P-384", b"-----BEGIN EC PRIVATE KEY-----"),
        (["--kty", "OKP", "--crv", "Ed25519"], "Ed25519", b"-----BEGIN PRIVATE KEY-----"),
    ],
)
def test_csr_key_types(
    invoke: Callable[..., Result], tmp_path: Path, flags: list[str], desc: str, header: bytes
) -> None:
    csr_path, key_path = tmp_path / "x.csr", tmp_path / "x.key"
    res = invoke(
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        *flags,
        "x.test",
        str(csr_path),
        str(key_path),
    )
    assert res.exit_code == 0, res.output
    assert keys.describe_key(_csr(csr_path).public_key()) == desc
    assert key_path.read_bytes().startswith(header)
    subprocess.run(
        [OPENSSL, "req", "-verify", "-noout", "-in", str(csr_path)], check=True, capture_output=True
    )


def test_force_overwrites(invoke: Callable[..., Result], tmp_path: Path) -> None:
    csr_path, key_path = tmp_path / "x.csr", tmp_path / "x.key"
    csr_path.write_text("old")
    res = invoke(
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        "--force",
        "x.test",
        str(csr_path),
        str(key_path),
    )
    assert res.exit_code == 0, res.output
    assert _csr(csr_path).is_signature_valid


def test_self_signed_profile(invoke: Callable[..., Result], tmp_path: Path) -> None:
    crt, key = tmp_path / "ss.crt", tmp_path / "ss.key"
    res = invoke(
        "certificate",
        "create",
        "--profile",
        "self-signed",
        "--subtle",
        "--no-password",
        "--insecure",
        "ss.test",
        str(crt),
        str(key),
        "--not-after",
        "1h",
    )
    assert res.exit_code == 0, res.output
    assert f"Your certificate has been saved in {crt}." in res.stderr
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    cert.verify_directly_issued_by(cert)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 3600
    subprocess.run([OPENSSL, "verify", "-CAfile", str(crt), str(crt)], capture_output=True)


def test_root_and_leaf_profiles(invoke: Callable[..., Result], tmp_path: Path) -> None:
    root, root_key = tmp_path / "root.crt", tmp_path / "root.key"
    pw = tmp_path / "pw"
    pw.write_text("rootpw")
    assert (
        invoke(
            "certificate",
            "create",
            "--profile",
            "root-ca",
            "Test Root",
            str(root),
            str(root_key),
            "--password-file",
            str(pw),
        ).exit_code
        == 0
    )
    leaf, leaf_key = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    res = invoke(
        "certificate",
        "create",
        "leaf.test",
        str(leaf),
        str(leaf_key),
        "--ca",
        str(root),
        "--ca-key",
        str(root_key),
        "--ca-password-file",
        str(pw),
        "--no-password",
        "--insecure",
    )
    assert res.exit_code == 0, res.output
    out = subprocess.run([OPENSSL, "verify", "-CAfile", str(root), str(leaf)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# --- error paths: one line on stderr, exit != 0, nothing written ---------------------------------


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert text in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-password"], "error: flag '--no-password' requires the '--insecure' flag"),
        (
            ["--kty", "RSA", "--size", "1024", "--no-password", "--insecure"],
            "flag '--size' requires at least 2048",
        ),
        (["--crv", "P-999", "--no-password", "--insecure"], "invalid value 'P-999' for flag '--crv'"),
        (["--kty", "DSA", "--no-password", "--insecure"], "invalid value 'DSA' for flag '--kty'"),
        ([], "no terminal to ask on; give it with --password-file FILE"),
        (["--password-file", "missing-pw"], "error reading missing-pw"),
        (["--password-file", "pw", "--no-password", "--insecure"], "incompatible"),
        (
            [
                "--not-after",
                "tomorrow",
                "--no-password",
                "--insecure",
                "--profile",
                "self-signed",
                "--subtle",
                "--force",
            ],
            "invalid value 'tomorrow' for flag '--not-after'",
        ),
    ],
)
def test_create_errors(stepless: Run, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "pw").write_text("pw\n")
    csr_flag = [] if "--profile" in args else ["--csr"]
    proc = stepless("certificate", "create", *csr_flag, "foo.example.com", "foo.csr", "foo.key", *args)
    _assert_one_line_error(proc, message)
    assert not (tmp_path / "foo.csr").exists()
    assert not (tmp_path / "foo.key").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "'--profile leaf' requires the '--ca' flag"),
        (["--profile", "self-signed"], "'--profile self-signed' requires the '--subtle' flag"),
    ],
)
def test_certificate_profile_errors(stepless: Run, tmp_path: Path, args: list[str], message: str) -> None:
    proc = stepless(
        "certificate", "create", "foo", "foo.crt", "foo.key", "--no-password", "--insecure", *args
    )
    _assert_one_line_error(proc, message)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_without_force(stepless: Run, tmp_path: Path) -> None:
    create = ("certificate", "create", "--csr", "--no-password", "--insecure", "foo.example.com", "foo.csr", "foo.key")
    (tmp_path / "foo.csr").write_text("keep me")
    proc = stepless(*create)
    _assert_one_line_error(proc, "foo.csr already exists; use --force")
    assert (tmp_path / "foo.csr").read_text() == "keep me"
    assert not (tmp_path / "foo.key").exists()
    (tmp_path / "foo.csr").unlink()
    (tmp_path / "foo.key").write_text("keep key")
    proc = stepless(*create)
    _assert_one_line_error(proc, "foo.key already exists")
    assert not (tmp_path / "foo.csr").exists()
    assert (tmp_path / "foo.key").read_text() == "keep key"


def test_same_file_for_csr_and_key(stepless: Run, tmp_path: Path) -> None:
    proc = stepless("certificate", "create", "--csr", "--no-password", "--insecure", "x", "same", "same")
    _assert_one_line_error(proc, "must be different files")
    assert list(tmp_path.iterdir()) == []


def test_missing_argument_is_one_line(stepless: Run, tmp_path: Path) -> None:
    proc = stepless("certificate", "create", "--csr", "x")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_subprocess_success(stepless: Run, tmp_path: Path) -> None:
    proc = stepless(
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        "localhost",
        "localhost.csr",
        "localhost.key",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "Your certificate signing request has been saved in localhost.csr.",
        "Your private key has been saved in localhost.key.",
    ]
    pem = (tmp_path / "localhost.csr").read_bytes()
    csr = x509.load_pem_x509_csr(pem)
    assert csr.public_bytes(serialization.Encoding.PEM) == pem
