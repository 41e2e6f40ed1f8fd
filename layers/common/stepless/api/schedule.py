"""Scheduled (EventBridge) invocations: the renew function's managed-certificate renewal run and the
revoke function's CRL refresh.

Before ``stepless ca init`` there is nothing to renew or sign: a scheduled run is a logged no-op that
succeeds, so it never lands in the dead-letter queue nor holds ``RenewalFailuresAlarm`` in ALARM.
Any other error that stops a whole run (the registry unreachable, a broken configuration) is raised,
so the invocation fails, EventBridge/Lambda retry it, and the last failure lands in the dead-letter
queue. A failure of one certificate is handled inside the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepless.errors import NotInitialized
from stepless.observability import logger

NOT_INITIALIZED = {"skipped": "the certificate authority is not initialized"}


def is_scheduled(event: Any) -> bool:
    """An EventBridge "Scheduled Event" (source aws.events)."""
    return isinstance(event, dict) and (event.get("source") == "aws.events"
                                        or event.get("detail-type") == "Scheduled Event")


def run(job: str, event: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one scheduled ``job``; before ``ca init`` log that it was skipped and succeed."""
    logger.append_keys(schedule_event_id=event.get("id"), schedule_time=event.get("time"))
    try:
        return fn()
    except NotInitialized:
        logger.info(f"scheduled {job} skipped: the certificate authority is not initialized (run `stepless ca init`)",
                    extra={"job": job})
        return dict(NOT_INITIALIZED)
    finally:
        logger.remove_keys(["schedule_event_id", "schedule_time"])


def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The managed-certificate renewal run; its summary is the invocation's result (and a log line)."""
    from stepless.managed import renewal

    return run("managed renewal", event, lambda: renewal.run(context))
