"""Real ACME clients against `stepless dev`: certbot (http-01 standalone, dns-01 through a manual hook, renew,
revoke) and lego (http-01, tls-alpn-01, External Account Binding). The CA validates on loopback: the test-only
settings of stepless.acme.validation point it at the clients' ports and a DNS responder of the test (the
``ports``, ``dns`` and ``acme_ca`` fixtures of tests/e2e/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from stepless.local.devstack import local_environment
from tests.e2e.conftest import start_dev
from tests.support.procs import stop

CERTBOT = Path(sys.executable).parent / "certbot"


@pytest.fixture(scope="module")
def acme_ca_aws(tmp_path_factory, ports):
    """`stepless dev --aws-emulation`: the template's AcmeTable and grants on moto (the DynamoDB store)."""
    home = tmp_path_factory.mktemp("stepless-acme-aws-home")
    yield from start_dev(home, "--aws-emulation", STEPLESS_CONFIG_TTL="0",
                         STEPLESS_ACME_HTTP01_PORT=str(ports["http"]), STEPLESS_ACME_VALIDATION_HOST="127.0.0.1")


@pytest.fixture(scope="module")
def admin_env(acme_ca):
    env = {**acme_ca.env(), **local_environment(acme_ca.home)}
    for args in (["acme", "--type", "ACME", "--no-require-eab"], ["acme-eab", "--type", "ACME"]):
        acme_ca.stepless("ca", "provisioner", "add", *args, cwd=acme_ca.home, env=env)
    return env


