"""Used one-time tokens: the single-use rule (a token id is recorded once; a second use is refused).

Records are :class:`UsedToken`; a backend keeps each until ``expires`` (DynamoDB: its TTL attribute)
and refuses a second record of the same id with :class:`~stepless.stores.errors.TokenUsed`. Alone
(:func:`use`) or inside the recording transactions of :mod:`certificates` and :mod:`revocations`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from stepless.stores import backend
from stepless.stores.errors import TOKEN_USED as USED  # noqa: F401 - the message, for callers and tests

# A used token is kept this long after its own expiry (clock skew between the CA and the token's issuer).
RETENTION_SECONDS = 120


@dataclasses.dataclass(frozen=True, slots=True)
class UsedToken:
    """A token's single use: key ``<iss>#<jti>``, kept until ``expires`` (epoch s)."""

    id: str
    expires: int
    endpoint: str
    used_at: int

    @classmethod
    def of(cls, use: object, endpoint: str, now: int) -> UsedToken:
        """The record of a verified token's use (a ``TokenUse``: ``id``, ``expires``), with the retention."""
        return cls(use.id, use.expires + RETENTION_SECONDS, endpoint, now)  # type: ignore[attr-defined]


class TokenStore(Protocol):
    def use(self, token: UsedToken) -> None:
        """Record the use; raises TokenUsed when the id is recorded already."""


def use(token: UsedToken) -> None:
    """Mark a token used; a second use raises 401 "token already used"."""
    backend.current().tokens.use(token)
