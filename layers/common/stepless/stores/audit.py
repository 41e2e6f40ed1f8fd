"""The administration audit log: one record per change (DynamoDB: items of the AuthorityTable).

Item ``pk="audit#<ISO 8601 UTC time>#<uuid>"`` (sorts by time), attributes ``who`` (the caller's ARN
from STS, or ``"unknown"``), ``when`` (ISO 8601), ``action`` (``provisioner.add`` …), ``provisioner``
(the name), ``version`` (the configuration version the change produced) and ``change`` (a JSON summary,
redacted: never a password, a client secret, a private key or an encrypted key).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import uuid
from typing import Any, Protocol

from stepless import aws
from stepless.stores import backend

PREFIX = "audit#"
REDACTED = "<redacted>"
# Keys whose values never reach the log (matched case-insensitively, at any depth).
SECRET_KEYS = frozenset({"clientsecret", "password", "encryptedkey", "d", "p", "q", "dp", "dq", "qi", "k",
                         "secret", "privatekey"})

_caller: str | None = None


def caller() -> str:
    """The ARN of the AWS identity making the change (cached); ``"unknown"`` when STS cannot say. On the
    local SQLite store (no AWS), ``local:<user name>``."""
    global _caller
    if _caller is None:
        if backend.current().name == "sqlite":
            import getpass

            return f"local:{getpass.getuser()}"
        try:
            arn = aws.client("sts").get_caller_identity()["Arn"]
        except Exception:  # noqa: BLE001 - the audit record must still be written
            return "unknown"
        _caller = str(arn)
    return _caller


def reset() -> None:
    """Forget the cached caller (tests, switching credentials)."""
    global _caller
    _caller = None


def redact(value: Any) -> Any:
    """``value`` with every secret replaced by ``<redacted>`` and X5C roots by their fingerprints."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if str(k).lower() in SECRET_KEYS:
                out[k] = REDACTED if v not in (None, "") else v
            elif k == "roots" and isinstance(v, str):
                out[k] = root_fingerprints(v)
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def root_fingerprints(roots_b64: str) -> list[str]:
    """SHA-256 fingerprints of the certificates in an X5C ``roots`` value (base64 of PEMs)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        certs = x509.load_pem_x509_certificates(base64.b64decode(roots_b64))
        return ["sha256:" + hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest() for c in certs]
    except ValueError:
        return ["<unparsable>"]


def new_record(action: str, provisioner: str, change: dict[str, Any], *, version: int | None = None,
               who: str | None = None) -> dict[str, Any]:
    """An audit record (plain values); ``change`` is redacted here."""
    now = dt.datetime.now(dt.UTC)  # the real time, with microseconds (records sort by it)
    when = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "pk": f"{PREFIX}{when}#{uuid.uuid4()}",
        "who": who or caller(),
        "when": when,
        "action": action,
        "provisioner": provisioner,
        "version": version,
        "change": json.dumps(redact(change), sort_keys=True),
    }


class AuditStore(Protocol):
    def put(self, record: dict[str, Any]) -> None:
        """Add a record (never overwriting one)."""

    def records(self, provisioner: str | None) -> list[dict[str, Any]]:
        """Every record (of ``provisioner`` when given), ``change`` still JSON."""


def write(action: str, provisioner: str, change: dict[str, Any], *, version: int | None = None) -> dict[str, Any]:
    """Write one record by itself; returns it."""
    record = new_record(action, provisioner, change, version=version)
    backend.current().audit.put(record)
    return record


def records(provisioner: str | None = None) -> list[dict[str, Any]]:
    """Every audit record (of ``provisioner`` when given), oldest first; ``change`` decoded."""
    out = backend.current().audit.records(provisioner)
    for rec in out:
        with contextlib.suppress(ValueError):
            rec["change"] = json.loads(rec.get("change") or "{}")
    return sorted(out, key=lambda r: r["pk"])
