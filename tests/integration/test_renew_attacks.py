# ruff: noqa: F811 - the fixtures imported from the other test modules are redefined as parameters
"""Issue 14, an outside review by attack: renewals sign first and let the one recording transaction refuse.

Each test tries to get a certificate that must not exist — of a revoked certificate (before, and while the
revocation lands), of a certificate never recorded, of another certificate's serial, through a provisioner
that does not renew, past the renewal cap, with a token used already, an SSHPOP renewal of what is not a
live recorded host certificate — and asserts the answer (status, message, reason) and that nothing was
recorded or indexed, on both stores (DynamoDB on moto, SQLite). The races run real threads; the stores'
commits are logged in commit order by wrapping them under one lock (test_concurrency does the same for
moto), so "no renewal committed after the revocation" is checked on what the store committed.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless import authority, clock
from stepless.api.ssh import app as ssh_app
from stepless.services import issuance, ssh_ca
from stepless.ssh import HOST, USER, build_and_sign, parse_certificate
from stepless.stores import authority as authority_store
from stepless.stores import backend, certificates, errors, hosts
from stepless.x509 import extensions, profile
from tests.integration.test_logs_no_secrets import captured  # noqa: F401 - fixture
from tests.integration.test_renew import (
    issue,
    renew_app,
    renew_bearer,
    renew_mtls,
    renew_token,
    set_claims,
)
from tests.integration.test_renew import revoke_app as x509_revoke_app
from tests.integration.test_renew_calls import REVOKED, UNKNOWN, any_ca, recorded, revoke_x509  # noqa: F401
from tests.integration.test_sign_race import busy_threads, serialized_dynamodb  # noqa: F401 - fixtures
from tests.integration.test_ssh_renew import renew as ssh_renew_call
from tests.integration.test_ssh_renew import revoke as ssh_revoke_call
from tests.integration.test_ssh_renew import sshpop_token, user_cert
from tests.integration.test_ssh_sign import b64key, sign, ssh_token
from tests.support.ca import call, make_csr
from tests.support.calls import counted

TOKEN_USED = ("token already used", "token_already_used")


# ---- helpers ----


def refused(status_body: tuple[int, Any], message: str, status: int = 401) -> None:
    """The request was refused with ``status`` and ``message``, and no certificate came back."""
    status_, body = status_body
    assert status_ == status, (status_, body)
    assert message in body["message"], body
    assert not {"crt", "ca", "certChain"} & set(body), body


def leaf(provisioner: str | None, *, serial: int | None = None, record: bool = False) -> tuple[Any, Any, str]:
    """A client-auth leaf signed by our intermediate whose provisioner extension names ``provisioner``
    (none when None); recorded as issued by it when ``record``."""
    auth = authority.get()
    admin = auth.provisioners.get("admin")
    key = ec.generate_private_key(ec.SECP256R1())
    now = clock.now() - dt.timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc.example.com")]))
        .issuer_name(auth.intermediate.subject).public_key(key.public_key())
        .serial_number(serial or profile.new_serial())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(profile.key_usage(key.public_key()), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(profile.authority_key_identifier(auth.intermediate), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("svc.example.com")]), critical=False)
    )
    if provisioner is not None:
        builder = builder.add_extension(extensions.extension(admin.type_code, provisioner, admin.credential_id),
                                        critical=False)
    cert = profile._sign(builder, auth.intermediate_signer)
    if record:
        certificates.record_issuance(issuance.record(cert, provisioner=provisioner or "admin",
                                                     provisioner_type="JWK",
                                                     issued_at=int(clock.now().timestamp())), None)
    return cert, key, issuance.pem(cert)


def add_provisioner(name: str, claims: dict) -> None:
    """A copy of the JWK provisioner ``admin`` under ``name`` with ``claims`` (its own key id)."""
    doc, version = authority_store.load()
    admin = next(p for p in doc["provisioners"] if p["name"] == "admin")
    copy = {**admin, "name": name, "claims": claims}
    copy["key"] = {**admin["key"], "kid": f"{name}-kid"}
    doc["provisioners"].append(copy)
    authority_store.save(doc, expected_version=version)
    authority.reset()


def rekey(pem: str, csr: str) -> tuple[int, Any]:
    return call(renew_app, "POST", "/1.0/rekey", {"csr": csr}, client_cert_pem=pem)


def cert_of(body: dict) -> x509.Certificate:
    return x509.load_pem_x509_certificate(body["crt"].encode())


def host(ca, principals: list[str], *, valid: str = "2h") -> tuple[str, Any]:
    """A host certificate (base64) for ``principals`` and its key, through POST /ssh/sign."""
    key = ec.generate_private_key(ec.SECP256R1())
    status, body = sign(ca, principals[0], key=key, token_opts={"certType": "host", "principals": principals},
                        validBefore=valid)
    assert status == 201, body
    return body["crt"], key


def ssh(crt: str):
    return parse_certificate(base64.b64decode(crt))


def listed(at: int) -> dict[str, dict[str, int]]:
    """principal -> {serial: notAfter} of the live hosts at ``at`` (every page)."""
    out: dict[str, dict[str, int]] = {}
    cursor = None
    while True:
        page, cursor = hosts.page(at, cursor=cursor)
        out |= {h.principal: h.certificates for h in page}
        if cursor is None:
            return out


@pytest.fixture
def commits(any_ca, serialized_dynamodb, monkeypatch) -> list[tuple[str, str]]:
    """("renew", parent serial) per committed renewal and ("revoke", serial) per committed revocation, in
    commit order: the store's two writes run under one lock, and are logged once they returned."""
    stores = backend.current()
    lock = threading.Lock()
    log: list[tuple[str, str]] = []
    renewal, revocation = stores.certificates.record_renewal, stores.revocations.put

    def record_renewal(record, token, parent_serial, **kw):
        with lock:
            renewal(record, token, parent_serial, **kw)
            log.append(("renew", parent_serial))

    def put(record, token=None):
        with lock:
            revocation(record, token)
            log.append(("revoke", record.serial))

    monkeypatch.setattr(stores.certificates, "record_renewal", record_renewal)
    monkeypatch.setattr(stores.revocations, "put", put)
    return log


