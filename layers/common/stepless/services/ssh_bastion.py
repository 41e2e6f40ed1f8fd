"""The SSH bastion: the authority's optional ``ssh.bastion`` setting and ``POST /ssh/bastion``.

The setting has step-ca's ``Bastion`` shape (``authority/config/ssh.go``)::

    {"hostname": "bastion.example.com", "user": "jump", "port": "2222", "cmd": "nc %h %p", "flags": "-q"}

``hostname`` is required, the rest is optional (``omitempty``). ``step ssh proxycommand USER HOST PORT`` asks
the CA for the bastion of HOST: with one it runs ``ssh [-l user] [-p port] [flags...] hostname cmd`` (``cmd``
defaults to ``nc HOST PORT``; ``%r %h %p`` in it become user, host, port), without one it connects directly.
"""

from __future__ import annotations

from typing import Any

from stepless.authority import Authority
from stepless.errors import BadRequest, NotFound

FIELDS = ("hostname", "user", "port", "cmd", "flags")


def has_ssh(auth: Authority) -> bool:
    """Whether the authority has an SSH CA (step-ca: ``ssh`` present in ca.json)."""
    return bool(auth.ssh.get("userPublicKey") or auth.ssh.get("hostPublicKey"))


def configured(ssh_section: dict[str, Any]) -> dict[str, str] | None:
    """The ``ssh.bastion`` setting with its empty fields left out (step's ``omitempty``), or None."""
    raw = ssh_section.get("bastion") or {}
    out = {k: str(raw[k]) for k in FIELDS if isinstance(raw, dict) and raw.get(k)}
    return out if out.get("hostname") else None


def bastion(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """``POST /ssh/bastion``: step-ca's ``SSHBastionResponse`` for ``{"user", "hostname"}``.

    The configured bastion, except for the bastion host itself (compared without case, as step-ca does);
    no ``bastion`` key when there is none, so step's proxycommand connects directly.
    """
    for field in ("user", "hostname"):
        if body.get(field) is not None and not isinstance(body[field], str):
            raise BadRequest(f"error reading request body: {field} must be a string")
    hostname = body.get("hostname") or ""
    if not hostname:
        raise BadRequest("missing or empty hostname")
    if not has_ssh(auth):
        raise NotFound("ssh is not configured")
    out: dict[str, Any] = {"hostname": hostname}
    found = configured(auth.ssh)
    if found is not None and found["hostname"].casefold() != hostname.casefold():
        out["bastion"] = found
    return out

