"""One botocore client per service per container (never one per call).

Clients come from a plain ``botocore`` session, not from boto3: ``import boto3`` also loads s3transfer,
multiprocessing and boto3's resource layer (~20 ms), and a boto3 session registers resource handlers and
extra loader paths on top of botocore's, all of it cold-start time for nothing (the functions only call
the low-level clients, which boto3 takes from botocore anyway). So nothing on the Lambda path imports
boto3; tests/unit/test_lambda_imports.py keeps it that way.

The endpoint comes from botocore's own ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` handling, so
the local stack needs no special code path. Retries are bounded ("standard" mode, jittered backoff) to stay
within a function's timeout. moto's ``mock_aws`` hooks every botocore session created after moto is
imported, so tests call :func:`reset` once the mock is started.

The hot operations (DynamoDB item reads/writes, kms.Sign, GetSecretValue) take a lean path
(:mod:`stepless.awsclient`): the same client object and methods, botocore's model, SigV4, parsing, errors
and retries, without its per-call machinery.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import botocore.session
from botocore.config import Config

_CONFIG = Config(
    # three attempts in all (botocore's ``max_attempts`` would count retries: 1 + 3 = 4 attempts)
    retries={"total_max_attempts": 3, "mode": "standard"},
    # 3 attempts x (1 s connect + 3 s read) + standard backoff stays inside the functions' 15 s timeout
    connect_timeout=1,
    read_timeout=3,
    tcp_keepalive=True,
    # the service validates every request; botocore's client-side schema walk costs CPU on each call
    parameter_validation=False,
)


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def client(service: str) -> Any:
    """The container's shared client for ``service``."""
    from stepless import awsclient

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return awsclient.wrap(_session().create_client(service, region_name=region, config=_CONFIG))


def reset() -> None:
    """Forget cached clients (tests switching endpoints)."""
    client.cache_clear()
    _session.cache_clear()


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError, else ''."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