def together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run ``jobs`` in as many threads, released at once."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


# ---- X.509: revoked ----


def test_a_revoked_certificate_renews_and_rekeys_nothing(any_ca):
    """mTLS renew, token renew and rekey of a revoked certificate: 401 revoked, nothing recorded, and the
    refused token was not consumed by the refusal (nothing written at all)."""
    cert, key, pem = issue(any_ca)
    revoke_x509(any_ca, str(cert.serial_number))
    before = recorded()
    token = renew_token(cert, key)
    refused(renew_mtls(pem), REVOKED[0])
    refused(renew_bearer(token), REVOKED[0])
    refused(renew_bearer(token), REVOKED[0])  # still "revoked", not "token already used": nothing written
    refused(rekey(pem, make_csr("svc.example.com")[0]), REVOKED[0])
    assert recorded() == before and certificates.children(str(cert.serial_number)) == []


@pytest.mark.parametrize("path", ["mtls", "token"])
def test_a_revocation_landing_while_renewals_run(any_ca, commits, busy_threads, path):
    """4 threads renew one certificate in a loop (60+ attempts) while a 5th revokes it mid-way: once the
    revocation is committed no renewal of it is committed, none that started after the revoke returned
    succeeds, every success was recorded and linked, every refusal is 401 revoked without a certificate."""
    cert, key, pem = issue(any_ca)
    serial = str(cert.serial_number)
    attempts, renewers = 16, 4
    outcomes: list[tuple[float, float, int, Any]] = []
    revoked_at: list[float] = []
    started = threading.Event()
    lock = threading.Lock()

    def renewer() -> None:
        for i in range(attempts):
            if i == 4:
                started.set()
            token = renew_token(cert, key) if path == "token" else None
            start = time.monotonic()
            status, body = renew_bearer(token) if token else renew_mtls(pem)
            with lock:
                outcomes.append((start, time.monotonic(), status, body))

    def revoker() -> None:
        started.wait(30)
        revoke_x509(any_ca, serial)
        revoked_at.append(time.monotonic())

    together([renewer] * renewers + [revoker])
    assert len(outcomes) == attempts * renewers
    (end,) = revoked_at
    ok = [o for o in outcomes if o[2] == 201]
    for start, _, status, body in outcomes:
        if status == 201:
            assert start < end, "a renewal that started after the revoke returned succeeded"
        else:
            refused((status, body), REVOKED[0])
    assert any(start > end for start, *_ in outcomes), "no attempt started after the revocation"
    seen_revoke = False
    for kind, parent in commits:
        if kind == "revoke":
            seen_revoke = parent == serial
        else:
            assert not seen_revoke, "a renewal committed after the revocation"
    assert sum(kind == "renew" for kind, _ in commits) == len(ok) >= 1
    assert sorted(certificates.children(serial)) == sorted(str(cert_of(b).serial_number) for *_, b in ok)
    refused(renew_mtls(pem), REVOKED[0])


