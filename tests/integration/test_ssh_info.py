"""GET /ssh/roots, /ssh/federation, /ssh/hosts and POST /ssh/config, /ssh/check-host against moto."""

from __future__ import annotations

import base64
import datetime as dt

from stepless import clock
from stepless.api.ssh import app
from tests.integration.test_ssh_sign import sign
from tests.support.ca import call


def _b64(line: str) -> str:
    return line.split()[1]


def test_roots_and_federation(test_ca):
    ssh = test_ca.authority.ssh
    expected = {"userKey": [_b64(ssh["userPublicKey"])], "hostKey": [_b64(ssh["hostPublicKey"])]}
    assert call(app, "GET", "/ssh/roots") == (200, expected)
    assert call(app, "GET", "/1.0/ssh/federation") == (200, expected)


def _contents(templates: list[dict]) -> dict[str, str]:
    for t in templates:
        assert set(t) == {"name", "type", "path", "comment", "content"}
    return {t["name"]: base64.b64decode(t["content"]).decode() for t in templates}


def test_user_config(test_ca):
    data = {"GOOS": "linux", "StepPath": "/home/alice/.step", "User": "alice"}
    status, body = call(app, "POST", "/ssh/config", {"type": "user", "data": data})
    assert status == 200, body
    assert set(body) == {"userTemplates"}
    types = {t["name"]: (t["type"], t["path"]) for t in body["userTemplates"]}
    assert types == {
        "config.tpl": ("snippet", "~/.ssh/config"),
        "step_includes.tpl": ("file", "ssh/includes"),
        "step_config.tpl": ("file", "ssh/config"),
        "known_hosts.tpl": ("file", "ssh/known_hosts"),
    }
    content = _contents(body["userTemplates"])
    assert content["config.tpl"] == 'Host *\n\tInclude "/home/alice/.step/ssh/includes"'
    assert content["step_includes.tpl"] == 'Include "/home/alice/.step/ssh/config"'
    assert content["step_config.tpl"] == (
        'Match exec "step ssh check-host %h"\n\tUser alice\n'
        '\tUserKnownHostsFile "/home/alice/.step/ssh/known_hosts"\n'
        "\tProxyCommand step ssh proxycommand %r %h %p\n"
    )
    host_line = test_ca.authority.ssh["hostPublicKey"]
    assert content["known_hosts.tpl"] == f"@cert-authority * {host_line}\n"


def test_user_config_template_version(test_ca):
    data = {"GOOS": "linux", "StepPath": "/s", "StepSSHTemplateVersion": "v2", "Context": "prod"}
    status, body = call(app, "POST", "/ssh/config/user", {"data": data})
    assert status == 200, body
    by_name = {t["name"]: t for t in body["userTemplates"]}
    assert (by_name["step_includes.tpl"]["type"], by_name["step_includes.tpl"]["path"]) == \
        ("prepend-line", "${STEPPATH}/ssh/includes")
    assert "check-host --context prod %h" in _contents(body["userTemplates"])["step_config.tpl"]


def test_host_config(test_ca):
    data = {"Certificate": "ssh_host_ecdsa_key-cert.pub", "Key": "ssh_host_ecdsa_key"}
    status, body = call(app, "POST", "/ssh/config/host", {"type": "host", "data": data})
    assert status == 200, body
    content = _contents(body["hostTemplates"])
    assert content["sshd_config.tpl"] == (
        "Match all\n\tTrustedUserCAKeys /etc/ssh/ca.pub\n"
        "\tHostCertificate /etc/ssh/ssh_host_ecdsa_key-cert.pub\n\tHostKey /etc/ssh/ssh_host_ecdsa_key"
    )
    assert content["ca.tpl"] == test_ca.authority.ssh["userPublicKey"] + "\n"
    status, body = call(app, "POST", "/ssh/config", {"type": "host", "data": {"Key": "k"}})
    assert status == 400 and "required variable 'Certificate' is missing" in body["message"]
    assert call(app, "POST", "/ssh/config", {"type": "other"})[0] == 400


def test_check_host_and_hosts(test_ca):
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "db.example.com"}) == \
        (200, {"exists": False})
    assert call(app, "GET", "/ssh/hosts") == (200, {"hosts": []})
    assert sign(test_ca, "db.example.com", token_opts={"certType": "host"})[0] == 201
    assert sign(test_ca, "web.example.com", token_opts={"certType": "host", "validBefore": "10m"})[0] == 201
    assert sign(test_ca, "alice@example.com")[0] == 201
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "DB.example.com"}) == \
        (200, {"exists": True})
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "alice"}) == \
        (200, {"exists": False})
    status, body = call(app, "GET", "/ssh/hosts")
    assert status == 200
    assert body == {"hosts": [{"hid": "", "host_tags": None, "hostname": "db.example.com"},
                              {"hid": "", "host_tags": None, "hostname": "web.example.com"}]}
    with clock.shift(dt.timedelta(hours=1)):
        status, body = call(app, "GET", "/ssh/hosts")
    assert [h["hostname"] for h in body["hosts"]] == ["db.example.com"]
    # expired hosts still "exist" for check-host, as in step-ca
    with clock.shift(dt.timedelta(hours=1)):
        assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "web.example.com"})[1] == \
            {"exists": True}


def test_check_host_bad_input(test_ca):
    status, body = call(app, "POST", "/ssh/check-host", {"type": "user", "principal": "x"})
    assert status == 400 and "unsupported type 'user'" in body["message"]
    status, body = call(app, "POST", "/ssh/check-host", {"type": "host"})
    assert status == 400 and "missing or empty principal" in body["message"]
