"""The renew function's scheduled (EventBridge) invocation: one managed-certificate renewal run.

An error that stops the whole run (the registry unreachable, no authority) is raised, so the
invocation fails, EventBridge/Lambda retry it, and the last failure lands in the dead-letter queue
(alarm ``RenewalFailuresAlarm``). A failure of one certificate is handled inside the run.
"""

from __future__ import annotations

from typing import Any

from stepless.observability import logger


def is_scheduled(event: Any) -> bool:
    """An EventBridge "Scheduled Event" (source aws.events)."""
    return isinstance(event, dict) and (event.get("source") == "aws.events"
                                        or event.get("detail-type") == "Scheduled Event")


def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run the pass; the summary is the invocation's result (and a log line)."""
    from stepless.managed import renewal

    logger.append_keys(schedule_event_id=event.get("id"), schedule_time=event.get("time"))
    try:
        return renewal.run(context)
    finally:
        logger.remove_keys(["schedule_event_id", "schedule_time"])
