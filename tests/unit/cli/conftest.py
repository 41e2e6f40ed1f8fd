"""Fixtures for the CLI tests: an in-process runner and a subprocess runner of ``stepless``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from stepless.cli import main as cli_main

MAIN = "from stepless.cli.main import main; main()"


@pytest.fixture
def invoke() -> Callable[..., Result]:
    """Run ``stepless ARGS`` in-process with click's runner (stdin from ``input``)."""
    cli_main._register()
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(cli_main.cli, list(args), input=input, catch_exceptions=True)

    return run


@pytest.fixture
def stepless(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``stepless ARGS`` in a subprocess (cwd ``tmp_path``), the real entry point with its exit code."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", MAIN, *args],
            cwd=tmp_path,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
