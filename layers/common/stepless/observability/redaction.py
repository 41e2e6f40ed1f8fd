"""Redaction: what never reaches a log line or a stored record (tokens, keys, passwords, CSRs, PEMs).

One list of secret field names (:data:`SECRET_NAMES`, :func:`secret_name`) and the value patterns
(JWT/JWS/JWE, PEM blocks) for the logger (:mod:`stepless.observability.log`) and the audit log
(:mod:`stepless.stores.audit`, which keeps public keys: :data:`STORED_SECRET_KEYS`).
"""

from __future__ import annotations

import functools
import numbers
import re
from typing import Any

REDACTED = "[REDACTED]"

# JWS/JWE compact serializations: the protected header is a JSON object ('{"', '{ ', '{\\n' … in
# base64url: "eyJ", "eyA", "ewo" …) followed by 2 or 4 more segments; or any three long base64url segments.
_B64 = r"[A-Za-z0-9_-]"
_JWT = re.compile(
    rf"(?<!{_B64})(?:(?:eyJ|eyA|ewo|ew0|ewk){_B64}{{6,}}\.{_B64}*\.{_B64}*(?:\.{_B64}*\.{_B64}*)?"
    rf"|{_B64}{{16,}}\.{_B64}{{16,}}\.{_B64}{{16,}})"
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{1,40}-----.*?(?:-----END [A-Z0-9 ]{1,40}-----|\Z)", re.S)
# A password-protected JWK (PBES2 JWE in JSON serialization) or a JWK: their secret members.
JWK_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})

# Field names (lowercased, without "_" and "-") whose values are secrets, wherever they appear.
SECRET_NAMES = frozenset({
    "password", "passwd", "passphrase", "ott", "token", "key", "secret", "clientsecret", "privatekey",
    "encryptedkey", "jwk", "csr", "authorization", "cookie", "signature", "secretstring", "plaintext",
    "ciphertext", "secretbinary",
})
_SECRET_SUFFIXES = ("password", "passphrase", "token", "secret", "privatekey", "apikey", "accesskey",
                    "secretkey", "csr", "pem")


# The names a stored configuration change hides (the audit log): the secret names, except those a
# provisioner's configuration uses for public data (its public ``key``, a ``jwk``), and a JWK's private members.
STORED_SECRET_KEYS = (SECRET_NAMES - {"key", "jwk", "csr"}) | JWK_PRIVATE


def secret_name(name: object) -> bool:
    """Whether a field called ``name`` holds a secret (``ott``, ``client_secret``, ``id_token`` …)."""
    return _secret_name(name if isinstance(name, str) else str(name))


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    n = name.lower().replace("_", "").replace("-", "")
    return n in SECRET_NAMES or n.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """``text`` with JWT-like strings and PEM blocks replaced."""
    if "-----BEGIN " in text:
        text = _PEM.sub(REDACTED, text)
    if "." in text:
        text = _JWT.sub(REDACTED, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (str, dict, list …) safe to log; other objects are logged as their ``str``."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if _depth > 8:
        return REDACTED
    if isinstance(value, dict):
        jwk = "kty" in value
        return {k: REDACTED if secret_name(k) or (jwk and k in JWK_PRIVATE) else redact(v, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, numbers.Number):  # Decimal, Fraction …: no secret, and "%d" still formats it
        return value
    return redact_text(str(value))
