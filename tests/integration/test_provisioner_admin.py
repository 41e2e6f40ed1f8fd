"""`stepless ca provisioner list|add|update|remove` end to end: the CLI writes the authority item, the sign
function (GET /provisioners, POST /sign) sees the change after its cache TTL, the audit log records it."""

from __future__ import annotations

import base64
import json
import types

import boto3
import pytest
from click.testing import CliRunner
from cryptography import x509

from stepless import authority, jose
from stepless.api.sign import app
from stepless.cli import main as cli_main
from stepless.errors import ClientError
from stepless.stores import audit
from tests.support.ca import TestCA, call, make_csr
from tests.unit import test_admin_provisioners as shared
from tests.unit.test_admin_provisioners import SECRET, make_cert, unused_port

# fixtures shared with the unit tests: a loopback OpenID provider, OIDC/X5C types, a fresh audit caller
idp = shared.idp
known_types = shared.known_types
_fresh_caller = shared._fresh_caller

PASSWORD = "new-provisioner-password"


@pytest.fixture
def run(test_ca):
    """``stepless ARGS`` in-process against the test CA (STEPLESS_AUTHORITY_TABLE is set: no --stack)."""
    cli_main._register()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli_main.cli, ["ca", "provisioner", *args], input=input, catch_exceptions=True)

    return invoke


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password.txt"
    path.write_text(PASSWORD + "\n")
    return str(path)


def ok(res):
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def fails(res, match: str):
    assert res.exit_code != 0, res.output
    message = str(res.exception) if isinstance(res.exception, ClientError) else res.output
    assert match in message, message
    assert "\n" not in message.strip()
    return message


def listed() -> list[str]:
    status, body = call(app, "GET", "/provisioners")
    assert status == 200, body
    return [p["name"] for p in body["provisioners"]]


def provisioner_ca(test_ca: TestCA, name: str, password: str = PASSWORD) -> TestCA:
    """A TestCA whose tokens come from provisioner ``name`` (its key decrypted as the CLI would)."""
    status, body = call(app, "GET", "/provisioners")
    entry = next(p for p in body["provisioners"] if p["name"] == name)
    private = jose.decrypt_jwk(entry["encryptedKey"], password)
    return TestCA(test_ca.result, jose.key_from_jwk(private), entry["key"]["kid"], name=name)


def sign(ca: TestCA, not_after: str = ""):
    csr, _ = make_csr("svc.example.com")
    return call(app, "POST", "/1.0/sign", {"csr": csr, "ott": ca.token("svc.example.com"), "notAfter": not_after})


