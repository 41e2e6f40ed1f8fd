"""Where the CRL lives: its number (a counter in the authority table) and, optionally, an S3 copy.

- CRL number: item ``pk="crl"`` of the authority table, attribute ``number``, incremented atomically
  (UpdateItem ADD) for every CRL generated, so numbers are unique and increase across containers.
- ``STEPLESS_CRL_BUCKET`` set: the latest CRL (DER) is kept at ``s3://<bucket>/crl/intermediate.crl``
  with its thisUpdate/nextUpdate/number as object metadata, shared by every container and servable by a
  CDN. Unset: each container keeps the CRL it generated in memory (see services.crl).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

from botocore.exceptions import ClientError

from stepless import aws, settings
from stepless.aws import error_code
from stepless.faults import translate_aws_errors
from stepless.observability import logger

BUCKET = "STEPLESS_CRL_BUCKET"
KEY = "crl/intermediate.crl"
NUMBER_KEY = {"pk": {"S": "crl"}}


@dataclasses.dataclass(frozen=True)
class StoredCRL:
    der: bytes
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


def bucket() -> str | None:
    """The CRL bucket, or None when CRLs are kept per container."""
    return os.environ.get(BUCKET) or None


def next_number() -> int:
    """The next CRL number (1, 2, 3, … across every container)."""
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


def _ts(t: dt.datetime) -> str:
    return str(int(t.timestamp()))


def put(crl: StoredCRL) -> None:
    """Upload the CRL (bucket mode only)."""
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


KRL_KEY = "krl/ssh.krl"


def put_krl(krl: bytes) -> None:
    """Publish the SSH KRL next to the CRL (bucket mode only), for hosts that fetch RevokedKeys from S3."""
    name = bucket()
    if not name:
        return
    with translate_aws_errors("S3"):
        aws.client("s3").put_object(Bucket=name, Key=KRL_KEY, Body=krl, ContentType="application/octet-stream",
                                    CacheControl="max-age=60")


def get() -> StoredCRL | None:
    """The stored CRL, or None (no bucket, no object yet, unreadable metadata)."""
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
