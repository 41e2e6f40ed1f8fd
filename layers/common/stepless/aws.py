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
(:mod:`stepless.awsclient`) that does not load botocore's client machinery at all; botocore's session and
client (:mod:`stepless.awssession`) are made the first time something else is asked of a client.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

# The client configuration (stepless.awssession makes botocore's Config of it): three attempts in all, and
# 3 attempts x (1 s connect + 3 s read) + standard backoff stays inside the functions' 15 s timeout.
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 3


@functools.cache
def client(service: str) -> Any:
    """The container's shared client for ``service``: the lean one where it has lean operations."""
    from stepless import awsclient

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if service in awsclient.LEAN and awsclient.enabled():
        return awsclient.LeanClient(service, region, functools.partial(full_client, service, region),
                                    max_attempts=MAX_ATTEMPTS, connect_timeout=CONNECT_TIMEOUT,
                                    read_timeout=READ_TIMEOUT, keepalive=True)
    return full_client(service, region)


def full_client(service: str, region: str) -> Any:
    """A botocore client for ``service`` (the full machinery: the session is made on first use)."""
    from stepless import awssession

    return awssession.session().create_client(service, region_name=region, config=awssession.config())


def reset() -> None:
    """Forget cached clients (tests switching endpoints), closing the lean path's idle connections."""
    if "stepless.awsclient" in sys.modules:
        sys.modules["stepless.awsclient"].close_idle()
    client.cache_clear()
    if "stepless.awssession" in sys.modules:
        sys.modules["stepless.awssession"].session.cache_clear()


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError, else ''."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
