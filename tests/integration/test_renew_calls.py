"""Issue 14, fewer calls: a warm renewal (X.509 over mTLS or by token, SSHPOP renew and rekey) and an SSH host
issuance make no read, only the recording TransactWriteItems and the kms.Sign; the rules the reads used to
check ride in that transaction, so a revoked, unknown or another certificate's serial is still refused with
the same 401 message and reason, and nothing is recorded or indexed — on both stores (moto, SQLite)."""

from __future__ import annotations

import base64

import boto3
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepless import authority
from stepless.api.ssh import app as ssh_app
from stepless.errors import StepError
from stepless.observability import reason_code
from stepless.services import renew as renewal
from stepless.services import ssh_renew
from stepless.ssh import parse_certificate
from stepless.stores import backend, certificates, hosts
from stepless.stores.revocations import RevocationRecord
from tests.integration.test_renew import custom_leaf, issue, renew_bearer, renew_mtls, renew_token
from tests.integration.test_renew import revoke_app as x509_revoke_app
from tests.integration.test_ssh_renew import host_cert, renew, revoke, sshpop_token
from tests.integration.test_ssh_sign import b64key
from tests.support.ca import call
from tests.support.calls import counted

ONE_TRANSACTION = {"dynamodb.TransactWriteItems": 1, "kms.Sign": 1}
UNKNOWN = ("certificate is unknown to this certificate authority", "unknown_certificate")
REVOKED = ("certificate has been revoked", "certificate_revoked")


@pytest.fixture(params=["dynamodb", "sqlite"])
def any_ca(request):
    """The test CA on moto (KMS keys) or on the local engine (SQLite, key files)."""
    return request.getfixturevalue("test_ca" if request.param == "dynamodb" else "sqlite_ca")


def recorded() -> set[str]:
    """Every serial in the certificates table, whichever the store."""
    stores = backend.current()
    if stores.name == "sqlite":
        with stores.certificates.db.read() as conn:
            return {row[0] for row in conn.execute("SELECT serial FROM certificates")}
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName="test-certificates")
    return {item["serial"]["S"] for page in pages for item in page["Items"]}


def refusal(fn, *args) -> tuple[str, str]:
    """(message, reason code) of the StepError ``fn(*args)`` raises."""
    with pytest.raises(StepError) as e:
        fn(*args)
    assert e.value.status == 401, e.value
    return e.value.detail, reason_code(e.value)


def revoke_x509(ca, serial: str) -> None:
    token = ca.token(serial, path="/1.0/revoke")
    assert call(x509_revoke_app, "POST", "/revoke", {"serial": serial, "ott": token})[0] == 200


# ---- calls per warm request (moto: every call counted at botocore's before-call hook) ----


def test_a_warm_renewal_is_one_transaction_and_one_signature(test_ca):
    """Over mTLS and by x5cInsecure token: no BatchGetItem of the record and revocation any more."""
    _, _, warm = issue(test_ca, "warm.example.com")
    assert renew_mtls(warm)[0] == 201  # the container's first renewal (clients, the CA's public key)
    cert, key, pem = issue(test_ca)
    with counted() as calls:
        status, body = renew_mtls(pem)
    assert status == 201, body
    assert dict(calls) == ONE_TRANSACTION
    with counted() as calls:
        status, body = renew_bearer(renew_token(cert, key))
    assert status == 201, body
    assert dict(calls) == ONE_TRANSACTION
    assert certificates.children(str(cert.serial_number)) != []


def test_sshpop_renewal_rekey_and_host_issuance_are_one_transaction_and_one_signature(test_ca):
    """The SSHPOP certificate's revocation read and the host index's UpdateItems ride in the one transaction,
    and the host index still answers check-host and the hosts list."""
    warm, warm_key = host_cert(test_ca, "warm.example.com")
    assert renew(warm, warm_key)[0] == 201
    with counted() as calls:
        crt, key = host_cert(test_ca, "db.example.com")
    assert dict(calls) == ONE_TRANSACTION
    with counted() as calls:
        status, body = renew(crt, key)
    assert status == 201, body
    assert dict(calls) == ONE_TRANSACTION
    renewed = parse_certificate(base64.b64decode(body["crt"]))
    with counted() as calls:
        status, body = call(ssh_app, "POST", "/ssh/rekey",
                            {"ott": sshpop_token(body["crt"], key, "/1.0/ssh/rekey"), "publicKey": b64key(key)})
    assert status == 201, body
    assert dict(calls) == ONE_TRANSACTION
    rekeyed = parse_certificate(base64.b64decode(body["crt"]))
    assert hosts.exists("db.example.com")
    listed = {h.principal: h for h in hosts.page(int(renewed.valid_after) + 120)[0]}
    assert {str(renewed.serial), str(rekeyed.serial)} <= set(listed["db.example.com"].certificates)


# ---- refusals: the same message and reason, nothing recorded (both stores) ----


