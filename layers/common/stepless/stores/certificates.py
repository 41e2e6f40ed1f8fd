"""Issued certificates (X.509 and SSH) and their lineage, recorded before a certificate is returned.

Key ``serial``: the decimal serial for X.509, ``ssh:<decimal>`` for SSH certificates. A renewal is
recorded with its parent's serial, and added to the parent's ``children`` (the lineage that
``revoke --lineage`` walks), in the same transaction that consumes the token and checks the parent is
recorded (as the certificate presented, by its fingerprint) and not revoked. An SSH host certificate's
record carries its host-index entries (:func:`stepless.stores.hosts.entry_of`) in that same transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

from stepless.stores import backend
from stepless.stores.errors import MAX_RENEWALS_PER_CERTIFICATE, ParentRevoked  # noqa: F401 - re-exported
from stepless.stores.revocations import RevocationRecord
from stepless.stores.tokens import UsedToken


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateRecord:
    """One issued certificate (X.509 fields or SSH fields set, by ``kind``)."""

    serial: str
    kind: str  # "x509" | "ssh"
    not_before: int
    not_after: int
    provisioner: str
    provisioner_type: str
    issued_at: int
    parent_serial: str | None = None
    # X.509
    subject: str = ""
    sans: tuple[str, ...] = ()
    fingerprint: str | None = None  # SHA-256 of the DER, hex
    pem: str = ""
    # SSH
    cert_type: str | None = None  # "user" | "host"
    key_id: str | None = None
    principals: tuple[str, ...] = ()
    key_fingerprint: str | None = None
    ca_fingerprint: str | None = None
    cert: str = ""  # base64 of the wire format

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for the tuples), every field."""
        out = {f: getattr(self, f) for f in _FIELDS}
        out["sans"], out["principals"] = list(self.sans), list(self.principals)
        return out

    def present(self) -> dict[str, Any]:
        """The fields that are set (not None, "" or empty), tuples as they are: what a stored item holds."""
        return {f: v for f in _FIELDS if (v := getattr(self, f)) is not None and v != "" and v != ()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CertificateRecord:
        """From stored values (unknown attributes ignored; a record without ``kind`` is X.509)."""
        data = {k: v for k, v in values.items() if k in _FIELDS}
        data.setdefault("kind", "x509")
        for name in ("not_before", "not_after", "issued_at"):
            data[name] = int(data.get(name) or 0)
        for name in ("sans", "principals"):
            data[name] = tuple(str(v) for v in data.get(name) or ())
        for name in ("serial", "provisioner", "provisioner_type"):
            data[name] = str(data.get(name) or "")
        if data.get("parent_serial") is not None:
            data["parent_serial"] = str(data["parent_serial"])
        return cls(**data)


_FIELDS = tuple(f.name for f in dataclasses.fields(CertificateRecord))


class CertificateStore(Protocol):
    def record_issuance(self, record: CertificateRecord, token: UsedToken | None) -> None:
        """Record the certificate and the token's use atomically; TokenUsed / SerialCollision."""

    def record_renewal(self, record: CertificateRecord, token: UsedToken | None, parent_serial: str, *,
                       capped: bool, parent_fingerprint: str | None = None) -> None:
        """As record_issuance, only while the parent is recorded (with ``parent_fingerprint`` or none, when
        given) and not revoked, linking it as a child; UnknownCertificate (a fingerprint given) or
        ParentUnknown / ParentRevoked / TokenUsed / RenewalCap / SerialCollision, in that precedence."""

    def get(self, serial: str) -> CertificateRecord | None: ...

    def get_with_revocation(self, serial: str) -> tuple[CertificateRecord | None, RevocationRecord | None]:
        """The record and the (consistently read) revocation of ``serial``, in one round trip."""

    def children(self, serial: str) -> list[str]:
        """The serials renewed directly from ``serial``, sorted."""

    def link_renewals(self) -> int:
        """Link every recorded renewal to its parent (idempotent); the number linked."""

    def ssh_hosts(self) -> Iterable[CertificateRecord]:
        """Every recorded SSH host certificate (serial, principals and not_after at least)."""


def _store() -> CertificateStore:
    return backend.current().certificates


def record_issuance(record: CertificateRecord, token: UsedToken | None) -> None:
    """Write the certificate record, and mark the token used, atomically (one round trip on DynamoDB); an
    SSH host certificate's host-index entries in the same transaction.

    A used token raises 401 "token already used" and nothing is written; any other failure raises
    503, so no certificate leaves the CA unrecorded.
    """
    backend.current().certificates.record_issuance(record, token)


def record_renewal(record: CertificateRecord, token: UsedToken | None, parent_serial: str, *,
                   capped: bool = True, parent_fingerprint: str | None = None) -> None:
    """Like :func:`record_issuance`, and atomically only while ``parent_serial`` is recorded and not revoked.

    These are the renew rules' record checks, made by the write itself (no read first): once a
    revocation of the parent has been written no renewal of it can be recorded (revoke racing renew);
    with ``parent_fingerprint`` (the certificate presented for renewal, SHA-256 hex of its DER) the
    parent's record must be that certificate's (or carry no fingerprint). The same transaction adds the
    new serial to the parent's children, at most :data:`MAX_RENEWALS_PER_CERTIFICATE` of them when
    ``capped`` (the scheduled renewal of managed certificates is not: it retries from the same parent
    after failures). Raises, first that applies: 401 "certificate is unknown to this certificate
    authority" (with ``parent_fingerprint``: no record or another certificate's) or "certificate not
    found" (without: an unrecorded parent), "certificate has been revoked", "token already used"; 403
    when the parent was renewed too often; 503 on a serial collision. Nothing is written when it raises.
    """
    backend.current().certificates.record_renewal(record, token, parent_serial, capped=capped,
                                                  parent_fingerprint=parent_fingerprint)


def get(serial: str) -> CertificateRecord | None:
    """The record of ``serial`` (a key as above), or None."""
    return _store().get(serial)


def get_with_revocation(serial: str) -> tuple[CertificateRecord | None, RevocationRecord | None]:
    """(certificate record, revocation record) of ``serial`` in one round trip."""
    return _store().get_with_revocation(serial)


def children(serial: str) -> list[str]:
    """The serials renewed directly from ``serial`` (a consistent read)."""
    return _store().children(serial)


def link_renewals() -> int:
    """Add every recorded renewal to its parent's children (records written before renewals linked
    themselves); idempotent; returns the number of renewals linked (links that existed included)."""
    return _store().link_renewals()


def scan_ssh_hosts() -> list[CertificateRecord]:
    """Every recorded SSH host certificate."""
    return list(_store().ssh_hosts())
