"""The authority's own claims (step-ca's ``authority.claims`` in ``ca.json``): the CA-wide default, minimum and
maximum lifetimes (and renewal and SSH switches) that every provisioner inherits unless it sets its own.

A change goes through :func:`stepless.admin.provisioners.change_config` (atomic write with its audit record,
optimistic locking) and is validated first: the same checks as ``ca provisioner update``'s claims, min ≤ default
≤ max for the authority, and every provisioner's own claims still valid over the new CA-wide values.
"""

from __future__ import annotations

from typing import Any

from stepless.admin import provisioners as admin
from stepless.claims import Claims
from stepless.errors import ClientError, ConfigError

ACTION = "authority.claims"


def show() -> dict[str, Any]:
    """``configured`` (what the authority sets) and ``effective`` (with step-ca's defaults filled in)."""
    doc, _ = admin._load()  # noqa: SLF001 - the one reader of the configuration for administrators
    configured = dict(doc.get("claims") or {})
    return {"configured": configured, "effective": _resolve(configured).to_json()}


def update(claims: dict[str, Any]) -> admin.Change:
    """Change the authority's claims (step JSON keys; ``None``/``""`` reverts a key to step-ca's default)."""
    changes = admin.check_claims(claims)
    if not changes:
        raise ClientError("nothing to update: give at least one claims flag")

    def apply(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        before = dict(doc.get("claims") or {})
        after = admin.merge_claims(before, changes)
        candidate = {**doc, "claims": after}
        _resolve(after)
        if after.get("enableSSHCA") and not (doc.get("ssh") or {}).get("userKey"):
            raise ClientError("the CA has no SSH keys, so SSH cannot be enabled (run `stepless ca init --ssh`)")
        for entry in doc.get("provisioners") or []:
            admin.validate_claims(entry.get("name", "?"), entry.get("claims"), candidate)
        if after:
            doc["claims"] = after
        else:
            doc.pop("claims", None)
        return {"configured": after, "effective": _resolve(after).to_json()}, {"claims": {"before": before,
                                                                                        "after": after}}

    result, version, record = admin.change_config(ACTION, "", apply)
    return admin.Change(result, version, record)


def _resolve(configured: dict[str, Any]) -> Claims:
    try:
        return Claims.from_json(configured, None)
    except ConfigError as e:
        raise ClientError(f"the authority's {e}") from e  # "the authority's claims: tls durations must …"
