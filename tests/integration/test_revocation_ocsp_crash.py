"""A revocation whose function dies between its recording transaction and the storing of its ``revoked`` OCSP
response, on both stores: OCSP must not keep serving the ``good`` response stored before (found by
tests/e2e/test_dev_crash.py on SQLite; the same gap on DynamoDB, a Lambda that times out there)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from stepless import authority
from stepless.api.revoke import app as revoke_app
from stepless.services import ocsp as ocsp_service
from stepless.stores import backend, revocations
from tests.integration.test_sqlite_faults import _Died, sign
from tests.support.ca import call


@pytest.fixture(params=["sqlite_ca", "test_ca"])
def any_ca(request):
    return request.getfixturevalue(request.param)


def _status(cert: x509.Certificate) -> ocsp.OCSPCertStatus:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, authority.get().intermediate, hashes.SHA1()).build()
    answer = ocsp_service.respond(request.public_bytes(Encoding.DER), authority.get())
    return ocsp.load_der_ocsp_response(answer).certificate_status


def test_a_revocation_cut_short_before_its_ocsp_write_is_revoked_for_ocsp(any_ca, monkeypatch):
    status, body = sign(any_ca, "dies.example.com")
    assert status == 201
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    assert _status(cert) == ocsp.OCSPCertStatus.GOOD  # a relying party asked: a good response is stored
    serial = str(cert.serial_number)
    request = {"serial": serial, "ott": any_ca.token(serial, path="/1.0/revoke"), "reasonCode": 1}

    def die(*_args: object) -> None:
        raise _Died

    monkeypatch.setattr(ocsp_service, "record_revocation", die)
    with pytest.raises(_Died):
        call(revoke_app, "POST", "/1.0/revoke", request)
    monkeypatch.undo()
    backend.reset()  # the restart (a new container)
    authority.reset()
    assert revocations.get(serial) is not None  # the revocation was committed
    assert _status(cert) == ocsp.OCSPCertStatus.REVOKED
    status, body = call(revoke_app, "POST", "/1.0/revoke", request)  # the client's retry: its token is used
    assert status == 401 and "token already used" in body["message"]
    assert _status(cert) == ocsp.OCSPCertStatus.REVOKED
