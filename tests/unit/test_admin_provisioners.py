"""stepless.admin.provisioners and stepless.stores.audit: validation, changes, locking, audit (moto)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stepless import jose
from stepless.admin import provisioners as admin
from stepless.errors import CLIError
from stepless.provisioners.base import Provisioner
from stepless.stores import audit
from stepless.stores import authority as store

SECRET = "oidc-client-secret-do-not-log"
NEW_PASSWORD = "ops-password-do-not-log"


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def known_types():
    """OIDC and X5C known to stepless.provisioners.build (a stub until those modules exist)."""
    from stepless import provisioners as registry

    registry._load_types()
    added = []
    for kind in ("OIDC", "X5C"):
        if kind not in registry._TYPES:
            registry._TYPES[kind] = type(f"Stub{kind}", (Provisioner,),
                                         {"type": kind, "claims_match": lambda self, claims: False})
            added.append(kind)
    yield
    for kind in added:
        registry._TYPES.pop(kind, None)


@pytest.fixture(autouse=True)
def _fresh_caller():
    audit.reset()
    yield
    audit.reset()


def make_cert(cn: str = "Devices Root", *, ca: bool = True, cert_sign: bool = True,
              days: int = 365, start_days: int = -1) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start_days)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                                     decipher_only=False), critical=True)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class OpenIDServer:
    """A loopback HTTP server with a discovery document (and a few broken variants)."""

    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                base = outer.url
                well_known = "/.well-known/openid-configuration"
                routes = {
                    well_known: (200, json.dumps(
                        {"issuer": base, "jwks_uri": base + "/jwks", "authorization_endpoint": base + "/auth"})),
                    "/no-jwks" + well_known: (200, json.dumps({"issuer": base})),
                    "/not-json" + well_known: (200, "<html>hello</html>"),
                    "/insecure-jwks" + well_known: (200, json.dumps(
                        {"issuer": base, "jwks_uri": "http://example.com/jwks"})),
                }
                status, body = routes.get(self.path, (404, "not found"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def discovery(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp():
    server = OpenIDServer()
    yield server
    server.close()


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audit_items() -> list[dict]:
    items = boto3.client("dynamodb").scan(TableName="test-authority")["Items"]
    return [i for i in items if i["pk"]["S"].startswith("audit#")]


def names() -> list[str]:
    return [p["name"] for p in admin.list_provisioners()]


# ---------------------------------------------------------------------------------------------- pure checks


@pytest.mark.parametrize("value", ["jwk", "JWK", "oidc", "X5c", "sshpop"])
def test_types_case_insensitive(value):
    assert admin.normalize_type(value) == value.upper()


@pytest.mark.parametrize("value", ["AWS", "k8sSA", "nope"])  # ACME is supported (issue 15)
def test_unsupported_types_refused(value):
    with pytest.raises(CLIError, match="unsupported provisioner type"):
        admin.normalize_type(value)


@pytest.mark.parametrize("name", ["", " ops", "ops ", "a\nb", "x" * 129])
def test_bad_names(name):
    with pytest.raises(CLIError):
        admin.check_name(name)


def test_claims_are_go_durations_and_booleans():
    assert admin.check_claims({"maxTLSCertDuration": "72h", "disableRenewal": True, "minTLSCertDuration": ""}) == {
        "maxTLSCertDuration": "72h", "disableRenewal": True, "minTLSCertDuration": None}
    for bad in ({"maxTLSCertDuration": "3 days"}, {"maxTLSCertDuration": "-1h"}, {"maxTLSCertDuration": "0"},
                {"enableSSHCA": "yes"}, {"notAClaim": "1h"}):
        with pytest.raises(CLIError):
            admin.check_claims(bad)


def test_merged_claims_validated_against_authority():
    doc = {"claims": {"maxTLSCertDuration": "48h"}, "ssh": {"userKey": "kms:x"}}
    # the provisioner's own max below the authority's default (24h) breaks default <= max
    with pytest.raises(CLIError, match=r"ops: claims: tls durations must satisfy"):
        admin.validate_claims("ops", {"maxTLSCertDuration": "8h"}, doc)
    resolved = admin.validate_claims("ops", {"maxTLSCertDuration": "8h", "defaultTLSCertDuration": "1h"}, doc)
    assert resolved.max_tls == dt.timedelta(hours=8)
    # min > max
    with pytest.raises(CLIError, match="min"):
        admin.validate_claims("ops", {"minTLSCertDuration": "10h", "maxTLSCertDuration": "5h"}, doc)
    # SSH cannot be enabled on a CA without SSH keys
    with pytest.raises(CLIError, match="no SSH keys"):
        admin.validate_claims("ops", {"enableSSHCA": True}, {})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://[::1]/x", "http://localhost:1/x",
                                 "https://accounts.google.com/.well-known/openid-configuration"])
def test_url_allowed(url):
    assert admin.check_url(url, "endpoint") == url


@pytest.mark.parametrize("url", ["http://example.com/x", "http://10.0.0.1/x", "ftp://127.0.0.1/x", "/relative",
                                 "https:///nohost", "http://127.0.0.1:99999/x"])
def test_url_refused(url):
    with pytest.raises(CLIError):
        admin.check_url(url, "endpoint")


@pytest.mark.parametrize("address,ok", [(":10000", True), ("127.0.0.1:8080", True), ("[::1]:9000", True),
                                        ("10000", False), (":0", False), (":70000", False), ("a:b", False)])
def test_listen_address(address, ok):
    if ok:
        assert admin.check_listen_address(address) == address
    else:
        with pytest.raises(CLIError):
            admin.check_listen_address(address)


def test_public_key_from_pem_and_jwk():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    from_pem = admin.public_jwk_from(pem)
    assert from_pem["kty"] == "EC" and from_pem["alg"] == "ES256" and "d" not in from_pem
    private = jose.private_jwk(key)
    from_jwk = admin.public_jwk_from(json.dumps(private))
    assert "d" not in from_jwk  # a private JWK only gives its public half
    assert from_jwk["kid"] == from_pem["kid"] == private["kid"]
    with pytest.raises(CLIError, match="EC, RSA or OKP"):
        admin.public_jwk_from(json.dumps({"kty": "oct", "k": "c2VjcmV0"}))
    with pytest.raises(CLIError):
        admin.public_jwk_from(b"garbage")
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(CLIError, match="encrypted"):
        admin.public_jwk_from(encrypted)


def test_x5c_roots_stored_as_base64_of_pems():
    a, b = make_cert("A"), make_cert("B")
    value = admin.x5c_roots(a + b + a)  # duplicates dropped
    decoded = base64.b64decode(value)
    assert [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(decoded)] == ["CN=A", "CN=B"]


@pytest.mark.parametrize("pem,match", [
    (b"not a certificate", "not PEM"),
    (None, "not a CA certificate"),
    ("no-certsign", "Certificate Sign"),
    ("expired", "expired"),
])
def test_x5c_roots_refused(pem, match):
    if pem is None:
        pem = make_cert("Leaf", ca=False, cert_sign=False)
    elif pem == "no-certsign":
        pem = make_cert("Weird", cert_sign=False)
    elif pem == "expired":
        pem = make_cert("Old", days=-1, start_days=-10)
    with pytest.raises(CLIError, match=match):
        admin.x5c_roots(pem)


def test_redaction():
    entry = {"type": "OIDC", "name": "g", "clientSecret": SECRET, "encryptedKey": "abc",
             "key": {"kty": "EC", "d": "private", "x": "x"}, "nested": [{"password": NEW_PASSWORD}]}
    out = json.dumps(audit.redact(entry))
    assert SECRET not in out and NEW_PASSWORD not in out and "private" not in out and "abc" not in out
    assert '"x": "x"' in out


# ---------------------------------------------------------------------------------------------- discovery


def test_discovery_on_loopback(idp):
    config = admin.discover(idp.discovery)
    assert config["issuer"] == idp.url and config["jwks_uri"] == idp.url + "/jwks"
    assert admin.discover(idp.url + "/")["issuer"] == idp.url  # the well-known path is added, as at run time


@pytest.mark.parametrize("path,match", [("/missing", "HTTP 404"), ("/no-jwks", "no jwks_uri"),
                                        ("/not-json", "did not return JSON"), ("/insecure-jwks", "jwks_uri")])
def test_discovery_failures(idp, path, match):
    with pytest.raises(CLIError, match=match):
        admin.discover(idp.url + path)


def test_discovery_unreachable():
    with pytest.raises(CLIError, match="unreachable"):
        admin.discover(f"http://127.0.0.1:{unused_port()}/.well-known/openid-configuration", timeout=3)


def test_discovery_refuses_plain_http_off_loopback():
    with pytest.raises(CLIError, match="must use https"):
        admin.discover("http://example.com/.well-known/openid-configuration")


# ---------------------------------------------------------------------------------------------- changes


def test_uninitialized_ca(aws_env):
    with pytest.raises(CLIError, match="not initialized"):
        admin.list_provisioners()


def test_add_jwk_created(test_ca):
    entry = admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000,
                            claims={"maxTLSCertDuration": "72h"})
    change = admin.add(entry)
    assert change.version == 2
    assert names() == ["admin", "sshpop", "ops"]
    stored = store.load()[0]["provisioners"][-1]
    assert stored["claims"] == {"maxTLSCertDuration": "72h"}
    private = jose.decrypt_jwk(stored["encryptedKey"], NEW_PASSWORD)
    assert private["kid"] == stored["key"]["kid"] and "d" not in stored["key"]


def test_add_jwk_public_key_has_no_encrypted_key(test_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    admin.add(admin.jwk_entry("laptop", public_key=pem))
    entry = admin.list_provisioners()[-1]
    assert entry["name"] == "laptop" and "encryptedKey" not in entry
    # the same key under another name is refused (ambiguous kid)
    with pytest.raises(CLIError, match="already uses the key"):
        admin.add(admin.jwk_entry("laptop2", public_key=pem))


def test_jwk_needs_exactly_one_key_source(test_ca):
    with pytest.raises(CLIError):
        admin.jwk_entry("ops")
    with pytest.raises(CLIError, match="cannot be empty"):
        admin.jwk_entry("ops", password="")


def test_duplicate_name_refused(test_ca):
    with pytest.raises(CLIError, match="a provisioner named admin already exists"):
        admin.add(admin.jwk_entry("admin", password=NEW_PASSWORD, p2c=1000))
    assert store.load()[1] == 1  # nothing written


def test_add_with_invalid_claims_refused(test_ca):
    entry = admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000,
                            claims={"minTLSCertDuration": "2h", "maxTLSCertDuration": "1h"})
    with pytest.raises(CLIError, match="min"):
        admin.add(entry)
    assert "ops" not in names()


def test_update_claims(test_ca):
    admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))
    change = admin.update("ops", {"maxTLSCertDuration": "72h", "defaultTLSCertDuration": "8h",
                                  "defaultUserSSHCertDuration": "4h", "disableRenewal": True})
    assert change.entry["claims"] == {"maxTLSCertDuration": "72h", "defaultTLSCertDuration": "8h",
                                      "defaultUserSSHCertDuration": "4h", "disableRenewal": True}
    # "" / None reverts a key to the authority's value
    change = admin.update("ops", {"disableRenewal": None, "defaultUserSSHCertDuration": ""})
    assert change.entry["claims"] == {"maxTLSCertDuration": "72h", "defaultTLSCertDuration": "8h"}
    # the merged result must stay ordered: default 8h > new max 4h
    with pytest.raises(CLIError, match="min .* <= default .* <= max"):
        admin.update("ops", {"maxTLSCertDuration": "4h"})
    with pytest.raises(CLIError, match="nothing to update"):
        admin.update("ops", {})


def test_update_unknown_refused(test_ca):
    with pytest.raises(CLIError, match="no provisioner named ghost"):
        admin.update("ghost", {"maxTLSCertDuration": "72h"})


def test_remove(test_ca):
    admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))
    with pytest.raises(CLIError, match="not OIDC"):
        admin.remove("ops", type_="oidc")
    change = admin.remove("ops", type_="jwk")
    assert change.entry["name"] == "ops"
    assert names() == ["admin", "sshpop"]
    with pytest.raises(CLIError, match="no provisioner named ops"):
        admin.remove("ops")


def test_remove_last_issuing_provisioner_refused(test_ca):
    with pytest.raises(CLIError, match="last provisioner that can issue"):
        admin.remove("admin")
    admin.remove("sshpop")  # SSHPOP can go
    assert names() == ["admin"]


def test_add_oidc(test_ca, idp, known_types):
    entry, config = admin.oidc_entry("google", client_id="cid", client_secret=SECRET,
                                     configuration_endpoint=idp.discovery, domains=["Example.com"],
                                     admins=["alice@example.com"], groups=["ops"], listen_address=":10000")
    assert config["issuer"] == idp.url
    admin.add(entry, summary={"issuer": config["issuer"]})
    stored = store.load()[0]["provisioners"][-1]
    assert stored == {"type": "OIDC", "name": "google", "clientID": "cid", "clientSecret": SECRET,
                      "configurationEndpoint": idp.discovery, "domains": ["example.com"],
                      "admins": ["alice@example.com"], "groups": ["ops"], "listenAddress": ":10000"}
    listed = admin.list_provisioners()[-1]
    assert "clientSecret" not in listed and listed["clientID"] == "cid"


def test_add_oidc_refusals(test_ca, known_types):
    with pytest.raises(CLIError, match="unreachable"):
        admin.oidc_entry("g", client_id="cid",
                         configuration_endpoint=f"http://127.0.0.1:{unused_port()}/.well-known/openid-configuration")
    with pytest.raises(CLIError, match="must use https"):
        admin.oidc_entry("g", client_id="cid", configuration_endpoint="http://idp.example.com/.well-known/x")
    with pytest.raises(CLIError, match="client-id"):
        admin.oidc_entry("g", client_id="", configuration_endpoint="https://idp.example.com/x")


def test_add_x5c_and_sshpop(test_ca, known_types):
    root = make_cert("Devices Root")
    admin.add(admin.x5c_entry("devices", root))
    stored = store.load()[0]["provisioners"][-1]
    assert stored["type"] == "X5C" and base64.b64decode(stored["roots"]) == root
    admin.add(admin.sshpop_entry("sshpop2"))
    assert store.load()[0]["provisioners"][-1] == {"type": "SSHPOP", "name": "sshpop2",
                                                   "claims": {"enableSSHCA": True}}


def test_sshpop_needs_ssh_ca(aws_env):
    from tests.support.ca import initialize

    initialize(aws_env, ssh=False)
    with pytest.raises(CLIError, match="SSH keys"):
        admin.add(admin.sshpop_entry("sshpop"))


def test_type_this_library_cannot_serve_is_refused(test_ca, monkeypatch):
    from stepless import provisioners as registry

    registry._load_types()
    monkeypatch.setattr(registry, "_TYPES", {k: v for k, v in registry._TYPES.items() if k != "X5C"})
    monkeypatch.setattr(registry, "_MODULES", {k: v for k, v in registry._MODULES.items() if k != "X5C"})
    with pytest.raises(CLIError, match="cannot serve X5C"):
        admin.add(admin.x5c_entry("devices", make_cert()))


# ---------------------------------------------------------------------------------------------- locking


def test_conflict_retried_once(test_ca, monkeypatch):
    real_load = store.load
    calls = {"n": 0}

    def racing_load():
        doc, version = real_load()
        calls["n"] += 1
        if calls["n"] == 1:  # another administrator writes between our read and our write
            other = json.loads(json.dumps(doc))
            other["provisioners"].append({"type": "SSHPOP", "name": "other", "claims": {"enableSSHCA": True}})
            store.save(other, expected_version=version)
        return doc, version

    monkeypatch.setattr(store, "load", racing_load)
    change = admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))
    assert calls["n"] == 2 and change.version == 3
    monkeypatch.setattr(store, "load", real_load)
    assert names() == ["admin", "sshpop", "other", "ops"]  # the other change is kept


def test_conflict_twice_gives_up(test_ca, monkeypatch):
    real_load = store.load

    def always_racing():
        doc, version = real_load()
        store.save(doc, expected_version=version)
        return doc, version

    monkeypatch.setattr(store, "load", always_racing)
    with pytest.raises(CLIError, match="keeps changing"):
        admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))
    monkeypatch.setattr(store, "load", real_load)
    assert "ops" not in names()
    assert audit_items() == []  # no audit record for a change that did not happen


def test_duplicate_found_on_retry(test_ca, monkeypatch):
    real_load = store.load
    calls = {"n": 0}

    def racing_load():
        doc, version = real_load()
        calls["n"] += 1
        if calls["n"] == 1:
            other = json.loads(json.dumps(doc))
            other["provisioners"].append({"type": "SSHPOP", "name": "ops", "claims": {"enableSSHCA": True}})
            store.save(other, expected_version=version)
        return doc, version

    monkeypatch.setattr(store, "load", racing_load)
    with pytest.raises(CLIError, match="already exists"):
        admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))


# ---------------------------------------------------------------------------------------------- audit


def test_audit_records(test_ca, idp, known_types):
    admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))
    admin.update("ops", {"maxTLSCertDuration": "72h"})
    entry, config = admin.oidc_entry("google", client_id="cid", client_secret=SECRET,
                                     configuration_endpoint=idp.discovery)
    admin.add(entry, summary={"issuer": config["issuer"]})
    admin.remove("google")
    admin.remove("ops")

    records = audit.records()
    assert [(r["action"], r["provisioner"]) for r in records] == [
        ("provisioner.add", "ops"), ("provisioner.update", "ops"), ("provisioner.add", "google"),
        ("provisioner.remove", "google"), ("provisioner.remove", "ops")]
    assert [r["version"] for r in records] == [2, 3, 4, 5, 6]
    for r in records:
        assert r["who"].startswith("arn:aws:")
        assert dt.datetime.fromisoformat(r["when"].replace("Z", "+00:00")).tzinfo is not None
        assert r["pk"].startswith(f"audit#{r['when']}#")
    assert records[1]["change"]["claims"] == {"before": {}, "after": {"maxTLSCertDuration": "72h"}}
    assert records[2]["change"]["issuer"] == idp.url
    assert records[2]["change"]["entry"]["clientSecret"] == audit.REDACTED
    assert records[0]["change"]["entry"]["encryptedKey"] == audit.REDACTED
    assert [r["provisioner"] for r in audit.records("ops")] == ["ops", "ops", "ops"]

    raw = json.dumps(audit_items())
    assert SECRET not in raw and NEW_PASSWORD not in raw
    encrypted = [p for p in store.load()[0]["provisioners"] if p["name"] == "admin"][0]["encryptedKey"]
    assert encrypted not in raw


def test_audit_x5c_roots_as_fingerprints(test_ca, known_types):
    admin.add(admin.x5c_entry("devices", make_cert()))
    roots = audit.records("devices")[0]["change"]["entry"]["roots"]
    assert len(roots) == 1 and roots[0].startswith("sha256:")


def test_audit_caller_unknown_when_sts_fails(test_ca, monkeypatch):
    from stepless import aws

    real_client = aws.client

    def client(service):
        if service == "sts":
            raise RuntimeError("no sts here")
        return real_client(service)

    monkeypatch.setattr(audit, "aws", types.SimpleNamespace(client=client))
    admin.add(admin.jwk_entry("ops", password=NEW_PASSWORD, p2c=1000))
    assert audit.records()[0]["who"] == "unknown"


def test_audit_caller_cached(aws_env, monkeypatch):
    from stepless import aws

    real_client = aws.client
    calls = []

    def client(service):
        calls.append(service)
        return real_client(service)

    monkeypatch.setattr(audit, "aws", types.SimpleNamespace(client=client))
    first = audit.caller()
    assert audit.caller() == first and calls.count("sts") == 1


def test_audit_write_standalone(aws_env):
    record = audit.write("provisioner.add", "x", {"clientSecret": SECRET, "name": "x"}, version=7)
    assert record["version"] == 7
    (stored,) = audit.records()
    assert stored["change"] == {"clientSecret": audit.REDACTED, "name": "x"}
