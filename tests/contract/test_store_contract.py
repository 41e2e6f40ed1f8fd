"""One contract for every store backend: SQLite (the local CA) and DynamoDB (on moto server, serialized).

Each test runs against both backends through the same interface the services call (``stepless.stores.*``):
same inputs, same results, same typed errors — the single-use token rule, the recording transactions
(token + certificate + parent link, all or nothing), revocations, the configuration's optimistic locking
with its audit record, the managed registry, the CRL objects — and the races: N threads redeeming one
token record exactly one certificate; concurrent configuration changes from one version: one wins, the
others get the typed conflict.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from stepless import aws
from stepless.stores import (
    audit,
    authority,
    backend,
    certificates,
    crl_store,
    hosts,
    managed,
    ocsp_responses,
    revocations,
    ssh_revoked,
    tokens,
)
from stepless.stores.certificates import CertificateRecord
from stepless.stores.errors import (
    AlreadyRevoked,
    ConfigConflict,
    LostRace,
    ManagedExists,
    ParentRevoked,
    ParentUnknown,
    RenewalCap,
    SerialCollision,
    TokenUsed,
    UnknownCertificate,
)
from stepless.stores.revocations import RevocationRecord
from stepless.stores.tokens import UsedToken
from tests.support.ca import TABLES

NOW = 1_800_000_000
BUCKET = "contract-crl"
MANAGED_TABLE = "contract-managed"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from stepless.local.devstack import free_port
    from stepless.local.moto import SerializedMotoServer

    port = free_port()
    server = SerializedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _dynamodb(url: str, mp: pytest.MonkeyPatch) -> backend.Stores:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
    env = {var: name for var, (name, *_) in TABLES.items()} | {
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "STEPLESS_CRL_BUCKET": BUCKET,
        managed.MANAGED_TABLE: MANAGED_TABLE}
    for k, v in env.items():
        mp.setenv(k, v)
    aws.reset()
    ddb = boto3.client("dynamodb", endpoint_url=url)
    for name, *keys in TABLES.values():
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ("HASH", "RANGE"),
                                                                                       strict=False)],
                         AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys])
    ddb.create_table(**managed.table_spec(MANAGED_TABLE))
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    return backend.open_backend("dynamodb")


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path) -> Iterator[str]:
    """The backend under test, installed as the container's; yields its name."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "sqlite":
            stores = backend.open_backend(f"sqlite:{tmp_path / 'ca.db'}")
        else:
            stores = _dynamodb(request.getfixturevalue("moto_url"), mp)
        backend.use(stores)
        try:
            yield request.param
        finally:
            backend.reset()
            aws.reset()


def cert(serial: str, **kw) -> CertificateRecord:
    return CertificateRecord(serial=serial, kind="x509", not_before=NOW, not_after=NOW + 3600,
                             provisioner="admin", provisioner_type="JWK", issued_at=NOW,
                             subject=f"s{serial}.example.com", sans=(f"s{serial}.example.com", "10.0.0.1"),
                             fingerprint="ab" * 32, pem="-----BEGIN CERTIFICATE-----\n…", **kw)


def token(jti: str) -> UsedToken:
    return UsedToken(id=f"admin#{jti}", expires=NOW + 600, endpoint="sign", used_at=NOW)


def revocation(serial: str, **kw) -> RevocationRecord:
    values = {"reason_code": 1, "revoked_at": NOW, "reason": "key compromise", "revoked_by": "provisioner:admin",
              "not_after": NOW + 3600} | kw
    return RevocationRecord(serial=serial, **values)


# ------------------------------------------------------------------------------------------- tokens


def test_a_token_is_used_once(store):
    tokens.use(token("a"))
    with pytest.raises(TokenUsed) as e:
        tokens.use(token("a"))
    assert e.value.status == 401 and e.value.detail == "token already used"
    tokens.use(token("b"))


# ------------------------------------------------------------------------------------- certificates


def test_issuance_records_the_certificate_and_uses_the_token(store):
    record = cert("1001")
    certificates.record_issuance(record, token("t1"))
    assert certificates.get("1001") == record
    assert certificates.get("1002") is None
    assert certificates.get_with_revocation("1001") == (record, None)
    ssh = CertificateRecord(serial="ssh:7", kind="ssh", not_before=NOW, not_after=NOW + 60, provisioner="sshpop",
                            provisioner_type="SSHPOP", issued_at=NOW, cert_type="host", key_id="web",
                            principals=("web1.internal", "web1"), cert="AAAA")
    certificates.record_issuance(ssh, None)
    assert certificates.get("ssh:7") == ssh
    assert [r.serial for r in certificates.scan_ssh_hosts()] == ["ssh:7"]
    assert certificates.scan_ssh_hosts()[0].principals == ("web1.internal", "web1")