def test_what_a_refused_renewal_of_a_revoked_certificate_costs(test_ca):
    """The price of reading nothing first (services/renew.py says so): a revoked certificate's holder, whom
    API Gateway's mTLS truststore still lets through, makes the CA sign each time (one kms.Sign) before the
    transaction refuses; no other call. Before issue 14 it was one BatchGetItem and no signature."""
    cert, _, pem = issue(test_ca)
    revoke_x509(test_ca, str(cert.serial_number))
    refused(renew_mtls(pem), REVOKED[0])  # warm
    with counted() as calls:
        refused(renew_mtls(pem), REVOKED[0])
    assert dict(calls) == {"kms.Sign": 1, "dynamodb.TransactWriteItems": 1}


# ---- X.509: a certificate of ours that is not the recorded one ----


@pytest.mark.parametrize("same_serial", [True, False], ids=["recorded-serial", "fresh-serial"])
def test_an_unrecorded_certificate_of_ours_renews_nothing(any_ca, same_serial):
    """Signed by our intermediate with the provisioner extension, but never recorded: under a recorded serial
    (other bytes, fingerprint mismatch) or a fresh one — 401 unknown on mTLS, token and rekey, nothing
    recorded, the recorded certificate untouched (no child) and still renewable."""
    cert, _, pem = issue(any_ca)
    other, other_key, other_pem = leaf("admin", serial=cert.serial_number if same_serial else None)
    before = recorded()
    refused(renew_mtls(other_pem), UNKNOWN[0])
    refused(renew_bearer(renew_token(other, other_key)), UNKNOWN[0])
    refused(rekey(other_pem, make_csr("svc.example.com")[0]), UNKNOWN[0])
    assert recorded() == before
    assert certificates.children(str(cert.serial_number)) == []
    assert renew_mtls(pem)[0] == 201


def test_a_revoked_serial_reissued_with_other_bytes_stays_revoked(any_ca):
    """Another certificate under a revoked, recorded serial: refused (unknown, the first rule that applies)."""
    cert, _, _ = issue(any_ca)
    revoke_x509(any_ca, str(cert.serial_number))
    _, _, other_pem = leaf("admin", serial=cert.serial_number)
    before = recorded()
    refused(renew_mtls(other_pem), UNKNOWN[0])
    assert recorded() == before


# ---- X.509: the provisioner extension ----


def test_without_the_provisioner_extension_the_record_decides(any_ca):
    """No extension: the record is read first (its provisioner, its revocation). Recorded: renews, through
    the recorded provisioner; revoked: 401 revoked; recorded under another certificate's bytes: 401 unknown."""
    cert, _, pem = leaf(None, record=True)
    status, body = renew_mtls(pem)
    assert status == 201, body
    rec = certificates.get(str(cert_of(body).serial_number))
    assert rec.parent_serial == str(cert.serial_number) and rec.provisioner == "admin"
    revoke_x509(any_ca, str(cert.serial_number))
    before = recorded()
    refused(renew_mtls(pem), REVOKED[0])
    _, _, twin = leaf(None, serial=cert.serial_number)
    refused(renew_mtls(twin), UNKNOWN[0])
    assert recorded() == before


