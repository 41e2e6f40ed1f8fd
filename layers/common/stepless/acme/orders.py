"""ACME orders, authorizations and challenges (RFC 8555 §7.4, §7.5): newOrder, order and authorization reads,
challenge validation."""


from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Any

from stepless import jose
from stepless.acme import validation
from stepless.acme.errors import AcmeError, malformed, unauthorized
from stepless.acme.messages import (
    DEACTIVATED,
    INVALID,
    PENDING,
    PROCESSING,
    READY,
    VALID,
    Authorization,
    Challenge,
    Identifier,
    Order,
    new_id,
)
from stepless.acme.service import (
    ACCOUNT,
    AUTHZ,
    MAX_ORDERS_LISTED,
    ORDER,
    ORDER_TTL_S,
    Ctx,
    Reply,
    account_doc,
    account_of,
    authenticate,
    load,
    payload_of,
)
from stepless.observability import logger, metrics
from stepless.stores import acme as store
from stepless.stores.acme import AcmeConflict, AcmeRecord

MAX_IDENTIFIERS = store.MAX_WRITE - 2  # the order, its authorizations and the account are one write
RETRY_AFTER_S = "1"  # what a client polling a pending order or a processing challenge is told to wait
PROCESSING_STALE_S = 60  # a challenge left processing longer (the validating function died) may be retried
ORDER_WRITE_ATTEMPTS = 10  # newOrder's write, made again on the account after another order of it went first

# --- orders -----------------------------------------------------------------------------------------------

