"""A leaf's TBSCertificate assembled from DER: what the issuer, CA key and provisioner fix is encoded once.

cryptography's ``CertificateBuilder`` re-validates and re-encodes every part on every certificate; for
the hot path (``POST /sign``) only the serial, validity, subject, key, SKI and SANs change. The other
parts are encoded here once per (issuer, signer, provisioner, CRL URL) and spliced in. The tests build
the same leaf with ``profile.leaf_builder`` and require identical TBS bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID, NameOID

from stepless.signers import Signer
from stepless.x509 import der
from stepless.x509.csr import SANs

VERSION_3 = der.explicit(0, der.integer(2))
EMPTY_NAME = der.sequence()

# AlgorithmIdentifier of the signature a CA key makes (RFC 5758 for ECDSA: no parameters; RFC 4055 for
# PKCS #1 v1.5: NULL parameters), keyed by (key kind, digest name).
_ALGORITHMS = {
    ("ec", "sha256"): der.sequence(der.oid("1.2.840.10045.4.3.2")),
    ("ec", "sha384"): der.sequence(der.oid("1.2.840.10045.4.3.3")),
    ("ec", "sha512"): der.sequence(der.oid("1.2.840.10045.4.3.4")),
    ("rsa", "sha256"): der.sequence(der.oid("1.2.840.113549.1.1.11"), der.NULL),
    ("rsa", "sha384"): der.sequence(der.oid("1.2.840.113549.1.1.12"), der.NULL),
    ("rsa", "sha512"): der.sequence(der.oid("1.2.840.113549.1.1.13"), der.NULL),
}
_SKI = der.oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string)
_SAN = der.oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
_EPOCH_MIN = dt.datetime(1950, 1, 1, tzinfo=dt.UTC)
UB_COMMON_NAME = 64  # RFC 5280 ub-common-name; counted in UTF-8 octets as cryptography does (>= characters)


def subject_common_name(cn: str) -> str:
    """The common name a leaf's subject carries: ``cn``, or none ('') when it exceeds RFC 5280's upper bound
    (long DNS names, e-mail addresses, OIDC subjects): the subject is then empty and the SAN extension,
    which names the certificate, is critical (RFC 5280 §4.2.1.6)."""
    return cn if len(cn.encode("utf-8", "surrogatepass")) <= UB_COMMON_NAME else ""


def signature_algorithm(signer: Signer) -> bytes | None:
    """The AlgorithmIdentifier DER of ``signer``'s signatures; None for keys without a template (Ed25519)."""
    key = signer.public_key()
    kind = "ec" if isinstance(key, ec.EllipticCurvePublicKey) else "rsa" if isinstance(key, rsa.RSAPublicKey) else ""
    return _ALGORITHMS.get((kind, signer.hash_algorithm().name)) if kind else None


def extension(ext: x509.ExtensionType, critical: bool = False) -> bytes:
    """The DER of one Extension holding ``ext``."""
    return der.extension(der.oid(ext.oid.dotted_string), ext.public_bytes(), critical)


class Leaf(NamedTuple):
    """What a leaf certificate says: everything but its signature."""

    public_key: Any
    common_name: str
    sans: SANs
    not_before: dt.datetime
    not_after: dt.datetime
    issuer: x509.Certificate
    provisioner: tuple[int, str, str]  # (type code, name, credential id) of step's provisioner extension
    serial: int
    crl_url: str | None = None


@dataclasses.dataclass(frozen=True)
class LeafTemplate:
    """The fixed parts of a leaf, DER-encoded; :meth:`sign` adds the rest and signs."""

    signer: Signer
    algorithm: bytes  # AlgorithmIdentifier
    issuer_name: bytes
    key_usage: tuple[bytes, bytes]  # the KeyUsage extension for (other keys, RSA keys)
    before_san: bytes  # ExtendedKeyUsage; (SKI goes between) AuthorityKeyIdentifier below
    authority_key_id: bytes
    after_san: bytes  # provisioner and CRL distribution point extensions

    def tbs(self, leaf: Leaf) -> bytes:
        """The TBSCertificate DER of ``leaf`` (the same checks as cryptography's builder where they can fail)."""
        nb, na = _utc(leaf.not_before), _utc(leaf.not_after)
        if nb < _EPOCH_MIN or na < _EPOCH_MIN:
            raise ValueError("The not valid before/after dates must be on or after 1950 January 1")
        if na < nb:
            raise ValueError("The not valid after date must be after the not valid before date.")
        if not 0 < leaf.serial < 1 << 159:
            raise ValueError("The serial number should be positive and at most 159 bits")
        cn, key = subject_common_name(leaf.common_name), leaf.public_key
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]).public_bytes() if cn else EMPTY_NAME
        spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        names = leaf.sans.general_names()
        extensions = [
            self.key_usage[isinstance(key, rsa.RSAPublicKey)],
            self.before_san,
            der.extension(_SKI, der.octet_string(der.subject_key_id(spki))),
            self.authority_key_id,
            der.extension(_SAN, x509.SubjectAlternativeName(names).public_bytes(), not cn) if names else b"",
            self.after_san,
        ]
        return der.sequence(
            VERSION_3,
            der.integer(leaf.serial),
            self.algorithm,
            self.issuer_name,
            der.sequence(der.time(nb), der.time(na)),
            subject,
            spki,
            der.explicit(3, der.sequence(*extensions)),
        )

    def sign(self, leaf: Leaf) -> x509.Certificate:
        """The signed certificate for ``leaf``."""
        body = self.tbs(leaf)
        signature = self.signer.sign(body)
        return x509.load_der_x509_certificate(der.sequence(body, self.algorithm, der.bit_string(signature)))


def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC) if t.tzinfo else t.replace(tzinfo=dt.UTC)
