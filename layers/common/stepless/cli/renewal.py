"""Renewal scheduling for ``ca renew --daemon``: when to renew, backoff, and what to run afterwards."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal as signals
import subprocess
from collections.abc import Callable

from cryptography import x509

from stepless.errors import CLIError


def next_renewal(leaf: x509.Certificate, now: dt.datetime, *, expires_in: dt.timedelta | None = None,
                 renew_period: dt.timedelta | None = None, rng: random.Random | None = None) -> dt.timedelta:
    """How long to wait before renewing: at about 2/3 of the lifetime, minus up to 1/20 of it as jitter.

    The same rule as step's ``nextRenewDuration``; ``renew_period`` renews on a fixed period instead.
    """
    left = leaf.not_valid_after_utc - now
    if renew_period:
        return dt.timedelta(0) if left - renew_period <= dt.timedelta(0) else renew_period
    period = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    wait = left - (expires_in if expires_in else period / 3)
    jitter = (rng or random).random() * (period / 20)
    return max(dt.timedelta(0), wait - jitter)


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff in seconds for retry ``attempt`` (0-based)."""
    return (rng or random).uniform(0, min(cap, base * 2**attempt))


def after_renew(exec_cmd: str | None, pid: int | None, signum: int) -> Callable[[], None]:
    """What to do once a certificate is renewed: signal a PID and/or run a command."""

    def run() -> None:
        if pid:
            try:
                os.kill(pid, signum)
            except OSError as e:
                raise CLIError(f"error sending signal {signum} to process {pid}: {e.strerror}") from e
        if exec_cmd:
            res = subprocess.run(exec_cmd, shell=True, check=False)  # noqa: S602 - the user's own command
            if res.returncode != 0:
                raise CLIError(f"command {exec_cmd!r} exited with status {res.returncode}")

    return run


def read_pid(pid: int | None, pid_file: str | None) -> int | None:
    """The PID to signal, from ``--pid`` or ``--pid-file``."""
    if pid_file:
        try:
            return int(open(pid_file).read().strip())  # noqa: SIM115
        except (OSError, ValueError) as e:
            raise CLIError(f"error reading pid from {pid_file}") from e
    return pid


DEFAULT_SIGNAL = int(signals.SIGHUP)
