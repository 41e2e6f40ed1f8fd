"""Map AWS failures to client-facing errors: throttling → 429, anything else → 503 with Retry-After."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from stepless.aws import error_code
from stepless.errors import ServiceUnavailable, Throttled

_THROTTLE = {"ThrottlingException", "Throttling", "ProvisionedThroughputExceededException",
             "RequestLimitExceeded", "TooManyRequestsException", "LimitExceededException"}


@contextlib.contextmanager
def translate_aws_errors(service: str) -> Iterator[None]:
    """Turn a failed AWS call into :class:`Throttled` or :class:`ServiceUnavailable`."""
    try:
        yield
    except ClientError as e:
        code = error_code(e)
        if code in _THROTTLE:
            raise Throttled(f"{service} is throttling requests", headers={"Retry-After": "1"}) from e
        raise ServiceUnavailable(f"{service} error {code}", headers={"Retry-After": "2"}) from e
    except BotoCoreError as e:
        raise ServiceUnavailable(f"{service} is unreachable", headers={"Retry-After": "2"}) from e
