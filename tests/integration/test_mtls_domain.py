"""Defence in depth for the mTLS paths (issue 10 item 10): a client certificate in an event counts only when
the event's requestContext.domainName is the configured mTLS custom domain (STEPLESS_MTLS_DOMAIN, set by the
template to DomainName when it has a truststore, else to none).

API Gateway verifies and passes a client certificate only on such a domain, so a certificate arriving with
any other domain did not come through API Gateway's mTLS. Whoever may call lambda:InvokeFunction can forge
the domain as well: that boundary is IAM's (docs/deployment.md), these tests pin what the code adds.
"""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.stores import revocations
from tests.integration.test_renew import issue
from tests.support.ca import event

MTLS = "ca-mtls.example.com"
EXECUTE_API = "abc123.execute-api.us-east-1.amazonaws.com"


def on(domain: str | None, method: str, path: str, body=None, *, pem: str) -> dict:
    ev = event(method, path, body, client_cert_pem=pem)
    if domain is not None:
        ev["requestContext"]["domainName"] = domain
    return ev


def renew(domain: str | None, pem: str) -> tuple[int, dict]:
    res = renew_api.app.handler(on(domain, "POST", "/renew", pem=pem), None)
    return res["statusCode"], json.loads(res["body"])


@pytest.mark.parametrize("domain", [MTLS, MTLS.upper(), f"{MTLS}:443"])
def test_renewal_over_the_mtls_domain(test_ca, monkeypatch, domain):
    monkeypatch.setenv("STEPLESS_MTLS_DOMAIN", MTLS)
    old, _, pem = issue(test_ca)
    status, body = renew(domain, pem)
    assert status == 201, body
    assert x509.load_pem_x509_certificate(body["crt"].encode()).subject == old.subject


@pytest.mark.parametrize("setting, domain", [(MTLS, EXECUTE_API), (MTLS, None), (MTLS, "evil.example.com"),
                                             ("", MTLS), ("", EXECUTE_API)])
def test_a_certificate_from_another_domain_is_not_proof_of_possession(test_ca, monkeypatch, setting, domain):
    monkeypatch.setenv("STEPLESS_MTLS_DOMAIN", setting)
    _, _, pem = issue(test_ca)
    status, body = renew(domain, pem)
    assert status == 400 and "missing client certificate" in body["message"], body


def test_revoke_by_a_certificate_from_another_domain_revokes_nothing(test_ca, monkeypatch):
    monkeypatch.setenv("STEPLESS_MTLS_DOMAIN", MTLS)
    cert, _, pem = issue(test_ca)
    serial = str(cert.serial_number)
    res = revoke_api.app.handler(on(EXECUTE_API, "POST", "/revoke", {"serial": serial, "reasonCode": 1}, pem=pem),
                                 None)
    assert res["statusCode"] in (400, 401), res
    assert revocations.get(serial) is None
    res = revoke_api.app.handler(on(MTLS, "POST", "/revoke", {"serial": serial, "reasonCode": 1}, pem=pem), None)
    assert res["statusCode"] == 200, res
    assert revocations.get(serial) is not None


def test_unset_means_unchecked(test_ca, monkeypatch):
    """Without the variable (unit tests, `stepless local invoke` of a saved event) nothing is filtered."""
    monkeypatch.delenv("STEPLESS_MTLS_DOMAIN", raising=False)
    _, _, pem = issue(test_ca)
    assert renew(None, pem)[0] == 201
