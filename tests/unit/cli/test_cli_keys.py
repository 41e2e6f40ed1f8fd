"""stepless.cli.keys: key generation, PEM, loading, CSRs and SAN typing."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stepless.cli import keys, ui
from stepless.errors import ClientError
from tests.unit.cli._cli_certs import make_cert


@pytest.mark.parametrize(
    ("kty", "crv", "size", "cls", "desc"),
    [
        ("EC", "P-256", None, ec.EllipticCurvePrivateKey, "ECDSA P-256"),
        ("EC", "P-384", None, ec.EllipticCurvePrivateKey, "ECDSA P-384"),
        ("EC", "P-521", None, ec.EllipticCurvePrivateKey, "ECDSA P-521"),
        ("EC", None, None, ec.EllipticCurvePrivateKey, "ECDSA P-256"),
        ("RSA", None, 2048, rsa.RSAPrivateKey, "RSA 2048"),
        ("OKP", "Ed25519", None, ed25519.Ed25519PrivateKey, "Ed25519"),
        ("OKP", None, None, ed25519.Ed25519PrivateKey, "Ed25519"),
    ],
)
def test_generate_key(kty: str, crv: str | None, size: int | None, cls: type, desc: str) -> None:
    key = keys.generate_key(kty, crv, size)
    assert isinstance(key, cls)
    assert keys.describe_key(key.public_key()) == desc


def test_generate_key_defaults() -> None:
    assert keys.describe_key(keys.generate_key()) == "ECDSA P-256"


@pytest.mark.parametrize(
    ("kty", "crv", "size", "message"),
    [
        ("RSA", None, 1024, "flag '--size' requires at least 2048"),
        ("EC", "P-999", None, "invalid value 'P-999' for flag '--crv'; options are P-256, P-384, P-521"),
        ("OKP", "X25519", None, "invalid value 'X25519' for flag '--crv'; options are Ed25519"),
        ("DSA", None, None, "invalid value 'DSA' for flag '--kty'; options are EC, OKP, RSA"),
    ],
)
def test_generate_key_errors(kty: str, crv: str | None, size: int | None, message: str) -> None:
    with pytest.raises(ClientError) as e:
        keys.generate_key(kty, crv, size)
    assert str(e.value) == message


def test_key_to_pem_formats() -> None:
    eck = keys.generate_key("EC")
    assert keys.key_to_pem(eck, None).startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    enc = keys.key_to_pem(eck, "secret")
    assert enc.startswith(b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,")
    rk = keys.generate_key("RSA", size=2048)
    assert keys.key_to_pem(rk, None).startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    ok = keys.generate_key("OKP", "Ed25519")
    assert keys.key_to_pem(ok, None).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert keys.key_to_pem(ok, "secret").startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_load_private_key_plain_never_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = keys.generate_key()
    path = tmp_path / "k.key"
    path.write_bytes(keys.key_to_pem(key, None))

    def boom(*a: object, **k: object) -> str:
        raise AssertionError("asked for a password")

    monkeypatch.setattr(ui, "password", boom)
    loaded = keys.load_private_key(str(path))
    assert keys.public_key_pem(loaded) == keys.public_key_pem(key)


@pytest.mark.parametrize("kty", ["EC", "OKP"])
def test_load_private_key_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kty: str) -> None:
    key = keys.generate_key(kty, None)
    path = tmp_path / "k.key"
    path.write_bytes(keys.key_to_pem(key, "s3cret"))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert keys.public_key_pem(keys.load_private_key(str(path), str(pw))) == keys.public_key_pem(key)

    prompts: list[str] = []

    def fake(file_flag: str | None, prompt: str, *, confirm: bool = False, flag: str | None = None) -> str:
        prompts.append(prompt)
        return "s3cret"

    monkeypatch.setattr(ui, "password", fake)
    keys.load_private_key(str(path))
    assert prompts == [f"Please enter the password to decrypt {path}: "]


def test_load_private_key_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(keys.key_to_pem(keys.generate_key(), "right"))
    with pytest.raises(ClientError, match="decryption password incorrect"):
        keys.load_private_key(str(path), password="wrong")


def test_load_private_key_errors(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="no such file"):
        keys.load_private_key(str(tmp_path / "missing.key"))
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(ClientError, match="error decoding"):
        keys.load_private_key(str(bad))


def test_split_sans() -> None:
    dns, ips, emails, uris = keys.split_sans(
        ["a.example.com", "10.0.0.1", "::1", "me@example.com", "spiffe://td/w", "a.example.com", " "]
    )
    assert dns == ["a.example.com"]
    assert ips == ["10.0.0.1", "::1"]
    assert emails == ["me@example.com"]
    assert uris == ["spiffe://td/w"]


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName:
    return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_make_csr_typed_sans() -> None:
    key = keys.generate_key()
    csr = keys.make_csr(key, "svc", ["svc.example.com", "192.168.1.1", "ops@example.com", "https://x.test/a"])
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=svc"
    san = _sans(csr)
    assert san.get_values_for_type(x509.DNSName) == ["svc.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.1.1")]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["https://x.test/a"]


def test_make_csr_subject_is_default_san() -> None:
    assert _sans(keys.make_csr(keys.generate_key(), "foo.example.com", [])).get_values_for_type(
        x509.DNSName
    ) == ["foo.example.com"]
    assert _sans(keys.make_csr(keys.generate_key(), "127.0.0.1", [])).get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1")
    ]


@pytest.mark.parametrize(("kty", "crv"), [("EC", "P-384"), ("EC", "P-521"), ("RSA", None), ("OKP", None)])
def test_make_csr_every_key_type(kty: str, crv: str | None) -> None:
    assert keys.make_csr(keys.generate_key(kty, crv), "x.test").is_signature_valid


def test_load_certificates_pem_bundle_and_der(tmp_path: Path) -> None:
    a, _ = make_cert("a.test")
    b, _ = make_cert("b.test")
    pem = tmp_path / "bundle.pem"
    pem.write_bytes(a.public_bytes(serialization.Encoding.PEM) + b.public_bytes(serialization.Encoding.PEM))
    assert [c.serial_number for c in keys.load_certificates(str(pem))] == [a.serial_number, b.serial_number]
    der = tmp_path / "a.der"
    der.write_bytes(a.public_bytes(serialization.Encoding.DER))
    assert keys.load_certificates(str(der)) == [a]
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01junk")
    with pytest.raises(ClientError, match="invalid certificate"):
        keys.load_certificates(str(junk))