def _certbot(ca, tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not CERTBOT.exists():
        pytest.skip("certbot is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(ca.root)}
    cmd = [str(CERTBOT), *args, "--non-interactive", "--config-dir", str(tmp / "etc"), "--work-dir", str(tmp / "work"),
           "--logs-dir", str(tmp / "logs")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if check and res.returncode != 0:
        pytest.fail(f"certbot {' '.join(args[:1])} failed ({res.returncode}): {res.stderr[-3000:]}")
    return res


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _names(cert: x509.Certificate) -> list[str]:
    return sorted(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                  .get_values_for_type(x509.DNSName))


def _revoked(ca, serial: int) -> bool:
    from stepless.stores import backend

    stores = backend.open_backend(local_environment(ca.home)[backend.STORE])
    try:
        return stores.revocations.get(str(serial)) is not None
    finally:
        stores.close()


def test_certbot_http01_certonly_renew_revoke(acme_ca, admin_env, ports, tmp_path):
    server = f"{acme_ca.url}/acme/acme/directory"
    common = ["--server", server, "--standalone", "--http-01-port", str(ports["http"]), "--http-01-address",
              "127.0.0.1"]
    _certbot(acme_ca, tmp_path, "certonly", *common, "--agree-tos", "-m", "ops@example.com", "-d", "web.acme.test",
             "-d", "www.acme.test")
    live = tmp_path / "etc" / "live" / "web.acme.test"
    first = _leaf(live / "cert.pem")
    assert _names(first) == ["web.acme.test", "www.acme.test"]
    chain = x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes())
    assert len(chain) == 2 and first.issuer == chain[1].subject
    _certbot(acme_ca, tmp_path, "renew", "--force-renewal", "--no-random-sleep-on-renew", "--http-01-port",
             str(ports["http"]), "--http-01-address", "127.0.0.1")
    renewed = _leaf(live / "cert.pem")
    assert renewed.serial_number != first.serial_number and _names(renewed) == _names(first)
    _certbot(acme_ca, tmp_path, "revoke", "--server", server, "--cert-path", str(live / "cert.pem"),
             "--reason", "keycompromise", "--no-delete-after-revoke")
    assert _revoked(acme_ca, renewed.serial_number) and not _revoked(acme_ca, first.serial_number)


def test_certbot_dns01_manual_hook(acme_ca, admin_env, dns, tmp_path):
    hook = tmp_path / "hook.py"
    records = dns.records_file
    hook.write_text(
        "import json, os, pathlib\n"
        f"p = pathlib.Path({str(records)!r})\n"
        "data = json.loads(p.read_text() or '{}') if p.exists() else {}\n"
        "name = '_acme-challenge.' + os.environ['CERTBOT_DOMAIN']\n"
        "data.setdefault(name, []).append(os.environ['CERTBOT_VALIDATION'])\n"
        "p.write_text(json.dumps(data))\n")
    _certbot(acme_ca, tmp_path, "certonly", "--server", f"{acme_ca.url}/acme/acme/directory", "--manual",
             "--preferred-challenges", "dns", "--manual-auth-hook", f"{sys.executable} {hook}",
             "--agree-tos", "-m", "ops@example.com", "-d", "*.wild.acme.test")
    cert = _leaf(tmp_path / "etc" / "live" / "wild.acme.test" / "cert.pem")
    assert _names(cert) == ["*.wild.acme.test"]
    assert json.loads(records.read_text())["_acme-challenge.wild.acme.test"]


def test_certbot_external_account_binding(acme_ca, admin_env, ports, tmp_path):
    server = f"{acme_ca.url}/acme/acme-eab/directory"
    common = ["certonly", "--server", server, "--standalone", "--http-01-port", str(ports["http"]),
              "--http-01-address", "127.0.0.1", "--agree-tos", "-m", "ops@example.com", "-d", "eab.acme.test"]
    key = json.loads(acme_ca.stepless("ca", "acme", "eab", "add", "acme-eab", "certbot", cwd=acme_ca.home,
                                      env=admin_env).stdout)
    wrong = _certbot(acme_ca, tmp_path / "wrong", *common, "--eab-kid", key["keyID"], "--eab-hmac-key",
                     "A" * 43, check=False)
    assert wrong.returncode != 0 and "externalAccountBinding signature is invalid" in wrong.stderr
    _certbot(acme_ca, tmp_path, *common, "--eab-kid", key["keyID"], "--eab-hmac-key", key["hmacKey"])
    assert _names(_leaf(tmp_path / "etc" / "live" / "eab.acme.test" / "cert.pem")) == ["eab.acme.test"]


def _lego(ca, tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    lego = shutil.which("lego")
    if lego is None:
        pytest.skip("lego is not installed (apt-get install lego)")
    env = {**os.environ, "LEGO_CA_CERTIFICATES": str(ca.root)}
    res = subprocess.run([lego, "--path", str(tmp / "lego"), "--accept-tos", "--email", "ops@example.com", *args],
                         env=env, capture_output=True, text=True, timeout=180)
    if check and res.returncode != 0:
        pytest.fail(f"lego failed ({res.returncode}): {res.stderr[-3000:]}")
    return res


def test_lego_http01_and_tlsalpn01(acme_ca, admin_env, ports, tmp_path):
    server = f"{acme_ca.url}/acme/acme/directory"
    _lego(acme_ca, tmp_path, "--server", server, "--domains", "lego-http.acme.test", "--http", "--http.port",
          f"127.0.0.1:{ports['http']}", "run")
    cert = _leaf(tmp_path / "lego" / "certificates" / "lego-http.acme.test.crt")
    assert _names(cert) == ["lego-http.acme.test"]
    _lego(acme_ca, tmp_path, "--server", server, "--domains", "lego-tls.acme.test", "--tls", "--tls.port",
          f"127.0.0.1:{ports['tls']}", "run")
    cert = _leaf(tmp_path / "lego" / "certificates" / "lego-tls.acme.test.crt")
    assert _names(cert) == ["lego-tls.acme.test"]


def test_lego_http01_on_the_aws_emulated_stack(acme_ca_aws, ports, tmp_path):
    acme_ca_aws.stepless("ca", "provisioner", "add", "acme", "--type", "ACME", "--no-require-eab",
                         cwd=acme_ca_aws.home)
    _lego(acme_ca_aws, tmp_path, "--server", f"{acme_ca_aws.url}/acme/acme/directory", "--domains",
          "aws.acme.test", "--http", "--http.port", f"127.0.0.1:{ports['http']}", "run")
    assert _names(_leaf(tmp_path / "lego" / "certificates" / "aws.acme.test.crt")) == ["aws.acme.test"]


def test_lego_external_account_binding(acme_ca, admin_env, ports, tmp_path):
    server = f"{acme_ca.url}/acme/acme-eab/directory"
    common = ["--server", server, "--domains", "lego-eab.acme.test", "--http", "--http.port",
              f"127.0.0.1:{ports['http']}"]
    refused = _lego(acme_ca, tmp_path / "no-eab", *common, "run", check=False)
    # lego reads meta.externalAccountRequired from the directory and stops (the CA's own refusal of a newAccount
    # without a binding: tests/integration/test_acme.py::test_external_account_binding)
    assert refused.returncode != 0 and "External Account Binding" in refused.stderr + refused.stdout
    res = acme_ca.stepless("ca", "acme", "eab", "add", "acme-eab", "lego test", cwd=acme_ca.home, env=admin_env)
    key = json.loads(res.stdout)
    _lego(acme_ca, tmp_path, *common, "--eab", "--kid", key["keyID"], "--hmac", key["hmacKey"], "run")
    cert = _leaf(tmp_path / "lego" / "certificates" / "lego-eab.acme.test.crt")
    assert _names(cert) == ["lego-eab.acme.test"]
    reused = _lego(acme_ca, tmp_path / "again", *common, "--eab", "--kid", key["keyID"], "--hmac", key["hmacKey"],
                   "run", check=False)
    assert reused.returncode != 0 and "already bound" in reused.stderr + reused.stdout


def test_caddy_serves_https_with_a_certificate_from_stepless(acme_ca, admin_env, ports, tmp_path):
    """Caddy with the local CA as its ACME issuer (http-01 or tls-alpn-01, Caddy's choice) serves HTTPS that a
    client trusting only our root accepts."""
    import socket
    import ssl
    import time

    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    (tmp_path / "Caddyfile").write_text(f"""{{
    admin off
    http_port {ports['http']}
    https_port {ports['tls']}
    acme_ca {acme_ca.url}/acme/acme/directory
    acme_ca_root {acme_ca.root}
    email ops@example.com
    skip_install_trust
    storage file_system {tmp_path / 'data'}
}}
caddy.acme.test {{
    bind 127.0.0.1
    respond "hello from caddy"
}}
""")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    log = open(tmp_path / "caddy.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([caddy, "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = ssl.create_default_context(cafile=str(acme_ca.root))
    try:
        deadline, last = time.monotonic() + 90, ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "caddy.log").read_text()[-3000:]
            try:
                with socket.create_connection(("127.0.0.1", ports["tls"]), timeout=5) as raw, \
                        ctx.wrap_socket(raw, server_hostname="caddy.acme.test") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: caddy.acme.test\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk := tls.recv(4096):
                        answer += chunk
                    cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                break
            except (OSError, ssl.SSLError) as e:
                last = str(e)
                time.sleep(1)
        else:
            pytest.fail(f"caddy never served a certificate we trust ({last}): "
                        f"{(tmp_path / 'caddy.log').read_text()[-3000:]}")
    finally:
        stop(proc)
        log.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello from caddy")
    assert _names(cert) == ["caddy.acme.test"]


def test_head_responses_have_no_body_on_a_keep_alive_connection(acme_ca, admin_env):
    """HEAD newNonce twice then GET directory on one connection: a HEAD body would be read as the next
    response's status line (schemathesis found it: the gateway wrote bodies for HEAD)."""
    import http.client
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(acme_ca.url)
    conn = http.client.HTTPSConnection(url.hostname, url.port,
                                       context=ssl.create_default_context(cafile=str(acme_ca.root)))
    try:
        for path in ("/acme/acme/new-nonce", "/acme/nobody/new-nonce"):  # a 200, and a 404 problem document
            conn.request("HEAD", path)
            res = conn.getresponse()
            assert res.read() == b"" and res.getheader("Replay-Nonce")
        conn.request("GET", "/acme/acme/directory")
        res = conn.getresponse()
        assert res.status == 200 and json.loads(res.read())["newNonce"].endswith("/acme/acme/new-nonce")
    finally:
        conn.close()