def test_an_extension_naming_a_provisioner_that_does_not_renew(any_ca):
    """The extension names a provisioner with renewal disabled, or one that does not exist (deleted): 401
    with that reason before anything is signed, nothing recorded — even when recorded under that name."""
    add_provisioner("frozen", {"disableRenewal": True})
    _, _, frozen = leaf("frozen", record=True)
    _, _, ghost = leaf("ghost", record=True)
    before = recorded()
    refused(renew_mtls(frozen), "renew is disabled for provisioner 'frozen'")
    refused(renew_mtls(ghost), "provisioner not found")
    assert recorded() == before


def test_disabling_renewal_stops_the_certificates_it_issued(any_ca):
    cert, key, pem = issue(any_ca)
    set_claims("admin", {"disableRenewal": True})
    before = recorded()
    refused(renew_mtls(pem), "renew is disabled for provisioner 'admin'")
    refused(renew_bearer(renew_token(cert, key)), "renew is disabled for provisioner 'admin'")
    assert recorded() == before


# ---- X.509: the renewal cap, many renewals at once, a token replayed ----


def test_over_the_renewal_cap_renews_nothing(any_ca, monkeypatch):
    """The cap (1000, lowered to 3 here): the 4th renewal of one certificate is 403, nothing recorded; its
    renewals renew on."""
    monkeypatch.setattr(errors, "MAX_RENEWALS_PER_CERTIFICATE", 3)
    cert, _, pem = issue(any_ca)
    renewed = [renew_mtls(pem) for _ in range(3)]
    assert [s for s, _ in renewed] == [201] * 3
    before = recorded()
    refused(renew_mtls(pem), "renew its latest renewal instead", status=403)
    assert recorded() == before and len(certificates.children(str(cert.serial_number))) == 3
    assert renew_mtls(renewed[-1][1]["crt"])[0] == 201


def test_eight_renewals_at_once_under_a_cap_of_three(any_ca, serialized_dynamodb, busy_threads, monkeypatch):
    """8 threads renew one certificate at once, the cap lowered to 3: exactly 3 succeed, 5 are 403."""
    monkeypatch.setattr(errors, "MAX_RENEWALS_PER_CERTIFICATE", 3)
    cert, _, pem = issue(any_ca)
    results = together([lambda: renew_mtls(pem)] * 8)
    assert sorted(s for s, _ in results) == [201] * 3 + [403] * 5, results
    for result in results:
        if result[0] == 403:
            refused(result, "renew its latest renewal instead", status=403)
    assert len(certificates.children(str(cert.serial_number))) == 3


def test_eight_renewals_of_one_certificate_at_once_all_succeed(any_ca, serialized_dynamodb, busy_threads):
    """The rule is lineage, not single use: a certificate may be renewed many times (up to the cap), each
    renewal its own serial, all recorded and linked — 8 at once over mTLS, 8 by their own tokens."""
    cert, key, pem = issue(any_ca)
    results = together([lambda: renew_mtls(pem)] * 4 + [lambda: renew_bearer(renew_token(cert, key))] * 4)
    assert [s for s, _ in results] == [201] * 8, results
    serials = {str(cert_of(b).serial_number) for _, b in results}
    assert len(serials) == 8 and set(certificates.children(str(cert.serial_number))) == serials
    assert serials <= recorded()


def test_one_renew_token_replayed_by_eight_threads(any_ca, serialized_dynamodb, busy_threads):
    """The x5cInsecure token's jti is single use, raced: one certificate, 7 refusals, one child recorded;
    the token replayed afterwards still fails."""
    cert, key, _ = issue(any_ca)
    token = renew_token(cert, key)
    before = recorded()
    results = together([lambda: renew_bearer(token)] * 8)
    assert sorted(s for s, _ in results) == [201] + [401] * 7, results
    for result in results:
        if result[0] == 401:
            refused(result, TOKEN_USED[0])
    (won,) = [b for s, b in results if s == 201]
    assert recorded() == before | {str(cert_of(won).serial_number)}
    assert certificates.children(str(cert.serial_number)) == [str(cert_of(won).serial_number)]
    refused(renew_bearer(token), TOKEN_USED[0])


