"""Concurrent issuance through a real ``stepless dev`` (``python -m bench devload --smoke``: X.509 and SSH at
concurrency 8 on the SQLite engine and on --aws-emulation, step-ca 0.19 beside it when built): every request
answered 201. Figures are not checked here (tests do not time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_devload_runs_without_errors() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPLESS_"))}
    proc = subprocess.run([sys.executable, "-m", "bench", "devload", "--smoke"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = [line for line in proc.stdout.splitlines() if "issuances, concurrency 8: errors" in line]
    assert len(errors) == 2 and all("  0  " in line and "yes" in line for line in errors), proc.stdout
    assert proc.stdout.count("statuses {201: 40}") == 3, proc.stdout  # x509, ssh, aws-emulation
