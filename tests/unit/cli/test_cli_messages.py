"""CLI messages (issue 11, item 9): what a user reads when something goes wrong is one readable line.

The TLS cases run a real TLS server on loopback that verifies client certificates as the local gateway and
API Gateway's mTLS do, so the alerts (certificate expired, unknown CA) are the ones OpenSSL really sends.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless.cli import main as cli_main
from stepless.cli.client import CAClient, TLSRefused
from stepless.cli.renew import renew_once
from stepless.errors import ClientError
from tests.unit.cli._cli_certs import PROVISIONER_OID, provisioner_der

NOW = dt.datetime.now(dt.UTC)


# --- a small PKI and a TLS server that asks for client certificates -------------------------------------


def _cert(cn: str, key: Any, issuer: tuple[x509.Certificate, Any] | None, *, ca: bool = False,
          expired: bool = False, provisioner: str | None = None, ip: str | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start, end = (NOW - dt.timedelta(days=2), NOW - dt.timedelta(days=1)) if expired else \
        (NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=1))
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer[0].subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if ip:
        import ipaddress

        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    if provisioner:
        b = b.add_extension(x509.UnrecognizedExtension(PROVISIONER_OID, provisioner_der(1, provisioner, "kid")),
                            critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(*items: Any) -> bytes:
    out = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    return out


class PKI:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.root_key = _key()
        self.root = _cert("Test Root", self.root_key, None, ca=True)
        self.root_file = self.write("root.crt", self.root)
        server_key = _key()
        self.server_chain = self.write("server.crt", _cert("127.0.0.1", server_key, (self.root, self.root_key),
                                                           ip="127.0.0.1"))
        self.server_key = self.write("server.key", server_key)

    def write(self, name: str, *items: Any) -> str:
        path = self.dir / name
        path.write_bytes(_pem(*items))
        return str(path)

    def client(self, name: str, *, expired: bool = False, other_ca: bool = False,
               provisioner: str | None = "admin") -> tuple[str, str]:
        key = _key()
        if other_ca:
            other_key = _key()
            issuer = (_cert("Another Root", other_key, None, ca=True), other_key)
        else:
            issuer = (self.root, self.root_key)
        cert = _cert(name, key, issuer, expired=expired, provisioner=provisioner)
        return self.write(f"{name}.crt", cert, issuer[0]), self.write(f"{name}.key", key)


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path)


class _Handler(http.server.BaseHTTPRequestHandler):
    provisioners: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _json(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._json(200, {"provisioners": self.provisioners, "nextCursor": ""})

    def do_POST(self) -> None:  # noqa: N802
        self._json(401, {"status": 401, "message": "The request lacked necessary authorization: token renewal"})


@pytest.fixture(params=["tls1.3"])
def tls_ca(pki: PKI, request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Handler]]]:
    """An HTTPS server on 127.0.0.1 verifying client certificates (optional) against the PKI's root.

    With TLS 1.2 the server checks the client certificate inside the handshake, so the client reads the alert
    deterministically; with TLS 1.3 the alert may race the client's request (the CLI checks what it can first).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if request.param == "tls1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_chain, pki.server_key)
    ctx.load_verify_locations(pki.root_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    handler = type("Handler", (_Handler,), {"provisioners": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


# --- mTLS renewal -------------------------------------------------------------------------------------------


def test_expired_certificate_over_mtls_says_it_expired(pki, tls_ca):
    url, handler = tls_ca
    handler.provisioners = [{"type": "JWK", "name": "admin", "claims": {}}]
    crt, key = pki.client("old.example.com", expired=True)
    with pytest.raises(ClientError) as e:
        renew_once(url, pki.root_file, crt, key, None, "mtls")
    message = str(e.value)
    assert "SSLV3" not in message and "_ssl.c" not in message
    assert message.startswith(f"the certificate in {crt} expired on ")
    assert "so the CA refuses it for mutual TLS" in message
    assert "does not allow renewal after expiry" in message and "--token-auth" not in message


def test_expired_certificate_suggests_token_auth_where_it_can_work(pki, tls_ca):
    url, handler = tls_ca
    handler.provisioners = [{"type": "JWK", "name": "admin", "claims": {"allowRenewalAfterExpiry": True}}]
    crt, key = pki.client("old.example.com", expired=True)
    with pytest.raises(ClientError, match="allows renewal after expiry: use --token-auth"):
        renew_once(url, pki.root_file, crt, key, None, "mtls")
    # without --mtls the CLI goes on with the renew token (this server refuses it: the CA's message shows)
    with pytest.raises(ClientError, match=r"expired on .* and the CA refuses to renew it \(.*token renewal\)"):
        renew_once(url, pki.root_file, crt, key, None, "auto")


@pytest.mark.parametrize("tls_ca", ["tls1.2"], indirect=True)
@pytest.mark.parametrize(("client", "kind", "text"), [
    (dict(expired=True), "expired", "the CA refused the client certificate: it has expired"),
    (dict(other_ca=True), "unknown_ca", "the CA's root has changed"),
])
def test_tls_alerts_about_the_client_certificate_are_readable(pki, tls_ca, client, kind, text):
    """What the CA says in the handshake (e.g. ``ca revoke --cert`` with such a certificate)."""
    url, _ = tls_ca
    crt, key = pki.client("svc.example.com", **client)
    with pytest.raises(TLSRefused) as e:
        CAClient(url, pki.root_file, client_cert=(crt, key)).post("/revoke", {"serial": "1"})
    assert e.value.kind == kind and text in str(e.value) and "ALERT" not in str(e.value)


def test_certificate_of_a_ca_whose_root_changed(pki, tls_ca):
    url, _ = tls_ca
    crt, key = pki.client("svc.example.com", other_ca=True)
    with pytest.raises(ClientError) as e:
        renew_once(url, pki.root_file, crt, key, None, "mtls")
    assert "UNKNOWN_CA" not in str(e.value)
    assert "the CA's root has changed" in str(e.value) and "stepless ca bootstrap" in str(e.value)


def test_certificate_and_key_that_do_not_match(pki, tls_ca):
    url, _ = tls_ca
    crt, _ = pki.client("a.example.com")
    _, other_key = pki.client("b.example.com")
    with pytest.raises(ClientError, match="the certificate and the private key do not match"):
        renew_once(url, pki.root_file, crt, other_key, None, "mtls")


# --- connection errors: one line, no OpenSSL internals ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused(stepless, pki):
    url = f"https://127.0.0.1:{_free_port()}"
    res = stepless("ca", "health", "--ca-url", url, "--root", pki.root_file)
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: cannot connect to the CA: connection refused at {url}: is the CA running?"


def test_a_server_that_does_not_speak_tls(stepless, pki):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        res = stepless("ca", "health", "--ca-url", url, "--root", pki.root_file)
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: cannot connect to the CA: the server at {url} does not speak TLS "
                                  "(is the URL the CA's https:// URL?)")


def test_a_root_file_that_is_not_a_certificate(stepless, tmp_path):
    (tmp_path / "root.crt").write_text("not a certificate\n")
    res = stepless("ca", "health", "--ca-url", "https://127.0.0.1:1", "--root", "root.crt")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("error: error reading the root certificate root.crt: "), res.stderr
    assert "Traceback" not in res.stderr


# --- usage -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["ca"], ["ssh"]], ids=["stepless", "stepless-ca", "stepless-ssh"])
def test_a_bare_group_prints_its_help_and_exits_0(stepless, args):
    res = stepless(*args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"Usage: stepless {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in res.stdout and res.stderr == ""


@pytest.mark.parametrize(("args", "missing"), [
    (["svc.example.com", "svc.crt"], "missing argument KEY_FILE"),
    (["svc.example.com"], "missing arguments CRT_FILE and KEY_FILE"),
])
def test_ca_certificate_names_what_is_missing(stepless, args, missing):
    res = stepless("ca", "certificate", *args)
    assert res.returncode == 2 and res.stderr.strip() == f"error: {missing}"


def test_every_option_has_help():
    cli_main._register()
    bare: list[str] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        bare.extend(f"{' '.join(path)} {p.opts[0]}" for p in cmd.params
                    if isinstance(p, click.Option) and not p.hidden and not p.help)

    walk(cli_main.cli, ["stepless"])
    assert bare == []


def test_ssh_certificate_insecure_has_help(stepless):
    res = stepless("ssh", "certificate", "--help")
    line = next(line for line in res.stdout.splitlines() if "--insecure" in line)
    assert "Allow insecure choices" in line


# --- passwords ---------------------------------------------------------------------------------------------


def _encrypted_key(tmp_path: Path, password: bytes = b"right") -> str:
    path = tmp_path / "enc.key"
    path.write_bytes(_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(password)))
    return str(path)


def test_key_password_without_a_terminal_names_the_flag(stepless, pki, tmp_path):
    crt, _ = pki.client("svc.example.com")
    key = _encrypted_key(tmp_path)
    res = stepless("ca", "renew", crt, key, "--force", "--ca-url", "https://127.0.0.1:1", "--root", pki.root_file)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: Please enter the password to decrypt {key}: there is no terminal to "
                                  "ask on; give it with --password-file FILE")


def test_wrong_key_password_names_the_flag(stepless, pki, tmp_path):
    crt, _ = pki.client("svc.example.com")
    key = _encrypted_key(tmp_path)
    (tmp_path / "pw").write_text("wrong\n")
    res = stepless("ca", "renew", crt, key, "--force", "--password-file", "pw", "--ca-url", "https://127.0.0.1:1",
                   "--root", pki.root_file)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: error decrypting {key}: x509: decryption password incorrect "
                                  "(the password from --password-file pw)")


def test_provisioner_password_without_a_terminal_names_the_flag():
    from stepless.cli import ui

    with pytest.raises(ClientError, match="give it with --provisioner-password-file FILE$"):
        ui.password(None, "Please enter the password to decrypt the provisioner key: ",
                    flag="--provisioner-password-file")


@pytest.mark.parametrize(("client", "text"), [
    (dict(expired=True), "has expired, so the CA refuses it for mutual TLS: revoke it by serial with a token"),
    (dict(other_ca=True), "the CA's root has changed since"),
])
def test_revoke_over_mtls_explains_a_certificate_the_ca_cannot_accept(stepless, pki, tls_ca, client, text):
    url, _ = tls_ca
    crt, key = pki.client("svc.example.com", **client)
    res = stepless("ca", "revoke", "--cert", crt, "--key", key, "--ca-url", url, "--root", pki.root_file)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert text in res.stderr, res.stderr
