"""GET /ssh/roots, /ssh/federation, /ssh/hosts and POST /ssh/config, /ssh/check-host against moto."""

from __future__ import annotations

import base64
import datetime as dt

import boto3

from stepless import clock
from stepless.api.ssh import app
from stepless.services import ssh_info
from stepless.ssh import parse_certificate
from stepless.stores import hosts as host_index
from stepless.stores.dynamo import to_item
from tests.integration.test_ssh_renew import host_cert, renew, revoke
from tests.integration.test_ssh_sign import sign
from tests.support.ca import call, event
from tests.support.calls import counted


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


# ---- issue 10 item 2: unauthenticated requests cost O(1) reads, whatever the number of certificates ----


def pad_certificates(n: int) -> None:
    """``n`` recorded certificates (X.509 and SSH user records) that check-host/hosts/krl must not read."""
    ddb = boto3.client("dynamodb")
    now = int(clock.now().timestamp())
    for start in range(0, n, 25):
        items = []
        for i in range(start, min(n, start + 25)):
            rec = ({"serial": str(10**20 + i), "kind": "x509", "subject": f"h{i}.example.com", "not_after": now + 3600}
                   if i % 2 else
                   {"serial": f"ssh:{10**15 + i}", "kind": "ssh", "cert_type": "user", "principals": [f"u{i}"],
                    "not_after": now + 3600})
            items.append({"PutRequest": {"Item": to_item(rec)}})
        ddb.batch_write_item(RequestItems={"test-certificates": items})


def reads_of(fn) -> dict[str, int]:
    """The AWS calls ``fn`` makes in a warm container (authority configuration already loaded)."""
    with counted() as calls:
        fn()
    return dict(calls)


def unauthenticated_reads() -> dict[str, dict[str, int]]:
    return {
        "check-host": reads_of(lambda: call(app, "POST", "/ssh/check-host",
                                            {"type": "host", "principal": "db.example.com"})),
        "hosts": reads_of(lambda: call(app, "GET", "/ssh/hosts")),
    }


def test_check_host_and_hosts_cost_one_read_whatever_the_table_size(test_ca):
    for name in ("db.example.com", "web.example.com"):
        assert sign(test_ca, name, token_opts={"certType": "host"})[0] == 201
    small = unauthenticated_reads()
    assert small == {"check-host": {"dynamodb.GetItem": 1}, "hosts": {"dynamodb.Query": 1}}
    pad_certificates(600)
    assert unauthenticated_reads() == small  # no Scan of the certificates table (it did one per request)
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "db.example.com"})[1] == {"exists": True}
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "u2"})[1] == {"exists": False}


def test_krl_is_read_once_per_ttl_and_cacheable(test_ca):
    res = app.handler(event("GET", "/ssh/krl"), None)
    assert res["statusCode"] == 200
    assert res["headers"]["cache-control"] == "public, max-age=60"  # was no-store
    assert reads_of(lambda: app.handler(event("GET", "/ssh/krl"), None)) == {}  # this container's copy
    with clock.shift(dt.timedelta(seconds=0)):
        ssh_info._krl_cache = None  # another container
        pad_certificates(100)
        assert reads_of(lambda: app.handler(event("GET", "/ssh/krl"), None)) == {"dynamodb.GetItem": 1}


def test_host_index_follows_renewal_and_revocation(test_ca):
    crt, key = host_cert(test_ca, "db.example.com")
    assert call(app, "GET", "/ssh/hosts")[1]["hosts"][0]["hostname"] == "db.example.com"
    status, body = renew(crt, key)
    assert status == 201, body
    renewed = body["crt"]
    for cert in (crt, renewed):
        serial = parse_certificate(base64.b64decode(cert)).serial
        assert revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))[0] == 200
        hosts = [h["hostname"] for h in call(app, "GET", "/ssh/hosts")[1]["hosts"]]
        assert hosts == ([] if cert == renewed else ["db.example.com"])  # the renewal still counts
    # ever issued: check-host still says so, as step-ca does for expired hosts
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "db.example.com"})[1] == \
        {"exists": True}


def test_hosts_pages(test_ca):
    for i in range(5):
        assert sign(test_ca, f"h{i}.example.com", token_opts={"certType": "host"})[0] == 201
    status, first = call(app, "GET", "/ssh/hosts", query={"limit": "3"})
    assert status == 200 and len(first["hosts"]) == 3 and first["nextCursor"] == "h2.example.com"
    status, second = call(app, "GET", "/ssh/hosts", query={"limit": "3", "cursor": first["nextCursor"]})
    assert [h["hostname"] for h in second["hosts"]] == ["h3.example.com", "h4.example.com"]
    assert "nextCursor" not in second
    for bad in ("0", "1001", "x", "-1"):
        status, body = call(app, "GET", "/ssh/hosts", query={"limit": bad})
        assert status == 400 and "limit" in body["message"]


def test_an_expired_host_is_not_listed_but_check_host_still_knows_it(test_ca):
    """GET /ssh/hosts drifted from step-ca: hosts whose certificates expired stayed listed (and, past 1000
    names ever issued, crowded live ones off the one page step's client reads)."""
    blob, _ = host_cert(test_ca, "old.example.com")
    valid_before = parse_certificate(base64.b64decode(blob)).valid_before
    assert call(app, "GET", "/ssh/hosts")[1]["hosts"] == [{"hid": "", "host_tags": None,
                                                           "hostname": "old.example.com"}]
    with clock.freeze(dt.datetime.fromtimestamp(valid_before, dt.UTC)):
        assert call(app, "GET", "/ssh/hosts")[1] == {"hosts": []}
        assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": "old.example.com"})[1] == \
            {"exists": True}


