"""CRL/KRL objects on AWS: the CRL number is item ``pk="crl"`` of ``AuthorityTable`` (attribute
``number``, UpdateItem ADD); with ``STEPLESS_CRL_BUCKET`` the latest CRL is ``crl/intermediate.crl`` (its
thisUpdate/nextUpdate/number as object metadata) and the KRL ``krl/ssh.krl`` in that S3 bucket."""

from __future__ import annotations

import datetime as dt
import os

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.aws import error_code
from stepless.faults import translate_aws_errors
from stepless.observability import logger
from stepless.stores.crl_store import StoredCRL

BUCKET = "STEPLESS_CRL_BUCKET"
KEY = "crl/intermediate.crl"
KRL_KEY = "krl/ssh.krl"
NUMBER_KEY = {"pk": {"S": "crl"}}


def bucket() -> str | None:
    """The CRL bucket, or None when CRLs are kept per container."""
    return os.environ.get(BUCKET) or None


def _ts(t: dt.datetime) -> str:
    return str(int(t.timestamp()))


class DynamoObjects:
    def shared(self) -> bool:
        return bucket() is not None

    def next_crl_number(self) -> int:
        with translate_aws_errors("DynamoDB"):
            out = aws.client("dynamodb").update_item(
                TableName=settings.table(settings.AUTHORITY_TABLE),
                Key=NUMBER_KEY,
                UpdateExpression="ADD #n :one",
                ExpressionAttributeNames={"#n": "number"},
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        return int(out["Attributes"]["number"]["N"])

    def put_crl(self, crl: StoredCRL) -> None:
        name = bucket()
        if not name:
            return
        with translate_aws_errors("S3"):
            aws.client("s3").put_object(
                Bucket=name, Key=KEY, Body=crl.der, ContentType="application/pkix-crl",
                CacheControl="max-age=60",
                Metadata={"number": str(crl.number), "this-update": _ts(crl.this_update),
                          "next-update": _ts(crl.next_update)},
            )

    def put_krl(self, krl: bytes) -> None:
        name = bucket()
        if not name:
            return
        with translate_aws_errors("S3"):
            aws.client("s3").put_object(Bucket=name, Key=KRL_KEY, Body=krl,
                                        ContentType="application/octet-stream", CacheControl="max-age=60")

    def get_crl(self) -> StoredCRL | None:
        name = bucket()
        if not name:
            return None
        with translate_aws_errors("S3"):
            try:
                out = aws.client("s3").get_object(Bucket=name, Key=KEY)
            except ClientError as e:
                code = error_code(e)
                if code in ("NoSuchKey", "404", "NotFound"):
                    return None
                if code in ("AccessDenied", "403"):
                    # S3 answers a missing key with 403 AccessDenied to a caller without s3:ListBucket (the
                    # role has it; a policy edited by hand may not). Serve a fresh CRL rather than a 503:
                    # the put that follows fails loudly if the bucket is really closed to this function.
                    logger.warning("stored CRL unreadable (AccessDenied): treated as absent; a missing key looks "
                                   "like this without s3:ListBucket on the bucket", extra={"bucket": name, "key": KEY})
                    return None
                raise
            der = out["Body"].read()
        meta = out.get("Metadata") or {}
        try:
            return StoredCRL(der, int(meta["number"]),
                             dt.datetime.fromtimestamp(int(meta["this-update"]), dt.UTC),
                             dt.datetime.fromtimestamp(int(meta["next-update"]), dt.UTC))
        except (KeyError, ValueError):
            return None
