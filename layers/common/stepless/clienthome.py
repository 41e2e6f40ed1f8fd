"""Client configuration: the client's home ``$STEPLESS_HOME`` (default ~/.stepless), its
``config/defaults.json``, and the CA URL and root the CLI uses (flag, else the defaults).

Read by the CLI, by ``stepless.admin.target`` (the local CA that ``stepless dev`` recorded there) and written
by ``stepless.local.devstack``: not part of ``cli/``, which only presents it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stepless.errors import CLIError


def home() -> Path:
    """``$STEPLESS_HOME``, or ``~/.stepless``."""
    return Path(os.environ.get("STEPLESS_HOME") or Path.home() / ".stepless")


def defaults_path() -> Path:
    return home() / "config" / "defaults.json"


def defaults() -> dict[str, Any]:
    """The saved defaults (``ca-url``, ``fingerprint``, ``root``, ``local``), or {}."""
    path = defaults_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CLIError(f"error reading {path}: {e}") from e
    return data if isinstance(data, dict) else {}


def save_defaults(values: dict[str, Any]) -> Path:
    """Write ``config/defaults.json`` under the home."""
    path = defaults_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def ca_url(flag: str | None) -> str:
    """The CA URL from the flag or the defaults; an error when neither says."""
    url = flag or defaults().get("ca-url")
    if not url:
        raise CLIError("missing CA URL: use --ca-url or run 'stepless ca bootstrap' first")
    url = str(url).rstrip("/")
    if not url.startswith("https://"):
        raise CLIError(f"the CA URL must use https: {url}")
    return url


def root(flag: str | None) -> str:
    """The root certificate file from the flag or the defaults."""
    path = flag or defaults().get("root")
    if not path:
        raise CLIError("missing root certificate: use --root or run 'stepless ca bootstrap' first")
    if not Path(path).exists():
        raise CLIError(f"root certificate {path} not found")
    return str(path)
