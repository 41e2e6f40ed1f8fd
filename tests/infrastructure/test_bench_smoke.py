"""The benchmarks still run: each benchmark's AWS-call section (seconds, not minutes) in a fresh process.

Figures are not checked here (benchmarks report ratios, tests do not time); only that every section
runs to its table against the current library and that the call counts meet their targets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["sign", "renew", "ssh", "provisioners", "managed", "reads"])
def test_call_count_section_runs_and_meets_its_target(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run([sys.executable, "-m", "bench", name, "--only", "calls"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(name)]
    assert rows, proc.stdout
    assert not [row for row in rows if "  NO  " in row], proc.stdout
