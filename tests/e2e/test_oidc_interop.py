"""OIDC against `stepless dev` with an identity provider's tokens as real ones are shaped (opaque ``sub`` ≠
``email``): the real `step` CLI and our CLI with such a token, and both single sign-on flows in a "browser".

The provider (tests/support/oidc_provider.py) runs on loopback in the test process; the provisioner is added
with our CLI. step's certificate flow for an ID token builds CN = sub, SAN = email and wants the SUBJECT
argument to be that email (issue 11, item 2); our CLI now does the same. (The real step's own single
sign-on, `step oauth`, accepts only an https provider, which this loopback http provider is not: step is
driven with the provider's tokens instead.)
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from stepless.x509 import extensions
from tests.support.oidc_provider import ALICE, Provider

pytestmark = pytest.mark.e2e

NAME = "idp-e2e"


def admin_env(dev_ca) -> dict[str, str]:
    values = dict(line.split("=", 1) for line in (dev_ca.home / "config" / "dev.env").read_text().splitlines())
    return dev_ca.env(**values)


def listed(dev_ca) -> set[str]:
    ctx = ssl.create_default_context(cafile=str(dev_ca.root))
    with urllib.request.urlopen(dev_ca.url + "/provisioners?limit=100", context=ctx, timeout=10) as res:
        return {p["name"] for p in json.load(res)["provisioners"]}


@pytest.fixture(scope="module")
def idp(dev_ca, tmp_path_factory):
    """The provider, registered as OIDC provisioner ``idp-e2e`` of the dev CA (once per module)."""
    with Provider(client_id="stepless-e2e", client_secret="e2e-secret") as provider:
        cwd = tmp_path_factory.mktemp("oidc-admin")
        if NAME not in listed(dev_ca):
            dev_ca.stepless("ca", "provisioner", "add", NAME, "--type", "OIDC", "--client-id", provider.client_id,
                            "--client-secret", provider.client_secret, "--configuration-endpoint",
                            provider.configuration_endpoint, "--domain", "example.com", cwd=cwd,
                            env=admin_env(dev_ca))
        deadline = time.monotonic() + 60  # warm functions pick the change up within the config TTL
        while NAME not in listed(dev_ca):
            assert time.monotonic() < deadline, "the OIDC provisioner never appeared in GET /provisioners"
            time.sleep(0.5)
        yield provider


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def identity(cert: x509.Certificate) -> tuple[str, list[str], list[str]]:
    """(CN, email SANs, DNS SANs)."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return str(cn), san.get_values_for_type(x509.RFC822Name), san.get_values_for_type(x509.DNSName)


EXPECTED = (ALICE["sub"], [ALICE["email"]], [])


def test_real_step_and_our_cli_with_an_idp_token(step, dev_ca, idp, tmp_path):
    assert ALICE["sub"] != ALICE["email"]
    step("ca", "certificate", ALICE["email"], "step.crt", "step.key", "--token", idp.issue())
    dev_ca.stepless("ca", "certificate", ALICE["email"], "ours.crt", "ours.key", "--token", idp.issue(),
                    cwd=tmp_path)
    theirs, ours = leaf(tmp_path / "step.crt"), leaf(tmp_path / "ours.crt")
    assert identity(theirs) == identity(ours) == EXPECTED
    assert extensions.of(theirs) == extensions.of(ours) == (2, NAME, idp.client_id)


def test_our_cli_checks_the_subject_against_the_tokens_email(dev_ca, idp, tmp_path):
    """As step: 'token email … and argument … do not match', before any request."""
    res = dev_ca.stepless("ca", "certificate", "bob@example.com", "b.crt", "b.key", "--token", idp.issue(),
                          cwd=tmp_path, check=False)
    assert res.returncode == 1 and not (tmp_path / "b.crt").exists()
    assert res.stderr.strip().splitlines()[-1] == (
        "error: token email 'alice@example.com' and argument 'bob@example.com' do not match")


def fake_browser(directory: Path, name: str) -> Path:
    """A 'browser' command: follows the authorization URL (and its redirect to the CLI's loopback listener)
    in the background, as a person's browser would, and returns at once."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    log = directory / f"{name}.log"
    follow = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=30).read()"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\n"{sys.executable}" -c "{follow}" "$1" >/dev/null 2>&1 &\n')
    script.chmod(0o755)
    return script


def test_our_cli_single_sign_on_in_a_browser(dev_ca, idp, tmp_path):
    before = idp.hits["/token"]
    browser = fake_browser(tmp_path / "bin", "browser")
    res = dev_ca.stepless("ca", "certificate", ALICE["email"], "sso.crt", "sso.key", "--provisioner", NAME,
                          cwd=tmp_path, env=dev_ca.env(BROWSER=str(browser)))
    assert "/authorize?" in (tmp_path / "bin" / "browser.log").read_text()
    assert idp.hits["/token"] == before + 1  # the code was exchanged once
    assert "✔ Certificate: sso.crt" in res.stderr
    assert identity(leaf(tmp_path / "sso.crt")) == EXPECTED

