"""``stepless dev --schedule-every``: the local stack (moto server, template resources) runs the renew
function's scheduled handler on a period; here one run is triggered directly."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from stepless import aws, clock
from stepless.local.devstack import DevStack, free_port
from stepless.managed import renewal, secret
from stepless.stores import managed as store


@pytest.fixture
def dev(tmp_path, monkeypatch):
    for var in list(os.environ):
        if var.startswith(("STEPLESS_", "AWS_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STEPLESS_HOME", str(tmp_path))
    results = []
    stack = DevStack(home=tmp_path, address=("127.0.0.1", free_port()), schedule_every=3600, engine="aws",
                     on_schedule=results.append)
    saved = dict(os.environ)  # DevStack sets the functions' variables in os.environ; later tests must not see them
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        aws.reset()


def test_local_stack_has_the_registry_and_runs_the_schedule(dev):
    assert os.environ[store.MANAGED_TABLE]  # from the template's RenewFunction environment
    item = renewal.issue(name="dev-api", subject="api.dev.internal", sans=[], duration=dt.timedelta(hours=3),
                         rekey=False, prefix="stepless-dev")
    assert dev.run_schedule_once()["due"] == 0
    with clock.shift(dt.timedelta(hours=2, minutes=1)):
        out = dev.run_schedule_once()
    assert out["renewed"] == 1 and out["complete"]
    assert len(secret.versions(item.secret_arn)) == 2
    assert dev._scheduler is not None and dev._scheduler.is_alive()
    dev.stop()
    assert not dev._scheduler.is_alive()
