"""The read-only SSH endpoints: roots, federation, config templates, check-host, hosts, and the KRL."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from stepless import clock
from stepless.authority import Authority
from stepless.errors import BadRequest, NotFound
from stepless.services import ssh_ca
from stepless.ssh import FOREVER, HOST, USER, build_krl, encode_public_key
from stepless.ssh import templates as tpl
from stepless.ssh.keys import SSHPublicKey
from stepless.stores import crl_store, hosts, ssh_revoked
from stepless.stores.certificates import CertificateRecord
from stepless.stores.revocations import RevocationRecord


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
    key = ssh_ca.ca_public_key(auth, cert_type)
    return [key] if key is not None else []


def roots(auth: Authority) -> dict[str, Any]:
    """GET /ssh/roots: the user and host CA public keys."""
    return _keys_response(_own(auth, USER), _own(auth, HOST))


def federation(auth: Authority) -> dict[str, Any]:
    """GET /ssh/federation: our keys and any federated ones."""
    return _keys_response(_own(auth, USER) + ssh_ca.federated_keys(auth, USER),
                          _own(auth, HOST) + ssh_ca.federated_keys(auth, HOST))


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
    user_key, host_key = ssh_ca.ca_public_key(auth, USER), ssh_ca.ca_public_key(auth, HOST)
    if typ == "user":
        if host_key is None:
            raise NotFound("ssh is not configured", reason="ssh_not_configured")
        outputs = tpl.user_templates(data, host_key, ssh_ca.federated_keys(auth, HOST))
        return {"userTemplates": [_output_json(o) for o in outputs]}
    if user_key is None:
        raise NotFound("ssh is not configured", reason="ssh_not_configured")
    outputs = tpl.host_templates(data, user_key, ssh_ca.federated_keys(auth, USER))
    return {"hostTemplates": [_output_json(o) for o in outputs]}


def check_host(body: dict[str, Any]) -> dict[str, Any]:
    """POST /ssh/check-host: whether a host certificate was ever issued for the principal (one read of the
    host index, as step-ca's sshHostsTable)."""
    if body.get("type") != "host":
        raise BadRequest(f"unsupported type '{body.get('type') or ''}'")
    principal = body.get("principal")
    if not isinstance(principal, str) or not principal:
        raise BadRequest("missing or empty principal", reason="invalid_principals")
    return {"exists": hosts.exists(principal)}


def list_hosts(query: dict[str, str]) -> dict[str, Any]:
    """GET /ssh/hosts: the principals with an unexpired, unrevoked host certificate, one page of the host
    index (one Query). ``limit`` (at most 1000, the default) and ``cursor`` page through a larger index;
    ``nextCursor`` (stepless) names the next page when there is one."""
    limit = query.get("limit") or str(hosts.MAX_PAGE)
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= hosts.MAX_PAGE:
        raise BadRequest(f"limit must be a number from 1 to {hosts.MAX_PAGE}")
    cursor = query.get("cursor") or None
    if cursor is not None and not hosts.indexable(cursor):
        raise BadRequest("invalid cursor")
    page, following = hosts.page(int(clock.now().timestamp()), int(limit), cursor)
    out: dict[str, Any] = {"hosts": [{"hid": "", "host_tags": None, "hostname": h.principal} for h in page]}
    if following is not None:
        out["nextCursor"] = following
    return out


# --- the KRL ------------------------------------------------------------------------------------------

KRL_TTL = 60.0  # seconds a container serves the revoked set it read; GET /ssh/krl's max-age

_krl_lock = threading.Lock()
_krl_cache: tuple[float, str, ssh_revoked.Revoked] | None = None  # (when read, which CA, the set)


def _ca_id(auth: Authority) -> str:
    """Which SSH CA a cached revoked set belongs to (a new CA, e.g. a re-init, starts afresh)."""
    return f"{auth.ssh.get('userPublicKey')}|{auth.ssh.get('hostPublicKey')}"


def _revoked(auth: Authority) -> ssh_revoked.Revoked:
    """The revoked SSH certificates: this container's copy while younger than KRL_TTL, else one read."""
    global _krl_cache
    ca = _ca_id(auth)

    def cached() -> ssh_revoked.Revoked | None:
        entry = _krl_cache
        if entry is not None and entry[1] == ca and time.monotonic() - entry[0] < KRL_TTL:
            return entry[2]
        return None

    state = cached()
    if state is not None:
        return state
    with _krl_lock:
        state = cached()
        if state is None:
            state = ssh_revoked.get()
            _krl_cache = (time.monotonic(), ca, state)
        return state


def krl(auth: Authority, typ: str | None) -> bytes:
    """GET /ssh/krl[?type=user|host]: the KRL built from the stored revoked set (no scan)."""
    if typ not in (None, "", "user", "host"):
        raise BadRequest(f"invalid type '{typ}': use user or host")
    return build(auth, _revoked(auth), typ or None)


def build(auth: Authority, revoked: ssh_revoked.Revoked, typ: str | None = None) -> bytes:
    """One unsigned OpenSSH KRL with a certificates section per CA key (of ``typ`` only, when given).

    ``version`` and the generation time are the revoked set's, so every container builds the same bytes.
    """
    wanted = [USER, HOST] if not typ else [USER if typ == "user" else HOST]
    serials = {USER: sorted(revoked.user), HOST: sorted(revoked.host)}
    comment = f"{auth.doc.get('name') or 'stepless'} SSH KRL"
    header = build_krl(_any_key(auth), [], version=revoked.version, generated_at=revoked.updated_at,
                       comment=comment)
    parts = [header]
    for cert_type in wanted:
        key = ssh_ca.ca_public_key(auth, cert_type)
        if key is None or not serials[cert_type]:
            continue
        blob = build_krl(key, serials[cert_type], version=revoked.version, generated_at=revoked.updated_at,
                         comment=comment)
        assert blob.startswith(header)  # the header depends on version, time and comment only
        parts.append(blob[len(header):])
    return b"".join(parts)


def revoked_entry(cert: CertificateRecord | RevocationRecord) -> tuple[int, str, int]:
    """An SSH certificate's entry in the revoked set (from its certificate or its revocation record): its
    serial, ``user`` or ``host``, its notAfter."""
    cert_type = "host" if cert.cert_type == "host" else "user"
    return int(cert.serial.removeprefix("ssh:")), cert_type, cert.not_after or FOREVER


def record_revocation(auth: Authority, cert: CertificateRecord, now: int) -> None:
    """A recorded SSH certificate (its certificate record) was just revoked: add it to the revoked set,
    publish the new KRL (S3, when a bucket is configured) and drop a host certificate from the host index."""
    global _krl_cache
    serial, cert_type, not_after = revoked_entry(cert)
    if cert_type == "host":  # first: once the revoked set has the serial, a retry completes nothing more
        hosts.remove(cert.principals, str(serial), not_after, now)
    state = ssh_revoked.add(serial, cert_type, not_after, now)
    _krl_cache = (time.monotonic(), _ca_id(auth), state)
    crl_store.put_krl(build(auth, state))


def ensure_revoked(auth: Authority, cert: CertificateRecord, now: int) -> None:
    """A revocation of a recorded SSH certificate was found already written: complete its KRL and host-index
    writes only when the revoked set lacks it (a retry after a failure between them). One read otherwise, so
    revoking a revoked certificate again (its holder can mint SSHPOP tokens at will) writes nothing."""
    serial, cert_type, not_after = revoked_entry(cert)
    if not_after <= now or serial in getattr(ssh_revoked.get(), cert_type):
        return
    record_revocation(auth, cert, now)


def _any_key(auth: Authority) -> SSHPublicKey:
    key = ssh_ca.ca_public_key(auth, USER) or ssh_ca.ca_public_key(auth, HOST)
    if key is None:
        raise NotFound("ssh is not configured", reason="ssh_not_configured")
    return key
