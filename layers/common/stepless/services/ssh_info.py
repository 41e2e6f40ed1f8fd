"""The read-only SSH endpoints: roots, federation, config templates, check-host, hosts, and the KRL."""

from __future__ import annotations

import base64
from typing import Any

from stepless import clock
from stepless.authority import Authority
from stepless.errors import BadRequest, NotFound
from stepless.services import ssh
from stepless.ssh import HOST, USER, build_krl, encode_public_key
from stepless.ssh import templates as tpl
from stepless.ssh.keys import SSHPublicKey
from stepless.stores import certificates, revocations


def _b64(key: SSHPublicKey) -> str:
    return base64.b64encode(encode_public_key(key)).decode()


def _keys_response(user: list[SSHPublicKey], host: list[SSHPublicKey]) -> dict[str, Any]:
    """step's SSHRootsResponse (``omitempty`` lists); 404 "no keys found" when both are empty."""
    out: dict[str, Any] = {}
    if user:
        out["userKey"] = [_b64(k) for k in user]
    if host:
        out["hostKey"] = [_b64(k) for k in host]
    if not out:
        raise NotFound("no keys found")
    return out


def _own(auth: Authority, cert_type: int) -> list[SSHPublicKey]:
    key = ssh.ca_public_key(auth, cert_type)
    return [key] if key is not None else []


def roots(auth: Authority) -> dict[str, Any]:
    """GET /ssh/roots: the user and host CA public keys."""
    return _keys_response(_own(auth, USER), _own(auth, HOST))


def federation(auth: Authority) -> dict[str, Any]:
    """GET /ssh/federation: our keys and any federated ones."""
    return _keys_response(_own(auth, USER) + ssh.federated_keys(auth, USER),
                          _own(auth, HOST) + ssh.federated_keys(auth, HOST))


def _output_json(out: tpl.Output) -> dict[str, Any]:
    return {"name": out.name, "type": out.type, "path": out.path, "comment": out.comment,
            "content": base64.b64encode(out.content).decode()}


def config(body: dict[str, Any], path_type: str | None, auth: Authority) -> dict[str, Any]:
    """POST /ssh/config[/{type}]: step's default templates rendered for the client's data."""
    typ = body.get("type") or path_type or "user"
    if typ not in ("user", "host"):
        raise BadRequest(f"invalid type '{typ}'")
    data = body.get("data") or {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise BadRequest("data must be an object of strings")
    user_key, host_key = ssh.ca_public_key(auth, USER), ssh.ca_public_key(auth, HOST)
    if typ == "user":
        if host_key is None:
            raise NotFound("ssh is not configured")
        outputs = tpl.user_templates(data, host_key, ssh.federated_keys(auth, HOST))
        return {"userTemplates": [_output_json(o) for o in outputs]}
    if user_key is None:
        raise NotFound("ssh is not configured")
    outputs = tpl.host_templates(data, user_key, ssh.federated_keys(auth, USER))
    return {"hostTemplates": [_output_json(o) for o in outputs]}


def check_host(body: dict[str, Any]) -> dict[str, Any]:
    """POST /ssh/check-host: whether a host certificate was ever issued for the principal."""
    if body.get("type") != "host":
        raise BadRequest(f"unsupported type '{body.get('type') or ''}'")
    principal = body.get("principal")
    if not isinstance(principal, str) or not principal:
        raise BadRequest("missing or empty principal")
    wanted = principal.lower()
    exists = any(wanted in (p.lower() for p in rec.principals)
                 for rec in certificates.scan_ssh_hosts())
    return {"exists": exists}


def hosts() -> dict[str, Any]:
    """GET /ssh/hosts: the principals of unexpired host certificates."""
    now = int(clock.now().timestamp())
    names: set[str] = set()
    for rec in certificates.scan_ssh_hosts():
        if rec.not_after > now:
            names.update(p.lower() for p in rec.principals)
    return {"hosts": [{"hid": "", "host_tags": None, "hostname": n} for n in sorted(names)]}


def krl(auth: Authority, typ: str | None) -> bytes:
    """GET /ssh/krl[?type=user|host]: one unsigned OpenSSH KRL with a certificates section per CA key.

    ``version`` is the time of the latest SSH revocation (it grows with every change).
    """
    if typ not in (None, "", "user", "host"):
        raise BadRequest(f"invalid type '{typ}': use user or host")
    wanted = [USER, HOST] if not typ else [USER if typ == "user" else HOST]
    serials: dict[int, list[int]] = {USER: [], HOST: []}
    version = 0
    for rec in revocations.scan_all():
        if rec.kind != "ssh" or not rec.serial.startswith("ssh:"):
            continue
        cert_type = HOST if rec.cert_type == "host" else USER
        serials[cert_type].append(int(rec.serial.removeprefix("ssh:")))
        version = max(version, rec.revoked_at)
    now = int(clock.now().timestamp())
    comment = f"{auth.doc.get('name') or 'stepless'} SSH KRL"
    header = build_krl(_any_key(auth), [], version=version, generated_at=now, comment=comment)
    parts = [header]
    for cert_type in wanted:
        key = ssh.ca_public_key(auth, cert_type)
        if key is None or not serials[cert_type]:
            continue
        blob = build_krl(key, serials[cert_type], version=version, generated_at=now, comment=comment)
        assert blob.startswith(header)  # the header depends on version, time and comment only
        parts.append(blob[len(header):])
    return b"".join(parts)


def _any_key(auth: Authority) -> SSHPublicKey:
    key = ssh.ca_public_key(auth, USER) or ssh.ca_public_key(auth, HOST)
    if key is None:
        raise NotFound("ssh is not configured")
    return key
