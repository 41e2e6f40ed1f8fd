"""Administration of the authority's ``ssh.bastion`` setting (AWS credentials): show, set, remove.

Changes go through :func:`stepless.admin.provisioners.change_config` (the configuration and its audit record
in one transaction, actions ``ssh.bastion.set`` / ``ssh.bastion.remove``); the functions pick them up like
provisioner changes. The value has step-ca's ``Bastion`` JSON shape (see :mod:`stepless.services.ssh_bastion`).
"""

from __future__ import annotations

import re
from typing import Any

from stepless.admin.provisioners import _load, change_config
from stepless.errors import ClientError
from stepless.services.ssh_bastion import configured

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,253}")  # a host name or an IP literal: one argument to ssh
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MAX_TEXT = 1024
NO_SSH = "the CA has no SSH keys (run `stepless ca init --ssh`)"


def check_setting(hostname: str, user: str | None = None, port: str | int | None = None,
                  cmd: str | None = None, flags: str | None = None) -> dict[str, str]:
    """A validated ``ssh.bastion`` value (a :class:`ClientError` names the bad field).

    The hostname and user become single ``ssh`` arguments, so neither may start with ``-`` (an option) or
    hold spaces; the port is 1-65535; the command and flags are free text on one line (step splits the flags
    on white space).
    """
    if not hostname or not _NAME.fullmatch(hostname) or hostname.startswith("-"):
        raise ClientError(f"invalid bastion hostname {hostname!r}: use a host name or an IP address")
    out = {"hostname": hostname}
    if user:
        if not _USER.fullmatch(user) or user.startswith("-"):
            raise ClientError(f"invalid bastion user {user!r}: use a login name (letters, digits, . _ @ -)")
        out["user"] = user
    if port not in (None, ""):
        text = str(port)
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ClientError(f"invalid bastion port {text!r}: use a number from 1 to 65535")
        out["port"] = str(int(text))
    for key, value in (("cmd", cmd), ("flags", flags)):
        if value and value.strip():
            what = "command" if key == "cmd" else "flags"
            if len(value) > MAX_TEXT or any(c in value for c in "\r\n\0"):
                raise ClientError(f"invalid bastion {what}: one line of at most {MAX_TEXT} characters")
            out[key] = value.strip()
    return out


def show() -> dict[str, str] | None:
    """The configured bastion, or None."""
    doc, _ = _load()
    return configured(doc.get("ssh") or {})


def set_bastion(value: dict[str, str]) -> tuple[dict[str, str], dict[str, str] | None, int]:
    """Store ``value`` (from :func:`check_setting`); returns (new, previous, configuration version)."""

    def mutate(doc: dict[str, Any]) -> tuple[dict[str, str] | None, dict[str, Any]]:
        section = doc.get("ssh") or {}
        if not (section.get("userKey") or section.get("hostKey")):
            raise ClientError(f"cannot set a bastion: {NO_SSH}")
        before = configured(section)
        section["bastion"] = dict(value)
        return before, {"before": before, "after": value}

    before, version, _ = change_config("ssh.bastion.set", value["hostname"], mutate)
    return value, before, version


def remove() -> tuple[dict[str, str], int]:
    """Remove the bastion (step's proxycommand then connects directly); returns (removed, version)."""

    def mutate(doc: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        section = doc.get("ssh") or {}
        before = configured(section)
        if before is None:
            raise ClientError("no SSH bastion is configured")
        del section["bastion"]
        return before, {"before": before, "after": None}

    removed, version, _ = change_config("ssh.bastion.remove", "", mutate)
    return removed, version
