"""The revocations table is pruned (issue 10 item 16): each revocation carries a TTL `expires` of its
certificate's notAfter + 90 days, and renewal after expiry stops at that horizon, so a pruned revocation
never lets a revoked certificate be renewed."""

from __future__ import annotations

import datetime as dt

import boto3
import jwt

from stepless import clock
from stepless.api import revoke as revoke_api
from stepless.api import ssh as ssh_api
from stepless.stores import revocations
from tests.integration.test_renew import issue, renew_bearer, renew_token, set_claims
from tests.integration.test_ssh_renew import host_cert, sshpop_token
from tests.support.ca import call

RETENTION = int(revocations.RETENTION_AFTER_EXPIRY.total_seconds())


def stored(serial: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName="test-revocations", Key={"serial": {"S": serial}})["Item"]


def test_a_revocation_expires_after_its_certificate(test_ca):
    cert, _, _ = issue(test_ca, "pruned.example.com")
    token = test_ca.token(str(cert.serial_number), path="/1.0/revoke")
    status, body = call(revoke_api.app, "POST", "/1.0/revoke",
                        {"serial": str(cert.serial_number), "ott": token, "reasonCode": 1})
    assert status == 200, body
    item = stored(str(cert.serial_number))
    assert int(item[revocations.EXPIRES]["N"]) == int(cert.not_valid_after_utc.timestamp()) + RETENTION


def test_a_revocation_of_an_unknown_end_is_kept(test_ca):
    revocations.put(revocations.RevocationRecord(serial="123456789", kind="x509", reason_code=0, revoked_at=1))
    assert revocations.EXPIRES not in stored("123456789")


def test_renewal_after_expiry_stops_where_revocations_may_be_pruned(test_ca):
    old, key, _ = issue(test_ca, notAfter="5m")
    set_claims("admin", {"allowRenewalAfterExpiry": True})
    with clock.shift(revocations.RETENTION_AFTER_EXPIRY - dt.timedelta(hours=1)):
        status, body = renew_bearer(renew_token(old, key))
        assert status == 201, body
    with clock.shift(revocations.RETENTION_AFTER_EXPIRY + dt.timedelta(hours=1)):
        status, body = renew_bearer(renew_token(old, key))
    assert status == 401 and "expired too long ago" in body["message"]


def test_ssh_host_renewal_after_expiry_stops_at_the_same_horizon(test_ca):
    crt, key = host_cert(test_ca, validBefore="10m")
    set_claims("sshpop", {"allowRenewalAfterExpiry": True})
    with clock.shift(revocations.RETENTION_AFTER_EXPIRY + dt.timedelta(hours=1)):
        token = sshpop_token(crt, key, "/1.0/ssh/renew")
        now = int(clock.now().timestamp())
        claims = jwt.decode(token, options={"verify_signature": False})
        claims.update(iat=now, nbf=now, exp=now + 300)
        token = jwt.encode(claims, key, algorithm="ES256", headers=jwt.get_unverified_header(token))
        status, body = call(ssh_api.app, "POST", "/ssh/renew", {"ott": token})
    assert status == 401 and "expired too long ago" in body["message"], body
