"""A managed certificate that targets ACM (the API domain's imported certificate): imported on issue, then
re-imported into the same ARN at every scheduled renewal; a failed import is retried by the next run."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from click.testing import CliRunner
from cryptography import x509

from stepless import clock
from stepless.cli import main as cli_main
from stepless.managed import acm
from stepless.stores import managed as store
from tests.integration.test_managed import HOURS_72, PREFIX, current, issue, run
from tests.integration.test_managed import managed as managed  # noqa: PLC0414 - the fixture


def acm_serial(arn: str) -> str:
    return str(acm.serial_of(arn))


# moto's ACM checks validity against the real time: certificates are issued in the past (shifted clock) and
# renewed now, rather than issued now and renewed in a shifted future
EARLIER = dt.timedelta(hours=-49)


def test_new_import_then_reimported_into_the_same_arn(managed):
    with clock.shift(EARLIER):
        item = issue(acm_import=True)
    assert item.acm_arn and item.acm_arn.startswith("arn:aws:acm:")
    assert acm_serial(item.acm_arn) == item.serial
    tags = {t["Key"]: t["Value"] for t in boto3.client("acm").list_tags_for_certificate(
        CertificateArn=item.acm_arn)["Tags"]}
    assert tags == {"stepless:managed": "api", "stepless:stack": PREFIX}  # what the renew role may re-import
    assert run()["renewed"] == 1
    renewed = store.get("api")
    assert renewed.serial != item.serial and renewed.acm_arn == item.acm_arn
    assert acm_serial(item.acm_arn) == renewed.serial == current(renewed)[2]["serial"]
    assert [c["CertificateArn"] for c in boto3.client("acm").list_certificates()["CertificateSummaryList"]] == [
        item.acm_arn]  # no second ACM certificate


def by_hand() -> str:
    """A certificate imported into ACM by hand, as docs/deployment.md §6 does for the API domain."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ca.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=90)).sign(key, hashes.SHA256()))
    return boto3.client("acm").import_certificate(
        Certificate=cert.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))["CertificateArn"]


def test_the_api_domains_certificate_imported_by_hand_is_taken_over(managed):
    arn = by_hand()
    with clock.shift(-dt.timedelta(days=61)):
        item = issue(name="api-domain", subject="ca.example.com", sans=["ca.example.com"], acm_arn=arn,
                     duration=dt.timedelta(days=90))
    assert item.acm_arn == arn and acm_serial(arn) == item.serial
    tags = {t["Key"]: t["Value"] for t in boto3.client("acm").list_tags_for_certificate(CertificateArn=arn)["Tags"]}
    assert tags["stepless:stack"] == PREFIX
    assert run()["renewed"] == 1
    assert acm_serial(arn) == store.get("api-domain").serial != item.serial


def test_a_failed_import_is_retried_by_the_next_run(managed, monkeypatch):
    with clock.shift(EARLIER):
        item = issue(acm_import=True)

    def throttled(*a, **k):
        raise RuntimeError("ACM is throttling")

    with monkeypatch.context() as m:
        m.setattr(acm, "put", throttled)
        assert run()["failed"] == 1
    failing = store.get("api")
    assert failing.serial == item.serial and "ACM is throttling" in failing.last_error
    assert acm_serial(item.acm_arn) == item.serial  # ACM still serves the old one, which is still valid
    written = current(item)[2]["serial"]  # the secret already holds the renewal
    out = run()
    assert out["adopted"] == 1  # not issued twice: the secret's certificate is imported and recorded
    assert acm_serial(item.acm_arn) == written == store.get("api").serial


def test_cli_issue_with_acm_and_show(managed, test_ca):
    cli_main._register()
    runner = CliRunner()
    res = runner.invoke(cli_main.cli, ["ca", "managed", "issue", "api.internal", "api", "--acm", "--not-after", "72h"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "ACM certificate: arn:aws:acm:" in res.stderr
    shown = runner.invoke(cli_main.cli, ["ca", "managed", "show", "api"])
    assert '"acmArn": "arn:aws:acm:' in shown.stdout
    bad = runner.invoke(cli_main.cli, ["ca", "managed", "issue", "x", "x", "--acm-arn", "arn:aws:s3:::bucket"])
    assert bad.exit_code != 0 and "not an ACM certificate ARN" in str(bad.exception)
    both = runner.invoke(cli_main.cli, ["ca", "managed", "issue", "x", "x", "--acm", "--acm-arn", "arn:aws:acm:x"])
    assert both.exit_code != 0 and "choose one" in str(both.exception)


def test_duration_kept(managed):
    with clock.shift(EARLIER):
        item = issue(acm_import=True, duration=HOURS_72)
    assert run()["renewed"] == 1
    pem = boto3.client("acm").get_certificate(CertificateArn=item.acm_arn)["Certificate"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == pytest.approx(
        HOURS_72 + dt.timedelta(minutes=1), abs=dt.timedelta(seconds=2))  # the renewal keeps the duration
