"""RFC 6960 OCSP responder for certificates of our intermediate (POST /ocsp, GET /ocsp/{b64}).

The intermediate signs the responses itself (responder ID by key hash, no delegated responder).

Pre-produced responses (RFC 6960 §2.2, the RFC 5019 profile), so no unauthenticated request costs a
signature: a serial's response is signed once and stored (stores.ocsp_responses), then served from the
store — one read, no signature — until it is half way to its nextUpdate, when the next request signs a
fresh one (at most one signature per serial and CertID hash algorithm per ``VALIDITY / 2``). A
revocation stores the ``revoked`` response at once (services.revoke calls :func:`record_revocation`),
and a ``good`` response signed concurrently never overwrites it. thisUpdate = the signing time,
nextUpdate = thisUpdate + 24h (the CRL's lifetime); the HTTP answer may be cached until nextUpdate.

Status: ``good`` when the serial is in our certificates table and not revoked, ``revoked`` (time and
reason) when it is in the revocations table. A serial we never issued (or an SSH serial) gets the
unsigned ``unauthorized`` answer (RFC 5019 §2.2.3: a responder without status for the certificate), a
request about another issuer too; a request that does not parse, asks about several certificates, names
an unsupported hash or a serial that is not positive gets ``malformedRequest``. A nonce in the request is
ignored (pre-produced responses cannot echo it; RFC 5019 §4). Responses are HTTP 200 whatever their OCSP
status, as RFC 6960 wants.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import hashlib
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from stepless import clock
from stepless.authority import Authority
from stepless.observability import logger
from stepless.services.crl import reason_flag
from stepless.signers import as_private_key
from stepless.stores import certificates, ocsp_responses, revocations
from stepless.stores.ocsp_responses import GOOD, KEEP, REVOKED, Record, Response
from stepless.stores.revocations import RevocationRecord
from stepless.x509 import der

VALIDITY = dt.timedelta(hours=24)
REFRESH = VALIDITY / 2  # a stored response older than this is signed again at the next request
CONTENT_TYPE = "application/ocsp-response"
MAX_SERIAL = 1 << 160  # RFC 5280 §4.1.2.2: at most 20 octets
PRESIGNED = "sha1"  # the CertID hash OpenSSL and browsers use: signed at revocation, others on demand


@dataclasses.dataclass(frozen=True)
class Answer:
    """A DER OCSP response; ``this_update``/``next_update`` set for a successful (signed) one."""

    der: bytes
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None


def subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what an OCSP issuerKeyHash hashes)."""
    return der.subject_public_key_bits(cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


@functools.lru_cache(maxsize=16)
def _issuer_hashes(inter_der: bytes, algorithm_name: str) -> tuple[bytes, bytes]:
    inter = x509.load_der_x509_certificate(inter_der)
    algorithm = _ALGORITHMS[algorithm_name]()

    def h(data: bytes) -> bytes:
        d = hashes.Hash(algorithm)
        d.update(data)
        return d.finalize()

    return h(inter.subject.public_bytes()), h(subject_public_key_bits(inter))


_ALGORITHMS = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
               "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def malformed() -> bytes:
    """The ``malformedRequest`` response."""
    return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


def unauthorized() -> bytes:
    """The ``unauthorized`` response (not our issuer, or a serial we have no status for)."""
    return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)


@dataclasses.dataclass(frozen=True)
class _CertID:
    algorithm: str
    name_hash: bytes
    key_hash: bytes
    serial: int

    @property
    def slot(self) -> str:
        """Where its response is stored: the hash algorithm and the issuer key it names."""
        return f"{self.algorithm}:{self.key_hash.hex()}"


def _cert_id(request: bytes) -> _CertID | bytes:
    """The one CertID of a DER request, or the unsuccessful response to send instead."""
    try:
        req = ocsp.load_der_ocsp_request(request)
        cert_id = _CertID(req.hash_algorithm.name, req.issuer_name_hash, req.issuer_key_hash, req.serial_number)
    except Exception:  # noqa: BLE001 - anything unparseable (or several requests) is malformed
        logger.info("malformed OCSP request")
        return malformed()
    if cert_id.algorithm not in _ALGORITHMS or cert_id.serial <= 0:
        return malformed()  # RFC 5280: serials are positive; no certificate has this CertID
    return cert_id


def answer(request: bytes, auth: Authority) -> Answer:
    """The OCSP answer to a DER request: a stored response while fresh, else one signed and stored now."""
    cert_id = _cert_id(request)
    if isinstance(cert_id, bytes):
        return Answer(cert_id)
    ours = _issuer_hashes(auth.intermediate.public_bytes(Encoding.DER), cert_id.algorithm)
    if (cert_id.name_hash, cert_id.key_hash) != ours or cert_id.serial >= MAX_SERIAL:
        return Answer(unauthorized())
    serial = str(cert_id.serial)
    for _ in range(3):  # a concurrent write (a revocation) makes the store refuse ours: look again
        now = clock.now()
        record = ocsp_responses.get(serial)
        stored = record.responses.get(cert_id.slot) if record else None
        if stored is not None and _fresh(stored, now):
            return _served(stored)
        produced = _produce(cert_id, record, auth, now)
        if produced is not None:
            return produced
    return Answer(unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER))  # the status keeps changing under us


def respond(request: bytes, auth: Authority) -> bytes:
    """The DER OCSP response to a DER OCSP request."""
    return answer(request, auth).der


