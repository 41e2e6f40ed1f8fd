"""Certificate profiles: the leaf step-ca issues, and renewals of it."""

from __future__ import annotations

import datetime as dt
import functools
import secrets

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless.signers import Signer, as_private_key
from stepless.x509 import chain, extensions, tbs
from stepless.x509.csr import SANs

LEAF_EKU = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def new_serial() -> int:
    """A random positive 128-bit serial number."""
    while True:
        n = secrets.randbits(128)
        if n >= 1 << 64:
            return n


def key_usage(public_key: object) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for RSA keys."""
    return _key_usage(isinstance(public_key, rsa.RSAPublicKey))


@functools.cache
def _key_usage(key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI naming ``issuer`` (its SKI, else one computed from its key)."""
    ski = chain.extension_value(issuer, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]


def _sign(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    key = as_private_key(signer)
    algorithm = None if isinstance(signer.public_key(), ed25519.Ed25519PublicKey) else signer.hash_algorithm()
    return builder.sign(key, algorithm)  # type: ignore[arg-type]


def leaf(
    *,
    public_key: object,
    common_name: str,
    sans: SANs,
    not_before: dt.datetime,
    not_after: dt.datetime,
    issuer: x509.Certificate,
    signer: Signer,
    provisioner: tuple[int, str, str],
    crl_url: str | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """step-ca's default leaf: CN, SANs, KU/EKU by key type, SKI/AKI, provisioner extension (no CN when
    it would be longer than RFC 5280 allows: :func:`stepless.x509.tbs.subject_common_name`).

    With an EC or RSA CA key the TBS is assembled from DER cached per issuer (:mod:`stepless.x509.tbs`),
    byte-for-byte what :func:`leaf_builder` gives cryptography to sign (the tests compare them).
    """
    spec = tbs.Leaf(public_key, common_name, sans, not_before, not_after, issuer, provisioner,
                    new_serial() if serial is None else serial, crl_url)
    template = leaf_template(issuer, signer, provisioner, crl_url)
    return _sign(leaf_builder(spec), signer) if template is None else template.sign(spec)


@functools.lru_cache(maxsize=32)
def leaf_template(issuer: x509.Certificate, signer: Signer, provisioner: tuple[int, str, str],
                  crl_url: str | None) -> tbs.LeafTemplate | None:
    """The DER parts of :func:`leaf_builder`'s leaf that do not change per request (None: use the builder)."""
    algorithm = tbs.signature_algorithm(signer)
    if algorithm is None:
        return None
    return tbs.LeafTemplate(
        signer=signer,
        algorithm=algorithm,
        issuer_name=issuer.subject.public_bytes(),
        key_usage=(tbs.extension(_key_usage(False), True), tbs.extension(_key_usage(True), True)),
        before_san=tbs.extension(x509.ExtendedKeyUsage(LEAF_EKU)),
        authority_key_id=tbs.extension(authority_key_identifier(issuer)),
        after_san=tbs.extension(extensions.extension(*provisioner))
        + (tbs.extension(crl_distribution_points(crl_url)) if crl_url else b""),
    )


def leaf_builder(spec: tbs.Leaf) -> x509.CertificateBuilder:
    """The leaf of :func:`leaf` as a cryptography builder (CA keys without a DER template, and the reference)."""
    cn, key = tbs.subject_common_name(spec.common_name), spec.public_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([]))
        .issuer_name(spec.issuer.subject)
        .public_key(key)  # type: ignore[arg-type]
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(key_usage(key), critical=True)
        .add_extension(x509.ExtendedKeyUsage(LEAF_EKU), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)  # type: ignore[arg-type]
        .add_extension(authority_key_identifier(spec.issuer), critical=False)
    )
    names = spec.sans.general_names()
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=not cn)
    builder = builder.add_extension(extensions.extension(*spec.provisioner), critical=False)
    if spec.crl_url:
        builder = builder.add_extension(crl_distribution_points(spec.crl_url), critical=False)
    return builder


def crl_distribution_points(url: str) -> x509.CRLDistributionPoints:
    """One distribution point with a full name: the CRL's URL."""
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])


def renewal(
    old: x509.Certificate,
    *,
    public_key: object | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    issuer: x509.Certificate,
    signer: Signer,
) -> x509.Certificate:
    """A copy of ``old`` (subject, SANs, key usages, extensions) with a new serial and validity.

    With ``public_key`` (rekey) the subject key identifier follows the new key.
    """
    key = public_key if public_key is not None else old.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(issuer.subject)
        .public_key(key)  # type: ignore[arg-type]
        .serial_number(new_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext in old.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectKeyIdentifier):
            value = x509.SubjectKeyIdentifier.from_public_key(key)  # type: ignore[arg-type]
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            value = authority_key_identifier(issuer)
        elif isinstance(value, x509.KeyUsage) and public_key is not None:
            value = key_usage(key)
        builder = builder.add_extension(value, critical=ext.critical)
    return _sign(builder, signer)