def lifetime(body) -> float:
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    return (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() / 3600


# ---------------------------------------------------------------------------------------------- JWK


def test_list_is_json_without_secrets(run):
    res = ok(run("list"))
    entries = json.loads(res.output)
    assert [p["name"] for p in entries] == ["admin", "sshpop"]
    assert entries[0]["type"] == "JWK" and entries[0]["encryptedKey"]


def test_add_jwk_visible_after_reset_and_issues(test_ca, run, password_file):
    assert listed() == ["admin", "sshpop"]
    res = ok(run("add", "ops", "--type", "JWK", "--create", "--password-file", password_file))
    entry = json.loads(res.stdout)
    assert entry["name"] == "ops" and entry["key"]["kid"] and entry["encryptedKey"]
    assert "ops (JWK) added" in res.stderr
    authority.reset()
    assert listed() == ["admin", "sshpop", "ops"]
    status, body = call(app, "GET", f"/provisioners/{entry['key']['kid']}/encrypted-key")
    assert status == 200 and body["key"] == entry["encryptedKey"]
    status, body = sign(provisioner_ca(test_ca, "ops"))
    assert status == 201, body


def test_change_reaches_warm_function_after_ttl(test_ca, run, password_file, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(authority, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setenv("STEPLESS_CONFIG_TTL", "30")
    authority.reset()
    assert listed() == ["admin", "sshpop"]  # the warm function caches the configuration
    ok(run("add", "ops", "--create", "--password-file", password_file))
    now[0] += 29
    assert listed() == ["admin", "sshpop"]  # still within the TTL
    now[0] += 2
    assert listed() == ["admin", "sshpop", "ops"]  # reloaded: no redeploy, no reset
    ok(run("remove", "ops"))
    assert "ops" in listed()
    now[0] += 31
    assert "ops" not in listed()


def test_update_claims_bounds_signing(test_ca, run, password_file):
    ok(run("add", "ops", "--create", "--password-file", password_file))
    res = ok(run("update", "ops", "--x509-max-dur", "72h", "--x509-default-dur", "8h",
                 "--ssh-user-default-dur", "4h", "--disable-renewal"))
    assert json.loads(res.stdout)["claims"] == {
        "maxTLSCertDuration": "72h", "defaultTLSCertDuration": "8h", "defaultUserSSHCertDuration": "4h",
        "disableRenewal": True}
    authority.reset()
    ops = provisioner_ca(test_ca, "ops")
    status, body = sign(ops)
    assert status == 201, body
    assert lifetime(body) == pytest.approx(8 + 1 / 60)  # the new default (+ 1m backdate)
    status, body = sign(ops, "48h")
    assert status == 201, body  # over the authority's 24h, within the provisioner's 72h
    status, body = sign(ops, "100h")
    assert status == 403, body  # over the provisioner's max
    status, body = sign(test_ca, "48h")
    assert status == 403, body  # admin still has the authority's 24h
    ok(run("update", "ops", "--x509-max-dur", "24h", "--x509-default-dur", "", "--allow-renewal"))
    authority.reset()
    status, body = sign(ops, "48h")
    assert status == 403, body


def test_update_refusals(run, password_file):
    ok(run("add", "ops", "--create", "--password-file", password_file))
    fails(run("update", "ops", "--x509-min-dur", "10h", "--x509-max-dur", "5h"), "min")
    fails(run("update", "ops", "--x509-max-dur", "1 day"), "invalid duration")
    fails(run("update", "ghost", "--x509-max-dur", "72h"), "no provisioner named ghost")
    fails(run("update", "ops"), "nothing to update")


def test_add_refusals(run, password_file, tmp_path):
    fails(run("add", "admin", "--create", "--password-file", password_file), "already exists")
    fails(run("add", "ops", "--create", "--password-file", password_file,
              "--x509-min-dur", "2h", "--x509-max-dur", "1h"), "min")
    fails(run("add", "ops", "--password-file", password_file), "exactly one of --create")
    fails(run("add", "ops", "--type", "AWS"), "unsupported provisioner type")
    fails(run("add", "ops", "--type", "JWK", "--create", "--acme-policy", "p.json"), "does not apply")
    (tmp_path / "bad-policy.json").write_text('{"allow": {"dns": "example.com"}}')
    fails(run("add", "ops", "--type", "ACME", "--acme-policy", str(tmp_path / "bad-policy.json")),
          "ACME policy dns must be a list")
    fails(run("add", "ops", "--type", "X5C", "--create"), "are for JWK provisioners")
    fails(run("add", "ops", "--type", "OIDC", "--client-id", "x"), "--configuration-endpoint is required")
    fails(run("add", "ops", "--type", "X5C"), "--x5c-root is required")
    fails(run("add", "ops", "--public-key", str(tmp_path / "missing.pem")), "error reading public key")
    assert json.loads(ok(run("list")).output)[-1]["name"] == "sshpop"


def test_add_jwk_public_key_file(run, tmp_path):
    from stepless.jose import private_jwk
    from tests.support.ca import make_key

    jwk = private_jwk(make_key())
    path = tmp_path / "laptop.json"
    path.write_text(json.dumps(jwk))
    entry = json.loads(ok(run("add", "laptop", str(path))).stdout)  # step's positional JWK file
    assert entry["key"]["kid"] == jwk["kid"] and "d" not in entry["key"] and "encryptedKey" not in entry


def test_remove(run, password_file):
    ok(run("add", "ops", "--create", "--password-file", password_file))
    fails(run("remove", "ops", "--type", "X5C"), "not X5C")
    res = ok(run("remove", "ops"))
    assert "ops (JWK) removed" in res.stderr
    authority.reset()
    assert listed() == ["admin", "sshpop"]
    fails(run("remove", "ops"), "no provisioner named ops")
    fails(run("remove", "admin"), "last provisioner that can issue")


def test_stack_flag_is_honoured(run):
    fails(run("list", "--stack", "no-such-stack"), "cannot read stack no-such-stack")


def test_errors_are_one_line_from_main(test_ca, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["ca", "provisioner", "update", "ghost", "--x509-max-dur", "72h"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: no provisioner named ghost\n"


# ---------------------------------------------------------------------------------------------- OIDC, X5C


def test_add_oidc(run, idp, known_types):
    res = ok(run("add", "google", "--type", "OIDC", "--client-id", "cid", "--client-secret", SECRET,
                 "--configuration-endpoint", idp.discovery, "--domain", "example.com",
                 "--admin", "alice@example.com", "--group", "G", "--listen-address", ":10000"))
    assert SECRET not in res.output
    assert f"Issuer: {idp.url}" in res.stderr
    entry = json.loads(ok(run("list")).output)[-1]
    assert entry == {"type": "OIDC", "name": "google", "clientID": "cid", "configurationEndpoint": idp.discovery,
                     "domains": ["example.com"], "admins": ["alice@example.com"], "groups": ["G"],
                     "listenAddress": ":10000"}
    authority.reset()
    assert "google" in listed()


def test_add_oidc_refused(run, known_types):
    unreachable = f"http://127.0.0.1:{unused_port()}/.well-known/openid-configuration"
    fails(run("add", "google", "--type", "oidc", "--client-id", "cid", "--configuration-endpoint", unreachable),
          "unreachable")
    fails(run("add", "google", "--type", "oidc", "--client-id", "cid",
              "--configuration-endpoint", "http://idp.example.com/.well-known/openid-configuration"),
          "must use https")
    assert "google" not in [p["name"] for p in json.loads(ok(run("list")).output)]


def test_add_x5c(run, tmp_path, known_types):
    root = make_cert("Devices Root")
    (tmp_path / "devices-root.crt").write_bytes(root)
    res = ok(run("add", "devices", "--type", "X5C", "--x5c-root", str(tmp_path / "devices-root.crt")))
    entry = json.loads(res.stdout)
    assert entry["type"] == "X5C" and base64.b64decode(entry["roots"]) == root
    (tmp_path / "leaf.crt").write_bytes(make_cert("Leaf", ca=False, cert_sign=False))
    fails(run("add", "leafy", "--type", "x5c", "--x5c-root", str(tmp_path / "leaf.crt")), "not a CA certificate")
    authority.reset()
    assert "devices" in listed()


# ---------------------------------------------------------------------------------------------- audit


def test_every_change_audited_without_secrets(run, password_file, idp, tmp_path, known_types):
    ok(run("add", "ops", "--create", "--password-file", password_file))
    ok(run("update", "ops", "--x509-max-dur", "72h"))
    ok(run("add", "google", "--type", "OIDC", "--client-id", "cid", "--client-secret", SECRET,
           "--configuration-endpoint", idp.discovery))
    (tmp_path / "root.crt").write_bytes(make_cert())
    ok(run("add", "devices", "--type", "X5C", "--x5c-root", str(tmp_path / "root.crt")))
    ok(run("remove", "google"))
    ok(run("remove", "ops"))
    fails(run("add", "admin", "--create", "--password-file", password_file), "already exists")  # not audited

    records = audit.records()
    assert [(r["action"], r["provisioner"]) for r in records] == [
        ("provisioner.add", "ops"), ("provisioner.update", "ops"), ("provisioner.add", "google"),
        ("provisioner.add", "devices"), ("provisioner.remove", "google"), ("provisioner.remove", "ops")]
    for r in records:
        assert r["who"].startswith("arn:aws:") and r["when"].endswith("Z")
    assert records[1]["change"]["claims"]["after"] == {"maxTLSCertDuration": "72h"}

    items = boto3.client("dynamodb").scan(TableName="test-authority")["Items"]
    raw = json.dumps([i for i in items if i["pk"]["S"].startswith("audit#")])
    assert PASSWORD not in raw and SECRET not in raw
    assert audit.REDACTED in raw  # the encrypted key and the client secret are noted, not copied
