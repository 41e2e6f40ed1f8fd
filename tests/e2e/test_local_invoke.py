"""`stepless local invoke` runs one handler of template.yaml on the events/ fixtures, like `sam local invoke`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import CLI

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("function", "event", "status"), [
    ("SignFunction", "health.json", 200),
    ("SignFunction", "roots.json", 200),
    ("SignFunction", "sign.json", 401),  # the fixture's token is a placeholder: refused, never a 5xx
])
def test_local_invoke(tmp_path, function, event, status):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPLESS_"))}
    res = subprocess.run([*CLI, "local", "invoke", function, "-e", str(ROOT / "events" / event),
                          "--home", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["statusCode"] == status, out


def test_local_invoke_schedule(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPLESS_"))}
    res = subprocess.run([*CLI, "local", "invoke", "RenewFunction", "-e", str(ROOT / "events" / "schedule.json"),
                          "--home", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "renewed" in res.stdout, res.stdout


def test_local_invoke_unknown_function(tmp_path):
    res = subprocess.run([*CLI, "local", "invoke", "NopeFunction", "-e", str(ROOT / "events" / "health.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stderr.startswith("error: no function NopeFunction")
