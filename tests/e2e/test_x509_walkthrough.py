"""The seed's X.509 walkthrough with our CLI against `stepless dev`, checked with OpenSSL, ssl and pkilint."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509

from tests.support.tools import venv_tool

pytestmark = pytest.mark.e2e


def test_ca_certificate_one_step(dev_ca, tmp_path):
    res = dev_ca.stepless("ca", "certificate", "svc.example.com", "svc.crt", "svc.key",
                          "--provisioner-password-file", str(dev_ca.password_file), cwd=tmp_path)
    assert "✔ Provisioner: admin (JWK) [kid: " in res.stderr
    assert f"✔ CA: {dev_ca.url}" in res.stderr
    assert "✔ Certificate: svc.crt" in res.stderr and "✔ Private Key: svc.key" in res.stderr
    chain = x509.load_pem_x509_certificates((tmp_path / "svc.crt").read_bytes())
    assert len(chain) == 2  # leaf + intermediate, like step
    assert chain[0].subject.rfc4514_string() == "CN=svc.example.com"
    out = subprocess.run(["openssl", "verify", "-CAfile", str(dev_ca.root), "-untrusted", "svc.crt", "svc.crt"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    short = dev_ca.stepless("certificate", "inspect", "svc.crt", "--short", cwd=tmp_path).stdout
    assert short.startswith("X.509v3 TLS Certificate (ECDSA P-256) [Serial: ")
    assert "Subject:     svc.example.com" in short and "Provisioner: admin [ID: " in short


def test_csr_token_sign_flow(dev_ca, tmp_path):
    dev_ca.stepless("certificate", "create", "--csr", "--no-password", "--insecure", "localhost",
                    "localhost.csr", "localhost.key", cwd=tmp_path)
    token = dev_ca.stepless("ca", "token", "localhost", "--provisioner-password-file",
                            str(dev_ca.password_file), cwd=tmp_path).stdout.strip()
    inspected = json.loads(dev_ca.stepless("crypto", "jwt", "inspect", "--insecure", cwd=tmp_path,
                                           input=token).stdout)
    assert set(inspected) == {"header", "payload", "signature"}
    assert inspected["payload"]["aud"] == dev_ca.url + "/1.0/sign"
    assert inspected["payload"]["sha"] == dev_ca.fingerprint
    res = dev_ca.stepless("ca", "sign", "--token", token, "localhost.csr", "localhost.crt", cwd=tmp_path)
    assert "✔ Certificate: localhost.crt" in res.stderr
    # the same token again: refused, one line, nothing written
    res = dev_ca.stepless("ca", "sign", "--token", token, "localhost.csr", "again.crt", cwd=tmp_path, check=False)
    assert res.returncode != 0 and "token already used" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 2  # "✔ CA: …" then the one error line
    assert not (tmp_path / "again.crt").exists()


def test_lifetimes(dev_ca, tmp_path):
    pw = str(dev_ca.password_file)
    dev_ca.stepless("ca", "certificate", "localhost", "short.crt", "short.key", "--not-after=5m",
                    "--provisioner-password-file", pw, cwd=tmp_path)
    leaf = x509.load_pem_x509_certificates((tmp_path / "short.crt").read_bytes())[0]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() == 6 * 60
    res = dev_ca.stepless("ca", "certificate", "localhost", "long.crt", "long.key", "--not-before=5m",
                          "--not-after=240h", "--provisioner-password-file", pw, cwd=tmp_path, check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        "error: The request was forbidden by the certificate authority: requested duration of 240h0m0s is "
        "more than the authorized maximum certificate duration of 24h1m0s."
    )
    assert not (tmp_path / "long.crt").exists() and not (tmp_path / "long.key").exists()


def test_bootstrap_checks_fingerprint(dev_ca, tmp_path):
    env = dev_ca.env(STEPLESS_HOME=str(tmp_path / "client"))
    res = dev_ca.stepless("ca", "bootstrap", "--ca-url", dev_ca.url, "--fingerprint", dev_ca.fingerprint,
                          cwd=tmp_path, env=env)
    assert (tmp_path / "client" / "certs" / "root_ca.crt").read_text() == dev_ca.root.read_text()
    wrong = "00" * 32
    res = dev_ca.stepless("ca", "bootstrap", "--ca-url", dev_ca.url, "--fingerprint", wrong, cwd=tmp_path,
                          env=dev_ca.env(STEPLESS_HOME=str(tmp_path / "c2")), check=False)
    assert res.returncode != 0 and "error:" in res.stderr


def _issue(dev_ca, tmp_path, name):
    dev_ca.stepless("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--provisioner-password-file",
                    str(dev_ca.password_file), cwd=tmp_path)
    return str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key")


def test_mutual_tls_handshake_with_issued_certificates(dev_ca, tmp_path):
    server_crt, server_key = _issue(dev_ca, tmp_path, "localhost")
    client_crt, client_key = _issue(dev_ca, tmp_path, "client.example.com")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(server_crt, server_key)
    sctx.load_verify_locations(str(dev_ca.root))
    sctx.verify_mode = ssl.CERT_REQUIRED
    cctx = ssl.create_default_context(cafile=str(dev_ca.root))
    cctx.load_cert_chain(client_crt, client_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict = {}

    def serve():
        conn, _ = listener.accept()
        with sctx.wrap_socket(conn, server_side=True) as tls:
            seen["peer"] = tls.getpeercert()
            tls.sendall(b"hello")

    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            cctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.recv(5) == b"hello"
    t.join(5)
    listener.close()
    subject = dict(x[0] for x in seen["peer"]["subject"])
    assert subject["commonName"] == "client.example.com"


def test_pkilint_leaf_and_intermediate(dev_ca, tmp_path):
    crt, _ = _issue(dev_ca, tmp_path, "lint.example.com")
    leaf, inter = x509.load_pem_x509_certificates(Path(crt).read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    for name, cert in (("leaf.pem", leaf), ("inter.pem", inter)):
        (tmp_path / name).write_bytes(cert.public_bytes(Encoding.PEM))
        out = subprocess.run([venv_tool("lint_pkix_cert"), "lint", "-s", "WARNING", name], cwd=tmp_path,
                             capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == "", (name, out.stdout, out.stderr)
