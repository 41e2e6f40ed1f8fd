"""The client's home: ``$STEPLESS_HOME`` (default ~/.stepless) and its ``config/defaults.json``.

Read by the CLI (``stepless.cli.config``: CA URL, root) and by ``stepless.admin.target`` (the local CA that
``stepless dev`` recorded there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stepless.errors import ClientError


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
        raise ClientError(f"error reading {path}: {e}") from e
    return data if isinstance(data, dict) else {}


def save_defaults(values: dict[str, Any]) -> Path:
    """Write ``config/defaults.json`` under the home."""
    path = defaults_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path