def test_a_used_token_records_nothing(store):
    certificates.record_issuance(cert("1"), token("t"))
    with pytest.raises(TokenUsed):
        certificates.record_issuance(cert("2"), token("t"))
    assert certificates.get("2") is None


def test_a_serial_collision_consumes_no_token(store):
    certificates.record_issuance(cert("1"), token("t1"))
    with pytest.raises(SerialCollision) as e:
        certificates.record_issuance(cert("1", parent_serial="x"), token("t2"))
    assert e.value.status == 503 and e.value.headers == {"Retry-After": "0"}
    assert certificates.get("1").parent_serial is None
    tokens.use(token("t2"))  # rolled back with the collision: still unused


def test_renewal_links_the_parent_and_checks_it(store, monkeypatch):
    certificates.record_issuance(cert("100"), None)
    with pytest.raises(ParentUnknown) as e:
        certificates.record_renewal(cert("101", parent_serial="99"), token("r0"), "99")
    assert e.value.status == 401 and e.value.detail == "certificate not found"
    tokens.use(token("r0"))  # the failed renewal consumed nothing
    certificates.record_renewal(cert("101", parent_serial="100"), token("r1"), "100")
    certificates.record_renewal(cert("102", parent_serial="100"), None, "100")
    assert certificates.children("100") == ["101", "102"]
    assert certificates.children("101") == []
    monkeypatch.setattr("stepless.stores.errors.MAX_RENEWALS_PER_CERTIFICATE", 2)
    with pytest.raises(RenewalCap) as cap:
        certificates.record_renewal(cert("103", parent_serial="100"), token("r3"), "100")
    assert cap.value.status == 403 and "renewed 2 times" in cap.value.detail
    certificates.record_renewal(cert("104", parent_serial="100"), None, "100", capped=False)
    assert certificates.children("100") == ["101", "102", "104"]
    assert certificates.get("103") is None
    with pytest.raises(TokenUsed):
        certificates.record_renewal(cert("105", parent_serial="100"), token("r1"), "100", capped=False)
    assert certificates.link_renewals() == 3


def test_a_revoked_parent_cannot_be_renewed(store):
    certificates.record_issuance(cert("200"), None)
    revocations.put(revocation("200"))
    with pytest.raises(ParentRevoked) as e:
        certificates.record_renewal(cert("201", parent_serial="200"), token("r"), "200")
    assert e.value.status == 401 and e.value.detail == "certificate has been revoked"
    assert certificates.get("201") is None and certificates.children("200") == []
    tokens.use(token("r"))
    rec, rev = certificates.get_with_revocation("200")
    assert rec == cert("200") and rev == revocation("200")


def test_a_renewal_must_present_the_recorded_certificate(store):
    """With the presented certificate's fingerprint the parent's record must be that certificate's (or carry
    none): the renew rules' record checks, made by the recording transaction itself (no read before it)."""
    certificates.record_issuance(cert("400"), None)  # fingerprint "ab" * 32
    certificates.record_issuance(dataclasses.replace(cert("401"), fingerprint=None), None)
    for parent, fp in (("400", "cd" * 32), ("499", "ab" * 32)):  # another certificate's serial; none recorded
        with pytest.raises(UnknownCertificate) as e:
            certificates.record_renewal(cert("410", parent_serial=parent), token("u"), parent, parent_fingerprint=fp)
        assert (e.value.status, e.value.detail, e.value.reason) == (
            401, "certificate is unknown to this certificate authority", "unknown_certificate")
    assert certificates.get("410") is None and certificates.children("400") == []
    certificates.record_renewal(cert("410", parent_serial="400"), token("u"), "400", parent_fingerprint="ab" * 32)
    certificates.record_renewal(cert("411", parent_serial="401"), None, "401", parent_fingerprint="ef" * 32)
    assert certificates.children("400") == ["410"] and certificates.children("401") == ["411"]


