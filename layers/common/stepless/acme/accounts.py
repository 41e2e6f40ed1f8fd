"""ACME accounts (RFC 8555 §7.3): newAccount (with External Account Binding), update, deactivation, orders list,
keyChange."""


from __future__ import annotations

import dataclasses
from typing import Any

from stepless import jose
from stepless.acme import eab as eabs
from stepless.acme import jws as jwss
from stepless.acme.errors import AcmeError, malformed, unauthorized
from stepless.acme.messages import (
    DEACTIVATED,
    VALID,
    Account,
    new_id,
)
from stepless.acme.service import (
    ACCOUNT,
    KEY,
    Authenticated,
    Ctx,
    Reply,
    account_doc,
    account_id_from_kid,
    account_of,
    authenticate,
    payload_of,
)
from stepless.observability import logger
from stepless.stores import acme as store
from stepless.stores.acme import AcmeConflict, AcmeRecord


def _contacts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 10 or not all(isinstance(c, str) for c in value):
        raise malformed("contact must be a list of at most 10 URLs")
    for c in value:
        if not c.startswith("mailto:") or len(c) > 320 or any(ch in c for ch in ",\r\n"):
            raise AcmeError("unsupportedContact", f"contact {c[:64]!r} is not a single mailto: URL")
    return tuple(value)



# --- accounts ---------------------------------------------------------------------------------------------

def _key_id(ctx: Ctx, thumbprint: str) -> str:
    """The key index's id: one account per key and provisioner (a key may hold accounts on several)."""
    return f"{ctx.prov.name}:{thumbprint}"


def _existing(ctx: Ctx, thumb: str) -> tuple[AcmeRecord | None, Reply | None]:
    """The key's index record, and the answer when it names an account of this provisioner already (RFC 8555
    §7.3.1: that account, 200; §7.3.6: a deactivated account's key is refused)."""
    index = store.get(KEY, _key_id(ctx, thumb))
    if index is not None and index.doc.get("account"):
        rec = store.get(ACCOUNT, index.doc["account"])
        if rec is not None and rec.doc.get("provisioner") == ctx.prov.name:
            if rec.doc["status"] != VALID:
                raise unauthorized(f"the account of this key is {rec.doc['status']}")
            return index, Reply(200, account_of(rec).to_json(ctx.links), {"location": ctx.links.account(rec.id)})
    return index, None


def new_account(ctx: Ctx, body: bytes) -> Reply:
    req = authenticate(ctx, body, jwk=True, kid=False)
    payload = payload_of(req)
    thumb = jose.thumbprint(req.jwk)
    existing, reply = _existing(ctx, thumb)
    if reply is not None:
        return reply
    if payload.get("onlyReturnExisting") is True:
        raise AcmeError("accountDoesNotExist", "no account exists with this key")
    contact = _contacts(payload.get("contact"))
    binding = payload.get("externalAccountBinding")
    writes: list[AcmeRecord] = []
    eab_key_id = None
    if binding is not None:
        eab = eabs.verify(binding, req.jwk, ctx.links.link("new-account"), ctx.prov.name)
        eab_key_id = eab.id
    elif ctx.prov.require_eab:
        raise eabs.binding_error()
    acct = Account(id=new_id(), key=req.jwk, thumbprint=thumb, contact=contact,
                   terms_agreed=payload.get("termsOfServiceAgreed") is True, eab_key_id=eab_key_id,
                   created_at=ctx.now)
    writes.append(AcmeRecord(ACCOUNT, acct.id, account_doc(acct, ctx.prov.name)))
    key_doc = {"account": acct.id}
    writes.append(existing.next(key_doc) if existing is not None else AcmeRecord(KEY, _key_id(ctx, thumb), key_doc))
    if eab_key_id is not None:
        writes.append(eab.next({**eab.doc, "account": acct.id, "bound_at": ctx.now}))
    try:
        store.write(*writes)
    except AcmeConflict:  # another newAccount went first: with this key (its account is the answer) or this EAB key
        _, reply = _existing(ctx, thumb)
        if reply is not None:
            return reply
        if binding is not None:
            eabs.verify(binding, req.jwk, ctx.links.link("new-account"), ctx.prov.name)  # bound now: unauthorized
        raise
    logger.info("ACME account created", extra={"provisioner": ctx.prov.name, "account": acct.id})
    out = acct.to_json(ctx.links)
    if eab_key_id is not None:
        out["externalAccountBinding"] = binding
    return Reply(201, out, {"location": ctx.links.account(acct.id)})