def test_expired_host_entries_are_dropped_when_the_principal_is_written_again(test_ca):
    now = int(clock.now().timestamp())
    host_index.add(["DB.example.com"], "1", now + 600, now)
    host_index.add(["db.example.com"], "2", now + 7200, now)
    host_index.add(["db.example.com"], "3", now + 9000, now + 3600)  # an hour later: 1 has expired
    page, cursor = host_index.page(now + 3600)
    assert page == [host_index.Host("db.example.com", {"2": now + 7200, "3": now + 9000})] and cursor is None
    assert page[0].live(now + 8000) and not page[0].live(now + 9000)
    assert host_index.page(now + 9000) == ([], None)  # expired: not listed
    assert host_index.exists("db.example.com")  # check-host: a host certificate was ever issued


def test_upgrade_fills_the_host_index_and_the_revoked_set(test_ca, tmp_path):
    """A stack that ran an earlier stepless has host certificates and SSH revocations but no index."""
    from stepless.admin.indexes import backfill_ssh

    host_cert(test_ca, "db.example.com")
    gone, _ = host_cert(test_ca, "old.example.com")
    serial = parse_certificate(base64.b64decode(gone)).serial
    assert revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))[0] == 200
    ddb = boto3.client("dynamodb")
    for item in ddb.scan(TableName="test-hosts")["Items"]:  # as before this version: nothing indexed
        ddb.delete_item(TableName="test-hosts", Key={"pk": item["pk"], "principal": item["principal"]})
    ddb.delete_item(TableName="test-revocations", Key={"serial": {"S": "krl:ssh"}})
    ssh_info._krl_cache = None
    assert call(app, "GET", "/ssh/hosts")[1] == {"hosts": []}

    filled = backfill_ssh()
    assert (filled.hosts, filled.revoked, filled.krl_published) == (2, 1, False)
    assert backfill_ssh().hosts == 2  # again: the same index
    assert [h["hostname"] for h in call(app, "GET", "/ssh/hosts")[1]["hosts"]] == ["db.example.com"]
    for name in ("db.example.com", "old.example.com"):
        assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": name})[1] == {"exists": True}
    ssh_info._krl_cache = None
    status, _ = call(app, "GET", "/ssh/krl")
    assert status == 200 and ssh_info._revoked(test_ca.authority).host == {serial: parse_certificate(
        base64.b64decode(gone)).valid_before}


def test_principals_beyond_the_index_key_limit(test_ca):
    """A principal longer than DynamoDB's sort-key limit (1024 bytes) is issued but not indexed, and nobody
    can make check-host or hosts fail with one (it was a scan before; a GetItem would be refused)."""
    long_name = "é" * 600  # 600 characters, 1200 bytes
    assert sign(test_ca, long_name, token_opts={"certType": "host"})[0] == 201
    assert call(app, "POST", "/ssh/check-host", {"type": "host", "principal": long_name}) == \
        (200, {"exists": False})
    status, body = call(app, "GET", "/ssh/hosts", query={"cursor": long_name})
    assert status == 400 and "cursor" in body["message"]
    assert call(app, "GET", "/ssh/hosts")[1] == {"hosts": []}


def test_a_retried_ssh_revocation_completes_a_lost_krl_write(test_ca):
    crt, _ = host_cert(test_ca, "db.example.com")
    serial = parse_certificate(base64.b64decode(crt)).serial
    assert revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))[0] == 200
    boto3.client("dynamodb").delete_item(TableName="test-revocations", Key={"serial": {"S": "krl:ssh"}})
    ssh_info._krl_cache = None
    assert ssh_info._revoked(test_ca.authority).host == {}
    status, body = revoke(serial, test_ca.token(str(serial), path="/1.0/ssh/revoke"))
    assert status == 400 and "already revoked" in body["message"]
    ssh_info._krl_cache = None
    assert serial in ssh_info._revoked(test_ca.authority).host


def test_a_revocation_past_the_revoked_set_limit_is_a_clear_503(test_ca, monkeypatch):
    """The revoked-SSH set is one DynamoDB item (400 KB): past its bound an SSH revocation is recorded but
    answers a step-style 503 saying why, instead of failing on DynamoDB's item limit; a retry after room
    is made completes its KRL entry."""
    from stepless.stores import ssh_revoked

    first, _ = host_cert(test_ca, "a.example.com")
    second, _ = host_cert(test_ca, "b.example.com")
    serials = [parse_certificate(base64.b64decode(c)).serial for c in (first, second)]
    monkeypatch.setattr(ssh_revoked, "MAX_UNEXPIRED", 1)
    assert revoke(serials[0], test_ca.token(str(serials[0]), path="/1.0/ssh/revoke"))[0] == 200
    status, body = revoke(serials[1], test_ca.token(str(serials[1]), path="/1.0/ssh/revoke"))
    assert status == 503 and body["status"] == 503 and "the SSH KRL is full" in body["message"]
    assert set(ssh_revoked.get().host) == {serials[0]}
    monkeypatch.setattr(ssh_revoked, "MAX_UNEXPIRED", 2)
    status, body = revoke(serials[1], test_ca.token(str(serials[1]), path="/1.0/ssh/revoke"))
    assert status == 400 and "already revoked" in body["message"]  # as step-ca; its KRL entry completed
    assert set(ssh_revoked.get().host) == set(serials)