def test_the_first_failed_renew_rule_is_the_refusal(store):
    """Unknown, then revoked, then a used token: the precedence the reads before the write used to give."""
    certificates.record_issuance(cert("500"), None)
    revocations.put(revocation("500"))
    tokens.use(token("used"))
    with pytest.raises(UnknownCertificate):
        certificates.record_renewal(cert("501", parent_serial="500"), token("used"), "500",
                                    parent_fingerprint="cd" * 32)
    with pytest.raises(ParentRevoked):
        certificates.record_renewal(cert("501", parent_serial="500"), token("used"), "500",
                                    parent_fingerprint="ab" * 32)
    certificates.record_issuance(cert("502"), None)
    with pytest.raises(TokenUsed):
        certificates.record_renewal(cert("503", parent_serial="502"), token("used"), "502",
                                    parent_fingerprint="ab" * 32)
    assert [certificates.get(s) for s in ("501", "503")] == [None, None]


# -------------------------------------------------------------------------------------- revocations


def test_revocations(store):
    revocations.put(revocation("300"))
    with pytest.raises(AlreadyRevoked) as e:
        revocations.put(revocation("300", reason_code=4))
    assert e.value.status == 400 and "300 is already revoked" in e.value.detail
    assert revocations.get("300") == revocation("300")
    assert revocations.get("301") is None
    revocations.put_with_token(revocation("ssh:5", kind="ssh", cert_type="user", key_id="alice"), token("v"))
    with pytest.raises(TokenUsed):
        revocations.put_with_token(revocation("302"), token("v"))
    assert revocations.get("302") is None
    with pytest.raises(AlreadyRevoked):
        revocations.put_with_token(revocation("300"), token("w"))
    tokens.use(token("w"))  # not consumed by the refused revocation
    assert sorted(r.serial for r in revocations.scan_all()) == ["300", "ssh:5"]
    assert revocations.revoked_among(["300", "301", "ssh:5", "300"]) == {"300", "ssh:5"}
    assert revocations.revoked_among([str(i) for i in range(400)]) == {"300"}


# ---------------------------------------------------------------------------------------- authority


def test_configuration_versions_and_audit(store):
    assert not authority.exists()
    with pytest.raises(Exception, match="not initialized"):
        authority.load()
    assert authority.save({"name": "a"}, expected_version=None) == 1
    with pytest.raises(ConfigConflict):
        authority.save({"name": "b"}, expected_version=None)
    assert authority.load() == ({"name": "a"}, 1)
    rec = audit.new_record("provisioner.add", "p1", {"password": "x", "name": "p1"}, version=2, who="tester")
    assert authority.commit({"name": "c"}, 1, rec) == 2
    stale = audit.new_record("provisioner.add", "p2", {}, version=2, who="tester")
    with pytest.raises(ConfigConflict):
        authority.commit({"name": "d"}, 1, stale)
    assert authority.load() == ({"name": "c"}, 2)
    assert [r["pk"] for r in audit.records()] == [rec["pk"]]  # the refused change left no record
    assert audit.records("p1")[0]["change"] == {"name": "p1", "password": "<redacted>"}
    audit.write("intermediate.rotate", "", {})
    assert len(audit.records()) == 2 and audit.records("nobody") == []
    assert authority.overwrite({"name": "e"}) == 3


def test_concurrent_configuration_changes_one_wins(store):
    authority.save({"n": 0}, expected_version=None)
    barrier = threading.Barrier(8)

    def change(i: int) -> str:
        barrier.wait()
        try:
            authority.commit({"n": i}, 1, audit.new_record("x", f"p{i}", {}, version=2, who="t"))
            return "ok"
        except ConfigConflict:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(change, range(8)))
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 7
    doc, version = authority.load()
    assert version == 2 and f"p{doc['n']}" == audit.records()[0]["provisioner"] and len(audit.records()) == 1


# ------------------------------------------------------------------------------------------- races


def race(n: int, fn: Callable[[int], None]) -> list[str]:
    barrier = threading.Barrier(n)

    def run(i: int) -> str:
        barrier.wait()
        try:
            fn(i)
            return "ok"
        except TokenUsed:
            return "used"

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_threads_redeeming_one_token_record_one_certificate(store):
    outcomes = race(12, lambda i: certificates.record_issuance(cert(str(5000 + i)), token("race")))
    assert outcomes.count("ok") == 1 and outcomes.count("used") == 11
    assert sum(certificates.get(str(5000 + i)) is not None for i in range(12)) == 1


