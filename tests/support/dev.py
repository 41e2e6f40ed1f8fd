"""One `stepless dev` process on a home and port a test owns: started, stopped (SIGTERM), or killed (SIGKILL
of its process group, as a crash)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import CLI


class Dev:
    """One `stepless dev` process on ``home`` and ``port`` (started and stopped by the test)."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPLESS_"))}
        self.env["STEPLESS_HOME"] = str(home)
        self.proc: subprocess.Popen | None = None

    def run(self, *extra: str) -> subprocess.CompletedProcess:
        """A start that is expected to end by itself (refused)."""
        return subprocess.run([*CLI, "dev", "--address", f"127.0.0.1:{self.port}", *extra], env=self.env,
                              capture_output=True, text=True, timeout=60)

    def start(self, *extra: str) -> dict:
        """Start it (in a process group of its own) and wait for "CA ready"; the home's client defaults."""
        log = self.home.parent / f"dev-{time.monotonic_ns()}.log"
        with open(log, "w") as out:
            self.proc = subprocess.Popen([*CLI, "dev", "--address", f"127.0.0.1:{self.port}", *extra], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while "CA ready" not in log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"stepless dev did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        return json.loads((self.home / "config" / "defaults.json").read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self) -> int:
        """SIGKILL its whole process group (a crash: nothing runs after it); the killed pid."""
        assert self.proc is not None
        pid = self.proc.pid
        os.killpg(pid, signal.SIGKILL)
        self.proc.wait(15)
        self.proc = None
        return pid