def test_a_revoked_certificate_is_refused_and_nothing_recorded(any_ca):
    cert, key, pem = issue(any_ca)
    revoke_x509(any_ca, str(cert.serial_number))
    before = recorded()
    assert refusal(renewal.renew_mtls, pem, authority.get()) == REVOKED
    assert refusal(renewal.renew_token, renew_token(cert, key), authority.get()) == REVOKED
    status, body = renew_mtls(pem)
    assert status == 401 and REVOKED[0] in body["message"] and "crt" not in body
    assert recorded() == before and certificates.children(str(cert.serial_number)) == []


@pytest.mark.parametrize("extension", [True, False], ids=["extension", "no-extension"])
def test_an_unrecorded_certificate_is_refused_and_nothing_recorded(any_ca, extension):
    """With the provisioner extension the transaction's condition refuses it; without, the record read (the
    rare path) does — the same 401 either way."""
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), record=False, extension=extension)
    before = recorded()
    assert refusal(renewal.renew_mtls, pem, authority.get()) == UNKNOWN
    status, body = renew_mtls(pem)
    assert status == 401 and UNKNOWN[0] in body["message"]
    assert recorded() == before


def test_another_certificate_under_a_recorded_serial_is_refused_and_nothing_recorded(any_ca):
    """A certificate of ours (same serial, other key and fingerprint) is not the one recorded: refused; the
    recorded one still renews."""
    cert, _, pem = issue(any_ca)
    _, _, other = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), cn="svc.example.com", record=False,
                              serial=cert.serial_number)
    before = recorded()
    assert refusal(renewal.renew_mtls, other, authority.get()) == UNKNOWN
    assert recorded() == before and certificates.children(str(cert.serial_number)) == []
    assert renew_mtls(pem)[0] == 201


def test_a_revoked_host_certificate_renews_nothing_and_indexes_nothing(any_ca):
    crt, key = host_cert(any_ca, "gone.example.com")
    serial = parse_certificate(base64.b64decode(crt)).serial
    assert revoke(serial, sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial)))[0] == 200
    assert hosts.page(int(parse_certificate(base64.b64decode(crt)).valid_after) + 120)[0] == []
    before = recorded()
    auth = authority.get()
    assert refusal(ssh_renew.renew, {"ott": sshpop_token(crt, key, "/1.0/ssh/renew")}, auth) == REVOKED
    assert refusal(ssh_renew.rekey, {"ott": sshpop_token(crt, key, "/1.0/ssh/rekey"), "publicKey": b64key(key)},
                   auth) == REVOKED
    status, body = renew(crt, key)
    assert status == 401 and REVOKED[0] in body["message"]
    assert recorded() == before
    assert hosts.page(int(parse_certificate(base64.b64decode(crt)).valid_after) + 120)[0] == []


def test_an_ssh_revocation_landing_before_the_write_wins(any_ca, monkeypatch):
    """The revocation is checked by the transaction itself: one written between signing and recording
    refuses the renewal (revoke racing renew), and the signed certificate is dropped."""
    crt, key = host_cert(any_ca, "race.example.com")
    serial = parse_certificate(base64.b64decode(crt)).serial
    real = certificates.record_renewal

    def revoked_meanwhile(*args, **kwargs):
        from stepless.stores import revocations

        revocations.put(RevocationRecord(serial=f"ssh:{serial}", reason_code=1, revoked_at=0, reason="",
                                         revoked_by="test", not_after=2**40, kind="ssh", cert_type="host"))
        return real(*args, **kwargs)

    before = recorded()
    monkeypatch.setattr(certificates, "record_renewal", revoked_meanwhile)
    status, body = renew(crt, key)
    assert status == 401 and REVOKED[0] in body["message"] and "crt" not in body
    assert recorded() == before and certificates.children(f"ssh:{serial}") == []


def test_a_conflict_on_the_host_index_does_not_refuse_the_certificate(test_ca, monkeypatch):
    """A concurrent transaction on the same principal's index items cancels ours with TransactionConflict
    there (DynamoDB's answer; the separate UpdateItems never conflicted): the certificate is recorded by the
    transaction run again without that principal, which is indexed after the commit."""
    from botocore.exceptions import ClientError

    from stepless import aws

    client = aws.client("dynamodb")
    real, sent = client.transact_write_items, []

    def conflicted(TransactItems):  # noqa: N803 - botocore's parameter name
        sent.append(TransactItems)
        if len(sent) == 1:
            reasons = [{"Code": "None"}] * len(TransactItems)
            reasons[-1] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                               "CancellationReasons": reasons}, "TransactWriteItems")
        return real(TransactItems=TransactItems)

    monkeypatch.setattr(client, "transact_write_items", conflicted)
    crt, _ = host_cert(test_ca, "conflict.example.com")
    assert [len(items) for items in sent] == [4, 2]  # token + record + the principal's 2 updates; then without
    cert = parse_certificate(base64.b64decode(crt))
    assert certificates.get(f"ssh:{cert.serial}") is not None and hosts.exists("conflict.example.com")
    assert hosts.page(cert.valid_after + 120)[0] == [hosts.Host("conflict.example.com",
                                                                {str(cert.serial): cert.valid_before})]
