"""The CA's SSH keys: the user and host CA public keys (and federated ones), their signers, the keys an
SSHPOP token is checked against."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from stepless import authority as authorities
from stepless.authority import Authority
from stepless.errors import NotImplementedYet
from stepless.provisioners.sshpop import CAKeys
from stepless.signers import Signer
from stepless.ssh import (
    HOST,
    USER,
)
from stepless.ssh.keys import SSHPublicKey, decode_public_key, split_line

TYPE_NAMES = {USER: "user", HOST: "host"}


@lru_cache(maxsize=32)
def _public_key(line: str) -> SSHPublicKey:
    return decode_public_key(split_line(line)[1])


def section(auth: Authority) -> dict[str, Any]:
    section = auth.ssh
    if not section.get("userKey") and not section.get("hostKey"):
        raise NotImplementedYet("SSH certificates are not enabled on this certificate authority")
    return section


def ca_public_key(auth: Authority, cert_type: int) -> SSHPublicKey | None:
    """The user or host CA public key (from the configuration; no AWS call), or None."""
    line = auth.ssh.get("userPublicKey" if cert_type == USER else "hostPublicKey")
    return _public_key(line) if line else None


def federated_keys(auth: Authority, cert_type: int) -> list[SSHPublicKey]:
    """Extra trusted CA keys (``ssh.federatedUserKeys`` / ``ssh.federatedHostKeys`` lines), if any."""
    lines = auth.ssh.get("federatedUserKeys" if cert_type == USER else "federatedHostKeys") or []
    return [_public_key(line) for line in lines]


def ca_keys(auth: Authority) -> CAKeys:
    """The keys an SSHPOP certificate may be signed by: our own SSH CA keys only (as step-ca 0.19).

    Federated keys are published for trust (``/ssh/federation``, the config templates) and never
    authenticate: a partner CA could otherwise sign a certificate reusing one of our serials and renew,
    rekey or revoke ours. (Our CA keys are never rotated, so there is no previous key to accept.)
    """
    user = [k for k in (ca_public_key(auth, USER),) if k is not None]
    host = [k for k in (ca_public_key(auth, HOST),) if k is not None]
    return CAKeys.of(user, host)


def ca_signer(auth: Authority, cert_type: int) -> Signer:
    """The signer of the user or host CA (501 when that CA is not configured)."""
    ref = section(auth).get("userKey" if cert_type == USER else "hostKey")
    if not ref:
        raise NotImplementedYet(f"{TYPE_NAMES[cert_type]} certificate signing is not enabled")
    return authorities.signer(ref, ca_public_key(auth, cert_type))
