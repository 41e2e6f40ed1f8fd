"""``stepless certificate inspect|fingerprint`` and the renderers in stepless.cli.inspect."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepless.cli import inspect as render
from stepless.cli import keys
from stepless.x509 import extensions
from tests.unit.cli._cli_certs import make_cert, provisioner_der

Run = Callable[..., subprocess.CompletedProcess[str]]
CRED = "JxCvB3Yx6qYyw4iD6cV5Qk0BLCeW5gkRx1bG0ZxIjUg"


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path]:
    root, root_key = make_cert("Smallstep Root CA", ca=True, serial=1)
    inter, inter_key = make_cert(
        "Smallstep Intermediate CA", ca=True, issuer=root, issuer_key=root_key, serial=2
    )
    leaf, _ = make_cert(
        "svc.example.com",
        ["svc.example.com", "www.example.com", "10.0.0.7"],
        issuer=inter,
        issuer_key=inter_key,
        provisioner=(1, "admin", CRED),
    )
    paths = {"root": tmp_path / "root.crt", "inter": tmp_path / "inter.crt", "leaf": tmp_path / "svc.crt"}
    paths["root"].write_bytes(_pem(root))
    paths["inter"].write_bytes(_pem(inter))
    paths["leaf"].write_bytes(_pem(leaf, inter))
    return paths


def test_short_layout(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    res = invoke("certificate", "inspect", str(chain["leaf"]), "--short")
    assert res.exit_code == 0, res.output
    assert res.stdout == (
        "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 7720...1576]\n"
        "  Subject:     svc.example.com\n"
        "               www.example.com\n"
        "               10.0.0.7\n"
        "  Issuer:      Smallstep Intermediate CA\n"
        "  Provisioner: admin [ID: JxCv...IjUg]\n"
        "  Valid from:  2026-11-30T05:50:00Z\n"
        "          to:  2026-12-01T05:51:00Z\n"
    )


def test_short_ca_types(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    root = invoke("certificate", "inspect", "--short", str(chain["root"])).stdout
    assert root.startswith(
        "X.509v3 Root CA Certificate (ECDSA P-256) [Serial: 1]\n  Subject:     Smallstep Root CA\n"
    )
    assert "Provisioner" not in root
    inter = invoke("certificate", "inspect", "--short", str(chain["inter"])).stdout
    assert inter.startswith("X.509v3 Intermediate CA Certificate (ECDSA P-256) [Serial: 2]\n")
    assert "  Issuer:      Smallstep Root CA\n" in inter


def test_short_empty_subject_uses_first_san(tmp_path: Path) -> None:
    cert, _ = make_cert("", ["a.example.com", "b.example.com"])
    lines = render.short_text(cert).splitlines()
    assert lines[1:3] == ["  Subject:     a.example.com", "               b.example.com"]


def test_short_bundle(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    out = invoke("certificate", "inspect", "--short", "--bundle", str(chain["leaf"])).stdout
    assert out.count("X.509v3 ") == 2
    assert "X.509v3 Intermediate CA Certificate" in out


def test_full_text(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    res = invoke("certificate", "inspect", str(chain["leaf"]))
    assert res.exit_code == 0, res.output
    out = res.stdout
    for needle in (
        "Certificate:",
        "Version: 3 (0x2)",
        f"Serial Number: 7720123456789011576 (0x{7720123456789011576:x})",
        "Signature Algorithm: ECDSA-SHA256",
        "Issuer: CN=Smallstep Intermediate CA",
        "Not Before: Nov 30 05:50:00 2026 UTC",
        "Not After : Dec 01 05:51:00 2026 UTC",
        "Subject: CN=svc.example.com",
        "Public Key Algorithm: ECDSA",
        "Curve: P-256",
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "X509v3 Extended Key Usage:",
        "Server Authentication, Client Authentication",
        "X509v3 Subject Key Identifier:",
        "X509v3 Authority Key Identifier:",
        "keyid:",
        "DNS:svc.example.com, DNS:www.example.com, IP Address:10.0.0.7",
        "X509v3 Step Provisioner:",
        "Type: JWK",
        "Name: admin",
        f"CredentialID: {CRED}",
    ):
        assert needle in out, needle
    assert out.count("-----BEGIN") == 0
    root_out = invoke("certificate", "inspect", str(chain["root"])).stdout
    assert "CA:TRUE" in root_out and "Certificate Sign, CRL Sign" in root_out


def test_unknown_extension_as_hex() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(5)
        .not_valid_before(make_cert("x")[0].not_valid_before_utc)
        .not_valid_after(make_cert("x")[0].not_valid_after_utc)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x04\x02hi"), critical=False
        )
        .sign(key, keys.signature_hash(key))
    )
    out = render.full_text(cert)
    assert "1.2.3.4:\n" in out and "04:02:68:69" in out
    assert render.provisioner_extension(cert) is None


def test_json(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    res = invoke("certificate", "inspect", str(chain["leaf"]), "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["serial_number"] == "7720123456789011576"
    assert doc["subject"] == {"common_name": ["svc.example.com"]}
    assert doc["issuer_dn"] == "CN=Smallstep Intermediate CA"
    assert doc["validity"] == {
        "start": "2026-11-30T05:50:00Z",
        "end": "2026-12-01T05:51:00Z",
        "length": 86460,
    }
    ext = doc["extensions"]
    assert ext["key_usage"] == {"digital_signature": True}
    assert ext["extended_key_usage"] == {"server_auth": True, "client_auth": True}
    assert ext["subject_alt_name"]["dns_names"] == ["svc.example.com", "www.example.com"]
    assert ext["subject_alt_name"]["ip_addresses"] == ["10.0.0.7"]
    assert ext["step_provisioner"] == {"type": "JWK", "name": "admin", "credential_id": CRED}
    assert doc["subject_key_info"]["ecdsa_public_key"]["curve"] == "P-256"
    leaf = keys.load_certificates(str(chain["leaf"]))[0]
    assert (
        doc["fingerprint_sha256"] == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    bundle = json.loads(
        invoke("certificate", "inspect", str(chain["leaf"]), "--format", "json", "--bundle").stdout
    )
    assert isinstance(bundle, list) and len(bundle) == 2


def test_pem_format_and_stdin(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    data = chain["leaf"].read_bytes()
    res = invoke("certificate", "inspect", "-", "--format", "pem", input=data)
    assert res.exit_code == 0, res.output
    assert (
        res.stdout.encode() == data.split(b"-----END CERTIFICATE-----\n")[0] + b"-----END CERTIFICATE-----\n"
    )
    res = invoke("certificate", "inspect", "-", "--format", "pem", "--bundle", input=data)
    assert res.stdout.encode() == data


def test_der_input(invoke: Callable[..., Result], chain: dict[str, Path], tmp_path: Path) -> None:
    cert = keys.load_certificates(str(chain["root"]))[0]
    der = tmp_path / "root.der"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert invoke("certificate", "inspect", "--short", str(der)).stdout.startswith(
        "X.509v3 Root CA Certificate"
    )


def test_inspect_csr(invoke: Callable[..., Result], tmp_path: Path) -> None:
    csr = keys.make_csr(
        keys.generate_key("RSA", size=2048), "foo.example.com", ["foo.example.com", "1.2.3.4"]
    )
    path = tmp_path / "foo.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    short = invoke("certificate", "inspect", "--short", str(path)).stdout
    assert short == (
        "X.509v3 Certificate Signing Request (RSA 2048)\n"
        "  Subject:     foo.example.com\n"
        "               1.2.3.4\n"
    )
    full = invoke("certificate", "inspect", str(path)).stdout
    assert "Certificate Request:" in full and "Requested Extensions:" in full
    assert "DNS:foo.example.com, IP Address:1.2.3.4" in full and "Modulus:" in full
    doc = json.loads(invoke("certificate", "inspect", str(path), "--format", "json").stdout)
    assert doc["signature"]["valid"] is True
    assert doc["names"] == ["foo.example.com", "1.2.3.4"]


def test_fingerprint(invoke: Callable[..., Result], chain: dict[str, Path]) -> None:
    leaf, inter = keys.load_certificates(str(chain["leaf"]))
    res = invoke("certificate", "fingerprint", str(chain["leaf"]))
    assert res.exit_code == 0, res.output
    assert res.stdout == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest() + "\n"
    out = subprocess.run(
        ["/usr/bin/openssl", "x509", "-in", str(chain["leaf"]), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().split("=", 1)[1].replace(":", "").lower() == res.stdout.strip()
    both = invoke("certificate", "fingerprint", "--bundle", str(chain["leaf"])).stdout.split()
    assert both[1] == hashlib.sha256(inter.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_provisioner_extension_decoding() -> None:
    cert, _ = make_cert("x", provisioner=(7, "x5c-prov", "abc"))
    assert render.provisioner_extension(cert) == (7, "x5c-prov", "abc")
    assert extensions.decode(provisioner_der(9, "sshpop", "")) == (9, "sshpop", "")
    for bad in (b"", b"\x30\x05\x02\x01\x01", b"\x04\x00", provisioner_der(1, "a", "b") + b"\x00"):
        with pytest.raises(ValueError):
            extensions.decode(bad)


@pytest.mark.parametrize(("text", "want"), [("12345678", "12345678"), ("123456789", "1234...6789")])
def test_abbreviate(text: str, want: str) -> None:
    assert render.abbreviate(text) == want


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "open missing.crt: no such file or directory"),
        ("garbage", "not a certificate or certificate request"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "invalid certificate"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "no certificate or certificate request",
        ),
    ],
)
def test_inspect_errors(stepless: Run, tmp_path: Path, content: str | None, message: str) -> None:
    name = "missing.crt"
    if content is not None:
        name = "bad.crt"
        (tmp_path / name).write_text(content)
    proc = stepless("certificate", "inspect", name)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert message in proc.stderr and proc.stderr.startswith("error: ")


def test_fingerprint_errors(stepless: Run, tmp_path: Path) -> None:
    proc = stepless("certificate", "fingerprint", "-", input="nope")
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert "error parsing standard input" in proc.stderr
