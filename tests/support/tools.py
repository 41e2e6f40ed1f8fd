"""The project's own command-line tools (pip-installed by ``.[dev]``), found beside the interpreter that runs
the tests rather than on ``PATH``: ``make test`` runs ``.venv/bin/python -m pytest`` and a fresh machine's
``PATH`` has no ``.venv/bin`` (nor should a test pick up another installation's copy)."""

from __future__ import annotations

import sys
from pathlib import Path


def venv_tool(name: str) -> str:
    """The path of console script ``name`` installed with the running interpreter (its ``bin/``, or
    ``Scripts\\`` on Windows); fails loudly when the dev extra is not installed."""
    here = Path(sys.executable).parent  # not resolved: a venv's python is a symlink to the base interpreter
    for candidate in (here / name, here / f"{name}.exe"):
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{name} is not installed beside {sys.executable} (pip install -e '.[dev]')")
