"""AWS calls counted per request in a warm container (the integration tests' moto in-process, where every
call goes through botocore's client and its before-call hook)."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

import pytest
from bench.common import AWSCalls

from stepless import authority, aws, awssession


@contextlib.contextmanager
def counted() -> Iterator[collections.Counter[str]]:
    """The AWS calls made in the block (bench.common.AWSCalls: service.Operation -> count), the authority
    configuration loaded beforehand (a warm container's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEPLESS_CONFIG_TTL", "3600")
        authority.get()
        counter = AWSCalls().attach()
        counter.reset()
        try:
            yield counter.counts
        finally:
            awssession.session().unregister("before-call.*.*", unique_id=counter._uid)
            for service in ("dynamodb", "kms", "secretsmanager"):
                aws.client(service).meta.events.unregister("before-call.*.*", unique_id=counter._uid)
