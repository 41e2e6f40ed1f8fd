"""Which backend stores this container's records: resolved once per container from ``STEPLESS_STORE``.

- unset or ``dynamodb``: the DynamoDB tables (and S3 bucket) named by the functions' environment
  (``STEPLESS_*_TABLE``, ``STEPLESS_CRL_BUCKET``) — the Lambda functions, the AWS-emulated local stack;
- ``sqlite:/path/ca.db``: one SQLite file (WAL) — the local CA of ``stepless dev``.

Every concern module (:mod:`tokens`, :mod:`certificates`, :mod:`revocations`, :mod:`authority`,
:mod:`audit`, :mod:`managed`, :mod:`secrets`, :mod:`crl_store`, :mod:`hosts`, :mod:`ssh_revoked`,
:mod:`ocsp_responses`, :mod:`acme`) declares its interface and calls ``current().<concern>``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from stepless.errors import ConfigError

if TYPE_CHECKING:
    from stepless.stores.acme import AcmeStore
    from stepless.stores.audit import AuditStore
    from stepless.stores.authority import AuthorityStore
    from stepless.stores.certificates import CertificateStore
    from stepless.stores.crl_store import ObjectStore
    from stepless.stores.hosts import HostStore
    from stepless.stores.managed import ManagedStore
    from stepless.stores.ocsp_responses import OCSPStore
    from stepless.stores.revocations import RevocationStore
    from stepless.stores.secrets import SecretStore
    from stepless.stores.ssh_revoked import RevokedStore
    from stepless.stores.tokens import TokenStore

STORE = "STEPLESS_STORE"
class Stores:
    """One backend: an implementation of every concern's interface, each made by its factory on first use
    (a cold start imports only the concerns its first request touches), then a plain attribute."""

    tokens: TokenStore
    certificates: CertificateStore
    revocations: RevocationStore
    authority: AuthorityStore
    audit: AuditStore
    managed: ManagedStore
    objects: ObjectStore
    secrets: SecretStore
    hosts: HostStore
    ssh_revoked: RevokedStore
    ocsp: OCSPStore
    acme: AcmeStore

    def __init__(self, name: str, concerns: Mapping[str, Callable[[], Any]],
                 close: Callable[[], None] = lambda: None) -> None:
        if set(concerns) != CONCERNS:
            raise ValueError(f"a backend implements exactly {sorted(CONCERNS)}; got {sorted(concerns)}")
        self.name = name
        self.close = close
        self._factories = dict(concerns)
        self._made = threading.Lock()

    def __getattr__(self, concern: str) -> Any:  # only for a concern not made yet
        factory = self.__dict__.get("_factories", {}).get(concern)
        if factory is None:
            raise AttributeError(concern)
        with self._made:
            if concern not in self.__dict__:
                self.__dict__[concern] = factory()
        return self.__dict__[concern]


CONCERNS = frozenset(Stores.__annotations__)  # the concerns a backend implements, as Stores declares them


_lock = threading.Lock()
_current: Stores | None = None


def current() -> Stores:
    """The container's backend (resolved on first use)."""
    stores = _current
    return stores if stores is not None else _resolve()


def open_backend(spec: str) -> Stores:
    """The backend a ``STEPLESS_STORE`` value names (ConfigError for anything else)."""
    if spec in ("", "dynamodb"):
        from stepless.stores.dynamodb import stores

        return stores()
    if spec.startswith("sqlite:") and spec != "sqlite:":
        from stepless.stores.sqlite import stores as sqlite_stores

        return sqlite_stores(spec.removeprefix("sqlite:"))
    raise ConfigError(f"invalid {STORE} {spec!r}: use dynamodb or sqlite:/path/to/ca.db")


def _resolve() -> Stores:
    global _current
    with _lock:
        if _current is None:
            _current = open_backend(os.environ.get(STORE, "").strip())
        return _current


def use(stores: Stores | None) -> None:
    """Serve from ``stores`` (tests); None: resolve from the environment again on next use."""
    global _current
    with _lock:
        old, _current = _current, stores
    if old is not None and old is not stores:
        old.close()


def reset() -> None:
    """Forget the backend (tests and the local stack switching environments)."""
    use(None)