def _own_account(ctx: Ctx, req: Authenticated, account_id: str) -> AcmeRecord:
    assert req.account is not None
    if req.account.id != account_id:
        raise unauthorized("the account in the URL is not the one that signed the request")
    return req.account


def account(ctx: Ctx, body: bytes, account_id: str) -> Reply:
    """POST-as-GET, contact update, or deactivation (RFC 8555 §7.3.2, §7.3.6)."""
    req = authenticate(ctx, body)
    rec = _own_account(ctx, req, account_id)
    acct = account_of(rec)
    payload = payload_of(req, allow_empty=True)
    changed = acct
    if "contact" in payload:
        changed = dataclasses.replace(changed, contact=_contacts(payload["contact"]))
    if "status" in payload:
        if payload["status"] != DEACTIVATED:
            raise malformed("an account's status can only be changed to deactivated")
        changed = dataclasses.replace(changed, status=DEACTIVATED)
    if changed != acct:
        store.write(rec.next(account_doc(changed, ctx.prov.name)))
    return Reply(200, changed.to_json(ctx.links), {"location": ctx.links.account(acct.id)})


def orders(ctx: Ctx, body: bytes, account_id: str) -> Reply:
    req = authenticate(ctx, body)
    acct = account_of(_own_account(ctx, req, account_id))
    return Reply(200, {"orders": [ctx.links.order(o) for o in acct.orders]})


def key_change(ctx: Ctx, body: bytes) -> Reply:
    """RFC 8555 §7.3.5: the outer JWS by the account, the inner by the new key over {account, oldKey}."""
    req = authenticate(ctx, body)
    assert req.account is not None
    inner = jwss.parse(req.jws.payload())
    h = inner.header
    if "jwk" not in h or "kid" in h or "nonce" in h:
        raise malformed("the inner JWS must have a jwk and neither kid nor nonce")
    if h.get("url") != ctx.url:
        raise malformed("the inner JWS url must be the keyChange URL")
    new_key = jwss.account_key(h["jwk"])
    jwss.verify(inner, new_key)
    payload = inner.payload()
    if payload.get("account") != ctx.links.account(req.account.id) and \
            account_id_from_kid(ctx, payload.get("account")) != req.account.id:
        raise unauthorized("the inner JWS names another account")
    if jwss.thumbprint(payload.get("oldKey")) != req.account.doc["thumbprint"]:
        raise unauthorized("oldKey is not the account's key")
    new_jwk = jose.public_part(h["jwk"])
    thumb = jose.thumbprint(new_jwk)
    taken = store.get(KEY, _key_id(ctx, thumb))
    if taken is not None and taken.doc.get("account"):
        raise AcmeError("malformed", "the new key belongs to an account already", status=409,
                        headers={"location": ctx.links.account(taken.doc["account"])})
    acct = dataclasses.replace(account_of(req.account), key=new_jwk, thumbprint=thumb)
    old = store.get(KEY, _key_id(ctx, req.account.doc["thumbprint"]))
    writes = [req.account.next(account_doc(acct, ctx.prov.name)),
              taken.next({"account": acct.id}) if taken else AcmeRecord(KEY, _key_id(ctx, thumb), {"account": acct.id})]
    if old is not None:
        writes.append(old.next({"account": None}))
    store.write(*writes)
    return Reply(200, acct.to_json(ctx.links), {"location": ctx.links.account(acct.id)})
