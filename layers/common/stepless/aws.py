"""One boto3 client per service per container (never one per call).

The endpoint comes from boto3's own ``AWS_ENDPOINT_URL`` handling, so the local stack needs no special
code path. Retries are bounded ("standard" mode, jittered backoff) to stay within a function's timeout.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    # three attempts in all (botocore's ``max_attempts`` would count retries: 1 + 3 = 4 attempts)
    retries={"total_max_attempts": 3, "mode": "standard"},
    # 3 attempts x (1 s connect + 3 s read) + standard backoff stays inside the functions' 15 s timeout
    connect_timeout=1,
    read_timeout=3,
    tcp_keepalive=True,
)


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@functools.cache
def client(service: str) -> Any:
    """The container's shared client for ``service``."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return _session().client(service, region_name=region, config=_CONFIG)


def reset() -> None:
    """Forget cached clients (tests switching endpoints)."""
    client.cache_clear()
    _session.cache_clear()


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError, else ''."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
