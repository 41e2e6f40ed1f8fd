"""The benchmarks still run: every section of every benchmark (``--smoke``: minimal rounds), and each
benchmark's AWS-call section with its targets, in a fresh process.

Figures are not checked here (benchmarks report ratios, tests do not time); only that every section
runs to its table against the current library and that the call counts meet their targets.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["sign", "renew", "ssh", "provisioners", "managed", "reads", "acme"])
def test_call_count_section_runs_and_meets_its_target(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run([sys.executable, "-m", "bench", name, "--only", "calls"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(name)]
    assert rows, proc.stdout
    assert not [row for row in rows if "  NO  " in row], proc.stdout


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_section_runs(name: str) -> None:
    """``--smoke``: every section of the benchmark (none left out) with minimal rounds, to its table, so a
    benchmark the README quotes can't rot. Figures from so few rounds mean nothing and are not read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run([sys.executable, "-m", "bench", name, "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = {line.split(":")[0].strip().split("/", 1)[1] for line in proc.stderr.splitlines()
           if line.startswith(f"  {name}/")}
    module = importlib.import_module(f"bench.{name}")
    assert ran == set(module.SECTIONS), (ran, proc.stderr[-2000:])
    assert [line for line in proc.stdout.splitlines() if line.startswith(name)], proc.stdout
