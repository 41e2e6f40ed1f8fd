"""tls-alpn-01 (RFC 8737) and http-01 validation against loopback responders: what passes, and each way an
answer is wrong (a real TLS handshake with ALPN, real certificates)."""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stepless.acme import validation
from stepless.acme.errors import AcmeError
from stepless.acme.messages import Identifier

KEY_AUTH = "token.thumbprint"
NAME = "alpn.acme.test"


def _cert(tmp_path, *, names=(NAME,), digest: bytes | None = None, critical=True, extension=True):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).public_key(key.public_key())
               .serial_number(1).not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(hours=1))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False))
    if extension:
        value = b"\x04\x20" + (digest or hashlib.sha256(KEY_AUTH.encode()).digest())
        builder = builder.add_extension(x509.UnrecognizedExtension(validation.ACME_IDENTIFIER, value),
                                        critical=critical)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """Start a one-shot TLS responder with the given certificate and ALPN protocols; returns its port."""
    servers = []

    def start(cert_path, key_path, alpn=("acme-tls/1",)):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        servers.append(sock)

        def serve():
            try:
                conn, _ = sock.accept()
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

        threading.Thread(target=serve, daemon=True).start()
        monkeypatch.setenv(validation.TLSALPN01_PORT, str(sock.getsockname()[1]))
        monkeypatch.setenv(validation.VALIDATION_HOST, "127.0.0.1")

    yield start
    for sock in servers:
        sock.close()


def test_tlsalpn01_accepts_the_right_certificate(tmp_path, tls_server):
    tls_server(*_cert(tmp_path))
    validation.tlsalpn01(Identifier("dns", NAME), KEY_AUTH)


@pytest.mark.parametrize(("variant", "kind"), [
    ({"digest": b"\x00" * 32}, "incorrectResponse"),
    ({"critical": False}, "incorrectResponse"),
    ({"extension": False}, "incorrectResponse"),
    ({"names": (NAME, "other.acme.test")}, "incorrectResponse"),
    ({"names": ("other.acme.test",)}, "incorrectResponse"),
])
def test_tlsalpn01_refuses_wrong_certificates(tmp_path, tls_server, variant, kind):
    tls_server(*_cert(tmp_path, **variant))
    with pytest.raises(AcmeError) as e:
        validation.tlsalpn01(Identifier("dns", NAME), KEY_AUTH)
    assert e.value.kind == kind


def test_tlsalpn01_needs_the_alpn_protocol(tmp_path, tls_server):
    tls_server(*_cert(tmp_path), alpn=("h2",))
    with pytest.raises(AcmeError) as e:
        validation.tlsalpn01(Identifier("dns", NAME), KEY_AUTH)
    assert e.value.kind == "tls"


def test_unreachable_targets_are_connection_or_tls_problems(monkeypatch):
    from bench.common import free_port

    port = str(free_port())
    monkeypatch.setenv(validation.VALIDATION_HOST, "127.0.0.1")
    monkeypatch.setenv(validation.HTTP01_PORT, port)
    monkeypatch.setenv(validation.TLSALPN01_PORT, port)
    with pytest.raises(AcmeError) as e:
        validation.http01(Identifier("dns", NAME), "t", KEY_AUTH)
    assert e.value.kind == "connection"
    with pytest.raises(AcmeError) as e:
        validation.tlsalpn01(Identifier("dns", NAME), KEY_AUTH)
    assert e.value.kind == "tls"