def test_threads_renewing_with_one_token_record_one_renewal(store):
    certificates.record_issuance(cert("600"), None)
    outcomes = race(8, lambda i: certificates.record_renewal(cert(str(700 + i), parent_serial="600"),
                                                              token("renew-race"), "600"))
    assert outcomes.count("ok") == 1
    assert len(certificates.children("600")) == 1


# ----------------------------------------------------------------------------------------- managed


def item(name: str, renew_at: int, **kw) -> managed.Managed:
    return managed.Managed(name=name, subject=f"{name}.internal", sans=[f"{name}.internal"], duration=3600,
                           rekey=False, serial="1", not_before=NOW, not_after=NOW + 3600, renew_at=renew_at,
                           secret_arn=f"arn:{name}", **kw)


def test_managed_registry(store):
    managed.put_new(item("a", NOW + 10))
    with pytest.raises(ManagedExists):
        managed.put_new(item("a", NOW))
    for i, name in enumerate("bcde"):
        managed.put_new(item(name, NOW + i))
    assert [m.name for m in managed.list_all()] == ["a", "b", "c", "d", "e"]
    assert managed.get("a") == item("a", NOW + 10) and managed.get("z") is None
    due, seen, start = [], 0, None
    while True:
        page, start = managed.due_page(NOW + 3, limit=2, start=start)
        due += [m.name for m in page]
        seen += 1
        if not start or seen > 5:
            break
    assert due == ["b", "c", "d", "e"]
    b = managed.get("b")
    claimed = managed.claim(b, NOW, 900)
    with pytest.raises(LostRace):
        managed.claim(b, NOW, 900)  # stale version
    with pytest.raises(LostRace):
        managed.claim(managed.get("b"), NOW + 1, 900)  # leased
    got = managed.get("b")
    assert got.status == managed.RENEWING and got.lease_until == NOW + 900 and got.version == claimed
    managed.fail(got, claimed, "boom", NOW + 5)
    failed = managed.get("b")
    assert failed.failures == 1 and failed.last_error == "boom" and failed.lease_until is None
    assert failed.renew_at == NOW + 5 and failed.version == claimed + 1
    again = managed.claim(failed, NOW + 6, 900)
    done = managed.finalize(failed, again, serial="2", not_before=NOW, not_after=NOW + 7200, now=NOW + 6)
    assert managed.get("b") == done and done.failures == 0 and done.last_error is None
    managed.mark_revoked(managed.get("c"), managed.get("c").version)
    assert managed.get("c").status == managed.REVOKED and managed.get("c").due is None
    assert [m.name for m in managed.due_page(NOW + 100)[0]] == ["d", "e", "a"]
    with pytest.raises(ManagedExists):
        managed.put_new(item("d", NOW), expected=5, now=NOW)
    managed.put_new(dataclasses.replace(item("d", NOW), version=2), expected=1, now=NOW)
    assert managed.get("d").version == 2
    managed.delete("d")
    assert managed.get("d") is None


# ----------------------------------------------------------------------------------------- objects


def test_crl_objects(store):
    assert crl_store.shared()
    assert [crl_store.next_number() for _ in range(3)] == [1, 2, 3]
    assert crl_store.get() is None
    at = dt.datetime.fromtimestamp(NOW, dt.UTC)
    stored = crl_store.StoredCRL(b"\x30\x03der", 3, at, at + dt.timedelta(hours=1))
    crl_store.put(stored)
    assert crl_store.get() == stored
    crl_store.put_krl(b"SSHKRL\n")


# ----------------------------------------------------------------------------------------- secrets


def test_managed_secrets_are_versioned(store):
    from stepless.managed import secret

    arn = secret.create("stack", "api", "v1")
    assert "stack/managed/api" in arn and secret.read(arn) == "v1"
    first = secret.versions(arn)
    v2 = secret.write(arn, "v2", secret.token("api", 2))
    assert secret.write(arn, "v2", secret.token("api", 2)) == v2  # the same request again: the same version
    assert secret.read(arn) == "v2"
    stages = secret.versions(arn)
    assert stages[v2] == ["AWSCURRENT"] and stages[next(iter(first))] == ["AWSPREVIOUS"] and len(stages) == 2
    v3 = secret.write(arn, "v3", secret.token("api", 3))
    stages = secret.versions(arn)
    assert stages[v3] == ["AWSCURRENT"] and stages[v2] == ["AWSPREVIOUS"]
    assert secret.create("stack", "api", "v4") == arn and secret.read(arn) == "v4"  # exists: a new version


