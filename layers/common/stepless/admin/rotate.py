"""``stepless ca rotate-intermediate``: a new intermediate under the same root (clients keep their pin).

With the secrets backend the intermediate gets a new key (a new version of its secret: the reference
``ARN#VersionId`` changes, so warm functions load the new key with the new configuration). With KMS the
template's ``IntermediateKey`` stays (the roles name exactly that key) and only the certificate is
re-issued: new serial and validity, same key and name, so every certificate issued before still chains,
renews and appears in the CRL as before.

The replaced intermediate is kept in ``previousIntermediates`` (until it expires): certificates it
issued can still be renewed (by a certificate of the new one) and revoked over mTLS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import authority, clock
from stepless.admin import keys
from stepless.admin.provisioners import change_config
from stepless.errors import ClientError, ConfigError
from stepless.signers import Signer, load_signer
from stepless.x509 import ca


@dataclasses.dataclass(frozen=True)
class Rotation:
    """What changed: the new and the replaced intermediate, and whether the key is new."""

    intermediate: x509.Certificate
    replaced: x509.Certificate
    new_key: bool
    version: int


def _root_signer(backend: str, outputs: dict[str, str], root: x509.Certificate) -> Signer:
    """The root key (KMS key of the stack, or the root secret's current version), checked against the root."""
    try:
        signer = keys.existing("root", backend, outputs)
    except ConfigError as e:
        raise ClientError(str(e)) from e
    if signer.public_key() != root.public_key():
        raise ClientError("the root key in the stack does not match the CA's root certificate")
    return signer


def _still_valid(pems: list[str], now: dt.datetime) -> list[str]:
    return [p for p in pems if x509.load_pem_x509_certificate(p.encode()).not_valid_after_utc > now]


def rotate_intermediate(*, outputs: dict[str, str], distrust_previous: bool = False) -> Rotation:
    """Issue a new intermediate (a new key with the secrets backend) and switch the CA to it.

    ``distrust_previous`` (after a key compromise): forget every replaced intermediate, so their leaves
    can no longer be renewed or revoked over mTLS (revocation by token still works). Only with a new key:
    under the same (KMS) key old and new intermediates verify the same leaves.
    """

    def mutate(doc: dict[str, Any]) -> tuple[tuple[x509.Certificate, x509.Certificate, bool], dict[str, Any]]:
        current = authority.Authority(doc, 0)
        backend = doc.get("keyBackend") or "kms"
        new_key = backend == "secrets"  # a new key per rotation (kms: the stack's key; files: the local CA's)
        if distrust_previous and not new_key:
            raise ClientError("--distrust-previous needs a new intermediate key, and the kms backend keeps the "
                              "template's key: change the key first (docs/deployment.md §9)")
        now = clock.now()
        root_signer = _root_signer(backend, outputs, current.roots[0])
        if new_key:
            inter_signer = keys.provide("intermediate", backend, outputs, force=True)
        else:
            inter_signer = load_signer(doc["intermediateKey"])
        new = ca.intermediate(inter_signer, current.roots[0], root_signer, doc.get("name") or "stepless", now)
        kept = [] if distrust_previous else [current.intermediate_pem, *doc.get("previousIntermediates", [])]
        doc["previousIntermediates"] = _still_valid(kept, now)
        doc["intermediate"] = new.public_bytes(Encoding.PEM).decode()
        doc["intermediateKey"] = inter_signer.ref
        summary = {"serial": str(new.serial_number), "replaced": str(current.intermediate.serial_number),
                   "newKey": new_key, "notAfter": new.not_valid_after_utc.isoformat(),
                   "distrustPrevious": distrust_previous}
        return (new, current.intermediate, new_key), summary

    (new, replaced, new_key), version, _ = change_config("intermediate.rotate", "", mutate)
    authority.reset()
    return Rotation(new, replaced, new_key, version)
