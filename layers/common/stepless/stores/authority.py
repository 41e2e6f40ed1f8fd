"""The authority configuration document (step-ca's ca.json equivalent) and its version.

One document (JSON) with an integer ``version`` for optimistic locking: a write names the version it
read and fails with :class:`~stepless.stores.errors.ConfigConflict` when another write came first.
Administrator changes are written with their audit record atomically (:func:`commit`).
"""

from __future__ import annotations

from typing import Any, Protocol

from stepless.errors import NotInitialized
from stepless.stores import backend
from stepless.stores.errors import ConfigConflict, ConfigExists


class AuthorityStore(Protocol):
    def load(self) -> tuple[dict[str, Any], int] | None:
        """The document and its version (consistent), or None when the CA is not initialized."""

    def save(self, doc: dict[str, Any], *, expected_version: int | None,
             audit: dict[str, Any] | None = None) -> int:
        """Store ``doc`` as version ``expected_version + 1`` (1 when None: create), with the audit record
        when given, atomically; ConfigConflict when the stored version differs (ConfigExists on create)."""


def load() -> tuple[dict[str, Any], int]:
    """The configuration document and its version; NotInitialized when the CA is not initialized."""
    found = backend.current().authority.load()
    if found is None:
        raise NotInitialized("the certificate authority is not initialized (run `stepless ca init`)")
    return found


def exists() -> bool:
    """Whether a configuration is stored."""
    return backend.current().authority.load() is not None


def save(doc: dict[str, Any], *, expected_version: int | None) -> int:
    """Store ``doc``; ``expected_version`` None creates (fails if present), else must match."""
    try:
        return backend.current().authority.save(doc, expected_version=expected_version)
    except ConfigExists as e:
        raise ConfigConflict from e


def commit(doc: dict[str, Any], version: int, audit: dict[str, Any]) -> int:
    """Write ``doc`` if the stored version is still ``version``, with its audit record, atomically; the
    new version. ConfigConflict when another change came first (nothing written)."""
    return backend.current().authority.save(doc, expected_version=version, audit=audit)


def overwrite(doc: dict[str, Any]) -> int:
    """Store ``doc`` whatever is there (``ca init --force``)."""
    found = backend.current().authority.load()
    return save(doc, expected_version=None if found is None else found[1])
