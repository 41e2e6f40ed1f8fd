"""External Account Binding (RFC 8555 §7.3.4): an HMAC (HS256) JWS over the account key, with the key id
and key the CA's administrator handed out (``stepless ca acme eab add``). A key binds one account, once."""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any

from stepless import jose
from stepless.acme import jws
from stepless.acme.errors import AcmeError, malformed, unauthorized
from stepless.stores import acme as store
from stepless.stores.acme import AcmeRecord

EAB = "eab"
KEY_BYTES = 32


def new_key(provisioner: str, reference: str, now: int) -> tuple[str, str, AcmeRecord]:
    """(key id, base64url HMAC key, the record to store) for a new EAB key of ``provisioner``."""
    key_id, key = secrets.token_urlsafe(18), secrets.token_bytes(KEY_BYTES)
    doc = {"provisioner": provisioner, "reference": reference, "key": jose.b64e(key), "created_at": now,
           "account": None, "bound_at": None}
    return key_id, jose.b64e(key), AcmeRecord(EAB, key_id, doc)


def verify(binding: Any, account_jwk: dict[str, Any], url: str, provisioner: str) -> AcmeRecord:
    """The EAB key record ``binding`` proves, unbound and of ``provisioner`` (caller binds it to the account
    in the account's transaction); malformed/unauthorized otherwise."""
    outer = jws.parse(binding if isinstance(binding, dict) else {})
    header = outer.header
    if header.get("alg") not in ("HS256", "HS384", "HS512"):
        raise malformed("externalAccountBinding must be signed with HS256, HS384 or HS512")
    if "nonce" in header:
        raise malformed("externalAccountBinding must not have a nonce")
    if header.get("url") != url:
        raise malformed("externalAccountBinding url must be the newAccount URL")
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise malformed("externalAccountBinding has no kid")
    try:
        inner = json.loads(jose.b64d(outer.payload_b64))
    except ValueError as e:
        raise malformed("externalAccountBinding payload is not a JWK") from e
    if jws.thumbprint(inner) != jose.thumbprint(account_jwk):
        raise unauthorized("externalAccountBinding payload is not the account key")
    record = store.get(EAB, key_id[:128])
    if record is None or record.doc.get("provisioner") != provisioner:
        raise unauthorized("externalAccountBinding key id is not known")
    digest = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}[header["alg"]]
    expected = hmac.new(jose.b64d(record.doc["key"]), outer.signing_input, digest).digest()
    if not hmac.compare_digest(expected, outer.signature):
        raise unauthorized("externalAccountBinding signature is invalid")
    if record.doc.get("account"):
        raise unauthorized("externalAccountBinding key is already bound to an account")
    return record


def binding_error() -> AcmeError:
    return AcmeError("externalAccountRequired")