# ------------------------------------------------------------------ host index, revoked SSH, OCSP responses


def test_host_index(store):
    assert not hosts.exists("web1.internal")
    hosts.add(["Web1.Internal", "web1", "x" * 2000], "11", NOW + 100, NOW)
    hosts.add(["web1.internal"], "12", NOW + 200, NOW)
    assert hosts.exists("WEB1.internal") and hosts.exists("web1") and not hosts.exists("x" * 2000)
    hosts.remove(["web1.internal"], "11", NOW + 100, NOW)
    hosts.remove(["nobody"], "11", NOW + 100, NOW)  # absent: nothing happens
    for i in range(5):
        hosts.add([f"h{i}.internal"], str(20 + i), NOW - 1 if i == 3 else NOW + 50, NOW - 10)
    hosts.add(["h3.internal"], "30", NOW + 60, NOW)  # drops h3's expired entry
    page, cursor = hosts.page(NOW, limit=3)
    assert [h.principal for h in page] == ["h0.internal", "h1.internal", "h2.internal"] and cursor == "h2.internal"
    rest, end = hosts.page(NOW, limit=3, cursor=cursor)
    assert [h.principal for h in rest] == ["h3.internal", "h4.internal", "web1"]
    more, _ = hosts.page(NOW, limit=10, cursor=end) if end else ([], None)
    everything = {h.principal: h for h in page + rest + more}
    assert everything["h3.internal"].certificates == {"30": NOW + 60}
    assert set(everything) == {"h0.internal", "h1.internal", "h2.internal", "h3.internal", "h4.internal", "web1",
                               "web1.internal"}
    assert everything["web1.internal"].certificates == {"12": NOW + 200} and everything["web1.internal"].live(NOW)
    with pytest.raises(ValueError):
        hosts.page(NOW, cursor="x" * 2000)


def test_expired_and_revoked_hosts_are_not_listed_but_were_seen(store):
    """GET /ssh/hosts lists live hosts only, however many expired before (step's client reads one page);
    check-host still answers whether a host certificate was ever issued, as step-ca."""
    for i in range(8):
        hosts.add([f"old{i}.internal"], str(i), NOW + 10, NOW)
    hosts.add(["web.internal"], "100", NOW + 500, NOW)
    hosts.add(["gone.internal"], "101", NOW + 500, NOW)
    hosts.remove(["gone.internal"], "101", NOW + 500, NOW + 1)
    assert [h.principal for h in hosts.page(NOW, limit=20)[0]] == sorted(
        [f"old{i}.internal" for i in range(8)] + ["web.internal"])
    later = NOW + 100  # every old* certificate has expired, gone* was revoked
    assert hosts.page(later, limit=2) == ([hosts.Host("web.internal", {"100": NOW + 500})], None)
    assert hosts.page(later, limit=1)[0] == [hosts.Host("web.internal", {"100": NOW + 500})]
    assert hosts.page(NOW + 500) == ([], None)
    assert all(hosts.exists(p) for p in ("old0.internal", "gone.internal", "web.internal"))
    hosts.add(["old0.internal"], "7", NOW + 900, later)  # a new certificate lists the host again
    assert [h.principal for h in hosts.page(later)[0]] == ["old0.internal", "web.internal"]


def test_an_expired_host_is_pruned_from_the_store(store):
    """Expired listings are deleted (SQLite on the next write, DynamoDB by TTL on `expires`), not kept."""
    hosts.add(["a.internal"], "1", NOW + 10, NOW)
    hosts.add(["b.internal"], "2", NOW + 900, NOW + 20)
    if store == "sqlite":
        with backend.current().hosts.db.read() as conn:
            rows = conn.execute("SELECT principal, serial FROM host_certificates").fetchall()
        assert rows == [("b.internal", "2")]
    else:
        ddb = boto3.client("dynamodb")
        items = ddb.scan(TableName=TABLES["STEPLESS_HOSTS_TABLE"][0])["Items"]
        listing = {i["principal"]["S"]: int(i["expires"]["N"]) for i in items if i["pk"]["S"] == "live"}
        assert listing == {"a.internal": NOW + 10, "b.internal": NOW + 900}  # TTL deletes a.internal
        assert not any("expires" in i for i in items if i["pk"]["S"] == "host")  # kept forever


