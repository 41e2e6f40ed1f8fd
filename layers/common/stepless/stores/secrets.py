"""The secrets that hold managed certificates' keys and chains (``<prefix>/managed/<name>``), versioned:
a write makes the new version current and the one it replaces previous (Secrets Manager's AWSCURRENT and
AWSPREVIOUS stages), and a repeated write with the same request token is the same write (idempotent).

AWS backend: Secrets Manager. SQLite backend: rows of the local CA's database (``local:secret:<name>``).
"""

from __future__ import annotations

from typing import Protocol

from stepless.stores import backend

CURRENT, PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"


class SecretStore(Protocol):
    def create(self, name: str, value: str, *, description: str, tags: dict[str, str]) -> str:
        """Create the secret, or put a new version when it exists; its ARN (BadRequest when it cannot be)."""

    def read(self, arn: str) -> str:
        """The current value."""

    def write(self, arn: str, value: str, request_token: str) -> str:
        """Put ``value`` as the new current version; its version id (the same for the same token)."""

    def delete(self, arn: str) -> None: ...

    def versions(self, arn: str) -> dict[str, list[str]]:
        """Version id → stages."""


def current() -> SecretStore:
    return backend.current().secrets
