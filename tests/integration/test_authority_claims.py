"""`stepless ca claims`: the CA-wide lifetimes (step-ca's `authority.claims`), shown and changed with the
flags of `ca provisioner update`, validated, audited, and applied by the sign function."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from stepless import authority
from stepless.cli import main as cli_main
from stepless.stores import audit
from tests.integration.test_provisioner_admin import fails, lifetime, ok, provisioner_ca, sign


@pytest.fixture
def run(test_ca):
    """``stepless ca ARGS`` in-process against the test CA (its tables are in the environment)."""
    cli_main._register()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_main.cli, ["ca", *args], catch_exceptions=True)


def test_show_without_flags(run):
    shown = json.loads(ok(run("claims")).stdout)
    assert shown["configured"] == {}
    assert shown["effective"]["maxTLSCertDuration"] == "24h0m0s"  # step-ca's defaults
    assert shown["effective"]["defaultUserSSHCertDuration"] == "16h0m0s"


def test_the_seeds_case_raise_the_maximum_to_48h(test_ca, run):
    status, body = sign(test_ca, "36h")
    assert status == 403, body  # over the default 24h maximum
    res = ok(run("claims", "--x509-max-dur", "48h"))
    assert json.loads(res.stdout)["configured"] == {"maxTLSCertDuration": "48h"}
    authority.reset()
    status, body = sign(test_ca, "36h")
    assert status == 201, body
    assert lifetime(body) == pytest.approx(36 + 1 / 60)  # + the 1m backdate
    status, body = sign(test_ca, "240h")
    assert status == 403 and "48h" in body["message"], body
    status, body = sign(test_ca)
    assert status == 201 and lifetime(body) == pytest.approx(24 + 1 / 60)  # the default is unchanged
    record = audit.records()[-1]
    assert record["action"] == "authority.claims"
    assert record["change"]["claims"] == {"before": {}, "after": {"maxTLSCertDuration": "48h"}}
    ok(run("claims", "--x509-max-dur", ""))  # "" reverts to step-ca's default
    assert json.loads(ok(run("claims")).stdout)["configured"] == {}


def test_provisioners_inherit_unless_they_set_their_own(test_ca, run, tmp_path):
    (tmp_path / "pw").write_text("ops-password\n")
    ok(run("provisioner", "add", "ops", "--create", "--password-file", str(tmp_path / "pw"),
           "--x509-max-dur", "12h", "--x509-default-dur", "2h"))
    ok(run("claims", "--x509-max-dur", "48h", "--x509-default-dur", "36h"))
    authority.reset()
    status, body = sign(test_ca)
    assert status == 201 and lifetime(body) == pytest.approx(36 + 1 / 60)  # admin inherits the new default
    ops = provisioner_ca(test_ca, "ops", "ops-password")
    status, body = sign(ops, "24h")
    assert status == 403, body  # ops keeps its own 12h maximum


def test_refusals_are_one_line_and_change_nothing(run, tmp_path):
    fails(run("claims", "--x509-min-dur", "10h", "--x509-max-dur", "5h"), "min")
    fails(run("claims", "--x509-default-dur", "30h"), "default (30h0m0s) <= max (24h0m0s)")
    fails(run("claims", "--x509-max-dur", "1 day"), "invalid duration")
    fails(run("claims", "--x509-max-dur", "-5h"), "")
    fails(run("claims", "--ssh-host-max-dur", "100000h"), "at most 87600h")
    (tmp_path / "pw").write_text("ops-password\n")
    ok(run("provisioner", "add", "ops", "--create", "--password-file", str(tmp_path / "pw"),
           "--x509-default-dur", "20h"))
    # lowering the CA-wide maximum under a provisioner's own default would break that provisioner
    fails(run("claims", "--x509-max-dur", "10h"), "the authority's claims: tls durations must satisfy")
    fails(run("claims", "--x509-max-dur", "10h", "--x509-default-dur", "8h"), "provisioner ops")
    assert json.loads(ok(run("claims")).stdout)["configured"] == {}
    assert [r["action"] for r in audit.records()] == ["provisioner.add"]