def host_cert(serial: int, principals: tuple[str, ...], not_after: int, *, issued_at: int = NOW,
              parent: str | None = None) -> CertificateRecord:
    return CertificateRecord(serial=f"ssh:{serial}", kind="ssh", cert_type="host", not_before=NOW - 60,
                             not_after=not_after, provisioner="admin", provisioner_type="JWK", issued_at=issued_at,
                             key_id="host", principals=principals, parent_serial=parent, cert="AAAA")


def test_a_host_certificate_is_indexed_by_its_recording_transaction(store):
    """Issuance and renewal of a host certificate index it in the transaction that records it (DynamoDB: its
    Update actions); a refused recording indexes nothing; user certificates are not indexed."""
    certificates.record_issuance(host_cert(1, ("Web.Internal", "web"), NOW + 100), token("h1"))
    assert hosts.exists("web.internal") and hosts.exists("web")
    certificates.record_issuance(dataclasses.replace(host_cert(2, ("alice",), NOW + 100), cert_type="user"),
                                 token("h2"))
    assert not hosts.exists("alice")
    with pytest.raises(TokenUsed):
        certificates.record_issuance(host_cert(3, ("db.internal",), NOW + 100), token("h1"))
    assert not hosts.exists("db.internal")
    certificates.record_renewal(host_cert(4, ("Web.Internal", "web"), NOW + 300, parent="ssh:1"), token("h4"),
                                "ssh:1")
    revocations.put(revocation("ssh:4", kind="ssh", cert_type="host"))
    with pytest.raises(ParentRevoked):
        certificates.record_renewal(host_cert(5, ("mail.internal",), NOW + 400, parent="ssh:4"), token("h5"),
                                    "ssh:4")
    with pytest.raises(ParentUnknown):
        certificates.record_renewal(host_cert(6, ("mail.internal",), NOW + 400, parent="ssh:9"), token("h6"),
                                    "ssh:9")
    assert not hosts.exists("mail.internal") and certificates.get("ssh:5") is None
    both = {"1": NOW + 100, "4": NOW + 300}
    assert hosts.page(NOW) == ([hosts.Host("web", both), hosts.Host("web.internal", both)], None)
    later = {"4": NOW + 300}
    assert hosts.page(NOW + 200)[0] == [hosts.Host("web", later), hosts.Host("web.internal", later)]


def test_the_folded_host_index_keeps_every_rule(store, monkeypatch):
    """What the DynamoDB transaction cannot do in place it does after commit, with the same outcome: a
    shorter certificate beside a longer one leaves the host listed until the longer expires; more principals
    than one transaction folds are all indexed; a listing at its folded size is pruned of expired entries."""
    from stepless.stores.dynamodb import hosts as dynamo_hosts

    certificates.record_issuance(host_cert(10, ("a.internal",), NOW + 900), None)
    certificates.record_issuance(host_cert(11, ("a.internal",), NOW + 100), token("a"))
    assert hosts.page(NOW + 500)[0] == [hosts.Host("a.internal", {"10": NOW + 900})]
    many = tuple(f"m{i:02}.internal" for i in range(dynamo_hosts.MAX_FOLDED + 4))
    certificates.record_issuance(host_cert(12, many, NOW + 100), token("m"))
    assert all(hosts.exists(p) for p in many)
    assert [h.principal for h in hosts.page(NOW, limit=50)[0]] == ["a.internal", *many]
    monkeypatch.setattr(dynamo_hosts, "MAX_FOLDED_ENTRIES", 3)
    for i in range(3):
        certificates.record_issuance(host_cert(20 + i, ("b.internal",), NOW + 10 + i), None)
    certificates.record_issuance(host_cert(30, ("b.internal",), NOW + 900, issued_at=NOW + 50), None)
    if store == "sqlite":
        with backend.current().hosts.db.read() as conn:
            rows = conn.execute("SELECT serial FROM host_certificates WHERE principal = 'b.internal'").fetchall()
        assert rows == [("30",)]
    else:
        item = boto3.client("dynamodb").get_item(TableName=TABLES["STEPLESS_HOSTS_TABLE"][0],
                                                 Key={"pk": {"S": "live"}, "principal": {"S": "b.internal"}})["Item"]
        assert item["certs"]["SS"] == [f"30:{NOW + 900}"] and item["expires"]["N"] == str(NOW + 900)


