"""Add a key and its certificate to a running ssh-agent (the agent protocol, SSH2_AGENTC_ADD_IDENTITY)."""

from __future__ import annotations

import os
import socket

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from stepless.ssh import wire
from stepless.ssh.certificate import SSHCertificate

ADD_IDENTITY = 17
ADD_ID_CONSTRAINED = 25
SUCCESS = 6
LIFETIME = 1


def available() -> bool:
    """Whether an agent socket is configured."""
    return bool(os.environ.get("SSH_AUTH_SOCK"))


def _key_fields(key: object) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return wire.mpint(key.private_numbers().private_value)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return wire.string(pub) + wire.string(seed + pub)
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        return wire.mpint(n.d) + wire.mpint(n.iqmp) + wire.mpint(n.p) + wire.mpint(n.q)
    raise ValueError("unsupported key type for ssh-agent")


def add_certificate(key: object, cert: SSHCertificate, comment: str, lifetime: int | None = None) -> None:
    """Add ``key`` with ``cert`` to the agent; raises OSError/ValueError when the agent refuses."""
    body = wire.string(cert.key_type) + wire.string(cert.raw) + _key_fields(key) + wire.string(comment)
    kind = ADD_IDENTITY
    if lifetime:
        kind = ADD_ID_CONSTRAINED
        body += bytes([LIFETIME]) + wire.uint32(lifetime)
    msg = bytes([kind]) + body
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(os.environ["SSH_AUTH_SOCK"])
        s.sendall(wire.uint32(len(msg)) + msg)
        head = s.recv(4)
        length = int.from_bytes(head, "big") if len(head) == 4 else 0
        reply = s.recv(length) if length else b""
    if not reply or reply[0] != SUCCESS:
        raise ValueError("the ssh-agent refused the key")
