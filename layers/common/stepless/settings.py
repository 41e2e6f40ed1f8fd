"""Runtime settings from the environment (names shared with template.yaml)."""

from __future__ import annotations

import os

AUTHORITY_TABLE = "STEPLESS_AUTHORITY_TABLE"
TOKENS_TABLE = "STEPLESS_TOKENS_TABLE"
CERTIFICATES_TABLE = "STEPLESS_CERTIFICATES_TABLE"
REVOCATIONS_TABLE = "STEPLESS_REVOCATIONS_TABLE"
HOSTS_TABLE = "STEPLESS_HOSTS_TABLE"  # the SSH host index (stores.hosts)
OCSP_TABLE = "STEPLESS_OCSP_TABLE"  # pre-produced OCSP responses (stores.ocsp_responses)
CONFIG_TTL = "STEPLESS_CONFIG_TTL"
MTLS_DOMAIN = "STEPLESS_MTLS_DOMAIN"

MAX_BODY_BYTES = 64 * 1024


def table(name: str) -> str:
    """The table name in env var ``name``; a missing one is an operator error."""
    from stepless.errors import ConfigError

    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def config_ttl() -> float:
    """Seconds a loaded authority configuration stays fresh (default 30)."""
    try:
        return float(os.environ.get(CONFIG_TTL, "30"))
    except ValueError:
        return 30.0


def crl_distribution_point() -> str | None:
    """The CRL URL to put in issued certificates (template parameter ``CrlDistributionPoint``), if any."""
    return os.environ.get("STEPLESS_CRL_DISTRIBUTION_POINT") or None


def mtls_domains() -> frozenset[str] | None:
    """Host names on which a request's client certificate is honoured (``STEPLESS_MTLS_DOMAIN``, comma
    separated; template.yaml: the custom domain when it has a truststore, else none; the local stack: its
    own names). None when the variable is unset: no check (unit tests, ``stepless local invoke``)."""
    value = os.environ.get(MTLS_DOMAIN)
    if value is None:
        return None
    return frozenset(name.strip().lower() for name in value.split(",") if name.strip())
