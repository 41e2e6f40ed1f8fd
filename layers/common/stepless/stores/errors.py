"""The typed errors every store backend raises for a failed condition (one place for all of them).

A backend maps its own failure (DynamoDB's ConditionalCheckFailed, SQLite's constraint violation) to one
of these; the services only ever see these, so both backends answer the same request the same way.
"""

from __future__ import annotations

from stepless.errors import BadRequest, ConfigError, Forbidden, ServiceUnavailable, Unauthorized

TOKEN_USED = "token already used"
# One certificate renewed over and over (not its renewals) would grow its record towards DynamoDB's 400 KB
# item limit, and every renewal's write with it; a client renews the newest certificate anyway.
MAX_RENEWALS_PER_CERTIFICATE = 1000


class TokenUsed(Unauthorized):
    """401: the one-time token was used before (nothing was written)."""

    reason = "token_already_used"

    def __init__(self) -> None:
        super().__init__(TOKEN_USED)


class ParentRevoked(Unauthorized):
    """401: the certificate being renewed was revoked (the renewal transaction's check failed)."""

    reason = "certificate_revoked"

    def __init__(self) -> None:
        super().__init__("certificate has been revoked")


class UnknownCertificate(Unauthorized):
    """401: the certificate presented for renewal is not the one recorded under its serial (no record, or
    the record's fingerprint is another certificate's)."""

    reason = "unknown_certificate"

    def __init__(self) -> None:
        super().__init__("certificate is unknown to this certificate authority")


class ParentUnknown(Unauthorized):
    """401: the certificate being renewed was never recorded."""

    def __init__(self) -> None:
        super().__init__("certificate not found")


class RenewalCap(Forbidden):
    """403: the certificate was renewed :data:`MAX_RENEWALS_PER_CERTIFICATE` times already."""

    def __init__(self) -> None:
        super().__init__(f"certificate has been renewed {MAX_RENEWALS_PER_CERTIFICATE} times: renew its "
                         "latest renewal instead")


class SerialCollision(ServiceUnavailable):
    """503: the serial is recorded already (a random collision): the client retries."""

    def __init__(self) -> None:
        super().__init__("serial collision, retry", headers={"Retry-After": "0"})


class RevokedSetFull(ServiceUnavailable):
    """503: the revoked-SSH set (the KRL's one stored record) holds its maximum of unexpired revocations."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the SSH KRL is full: {limit} unexpired revoked SSH certificates; the revocation is "
                         "recorded but not yet in the KRL (revoke it again once some revoked certificates "
                         "have expired)")


class AlreadyRevoked(BadRequest):
    """400: the serial has a revocation record already."""

    reason = "already_revoked"

    def __init__(self, serial: str) -> None:
        super().__init__(f"certificate with serial number {serial} is already revoked")
        self.serial = serial


class ConfigConflict(ConfigError):
    """The authority configuration changed between a read and the conditional write (optimistic locking)."""

    def __init__(self) -> None:
        super().__init__("the authority configuration changed meanwhile; retry")


class ConfigExists(ConfigError):
    """A configuration is stored already (creating one is conditional on there being none)."""

    def __init__(self) -> None:
        super().__init__("the authority configuration exists already")


class LostRace(Exception):
    """A managed-certificate item changed since it was read (another run claimed or renewed it)."""


class ManagedExists(BadRequest):
    """400: registering a managed name that exists (or is held by a renewal run)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"managed certificate {name!r} exists or is being renewed; retry")
