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