# ---- X.509: rekey ----


def test_rekey_takes_the_csrs_key_and_nothing_else(any_ca):
    """A CSR for another key and other names: the new certificate has the CSR's key and the old subject and
    SANs; a CSR whose signature does not verify (another key's) is 400 and nothing is signed or recorded."""
    cert, _, pem = issue(any_ca, "svc.example.com")
    csr, new_key = make_csr("evil.example.com", ["evil.example.com", "10.9.9.9"])
    status, body = rekey(pem, csr)
    assert status == 201, body
    new = cert_of(body)
    assert new.public_key() == new_key.public_key() and new.subject == cert.subject
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["svc.example.com"]
    # a CSR whose signature does not verify (its last byte changed)
    der = bytearray(x509.load_pem_x509_csr(make_csr("svc.example.com")[0].encode()).public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    pem_forged = ("-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)).decode()
                  + "-----END CERTIFICATE REQUEST-----\n")
    before = recorded()
    status, body = rekey(pem, pem_forged)
    assert status == 400 and not {"crt", "ca", "certChain"} & set(body), body
    assert recorded() == before


# ---- certificates whose extensions do not parse (cryptography reads them lazily) ----


def unparsable(kind: str) -> tuple[x509.Certificate, Any]:
    """A leaf (self-signed, so not ours) naming our intermediate as its issuer, whose extensions do not
    parse: one of them twice ("duplicate"), or an AuthorityKeyIdentifier that is no SEQUENCE ("malformed")."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = clock.now() - dt.timedelta(minutes=1)
    oid = x509.ObjectIdentifier("1.2.3.4") if kind == "duplicate" else x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc.example.com")]))
        .issuer_name(authority.get().intermediate.subject).public_key(key.public_key())
        .serial_number(profile.new_serial()).not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.5"), b"\x05\x00"), critical=False)
    )
    der = builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
    if kind == "duplicate":  # the builder refuses duplicates: rename 1.2.3.5 to 1.2.3.4 in the DER
        der = der.replace(bytes.fromhex("06032a0305"), bytes.fromhex("06032a0304"))
    return x509.load_der_x509_certificate(der), key


@pytest.mark.parametrize("kind", ["duplicate", "malformed"])
def test_a_certificate_whose_extensions_do_not_parse_is_refused_not_a_500(any_ca, kind):
    """Found by this review: such a leaf in an x5cInsecure renew token (no credential needed) or presented
    over mTLS (renew, rekey, revoke) raised DuplicateExtension / ValueError where its key identifier was
    first read: a 500. Now 401 (token) / 400 (certificate), nothing recorded."""
    cert, key = unparsable(kind)
    pem = issuance.pem(cert)
    token = renew_token(cert, key, chain=[base64.b64encode(cert.public_bytes(Encoding.DER)).decode()])
    before = recorded()
    refused(renew_bearer(token), "invalid certificate in x5cInsecure header")
    refused(renew_mtls(pem), "invalid client certificate", status=400)
    refused(rekey(pem, make_csr("svc.example.com")[0]), "invalid client certificate", status=400)
    refused(call(x509_revoke_app, "POST", "/1.0/revoke", {"serial": str(cert.serial_number)}, client_cert_pem=pem),
            "invalid client certificate", status=400)
    assert recorded() == before


# ---- a refused renewal leaves no trace of the certificate it signed ----


def test_the_certificate_signed_for_a_refused_renewal_is_never_returned_or_logged(any_ca, captured, caplog,
                                                                                 capsys, monkeypatch):
    """The renewal is signed before the transaction refuses it: that certificate (its serial, its PEM) is
    not in the response, not in any line our loggers write (the SDK's own DEBUG logging of request bodies,
    off in the functions, would show it as it shows every record written), not recorded."""
    cert, _, pem = issue(any_ca)
    revoke_x509(any_ca, str(cert.serial_number))
    signed: list[x509.Certificate] = []
    real = profile.renewal

    def spy(*args, **kwargs):
        signed.append(real(*args, **kwargs))
        return signed[-1]

    monkeypatch.setattr(profile, "renewal", spy)
    status, body = renew_mtls(pem)
    refused((status, body), REVOKED[0])
    (dropped,) = signed  # it was signed (the transaction is what refused it)
    ours = [r for r in caplog.records if r.name.startswith("stepless")]  # not the SDK's DEBUG request bodies
    text = "\n".join([captured["stream"].getvalue(), capsys.readouterr().out, str(body)]
                      + [f"{r.getMessage()} {r.__dict__}" for r in ours])
    assert "request refused" in text
    assert str(dropped.serial_number) not in text and "BEGIN CERTIFICATE" not in text
    assert certificates.get(str(dropped.serial_number)) is None


# ---- SSH ----


def test_sshpop_of_a_revoked_host_certificate_renews_and_indexes_nothing_racing(any_ca, commits,
                                                                               busy_threads):
    """SSHPOP renewals of one host certificate (3 threads, 18 attempts in all) while another thread revokes
    it: none committed after the revocation, none starting after it returned succeeds; the revoked
    certificate's renewals that were refused are neither recorded nor indexed."""
    crt, key = host(any_ca, ["race.example.com"])
    old = ssh(crt)
    started = threading.Event()
    outcomes: list[tuple[float, int, Any]] = []
    lock = threading.Lock()
    revoked_at: list[float] = []

    def renewer() -> None:
        for i in range(6):
            if i == 2:
                started.set()
            token = sshpop_token(crt, key, "/1.0/ssh/renew")
            start = time.monotonic()
            status, body = call(ssh_app, "POST", "/1.0/ssh/renew", {"ott": token})
            with lock:
                outcomes.append((start, status, body))

    def revoker() -> None:
        started.wait(30)
        status, body = ssh_revoke_call(old.serial, sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(old.serial)))
        assert status == 200, body
        revoked_at.append(time.monotonic())

    together([renewer] * 3 + [revoker])
    (end,) = revoked_at
    ok = [b for _, s, b in outcomes if s == 201]
    assert ok and any(start > end for start, *_ in outcomes), "the revocation landed mid-way"
    for start, status, body in outcomes:
        if status == 201:
            assert start < end
        else:
            refused((status, body), REVOKED[0])
    seen_revoke = False
    for kind, serial in commits:
        seen_revoke = seen_revoke or (kind == "revoke" and serial == f"ssh:{old.serial}")
        assert not (seen_revoke and kind == "renew"), "a renewal committed after the revocation"
    renewed = {str(ssh(b["crt"]).serial) for b in ok}
    assert {c.removeprefix("ssh:") for c in certificates.children(f"ssh:{old.serial}")} == renewed
    index = listed(old.valid_after + 120).get("race.example.com", {})
    assert set(index) == renewed  # the renewals that committed, not the revoked one nor any refused
    refused(ssh_renew_call(crt, key), REVOKED[0])


