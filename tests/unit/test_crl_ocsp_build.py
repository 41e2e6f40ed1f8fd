"""CRL and OCSP building with an in-memory CA (no AWS): entries, reasons, hashes, GET decoding."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp

from stepless.services import crl, ocsp
from stepless.stores.revocations import RevocationRecord
from tests.unit.test_x509_chain import NOW, leaf, memory_ca

auth = memory_ca("CRL")


def ts(t: dt.datetime) -> int:
    return int(t.timestamp())


def test_reason_flags():
    assert crl.reason_flag(1) == x509.ReasonFlags.key_compromise
    assert crl.reason_flag(10) == x509.ReasonFlags.aa_compromise
    for code in (0, 7, 8, None, True, "1"):
        assert crl.reason_flag(code) is None


def test_entries_skip_expired_and_ssh():
    records = [
        RevocationRecord(serial="10", kind="x509", reason_code=1, revoked_at=ts(NOW) - 60, not_after=ts(NOW) + 60),
        RevocationRecord(serial="11", kind="x509", reason_code=0, revoked_at=ts(NOW) - 60, not_after=ts(NOW) - 1),
        RevocationRecord(serial="ssh:12", kind="ssh", reason_code=1, revoked_at=ts(NOW)),
        RevocationRecord(serial="13", reason_code=0, revoked_at=ts(NOW) + 3600),  # no not_after: kept; date capped
    ]
    out = {e.serial_number: e for e in crl.entries(records, NOW)}
    assert set(out) == {10, 13}
    assert out[10].extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert len(out[13].extensions) == 0
    assert out[13].revocation_date_utc == NOW


def test_build_crl():
    records = [RevocationRecord(serial=str(i), kind="x509", reason_code=i % 11, revoked_at=ts(NOW) - 10)
               for i in range(1, 40)]
    c = crl.build(auth, records, NOW, 7)  # type: ignore[arg-type]
    assert c.is_signature_valid(auth.intermediate.public_key())
    assert c.issuer == auth.intermediate.subject
    assert c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    assert c.last_update_utc == NOW and c.next_update_utc == NOW + dt.timedelta(hours=24)
    assert len(c) == 39
    assert crl.pem(c.public_bytes(Encoding.DER)).startswith("-----BEGIN X509 CRL-----")


def test_issuer_key_hash_matches_cryptography():
    cert, _ = leaf(auth)
    for algorithm in (hashes.SHA1(), hashes.SHA256()):
        req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, auth.intermediate, algorithm).build()
        d = hashes.Hash(algorithm)
        d.update(ocsp.subject_public_key_bits(auth.intermediate))
        assert d.finalize() == req.issuer_key_hash


def test_decode_get():
    der = b"\x30\x03\x02\x01\xff\xfe"
    assert ocsp.decode_get(base64.b64encode(der).decode()) == der
    assert ocsp.decode_get(base64.urlsafe_b64encode(der).decode().rstrip("=")) == der
    assert ocsp.decode_get("%%%") is None


def test_malformed_requests_need_no_aws():
    for body in (b"", b"junk"):
        resp = x509_ocsp.load_der_ocsp_response(ocsp.respond(body, auth))  # type: ignore[arg-type]
        assert resp.response_status == x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_other_issuer_is_unauthorized_without_aws():
    other = memory_ca("Other")
    cert, _ = leaf(other)
    req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, other.intermediate, hashes.SHA1()).build()
    resp = x509_ocsp.load_der_ocsp_response(ocsp.respond(req.public_bytes(Encoding.DER), auth))  # type: ignore[arg-type]
    assert resp.response_status == x509_ocsp.OCSPResponseStatus.UNAUTHORIZED
