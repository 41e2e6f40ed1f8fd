"""Tracer — decision: **not loaded by default.** ``Tracing: Active`` already gives every function its
X-Ray segment (initialization, invocation, overhead) with no code. Powertools Tracer imports
``aws_xray_sdk`` and patching botocore adds, measured with ``python -X importtime`` on top of what
the sign function already imports (botocore included): ~125 ms, more than the whole cold-start budget
(``import boto3`` + 60 ms). So it is opt-in: with
``STEPLESS_TRACER=true`` *and* running in Lambda (``AWS_LAMBDA_FUNCTION_NAME``) with a trace id
(``_X_AMZN_TRACE_ID``) *and* ``POWERTOOLS_TRACE_DISABLED`` not true, the first request imports the
Tracer, patches ``botocore`` (a subsegment per DynamoDB/KMS/Secrets Manager call) and each
request runs in a ``## <route>`` subsegment annotated with the route and the status.

"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from stepless.observability.log import SERVICE

_TRUE = ("1", "true", "yes", "on")
_tracer: Any = None  # None: not decided yet; False: off; else the Powertools Tracer


def tracing_enabled() -> bool:
    """Opt-in X-Ray subsegments (see the module docstring): in Lambda, traced, and asked for."""
    env = os.environ
    return (env.get("STEPLESS_TRACER", "").lower() in _TRUE and bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
            and bool(env.get("_X_AMZN_TRACE_ID"))
            and env.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in _TRUE)


def tracer() -> Any:
    """The Tracer (boto3/botocore patched at first use), or None when tracing is off."""
    global _tracer
    if _tracer is None:
        _tracer = False
        if tracing_enabled():
            from aws_lambda_powertools import Tracer

            t = Tracer(service=SERVICE, auto_patch=False)
            t.patch(["botocore"])
            _tracer = t
    return _tracer or None


@contextlib.contextmanager
def traced(route: str) -> Iterator[Any]:
    """A ``## <route>`` subsegment when tracing is on; yields it (or None)."""
    t = tracer()
    if t is None:
        yield None
        return
    with t.provider.in_subsegment(f"## {route}") as sub:
        sub.put_annotation("route", route)
        yield sub
