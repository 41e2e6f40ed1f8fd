"""POST /revoke through the handler, against moto: token and mTLS, validation, lineage."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepless import clock
from stepless.stores import revocations
from tests.integration.test_renew import (
    custom_leaf,
    foreign_ca,
    issue,
    renew_mtls,
    revoke_app,
)
from tests.support.ca import call


def revoke_by_token(test_ca, serial, sub=None, **body):
    now = int(clock.now().timestamp())  # test_ca.token uses the real time; the tests may shift the clock
    token = test_ca.token(sub if sub is not None else str(serial), path="/1.0/revoke",
                          iat=now, nbf=now, exp=now + 300)
    return call(revoke_app, "POST", "/1.0/revoke", {"serial": str(serial), "ott": token, **body})


def test_revoke_by_token(test_ca):
    cert, _, _ = issue(test_ca)
    serial = str(cert.serial_number)
    status, body = revoke_by_token(test_ca, serial, reasonCode=1, reason="key compromise", passive=True)
    assert (status, body) == (200, {"status": "ok"})
    rec = revocations.get(serial)
    assert rec.reason_code == 1 and rec.reason == "key compromise"
    assert rec.revoked_by == "provisioner:admin" and rec.kind == "x509"
    assert rec.not_after == int(cert.not_valid_after_utc.timestamp())
    assert abs(rec.revoked_at - int(clock.now().timestamp())) < 5


def test_revoke_over_mtls(test_ca):
    cert, _, pem = issue(test_ca)
    serial = str(cert.serial_number)
    status, body = call(revoke_app, "POST", "/revoke", {"serial": serial, "reasonCode": 4}, client_cert_pem=pem)
    assert (status, body) == (200, {"status": "ok"})
    rec = revocations.get(serial)
    assert rec.revoked_by == "mtls" and rec.reason_code == 4


def test_mtls_serial_must_be_the_client_certificates(test_ca):
    _, _, pem = issue(test_ca)
    other, _, _ = issue(test_ca, "other.example.com")
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(other.serial_number)}, client_cert_pem=pem)
    assert status == 400 and "different" in body["message"]
    assert revocations.get(str(other.serial_number)) is None


def test_mtls_certificate_must_be_ours(test_ca):
    other, signer = foreign_ca()
    cert, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), issuer=other, signer=signer)
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(cert.serial_number)}, client_cert_pem=pem)
    assert status == 401 and "not issued by" in body["message"]


def test_missing_credentials(test_ca):
    cert, _, _ = issue(test_ca)
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(cert.serial_number)})
    assert status == 400 and "missing ott or client certificate" in body["message"]


def test_sub_must_equal_serial(test_ca):
    cert, _, _ = issue(test_ca)
    other, _, _ = issue(test_ca, "other.example.com")
    status, body = revoke_by_token(test_ca, cert.serial_number, sub=str(other.serial_number))
    assert status == 401 and "subject" in body["message"]
    assert revocations.get(str(cert.serial_number)) is None


def test_sign_token_cannot_revoke(test_ca):
    cert, _, _ = issue(test_ca)
    token = test_ca.token(str(cert.serial_number))  # aud …/1.0/sign
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(cert.serial_number), "ott": token})
    assert status == 401 and "audience" in body["message"]


def test_revoke_twice_is_400(test_ca):
    cert, _, pem = issue(test_ca)
    assert revoke_by_token(test_ca, cert.serial_number)[0] == 200
    status, body = revoke_by_token(test_ca, cert.serial_number)
    assert status == 400 and "already revoked" in body["message"]
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(cert.serial_number)}, client_cert_pem=pem)
    assert status == 400 and "already revoked" in body["message"]


def test_revoke_token_is_single_use(test_ca):
    cert, _, _ = issue(test_ca)
    token = test_ca.token(str(cert.serial_number), path="/1.0/revoke")
    body = {"serial": str(cert.serial_number), "ott": token}
    assert call(revoke_app, "POST", "/revoke", body)[0] == 200
    status, out = call(revoke_app, "POST", "/revoke", body)
    assert status == 401 and "token already used" in out["message"]


def test_unknown_serial_is_404(test_ca):
    status, body = revoke_by_token(test_ca, "123456789")
    assert status == 404 and "123456789" in body["message"]


@pytest.mark.parametrize("serial", ["", "abc", "-5", "12 34", "0x1f", "１２"])
def test_serial_must_be_decimal(test_ca, serial):
    token = test_ca.token(serial or "x", path="/1.0/revoke")
    status, _ = call(revoke_app, "POST", "/revoke", {"serial": serial, "ott": token})
    assert status == 400


@pytest.mark.parametrize("code", [-1, 11, "1", 1.5, True])
def test_bad_reason_code_is_400(test_ca, code):
    cert, _, _ = issue(test_ca)
    status, _ = revoke_by_token(test_ca, cert.serial_number, reasonCode=code)
    assert status == 400


def test_active_revocation_is_accepted(test_ca):
    cert, _, _ = issue(test_ca)
    assert revoke_by_token(test_ca, cert.serial_number, passive=False)[0] == 200


def test_revoked_certificate_cannot_renew(test_ca):
    cert, _, pem = issue(test_ca)
    assert revoke_by_token(test_ca, cert.serial_number)[0] == 200
    status, body = renew_mtls(pem)
    assert status == 401 and "revoked" in body["message"]


def _renew_chain(test_ca, n):
    cert, _, pem = issue(test_ca, "chain.example.com")
    chain = [(cert, pem)]
    for _ in range(n):
        status, body = renew_mtls(chain[-1][1])
        assert status == 201, body
        chain.append((x509.load_pem_x509_certificate(body["crt"].encode()), body["crt"]))
    return [str(c.serial_number) for c, _ in chain], [p for _, p in chain]


def test_lineage_revocation_of_three_renewals(test_ca):
    serials, pems = _renew_chain(test_ca, 3)  # A → B → C → D
    # a sibling renewal of B, and an unrelated certificate
    status, body = renew_mtls(pems[1])
    sibling = str(x509.load_pem_x509_certificate(body["crt"].encode()).serial_number)
    unrelated, _, _ = issue(test_ca, "unrelated.example.com")
    # C revoked beforehand: skipped, but its renewal D still goes
    assert revoke_by_token(test_ca, serials[2], reasonCode=4)[0] == 200

    status, body = revoke_by_token(test_ca, serials[0], reasonCode=1, lineage=True)
    assert status == 200, body
    assert body["status"] == "ok"
    assert sorted(body["lineage"]) == sorted([serials[1], serials[3], sibling])
    for s in [serials[0], serials[1], serials[3], sibling]:
        rec = revocations.get(s)
        assert rec is not None and rec.reason_code == 1
    assert revocations.get(serials[1]).lineage_of == serials[0]
    assert revocations.get(serials[2]).reason_code == 4  # untouched
    assert revocations.get(str(unrelated.serial_number)) is None
    for pem in pems:
        assert renew_mtls(pem)[0] == 401


def test_lineage_from_the_middle_leaves_ancestors(test_ca):
    serials, _ = _renew_chain(test_ca, 2)
    status, body = revoke_by_token(test_ca, serials[1], lineage=True)
    assert status == 200 and body["lineage"] == [serials[2]]
    assert revocations.get(serials[0]) is None


def test_without_lineage_renewals_stay_valid(test_ca):
    serials, pems = _renew_chain(test_ca, 1)
    assert revoke_by_token(test_ca, serials[0])[0] == 200
    assert revocations.get(serials[1]) is None
    assert renew_mtls(pems[1])[0] == 201


def test_expired_certificate_can_still_be_revoked(test_ca):
    cert, _, _ = issue(test_ca, notAfter="5m")
    with clock.shift(dt.timedelta(hours=1)):
        assert revoke_by_token(test_ca, cert.serial_number)[0] == 200


def test_handler_module(test_ca):
    from functions.revoke import app as fn

    assert fn.handler.__self__ is revoke_app


def test_lineage_walks_the_links_without_scanning_certificates(test_ca):
    """Each renewal is linked from its parent record in the renewal transaction; the walk reads those links."""
    from stepless import aws
    from stepless.stores import certificates

    serials, _ = _renew_chain(test_ca, 2)
    assert certificates.children(serials[0]) == [serials[1]]
    assert certificates.children(serials[1]) == [serials[2]]
    assert certificates.children(serials[2]) == []

    scans: list[str] = []
    client = aws.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.Scan", lambda params, **_: scans.append(params["TableName"]),
                                unique_id="count-scans")
    try:
        status, body = revoke_by_token(test_ca, serials[0], lineage=True)
    finally:
        client.meta.events.unregister("before-call.dynamodb.Scan", unique_id="count-scans")
    assert status == 200 and body["lineage"] == serials[1:]
    assert not any("ertificates" in table for table in scans), scans


def test_upgrade_links_renewals_recorded_before_links_existed(test_ca):
    """Records of an earlier version have parent_serial but no children set: `ca upgrade` adds the links."""
    from stepless import aws, settings
    from stepless.stores import certificates

    serials, _ = _renew_chain(test_ca, 2)
    for parent in serials[:2]:  # as an earlier version wrote them
        aws.client("dynamodb").update_item(TableName=settings.table(settings.CERTIFICATES_TABLE),
                                           Key={"serial": {"S": parent}}, UpdateExpression="REMOVE children")
    assert certificates.children(serials[0]) == []
    assert certificates.link_renewals() == 2
    assert certificates.link_renewals() == 2  # again: nothing changes
    assert certificates.children(serials[0]) == [serials[1]]
    status, body = revoke_by_token(test_ca, serials[0], lineage=True)
    assert status == 200 and body["lineage"] == serials[1:]


def test_upgrade_command(test_ca, aws_env, monkeypatch):
    import os

    from click.testing import CliRunner

    from stepless.admin import stack
    from stepless.cli import main as cli_main

    _renew_chain(test_ca, 1)
    tables = {output: os.environ[var] for var, output in stack.TABLE_OUTPUTS.items()}
    monkeypatch.setattr(stack, "outputs", lambda name: {**aws_env, **tables})
    cli_main._register()
    res = CliRunner().invoke(cli_main.cli, ["ca", "upgrade", "--stack", "test"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "Renewal links: 1 renewals linked to their parents" in res.output


def test_one_certificate_renews_a_bounded_number_of_times(test_ca, monkeypatch):
    """Renewing the same old certificate again and again stops at the cap (its record would grow)."""
    from stepless.stores import certificates

    monkeypatch.setattr("stepless.stores.errors.MAX_RENEWALS_PER_CERTIFICATE", 2)
    cert, _, pem = issue(test_ca, "again.example.com")
    assert renew_mtls(pem)[0] == 201 and renew_mtls(pem)[0] == 201
    status, body = renew_mtls(pem)
    assert status == 403 and "renewed 2 times" in body["message"]
    assert len(certificates.children(str(cert.serial_number))) == 2


def test_renewal_link_refusals_say_which(test_ca, monkeypatch):
    """An unrecorded parent is 401 "certificate not found"; a parent at the cap is 403; uncapped renewals
    (the scheduled managed renewal, which retries from the same parent) are not limited."""
    from stepless.errors import Forbidden, Unauthorized
    from stepless.stores import certificates

    monkeypatch.setattr("stepless.stores.errors.MAX_RENEWALS_PER_CERTIFICATE", 1)
    cert, _, _ = issue(test_ca, "parent.example.com")
    parent = str(cert.serial_number)
    rec = certificates.get(parent)

    def child(n: int) -> certificates.CertificateRecord:
        return dataclasses.replace(rec, serial=f"{parent}{n}", parent_serial=parent)

    with pytest.raises(Unauthorized, match="certificate not found"):
        certificates.record_renewal(child(0), None, "12345")
    certificates.record_renewal(child(1), None, parent)
    with pytest.raises(Forbidden, match="renewed 1 times"):
        certificates.record_renewal(child(2), None, parent)
    certificates.record_renewal(child(3), None, parent, capped=False)
    assert certificates.children(parent) == sorted([f"{parent}1", f"{parent}3"])