def _time(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise malformed(f"{field} must be an RFC 3339 time")
    try:
        return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError as e:
        raise malformed(f"{field} must be an RFC 3339 time") from e


def _challenges(ctx: Ctx, ident: Identifier, wildcard: bool) -> tuple[Challenge, ...]:
    kinds = ["dns-01"] if wildcard else (["http-01", "tls-alpn-01"] if ident.type == "ip"
                                         else ["http-01", "dns-01", "tls-alpn-01"])
    kinds = [k for k in kinds if k in ctx.prov.challenges]
    if not kinds:
        raise AcmeError("rejectedIdentifier", f"no challenge enabled on this provisioner can validate {ident.value}")
    return tuple(Challenge(new_id(), k, jose.b64e(secrets.token_bytes(32))) for k in kinds)


def new_order(ctx: Ctx, body: bytes) -> Reply:
    req = authenticate(ctx, body)
    assert req.account is not None
    payload = payload_of(req)
    raw = payload.get("identifiers")
    if not isinstance(raw, list) or not raw:
        raise malformed("identifiers must be a non-empty list")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeError("rejectedIdentifier", f"an order may name at most {MAX_IDENTIFIERS} identifiers")
    idents = tuple(dict.fromkeys(Identifier.parse(i) for i in raw))
    for ident in idents:
        ctx.prov.policy.check(ident)
    nb, na = _time(payload.get("notBefore"), "notBefore"), _time(payload.get("notAfter"), "notAfter")
    expires = ctx.now + ORDER_TTL_S
    authzs = []
    for ident in idents:
        wildcard = ident.type == "dns" and ident.value.startswith("*.")
        target = Identifier("dns", ident.value[2:]) if wildcard else ident
        authzs.append(Authorization(new_id(), req.account.id, target, _challenges(ctx, target, wildcard), expires,
                                    wildcard=wildcard))
    order = Order(new_id(), req.account.id, idents, tuple(a.id for a in authzs), expires, not_before=nb, not_after=na)
    _write_order(ctx, req.account, order.id, [AcmeRecord(ORDER, order.id, order.to_doc(), expires=expires),
                                              *(AcmeRecord(AUTHZ, a.id, a.to_doc(), expires=expires) for a in authzs)])
    return Reply(201, order.to_json(ctx.links, PENDING), {"location": ctx.links.order(order.id)})


def _write_order(ctx: Ctx, account: AcmeRecord, order_id: str, records: list[AcmeRecord]) -> None:
    """The new order and its authorizations, with the order appended to the account's list, in one write. Orders of
    one account made at once (cert-manager's, for many Certificates of one Issuer) meet a version conflict on the
    account: the write is made again on the account as it is now (still valid), up to :data:`ORDER_WRITE_ATTEMPTS`
    times, rather than answering 503."""
    for attempt in range(ORDER_WRITE_ATTEMPTS):
        acct = account_of(account)
        acct = dataclasses.replace(acct, orders=(*acct.orders, order_id)[-MAX_ORDERS_LISTED:])
        try:
            store.write(*records, account.next(account_doc(acct, ctx.prov.name)))
            return
        except AcmeConflict:
            latest = store.get(ACCOUNT, account.id)
            if latest is None or latest.doc.get("status") != VALID:
                raise unauthorized("the account is no longer valid") from None
            if attempt == ORDER_WRITE_ATTEMPTS - 1:
                raise
            account = latest



def authorizations(order: Order) -> list[AcmeRecord | None]:
    """The order's authorization records (None: gone)."""
    return [store.get(AUTHZ, authz_id) for authz_id in order.authorizations]


def order_status(order: Order, now: int, authzs: list[AcmeRecord | None] | None = None) -> str:
    """An order's current status: ready once every authorization is valid, invalid once one is or it expired.
    ``authzs``: its :func:`authorizations`, when the caller has read them."""
    if order.status != PENDING:
        return order.status
    if now > order.expires:
        return INVALID
    statuses = set()
    for rec in authorizations(order) if authzs is None else authzs:
        statuses.add(Authorization.from_doc(rec.doc).current_status(now) if rec else INVALID)
    if statuses & {INVALID, DEACTIVATED, "expired", "revoked"}:
        return INVALID
    return READY if statuses == {VALID} else PENDING


def get_order(ctx: Ctx, body: bytes, order_id: str) -> Reply:
    req = authenticate(ctx, body)
    assert req.account is not None
    order = Order.from_doc(load(ORDER, order_id, req.account.id).doc)
    status = order_status(order, ctx.now)
    headers = {"location": ctx.links.order(order_id)}
    if status in (PENDING, PROCESSING):  # RFC 8555 §7.4: tell a polling client when to ask again
        headers["retry-after"] = RETRY_AFTER_S
    return Reply(200, order.to_json(ctx.links, status), headers)


def get_authz(ctx: Ctx, body: bytes, authz_id: str) -> Reply:
    req = authenticate(ctx, body)
    assert req.account is not None
    rec = load(AUTHZ, authz_id, req.account.id)
    authz = Authorization.from_doc(rec.doc)
    payload = payload_of(req, allow_empty=True)
    if payload.get("status") == DEACTIVATED:  # RFC 8555 §7.5.2
        authz = dataclasses.replace(authz, status=DEACTIVATED)
        store.write(rec.next(authz.to_doc()))
    return Reply(200, authz.to_json(ctx.links, ctx.now), {"location": ctx.links.authz(authz_id)})


def _with(authz: Authorization, ch: Challenge) -> Authorization:
    return dataclasses.replace(authz, challenges=tuple(ch if c.id == ch.id else c for c in authz.challenges))


def _challenge_reply(ctx: Ctx, authz_id: str, ch: Challenge) -> Reply:
    headers = {"link": f'<{ctx.links.authz(authz_id)}>;rel="up"', "location": ctx.links.challenge(authz_id, ch.id)}
    if ch.status == PROCESSING:  # RFC 8555 §7.5.1: the retry state
        headers["retry-after"] = RETRY_AFTER_S
    return Reply(200, ch.to_json(ctx.links, authz_id), headers)


def _find(authz: Authorization, challenge_id: str) -> Challenge:
    ch = next((c for c in authz.challenges if c.id == challenge_id), None)
    if ch is None:
        raise AcmeError("malformed", "no such challenge", status=404)
    return ch


def challenge(ctx: Ctx, body: bytes, authz_id: str, challenge_id: str) -> Reply:
    """RFC 8555 §7.5.1: the client's POST starts validation. The challenge turns ``processing`` (stored first, so
    a concurrent POST answers ``processing`` with Retry-After instead of validating twice), is validated now
    (synchronously), then turns ``valid`` or ``invalid`` and the authorization with it (it stays ``pending``
    while its challenge is processing). A POST-as-GET, or a POST on a challenge no longer pending, answers its
    current state; one left ``processing`` for :data:`PROCESSING_STALE_S` (the function died) is validated anew."""
    req = authenticate(ctx, body)
    assert req.account is not None
    rec = load(AUTHZ, authz_id, req.account.id)
    authz = Authorization.from_doc(rec.doc)
    ch = _find(authz, challenge_id)
    stale = ch.status == PROCESSING and ctx.now - (ch.started or 0) >= PROCESSING_STALE_S
    if req.jws.post_as_get or (ch.status != PENDING and not stale) or authz.current_status(ctx.now) != PENDING:
        return _challenge_reply(ctx, authz_id, ch)
    ch = dataclasses.replace(ch, status=PROCESSING, started=ctx.now)
    rec = rec.next(_with(authz, ch).to_doc())
    try:
        store.write(rec)
    except AcmeConflict:  # another request changed the authorization meanwhile: its state is the answer
        latest = store.get(AUTHZ, authz_id)
        return _challenge_reply(ctx, authz_id,
                                _find(Authorization.from_doc(latest.doc), challenge_id) if latest else ch)
    key_auth = validation.key_authorization(ch.token, req.account.doc["thumbprint"])
    try:
        if ch.type == "http-01":
            validation.http01(authz.identifier, ch.token, key_auth)
        elif ch.type == "dns-01":
            validation.dns01(authz.identifier, key_auth)
        else:
            validation.tlsalpn01(authz.identifier, key_auth)
        ch = dataclasses.replace(ch, status=VALID, validated=ctx.now)
        authz = dataclasses.replace(authz, status=VALID)
    except AcmeError as e:
        ch = dataclasses.replace(ch, status=INVALID, error=e.to_json())
        authz = dataclasses.replace(authz, status=INVALID)
        metrics.rejected("acme_challenge")
        logger.info("ACME challenge failed", extra={"type": ch.type, "reason": e.detail})
    store.write(rec.next(_with(authz, ch).to_doc()))
    return _challenge_reply(ctx, authz_id, ch)
