"""CSRs nobody here wrote, against `stepless dev`: `openssl req` CSRs through our CLI and the real `step`, and
a third-party Python step-ca client (swarmauri_certservice_stepca) driven as its README shows.

step-ca's per-type SAN rule (issue 11, item 1): a CSR without SANs, or without names of one type, is issued
with the token's SANs; names it does carry must be exactly the token's names of their type.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

pytestmark = pytest.mark.e2e


def openssl_csr(tmp_path: Path, name: str, cn: str, *addext: str) -> Path:
    """``openssl req -new`` with a fresh P-256 key, CN only unless ``-addext`` options are given."""
    csr = tmp_path / f"{name}.csr"
    extra = [arg for ext in addext for arg in ("-addext", ext)]
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / f"{name}.key"), "-out", str(csr), "-subj", f"/CN={cn}", *extra],
                   check=True, capture_output=True, timeout=30)
    text = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout
    assert ("Subject Alternative Name" in text) == bool(addext), text
    return csr


def names(path: Path) -> tuple[str, list[str], list[str]]:
    """(CN, DNS SANs, IP SANs) of the leaf in a chain file."""
    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return str(cn), san.get_values_for_type(x509.DNSName), [str(i) for i in san.get_values_for_type(x509.IPAddress)]


def our_token(dev_ca, tmp_path: Path, subject: str, *sans: str) -> str:
    flags = [arg for san in sans for arg in ("--san", san)]
    return dev_ca.stepless("ca", "token", subject, *flags, "--provisioner-password-file", str(dev_ca.password_file),
                           cwd=tmp_path).stdout.strip()


def test_openssl_csr_without_sans_through_our_cli(dev_ca, tmp_path):
    csr = openssl_csr(tmp_path, "ci", "ci-runner")
    token = our_token(dev_ca, tmp_path, "ci-runner")
    dev_ca.stepless("ca", "sign", str(csr), "ci.crt", "--token", token, cwd=tmp_path)
    assert names(tmp_path / "ci.crt") == ("ci-runner", ["ci-runner"], [])
    # and without a token: the CLI makes one for the CSR's CN
    dev_ca.stepless("ca", "sign", str(csr), "ci2.crt", "--provisioner-password-file", str(dev_ca.password_file),
                    cwd=tmp_path)
    assert names(tmp_path / "ci2.crt") == ("ci-runner", ["ci-runner"], [])


def test_openssl_csr_without_sans_through_real_step(step, dev_ca, tmp_path):
    csr = openssl_csr(tmp_path, "ci", "ci-runner")
    token = step("ca", "token", "ci-runner", "--provisioner", "admin", "--password-file",
                 str(dev_ca.password_file)).stdout.strip()
    step("ca", "sign", str(csr), "ci.crt", "--token", token)
    assert names(tmp_path / "ci.crt") == ("ci-runner", ["ci-runner"], [])
    step("ca", "sign", str(csr), "ci2.crt", "--provisioner", "admin", "--provisioner-password-file",
         str(dev_ca.password_file))
    assert names(tmp_path / "ci2.crt") == ("ci-runner", ["ci-runner"], [])


def test_dns_and_ip_token_with_a_dns_only_csr_both_clis(step, dev_ca, tmp_path):
    csr = openssl_csr(tmp_path, "api", "api.internal", "subjectAltName=DNS:api.internal")
    ours = our_token(dev_ca, tmp_path, "api.internal", "api.internal", "10.0.0.5")
    dev_ca.stepless("ca", "sign", str(csr), "ours.crt", "--token", ours, cwd=tmp_path)
    assert names(tmp_path / "ours.crt") == ("api.internal", ["api.internal"], ["10.0.0.5"])
    theirs = step("ca", "token", "api.internal", "--san", "api.internal", "--san", "10.0.0.5", "--provisioner",
                  "admin", "--password-file", str(dev_ca.password_file)).stdout.strip()
    step("ca", "sign", str(csr), "step.crt", "--token", theirs)
    assert names(tmp_path / "step.crt") == ("api.internal", ["api.internal"], ["10.0.0.5"])


def test_a_csr_naming_another_ip_is_still_refused(dev_ca, tmp_path):
    csr = openssl_csr(tmp_path, "api", "api.internal", "subjectAltName=DNS:api.internal,IP:10.0.0.6")
    token = our_token(dev_ca, tmp_path, "api.internal", "api.internal", "10.0.0.5")
    res = dev_ca.stepless("ca", "sign", str(csr), "x.crt", "--token", token, cwd=tmp_path, check=False)
    assert res.returncode == 1 and not (tmp_path / "x.crt").exists()
    assert "IP addresses requested ['10.0.0.6'], token allows ['10.0.0.5']" in res.stderr


# --- a third-party Python client ----------------------------------------------------------------------


def _swarmauri_sign(dev_ca, cn: str, dns: list[str], ott: str) -> x509.Certificate:
    """swarmauri_certservice_stepca's README flow: create_csr (CN + DNS SANs), then sign_cert with the OTT."""
    service_mod = pytest.importorskip("swarmauri_certservice_stepca",
                                      reason="the dev extra's swarmauri_certservice_stepca is not installed")
    from swarmauri_core.crypto.types import ExportPolicy, KeyRef, KeyType, KeyUse

    key = ec.generate_private_key(ec.SECP256R1())
    key_ref = KeyRef(kid="device", version=1, type=KeyType.EC, uses=(KeyUse.SIGN,),
                     export_policy=ExportPolicy.SECRET_WHEN_ALLOWED,
                     material=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))

    async def run() -> bytes:
        service = service_mod.StepCaCertService(ca_url=dev_ca.url, verify_tls=str(dev_ca.root), timeout_s=30.0)
        try:
            csr = await service.create_csr(key=key_ref, subject={"O": "Example Corp", "CN": cn},
                                           san={"dns": dns} if dns else None)
            return await service.sign_cert(csr, ca_key=key_ref, opts={"ott": ott})
        finally:
            await service.aclose()

    cert = x509.load_pem_x509_certificate(asyncio.run(run()))
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    return cert


def _san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(i) for i in san.get_values_for_type(x509.IPAddress)]


def test_third_party_python_client_readme_flow(dev_ca, tmp_path):
    """The README's device enrolment: CSR with CN and two DNS names, a token for exactly those."""
    ott = our_token(dev_ca, tmp_path, "device-001.example.com", "device-001.example.com", "device-001")
    cert = _swarmauri_sign(dev_ca, "device-001.example.com", ["device-001.example.com", "device-001"], ott)
    assert sorted(_san(cert)[0]) == ["device-001", "device-001.example.com"]
    assert cert.subject.rfc4514_string() == "CN=device-001.example.com"  # the token's subject, as step-ca


def test_third_party_python_client_dns_only_csr_with_a_dns_and_ip_token(dev_ca, tmp_path):
    """The client's CSRs carry DNS names only (it cannot take an IP from its token provider claims): the
    per-type rule issues them with the token's IP too."""
    ott = our_token(dev_ca, tmp_path, "sensor-7.example.com", "sensor-7.example.com", "192.0.2.7")
    cert = _swarmauri_sign(dev_ca, "sensor-7.example.com", ["sensor-7.example.com"], ott)
    assert _san(cert) == (["sensor-7.example.com"], ["192.0.2.7"])


def test_third_party_python_client_csr_without_sans(dev_ca, tmp_path):
    ott = our_token(dev_ca, tmp_path, "ci-runner")
    cert = _swarmauri_sign(dev_ca, "ci-runner", [], ott)
    assert _san(cert) == (["ci-runner"], [])
