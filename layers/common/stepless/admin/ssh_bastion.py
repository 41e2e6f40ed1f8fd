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
# step's proxycommand runs ``ssh [flags...] bastion`` on every client (flags split on white space): options that
# make that ssh run a command, load a library or read a config on the client are refused
_CLIENT_SIDE_KEYWORDS = ("proxycommand", "localcommand", "permitlocalcommand", "knownhostscommand",
                         "pkcs11provider", "securitykeyprovider", "proxyusefdpass", "include")
_CLIENT_SIDE_LETTERS = set("EFIS")  # -E log file, -F config file, -I PKCS#11 library, -S control socket
_ARGUMENT_LETTERS = set("BbcDEeFIiJLlmOoPpQRSWw")  # ssh's options that take an argument (the rest of the word)


def _client_side_option(flags: str) -> str | None:
    """The first of ``flags`` that would act on the client's machine (see above), or None."""
    for word in flags.split():
        if any(k in word.lower() for k in _CLIENT_SIDE_KEYWORDS):
            return word
        if word.startswith("-") and not word.startswith("--"):
            for letter in word[1:]:
                if letter in _CLIENT_SIDE_LETTERS:
                    return word
                if letter in _ARGUMENT_LETTERS:
                    break
    return None
NO_SSH = "the CA has no SSH keys (run `stepless ca init --ssh`)"


def check_setting(hostname: str, user: str | None = None, port: str | int | None = None,
                  cmd: str | None = None, flags: str | None = None) -> dict[str, str]:
    """A validated ``ssh.bastion`` value (a :class:`ClientError` names the bad field).

    The hostname and user become single ``ssh`` arguments, so neither may start with ``-`` (an option) or
    hold spaces; the port is 1-65535; the command and flags are free text on one line (step splits the flags
    on white space), the flags without an option that acts on the client's machine (``ProxyCommand``,
    ``LocalCommand``, ``-F``, ``-I``…).
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
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
            raise ClientError(f"invalid bastion port {text!r}: use a number from 1 to 65535")
        out["port"] = str(int(text))
    for key, value in (("cmd", cmd), ("flags", flags)):
        if value and value.strip():
            what = "command" if key == "cmd" else "flags"
            if len(value) > MAX_TEXT or any(c in value for c in "\r\n\0"):
                raise ClientError(f"invalid bastion {what}: one line of at most {MAX_TEXT} characters")
            bad = _client_side_option(value) if key == "flags" else None
            if bad:
                raise ClientError(f"invalid bastion flags: {bad!r} would run a command or read a file on every "
                                  "client's machine (step's proxycommand passes the flags to its ssh)")
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