def test_revoked_ssh_set(store):
    assert ssh_revoked.get() == ssh_revoked.Revoked()
    first = ssh_revoked.add(2**63 + 5, "user", NOW + 100, NOW)
    assert first.version == 1 and first.updated_at == NOW and first.user == {2**63 + 5: NOW + 100}
    ssh_revoked.add(7, "host", NOW + 5, NOW)
    later = ssh_revoked.add(8, "host", NOW + 100, NOW + 10)  # 7 has expired by then: dropped
    assert later.version == 3 and later.host == {8: NOW + 100} and later.user == {2**63 + 5: NOW + 100}
    assert ssh_revoked.get() == later
    with pytest.raises(ValueError):
        ssh_revoked.add(9, "other", NOW, NOW)
    outcomes = []
    threads = [threading.Thread(target=lambda i=i: outcomes.append(ssh_revoked.add(100 + i, "user", NOW + 99, NOW)))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ssh_revoked.get().version == 9 and len(ssh_revoked.get().user) == 7  # no revocation lost


def test_the_revoked_ssh_set_is_bounded_and_pruned_first(store, monkeypatch, caplog):
    """The set is one DynamoDB item (400 KB): past MAX_UNEXPIRED a new serial is refused with a typed 503
    and an error line, before DynamoDB would refuse the write; expired entries are dropped first, so they
    never count; re-adding a listed serial always succeeds."""
    from stepless.stores.errors import RevokedSetFull

    monkeypatch.setattr(ssh_revoked, "MAX_UNEXPIRED", 4)
    monkeypatch.setattr(ssh_revoked, "WARN_AT", 3)
    ssh_revoked.add(1, "user", NOW + 10, NOW)
    ssh_revoked.add(2, "host", NOW + 10, NOW)
    ssh_revoked.add(3, "user", NOW + 900, NOW)
    assert any(r.levelname == "WARNING" and "nearly full" in r.getMessage() for r in caplog.records)
    full = ssh_revoked.add(4, "host", NOW + 900, NOW)
    assert len(full.user) + len(full.host) == 4
    with pytest.raises(RevokedSetFull) as refused:
        ssh_revoked.add(5, "user", NOW + 900, NOW)
    assert refused.value.status == 503 and "KRL is full" in str(refused.value)
    assert any(r.levelname == "ERROR" and "revoked SSH set full" in r.getMessage() for r in caplog.records)
    assert ssh_revoked.get() == full  # nothing written
    assert ssh_revoked.add(3, "user", NOW + 900, NOW).version == full.version + 1  # listed already: room unneeded
    later = ssh_revoked.add(5, "user", NOW + 900, NOW + 10)  # 1 and 2 expired: pruned before counting
    assert later.user == {3: NOW + 900, 5: NOW + 900} and later.host == {4: NOW + 900}
    assert ssh_revoked.get() == later


def test_ocsp_responses(store):
    good = ocsp_responses.Response(b"\x30\x01good", NOW, NOW + 3600)
    rec = ocsp_responses.Record("77", ocsp_responses.GOOD, NOW + 86400, responses={"sha1": good})
    assert ocsp_responses.get("77") is None
    assert ocsp_responses.create(rec) and not ocsp_responses.create(rec)
    assert ocsp_responses.get("77") == rec
    other = ocsp_responses.Response(b"\x30\x02sha256", NOW, NOW + 3600)
    assert ocsp_responses.add_response("77", ocsp_responses.GOOD, "sha256", other)
    assert ocsp_responses.get("77").responses == {"sha1": good, "sha256": other}
    revoked = ocsp_responses.Record("77", ocsp_responses.REVOKED, NOW + 86400, NOW - 5, 1,
                                    {"sha1": ocsp_responses.Response(b"\x30\x03rev", NOW, NOW + 60)})
    ocsp_responses.put_revoked(revoked)
    assert ocsp_responses.get("77") == revoked  # the good responses are gone
    assert not ocsp_responses.add_response("77", ocsp_responses.GOOD, "sha256", other)  # revoked is terminal
    assert not ocsp_responses.add_response("78", ocsp_responses.GOOD, "sha1", other)  # no record
    assert ocsp_responses.get("77") == revoked
