"""RFC 6960 OCSP responder for certificates of our intermediate (POST /ocsp, GET /ocsp/{b64}).

The intermediate signs the responses itself (responder ID by key hash, no delegated responder).
Status: ``good`` when the serial is in our certificates table and not revoked, ``revoked`` (time and
reason) when it is in the revocations table, ``unknown`` when we never issued it. thisUpdate = now,
nextUpdate = now + 1h; a nonce in the request is echoed. A request that does not parse, or asks about
several certificates, gets ``malformedRequest``; one about another issuer ``unauthorized``. Responses are
HTTP 200 whatever their OCSP status, as RFC 6960 wants.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import functools
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
from stepless.stores import certificates
from stepless.x509 import der

VALIDITY = dt.timedelta(hours=1)
CONTENT_TYPE = "application/ocsp-response"


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


def respond(request: bytes, auth: Authority) -> bytes:
    """The DER OCSP response to a DER OCSP request."""
    try:
        req = ocsp.load_der_ocsp_request(request)
        algorithm = req.hash_algorithm
        serial = req.serial_number
        name_hash, key_hash = req.issuer_name_hash, req.issuer_key_hash
        nonce = None
        with contextlib.suppress(x509.ExtensionNotFound):
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
    except Exception:  # noqa: BLE001 - anything unparseable (or several requests) is malformed
        logger.info("malformed OCSP request")
        return malformed()
    if algorithm.name not in _ALGORITHMS:
        return malformed()
    ours = _issuer_hashes(auth.intermediate.public_bytes(Encoding.DER), algorithm.name)
    if (name_hash, key_hash) != ours:
        return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

    now = clock.now()
    rec, revoked = certificates.get_with_revocation(str(serial))
    revocation_time = reason = None
    if rec is None or rec.kind != "x509":
        status = ocsp.OCSPCertStatus.UNKNOWN
    elif revoked is not None:
        status = ocsp.OCSPCertStatus.REVOKED
        try:
            revocation_time = dt.datetime.fromtimestamp(revoked.revoked_at, dt.UTC)
        except (OverflowError, ValueError):
            revocation_time = now
        revocation_time = min(revocation_time, now)
        reason = reason_flag(revoked.reason_code)
    else:
        status = ocsp.OCSPCertStatus.GOOD

    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=name_hash, issuer_key_hash=key_hash, serial_number=serial,
            algorithm=algorithm, cert_status=status, this_update=now, next_update=now + VALIDITY,
            revocation_time=revocation_time, revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, auth.intermediate)
    )
    if nonce is not None:
        builder = builder.add_extension(nonce, critical=False)
    signer = auth.intermediate_signer
    sig_alg = None if isinstance(signer.public_key(), ed25519.Ed25519PublicKey) else signer.hash_algorithm()
    response = builder.sign(as_private_key(signer), sig_alg)  # type: ignore[arg-type]
    logger.info("OCSP response", extra={"serial": str(serial), "status": status.name})
    return response.public_bytes(Encoding.DER)


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
