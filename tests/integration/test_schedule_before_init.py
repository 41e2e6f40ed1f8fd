"""Scheduled runs before `stepless ca init` (issue 10 item 15): a logged no-op that succeeds.

On AWS the schedules start with the stack, before anybody runs `ca init`. A run that raised "not
initialized" would be retried, land in the renewal dead-letter queue and hold RenewalFailuresAlarm in
ALARM for the queue's 14 days; the hourly CRL refresh would fail every hour.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import boto3
import pytest

from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.api import schedule
from stepless.errors import ConfigError
from tests.support import ca as support

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "schedule.json").read_text())


@pytest.fixture
def empty_stack():
    """The stack's tables exist; the authority item does not (the CA is not initialized)."""
    with support.moto_environment():
        yield support.create_resources()


@pytest.mark.parametrize("app, job", [(renew_api.app, "managed renewal"), (revoke_api.app, "CRL refresh")])
def test_scheduled_run_before_init_is_a_logged_no_op(empty_stack, app, job, caplog):
    with caplog.at_level(logging.INFO):
        out = app.handler(dict(EVENT), None)  # raising here is what sends the event to the DLQ
    assert out == schedule.NOT_INITIALIZED
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped and job in skipped[0].getMessage() and skipped[0].levelno == logging.INFO


def test_a_broken_configuration_still_fails_the_run(empty_stack):
    """Only "not initialized" is a no-op: a configuration that cannot be read is an error to alarm on."""
    boto3.client("dynamodb").put_item(
        TableName="test-authority",
        Item={"pk": {"S": "authority"}, "data": {"S": json.dumps({"provisioners": [{"type": "NOPE", "name": "x"}]})},
              "version": {"N": "1"}})
    with pytest.raises(ConfigError):
        revoke_api.app.handler(dict(EVENT), None)


def test_after_init_the_same_event_runs_the_job(empty_stack):
    support.initialize(empty_stack, ssh=False)
    out = revoke_api.app.handler(dict(EVENT), None)
    assert out["crlNumber"] >= 1 and "skipped" not in out
