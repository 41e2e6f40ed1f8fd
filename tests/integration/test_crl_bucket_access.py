"""GET /crl on a new stack (issue 10 item 12): S3 answers a missing key with 403 AccessDenied, not 404
NoSuchKey, when the caller lacks s3:ListBucket. The CA must serve a fresh CRL then, not a 503."""

from __future__ import annotations

import base64

import boto3
import pytest
from cryptography import x509
from moto.s3.exceptions import S3ClientError
from moto.s3.models import S3Backend

from stepless.api import revoke as revoke_api
from stepless.services import crl as crl_service
from tests.support.ca import event

BUCKET = "test-crl-access"


class _AccessDenied(S3ClientError):
    """What S3 answers GetObject of a missing key for a principal without s3:ListBucket."""

    code = "AccessDenied"

    def __init__(self) -> None:
        super().__init__("AccessDenied", "Access Denied")


@pytest.fixture
def bucket_without_list(test_ca, monkeypatch):
    """A CRL bucket where a missing key reads as AccessDenied (real objects still read normally)."""
    original = S3Backend.get_object

    def get_object(self, bucket_name, key_name, *args, **kwargs):  # noqa: ANN001, ANN202
        found = original(self, bucket_name, key_name, *args, **kwargs)
        if found is None:
            raise _AccessDenied()
        return found

    monkeypatch.setattr(S3Backend, "get_object", get_object)
    monkeypatch.setenv("STEPLESS_CRL_BUCKET", BUCKET)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    crl_service.invalidate()
    yield boto3.client("s3")
    crl_service.invalidate()


def test_the_fault_is_the_one_s3_gives(bucket_without_list):
    with pytest.raises(Exception) as e:
        bucket_without_list.get_object(Bucket=BUCKET, Key="crl/intermediate.crl")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_get_crl_on_a_new_stack_serves_a_fresh_crl(test_ca, bucket_without_list):
    res = revoke_api.app.handler(event("GET", "/crl"), None)
    assert res["statusCode"] == 200, res["body"]
    crl = x509.load_der_x509_crl(base64.b64decode(res["body"]))
    assert crl.issuer == test_ca.authority.intermediate.subject
    stored = bucket_without_list.get_object(Bucket=BUCKET, Key="crl/intermediate.crl")["Body"].read()
    assert stored == base64.b64decode(res["body"])  # and it is now in the bucket for everyone


def test_a_closed_bucket_is_still_an_error(test_ca, bucket_without_list, monkeypatch):
    """AccessDenied on the write too means the bucket is really closed to the function: 503, not a silent CRL."""
    monkeypatch.setattr(S3Backend, "put_object", lambda *a, **k: (_ for _ in ()).throw(_AccessDenied()))
    res = revoke_api.app.handler(event("GET", "/crl"), None)
    assert res["statusCode"] == 503


def test_issued_certificates_name_the_plain_http_crl(test_ca, monkeypatch):
    """Issue 10 item 13: the template's CloudFront URL (STEPLESS_CRL_DISTRIBUTION_POINT) reaches the leaf."""
    from tests.integration.test_renew import issue

    url = "http://d111111abcdef8.cloudfront.net/intermediate.crl"
    monkeypatch.setenv("STEPLESS_CRL_DISTRIBUTION_POINT", url)
    cert, _, _ = issue(test_ca, "cdp.example.com")
    (point,) = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in point.full_name] == [url]


@pytest.fixture
def bucket(test_ca, monkeypatch):
    monkeypatch.setenv("STEPLESS_CRL_BUCKET", BUCKET)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    crl_service.invalidate()
    yield boto3.client("s3")
    crl_service.invalidate()


def _revoke(test_ca, serial: str) -> dict:
    token = test_ca.token(serial, path="/1.0/revoke")
    return revoke_api.app.handler(event("POST", "/1.0/revoke", {"serial": serial, "ott": token, "reasonCode": 1}),
                                  None)


def test_a_revocation_publishes_the_crl_the_http_distribution_point_serves(test_ca, bucket):
    """CloudFront serves the bucket's object: it must list a revocation at once, not after the hourly refresh."""
    from tests.integration.test_renew import issue

    cert, _, _ = issue(test_ca, "published.example.com")
    assert _revoke(test_ca, str(cert.serial_number))["statusCode"] == 200
    der = bucket.get_object(Bucket=BUCKET, Key="crl/intermediate.crl")["Body"].read()
    assert x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_a_revocation_stands_when_its_crl_cannot_be_published(test_ca, bucket, monkeypatch):
    from stepless.stores import revocations
    from tests.integration.test_renew import issue

    cert, _, _ = issue(test_ca, "unpublished.example.com")
    monkeypatch.setattr(S3Backend, "put_object", lambda *a, **k: (_ for _ in ()).throw(_AccessDenied()))
    assert _revoke(test_ca, str(cert.serial_number))["statusCode"] == 200
    assert revocations.get(str(cert.serial_number)) is not None
