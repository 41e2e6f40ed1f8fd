"""Client configuration: ``$STEPLESS_HOME`` (default ~/.stepless) and its ``config/defaults.json``."""

from __future__ import annotations

from pathlib import Path

from stepless.clienthome import defaults as defaults
from stepless.clienthome import defaults_path as defaults_path
from stepless.clienthome import home as home
from stepless.clienthome import save_defaults as save_defaults
from stepless.errors import ClientError


def ca_url(flag: str | None) -> str:
    """The CA URL from the flag or the defaults; an error when neither says."""
    url = flag or defaults().get("ca-url")
    if not url:
        raise ClientError("missing CA URL: use --ca-url or run 'stepless ca bootstrap' first")
    url = str(url).rstrip("/")
    if not url.startswith("https://"):
        raise ClientError(f"the CA URL must use https: {url}")
    return url


def root(flag: str | None) -> str:
    """The root certificate file from the flag or the defaults."""
    path = flag or defaults().get("root")
    if not path:
        raise ClientError("missing root certificate: use --root or run 'stepless ca bootstrap' first")
    if not Path(path).exists():
        raise ClientError(f"root certificate {path} not found")
    return str(path)
