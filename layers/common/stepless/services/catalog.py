"""The read-only CA endpoints: roots, federation, provisioners and their encrypted keys."""

from __future__ import annotations

from typing import Any

from stepless.authority import Authority
from stepless.errors import BadRequest, NotFound

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def root(auth: Authority, sha: str) -> dict[str, Any]:
    """GET /root/{sha}: the root with that SHA-256 fingerprint (case and '-'/':' ignored)."""
    wanted = sha.lower().replace("-", "").replace(":", "")
    pem = auth.roots_by_fingerprint.get(wanted)
    if pem is None:
        raise NotFound(f"root certificate with fingerprint {sha} was not found", reason="certificate_not_found")
    return {"ca": pem}


def provisioners(auth: Authority, cursor: str | None, limit: str | None) -> dict[str, Any]:
    """GET /provisioners: a page of provisioners; the cursor is the index of the next one."""
    try:
        size = int(limit) if limit not in (None, "") else DEFAULT_LIMIT
        start = int(cursor) if cursor not in (None, "") else 0
    except ValueError as e:
        raise BadRequest("limit and cursor must be integers") from e
    if size <= 0 or start < 0:
        raise BadRequest("limit must be positive and cursor non-negative")
    size = min(size, MAX_LIMIT)
    items = list(auth.provisioners)
    page = items[start:start + size]
    following = start + size
    return {
        "provisioners": [p.public_json() for p in page],
        "nextCursor": str(following) if following < len(items) else "",
    }


def encrypted_key(auth: Authority, kid: str) -> dict[str, Any]:
    """GET /provisioners/{kid}/encrypted-key."""
    p = auth.provisioners.by_kid(kid)
    if p is None or not p.data.get("encryptedKey"):
        raise NotFound(f"no provisioner with key id {kid} has an encrypted key")
    return {"key": p.data["encryptedKey"]}
