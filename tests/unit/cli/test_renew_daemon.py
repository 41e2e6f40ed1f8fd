"""`ca renew --daemon` scheduling: 2/3 of the lifetime with jitter, backoff while the CA is down, --exec."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from stepless.cli import renewal
from stepless.cli.renew import run_daemon
from stepless.errors import CLIError

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def cert(not_before: dt.datetime, life: dt.timedelta) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_before + life).sign(key, hashes.SHA256()))


def test_next_renewal_is_at_two_thirds_minus_jitter():
    leaf = cert(START, dt.timedelta(hours=24))
    waits = [renewal.next_renewal(leaf, START, rng=random.Random(i)) for i in range(200)]
    assert all(dt.timedelta(hours=16) - dt.timedelta(hours=24) / 20 <= w <= dt.timedelta(hours=16) for w in waits)
    assert len(set(waits)) > 150  # jitter spreads a fleet
    assert renewal.next_renewal(leaf, START + dt.timedelta(hours=20)) == dt.timedelta(0)  # overdue: now
    assert renewal.next_renewal(leaf, START, renew_period=dt.timedelta(hours=1)) == dt.timedelta(hours=1)


def test_backoff_is_bounded_and_grows():
    rng = random.Random(1)
    assert all(0 <= renewal.backoff(a, rng=rng) <= min(300, 2**a) for a in range(20))


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def test_daemon_renews_retries_and_runs_exec(tmp_path):
    clock = FakeClock()
    crt = tmp_path / "svc.crt"
    crt.write_bytes(cert(START, dt.timedelta(minutes=5)).public_bytes(Encoding.PEM))
    calls = {"renew": 0, "hook": 0}

    def renew():
        calls["renew"] += 1
        if calls["renew"] <= 2:  # the CA is down twice, then answers
            raise CLIError("cannot connect to the CA")
        return {"crt": cert(clock.now, dt.timedelta(minutes=5)).public_bytes(Encoding.PEM).decode(), "ca": ""}

    def hook():
        calls["hook"] += 1

    done = run_daemon(renew, str(crt), str(crt), hook, now=clock, sleep=clock.sleep, max_renewals=2)
    assert done == 2 and calls["hook"] == 2
    assert calls["renew"] == 4  # two failures, then two renewals
    first_wait = clock.sleeps[0]
    assert 200 - 15 <= first_wait <= 200  # 2/3 of 5 minutes, minus up to 1/20 jitter
    new = x509.load_pem_x509_certificates(crt.read_bytes())[0]
    assert new.not_valid_before_utc > START


def test_daemon_gives_up_when_the_certificate_expires(tmp_path):
    clock = FakeClock()
    crt = tmp_path / "svc.crt"
    crt.write_bytes(cert(START, dt.timedelta(minutes=5)).public_bytes(Encoding.PEM))

    def renew():
        raise CLIError("cannot connect to the CA")

    with pytest.raises(CLIError, match="expired before it could be renewed"):
        run_daemon(renew, str(crt), str(crt), lambda: None, now=clock, sleep=clock.sleep, max_renewals=1)


def test_after_renew_runs_the_command(tmp_path):
    marker = tmp_path / "reloaded"
    renewal.after_renew(f"touch {marker}", None, 1)()
    assert marker.exists()
    with pytest.raises(CLIError, match="exited with status 3"):
        renewal.after_renew("exit 3", None, 1)()
