"""One-time tokens as the step CLI makes them: pick a provisioner, unlock its key, sign the claims."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import jose
from stepless.cli import ui
from stepless.cli.client import CAClient
from stepless.errors import ClientError

VALIDITY = 300  # step's default token lifetime: 5 minutes
AUDIENCES = {"sign": "/1.0/sign", "revoke": "/1.0/revoke", "ssh": "/1.0/ssh/sign",
             "ssh-revoke": "/1.0/ssh/revoke", "renew": "/1.0/renew"}


@dataclasses.dataclass
class TokenRequest:
    """What the token is for."""

    kind: str  # a key of AUDIENCES
    subject: str
    sans: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {"step": {"ssh": {...}}}


def root_fingerprint(root: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(root).read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def label(p: dict[str, Any]) -> str:
    """step's provisioner line: ``admin (JWK) [kid: …]``."""
    if p.get("type") == "JWK":
        return f"{p['name']} ({p['type']}) [kid: {p['key'].get('kid', '')}]"
    if p.get("type") == "OIDC":
        return f"{p['name']} ({p['type']}) [client: {p.get('clientID', '')}]"
    return f"{p['name']} ({p.get('type')})"


def choose(provisioners: list[dict[str, Any]], name: str | None, usable: tuple[str, ...]) -> dict[str, Any]:
    """The provisioner ``--provisioner`` names, or the only usable one."""
    candidates = [p for p in provisioners if p.get("type") in usable]
    if name:
        chosen = [p for p in candidates if p.get("name") == name or p.get("key", {}).get("kid") == name]
        if not chosen:
            raise ClientError(f"provisioner '{name}' not found (or not usable here)")
    else:
        chosen = candidates
    if not chosen:
        raise ClientError("the CA has no provisioner that can make this token")
    if len(chosen) > 1:
        return ui.select("What provisioner key do you want to use?", chosen, label,
                         on_no_terminal="more than one provisioner ({names}): choose one with --provisioner",
                         name=lambda p: p["name"], announce="Provisioner")
    ui.done("Provisioner", label(chosen[0]))
    return chosen[0]


def jwk_signing_key(p: dict[str, Any], password_file: str | None) -> Any:
    """Decrypt the provisioner's encrypted key with the password (asked or from a file)."""
    encrypted = p.get("encryptedKey")
    if not encrypted:
        raise ClientError(f"provisioner {p['name']} has no encrypted key; use --token")
    password = ui.password(password_file, "Please enter the password to decrypt the provisioner key: ",
                           flag="--provisioner-password-file")
    try:
        return jose.key_from_jwk(jose.decrypt_jwk(encrypted, password))
    except ValueError as e:
        raise ClientError(f"error decrypting the provisioner key: {e}") from e


def claims(ca_url: str, root: str, iss: str, req: TokenRequest, now: int | None = None) -> dict[str, Any]:
    """The claims step puts in a token."""
    now = int(time.time()) if now is None else now
    out: dict[str, Any] = {
        "aud": ca_url.rstrip("/") + AUDIENCES[req.kind],
        "iss": iss,
        "sub": req.subject,
        "iat": now,
        "nbf": now,
        "exp": now + VALIDITY,
        "jti": os.urandom(32).hex(),
        "sha": root_fingerprint(root),
    }
    if req.kind == "sign":
        out["sans"] = req.sans or [req.subject]
    out.update(req.extra)
    return out


@dataclasses.dataclass(frozen=True)
class Credentials:
    """How to prove the right to a token, from the command's flags."""

    provisioner: str | None = None
    password_file: str | None = None
    x5c_cert: str | None = None
    x5c_key: str | None = None
    console: bool = False


def generate(client: CAClient, root: str, req: TokenRequest, creds: Credentials) -> str:
    """A token from the chosen provisioner: JWK (password), OIDC (single sign-on) or X5C (certificate)."""
    provisioner, password_file = creds.provisioner, creds.password_file
    if creds.x5c_cert or creds.x5c_key:
        if not (creds.x5c_cert and creds.x5c_key):
            raise ClientError("flags --x5c-cert and --x5c-key must be used together")
        from stepless.cli.x5c import x5c_token

        p = choose(client.provisioners(), provisioner, ("X5C",))
        return x5c_token(creds.x5c_cert, creds.x5c_key, claims(client.ca_url, root, p["name"], req))
    p = choose(client.provisioners(), provisioner, ("JWK", "OIDC") if provisioner else ("JWK",))
    if p["type"] == "OIDC":
        from stepless.cli.sso import oidc_login

        return oidc_login(p, console=creds.console)
    key = jwk_signing_key(p, password_file)
    alg = p["key"].get("alg") or jose.default_alg(p["key"])
    return jwt.encode(claims(client.ca_url, root, p["name"], req), key, algorithm=alg,
                      headers={"kid": p["key"]["kid"], "typ": "JWT"})