def test_sshpop_with_a_user_certificate_renews_nothing(any_ca):
    crt, key = user_cert(any_ca)
    before = recorded()
    refused(ssh_renew_call(crt, key), "sshpop certificate must be a host ssh certificate")
    refused(call(ssh_app, "POST", "/1.0/ssh/rekey", {"ott": sshpop_token(crt, key, "/1.0/ssh/rekey"),
                                                     "publicKey": b64key(key)}),
            "sshpop certificate must be a host ssh certificate")
    assert recorded() == before


def test_sshpop_of_an_unrecorded_host_certificate_of_ours(any_ca):
    """A host certificate signed by our host CA key but never recorded: 401, nothing recorded or indexed."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    cert = build_and_sign(key.public_key(), serial=123456789, cert_type=HOST, key_id="ghost.example.com",
                          principals=("ghost.example.com",), valid_after=now - 60, valid_before=now + 3600,
                          critical_options={}, extensions={}, signer=ssh_ca.ca_signer(authority.get(), HOST))
    crt = base64.b64encode(cert.raw).decode()
    before = recorded()
    refused(ssh_renew_call(crt, key), "certificate not found")
    assert recorded() == before and "ghost.example.com" not in listed(now)
    assert not hosts.exists("ghost.example.com")


def test_sshpop_renewal_of_a_host_with_twenty_principals_indexes_all(any_ca):
    """20 principals: 16 folded into the transaction, 4 indexed after it (the fallback), on issuance and
    on renewal; every principal lists both certificates."""
    names = [f"h{i:02}.example.com" for i in range(20)]
    crt, key = host(any_ca, names)
    status, body = ssh_renew_call(crt, key)
    assert status == 201, body
    old, new = ssh(crt), ssh(body["crt"])
    index = listed(new.valid_after + 120)
    for name in names:
        assert index[name] == {str(old.serial): old.valid_before, str(new.serial): new.valid_before}, name
        assert hosts.exists(name)


def test_a_host_certificate_with_duplicate_principals(any_ca):
    """Principals repeated (and in two cases): signed (as step-ca), each principal indexed once (two
    actions on one item would make DynamoDB refuse the whole transaction), and the certificate renews."""
    principals = ["dup.example.com", "DUP.example.com", "dup.example.com", "other.example.com"]
    key = ec.generate_private_key(ec.SECP256R1())
    status, body = sign(any_ca, principals[0], key=key, token_opts={"certType": "host", "principals": principals})
    assert status == 201, body
    status, renewed = ssh_renew_call(body["crt"], key)
    assert status == 201, renewed
    old, new = ssh(body["crt"]), ssh(renewed["crt"])
    index = listed(new.valid_after + 120)
    assert index["dup.example.com"] == index["other.example.com"] == {
        str(old.serial): old.valid_before, str(new.serial): new.valid_before}


def test_one_sshpop_token_replayed_by_eight_threads(any_ca, serialized_dynamodb, busy_threads):
    """One SSHPOP renew token, 8 threads: one certificate recorded, linked and indexed; 7 refusals."""
    crt, key = host(any_ca, ["replay.example.com"])
    old = ssh(crt)
    token = sshpop_token(crt, key, "/1.0/ssh/renew")
    before = recorded()
    results = together([lambda: call(ssh_app, "POST", "/1.0/ssh/renew", {"ott": token})] * 8)
    assert sorted(s for s, _ in results) == [201] + [401] * 7, results
    for result in results:
        if result[0] == 401:
            refused(result, TOKEN_USED[0])
    (won,) = [ssh(b["crt"]) for s, b in results if s == 201]
    assert recorded() == before | {f"ssh:{won.serial}"}
    assert certificates.children(f"ssh:{old.serial}") == [f"ssh:{won.serial}"]
    assert listed(won.valid_after + 120)["replay.example.com"] == {str(old.serial): old.valid_before,
                                                                   str(won.serial): won.valid_before}


def test_one_ssh_host_token_redeemed_by_eight_threads(any_ca, serialized_dynamodb, busy_threads):
    """One SSH host sign token, 8 threads each with its own key: one certificate, indexed alone."""
    token = ssh_token(any_ca, "many.example.com", certType="host", principals=["many.example.com"])
    before = recorded()
    results = together([lambda: sign(any_ca, token=token)] * 8)
    assert sorted(s for s, _ in results) == [201] + [401] * 7, results
    (won,) = [ssh(b["crt"]) for s, b in results if s == 201]
    assert recorded() == before | {f"ssh:{won.serial}"}
    assert listed(won.valid_after + 120)["many.example.com"] == {str(won.serial): won.valid_before}


@pytest.mark.parametrize(("base", "status", "message"), [
    (0, 401, REVOKED[0]),  # the parent's revocation check failed: refused, whatever the index said
    (1, 503, "DynamoDB error"),  # a conflict on the parent's record (a concurrent renewal): retry later
], ids=["revoked", "parent-conflict"])
def test_an_index_conflict_never_hides_a_refusal(test_ca, monkeypatch, base, status, message):
    """DynamoDB cancels a host renewal for its base items and for a host-index item at once: the
    transaction is not run again without the index actions (that is only for index-only failures), the
    refusal stands, nothing is recorded or indexed."""
    from botocore.exceptions import ClientError

    from stepless import aws

    crt, key = host(test_ca, ["both.example.com"])
    old = ssh(crt)
    client = aws.client("dynamodb")
    real, sent = client.transact_write_items, []

    def cancelled(TransactItems):  # noqa: N803 - botocore's parameter name
        sent.append(TransactItems)
        reasons = [{"Code": "None"}] * len(TransactItems)
        reasons[base] = {"Code": "ConditionalCheckFailed" if base == 0 else "TransactionConflict"}
        reasons[-1] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                           "CancellationReasons": reasons}, "TransactWriteItems")

    token = sshpop_token(crt, key, "/1.0/ssh/renew")
    before = recorded()
    monkeypatch.setattr(client, "transact_write_items", cancelled)
    result = call(ssh_app, "POST", "/1.0/ssh/renew", {"ott": token})
    monkeypatch.setattr(client, "transact_write_items", real)
    refused(result, message, status=status)
    assert len(sent) == 1
    assert recorded() == before and certificates.children(f"ssh:{old.serial}") == []
    assert listed(old.valid_after + 120)["both.example.com"] == {str(old.serial): old.valid_before}


@pytest.mark.parametrize("order", ["long-then-short", "short-then-long"])
def test_the_host_index_keeps_the_longer_certificate(any_ca, order):
    """Two host certificates for one principal, 2h and 1h: 90 minutes later the principal is still listed
    (with the 2h one) whatever the order of issuance — a shorter certificate never shortens the listing."""
    valids = ["2h", "1h"] if order == "long-then-short" else ["1h", "2h"]
    certs = [ssh(host(any_ca, ["x.example.com"], valid=v)[0]) for v in valids]
    longer = max(certs, key=lambda c: c.valid_before)
    at = min(c.valid_after for c in certs) + 90 * 60
    assert listed(at)["x.example.com"] == {str(longer.serial): longer.valid_before}
    assert set(listed(at - 60 * 60)["x.example.com"]) == {str(c.serial) for c in certs}


def test_an_ssh_sign_token_replayed_indexes_nothing(any_ca):
    """An SSH host token used twice (another key the second time): 401 token used, no record, the index holds
    the first certificate only."""
    token = ssh_token(any_ca, "once.example.com", certType="host", principals=["once.example.com"])
    status, body = sign(any_ca, token=token)
    assert status == 201, body
    first = ssh(body["crt"])
    before = recorded()
    refused(sign(any_ca, token=token), TOKEN_USED[0])
    assert recorded() == before
    assert listed(first.valid_after + 120)["once.example.com"] == {str(first.serial): first.valid_before}


def test_user_certificates_are_never_indexed(any_ca):
    crt, _ = user_cert(any_ca, "carol@example.com")
    cert = ssh(crt)
    assert cert.cert_type == USER
    assert not hosts.exists("carol@example.com") and "carol@example.com" not in listed(cert.valid_after + 60)



@pytest.mark.parametrize("kind", ["duplicate", "malformed"])
def test_acme_revoke_cert_with_such_a_certificate_is_unauthorized_not_a_500(any_ca, kind):
    """The same class of input through ACME's revokeCert (signed with the certificate's own key, no account):
    RFC 8555's unauthorized problem, never a 500 — `chain.issued_by` reads the extensions defensively."""
    from stepless import jose
    from stepless.admin import provisioners as admin_config
    from tests.integration.test_acme import PROBLEM, _app
    from tests.support.acme import Client

    admin_config.add(admin_config.acme_entry("acme", require_eab=False))
    cert, key = unparsable(kind)
    status, _, body = Client(_app(), prefix="/1.0").post(
        "revoke-cert", {"certificate": jose.b64e(cert.public_bytes(Encoding.DER))}, key=key, use_jwk=True)
    assert status == 401 and body["type"] == PROBLEM + "unauthorized", body