def _fresh(stored: Response, now: dt.datetime) -> bool:
    ts = now.timestamp()
    return stored.this_update - 300 <= ts < stored.this_update + REFRESH.total_seconds() and ts < stored.next_update


def _served(stored: Response) -> Answer:
    return Answer(stored.der, _at(stored.this_update), _at(stored.next_update))


def _at(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _produce(cert_id: _CertID, record: Record | None, auth: Authority, now: dt.datetime) -> Answer | None:
    """Sign the current status and store it; None when the store changed under us (try again)."""
    serial = str(cert_id.serial)
    if record is None or record.status == GOOD:
        cert, revoked = certificates.get_with_revocation(serial)
        if cert is None or cert.kind != "x509":
            logger.info("OCSP request for a serial we did not issue", extra={"serial": serial})
            return Answer(unauthorized())
        expires = cert.not_after + KEEP
        if revoked is not None:
            record = _revoked_record(serial, revoked, expires, now)
            response = _sign(cert_id, record, auth, now)
            ocsp_responses.put_revoked(dataclasses.replace(record, responses={cert_id.slot: response}))
            return _served(response)
        response = _sign(cert_id, None, auth, now)
        if record is None:
            stored = ocsp_responses.create(Record(serial, GOOD, expires, responses={cert_id.slot: response}))
        else:
            stored = ocsp_responses.add_response(serial, GOOD, cert_id.slot, response)
        return _served(response) if stored else None
    response = _sign(cert_id, record, auth, now)
    return _served(response) if ocsp_responses.add_response(serial, REVOKED, cert_id.slot, response) else None


def _revoked_record(serial: str, revocation: RevocationRecord, expires: int, now: dt.datetime) -> Record:
    at = min(revocation.revoked_at, int(now.timestamp()))
    return Record(serial, REVOKED, expires, at, revocation.reason_code)


def _sign(cert_id: _CertID, revoked: Record | None, auth: Authority, now: dt.datetime) -> Response:
    """One signed response for ``cert_id``: ``good``, or ``revoked`` as ``revoked`` says."""
    this_update = now.replace(microsecond=0)
    status, revocation_time, reason = ocsp.OCSPCertStatus.GOOD, None, None
    if revoked is not None:
        status = ocsp.OCSPCertStatus.REVOKED
        revocation_time = _at(revoked.revoked_at if revoked.revoked_at is not None else int(now.timestamp()))
        reason = reason_flag(revoked.reason_code)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=cert_id.name_hash, issuer_key_hash=cert_id.key_hash, serial_number=cert_id.serial,
            algorithm=_ALGORITHMS[cert_id.algorithm](), cert_status=status, this_update=this_update,
            next_update=this_update + VALIDITY, revocation_time=revocation_time, revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, auth.intermediate)
    )
    signer = auth.intermediate_signer
    sig_alg = None if isinstance(signer.public_key(), ed25519.Ed25519PublicKey) else signer.hash_algorithm()
    signed = builder.sign(as_private_key(signer), sig_alg)  # type: ignore[arg-type]
    logger.info("OCSP response signed", extra={"serial": str(cert_id.serial), "status": status.name})
    ts = int(this_update.timestamp())
    return Response(signed.public_bytes(Encoding.DER), ts, ts + int(VALIDITY.total_seconds()))


def record_revocation(auth: Authority, serial: str, revocation: RevocationRecord) -> None:
    """Store the ``revoked`` status of ``serial`` with its SHA-1 response signed now (a revocation just
    landed; ``revocation`` is its record, with ``revoked_at``, ``reason_code`` and ``not_after``)."""
    now = clock.now()
    record = _revoked_record(serial, revocation, (revocation.not_after or 0) + KEEP, now)
    name_hash, key_hash = _issuer_hashes(auth.intermediate.public_bytes(Encoding.DER), PRESIGNED)
    cert_id = _CertID(PRESIGNED, name_hash, key_hash, int(serial))
    ocsp_responses.put_revoked(dataclasses.replace(record, responses={cert_id.slot: _sign(cert_id, record, auth, now)}))


def ensure_revoked(auth: Authority, serial: str) -> None:
    """Store the ``revoked`` status of a serial found already revoked, unless stored: a revocation whose
    OCSP write failed is completed by its retry (two reads otherwise)."""
    record = ocsp_responses.get(serial)
    if record is not None and record.status == REVOKED:
        return
    revocation = revocations.get(serial)
    if revocation is not None:
        record_revocation(auth, serial, revocation)


def cache_headers(result: Answer, now: dt.datetime) -> dict[str, str]:
    """RFC 5019 §6.2 caching headers: a signed response may be cached until its nextUpdate; an unsuccessful
    answer for a minute."""
    if result.this_update is None or result.next_update is None:
        return {"cache-control": "public, max-age=60"}
    max_age = max(0, int((result.next_update - now).total_seconds()))
    return {"cache-control": f"public, max-age={max_age}, no-transform, must-revalidate",
            "last-modified": _http_date(result.this_update), "expires": _http_date(result.next_update),
            "etag": '"' + hashlib.sha1(result.der).hexdigest() + '"'}  # noqa: S324 - an ETag


def _http_date(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def decode_get(b64: str) -> bytes | None:
    """The DER request of ``GET /ocsp/{b64}`` (URL-decoded standard or URL-safe base64), or None."""
    text = unquote(b64).strip()
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
