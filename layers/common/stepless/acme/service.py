"""The ACME use cases (RFC 8555 §7): each takes the request's :class:`Ctx` and returns a :class:`Reply`.

Every POST is a JWS (:func:`authenticate`): its ``url`` must be this request's URL, its nonce one this CA
handed out and not used (consumed here, once), its key the account's (``kid``) or the one in the header
(``jwk``: newAccount and revokeCert only). Issuance reuses the CA's path: the provisioner's claims bound
the lifetime, the certificate is recorded like any other (revocation, CRL/OCSP, metrics).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless import clock, jose, settings
from stepless.acme import eab as eabs
from stepless.acme import jws as jwss
from stepless.acme import validation
from stepless.acme.errors import AcmeError, malformed, unauthorized
from stepless.acme.messages import (
    DEACTIVATED,
    INVALID,
    PENDING,
    PROCESSING,
    READY,
    VALID,
    Account,
    Authorization,
    Challenge,
    Identifier,
    Links,
    Order,
    new_id,
)
from stepless.authority import Authority
from stepless.durations import TimeArg
from stepless.errors import BadRequest, StepError
from stepless.observability import logger, metrics
from stepless.provisioners.acme import ACMEProvisioner
from stepless.services.issuance import commit, record
from stepless.stores import acme as store
from stepless.stores import certificates
from stepless.stores.acme import AcmeRecord
from stepless.x509 import chain, profile
from stepless.x509 import csr as csrs
from stepless.x509.csr import SANs
from stepless.x509.validity import Limits, window

NONCE_TTL_S = 3600
ORDER_TTL_S = 24 * 3600
MAX_ORDERS_LISTED = 1000
ACCOUNT, KEY, ORDER, AUTHZ, CERT = "account", "key", "order", "authz", "cert"


@dataclasses.dataclass(frozen=True)
class Ctx:
    auth: Authority
    prov: ACMEProvisioner
    links: Links
    url: str  # this request's URL, as the client must have signed it
    now: int


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Authenticated:
    jws: jwss.JWS
    jwk: dict[str, Any]
    account: AcmeRecord | None  # None: signed with a jwk (newAccount, revokeCert by certificate key)


# --- nonces, directory ------------------------------------------------------------------------------------

def new_nonce(now: int) -> str:
    nonce = new_id()
    store.add_nonce(nonce, now + NONCE_TTL_S)
    return nonce


def directory(ctx: Ctx) -> Reply:
    link = ctx.links.link
    return Reply(200, {"newNonce": link("new-nonce"), "newAccount": link("new-account"),
                       "newOrder": link("new-order"), "revokeCert": link("revoke-cert"),
                       "keyChange": link("key-change"),
                       "meta": {"externalAccountRequired": ctx.prov.require_eab}})


# --- authentication ---------------------------------------------------------------------------------------

def _account_id_from_kid(ctx: Ctx, kid: Any) -> str:
    """The account id a ``kid`` names: an account URL of this provisioner (either path prefix)."""
    if not isinstance(kid, str):
        raise malformed("kid must be the account URL")
    tail = "/acme/" + ctx.links.base.rsplit("/acme/", 1)[1] + "/account/"
    head, sep, acct = kid.rpartition(tail)
    host = ctx.links.base.split("/acme/", 1)[0].removesuffix("/1.0")
    if not sep or head.removesuffix("/1.0") != host or not acct or "/" in acct:
        raise AcmeError("accountDoesNotExist", "kid is not an account URL of this ACME provisioner")
    return acct


def authenticate(ctx: Ctx, body: bytes, *, jwk: bool = False, kid: bool = True) -> Authenticated:
    """The verified JWS of a POST (see the module)."""
    req = jwss.parse(body)
    h = req.header
    if req.alg not in jwss.ALGORITHMS:
        raise AcmeError("badSignatureAlgorithm", f"alg {req.alg[:16]!r} is not one of {', '.join(jwss.ALGORITHMS)}")
    if ("jwk" in h) == ("kid" in h):
        raise malformed("the JWS protected header must have exactly one of jwk and kid")
    if "jwk" in h and not jwk:
        raise malformed("this request must be signed with the account key (kid), not a jwk")
    if "kid" in h and not kid:
        raise malformed("this request must be signed with a jwk, not an account kid")
    nonce = h.get("nonce")
    if not isinstance(nonce, str) or not nonce or len(nonce) > 64 or not store.use_nonce(nonce, ctx.now):
        raise AcmeError("badNonce", "the nonce is missing, unknown, expired or used already")
    if h.get("url") != ctx.url:
        raise unauthorized("the JWS url is not this request's URL")
    account = None
    if "jwk" in h:
        key_jwk = h["jwk"]
        key = jwss.account_key(key_jwk)
    else:
        account = store.get(ACCOUNT, _account_id_from_kid(ctx, h["kid"]))
        if account is None or account.doc.get("provisioner") != ctx.prov.name:
            raise AcmeError("accountDoesNotExist", "no account has this kid")
        if account.doc["status"] != VALID:
            raise unauthorized(f"the account is {account.doc['status']}")
        key_jwk = account.doc["key"]
        key = jwss.account_key(key_jwk)
    jwss.verify(req, key)
    return Authenticated(req, jose.public_part(key_jwk), account)


def _payload(req: Authenticated, *, allow_empty: bool = False) -> dict[str, Any]:
    if req.jws.post_as_get:
        if allow_empty:
            return {}
        raise malformed("this request needs a payload (POST-as-GET is not allowed here)")
    return req.jws.payload()


def _account(rec: AcmeRecord) -> Account:
    return Account.from_doc(rec.doc)


def _account_doc(acct: Account, provisioner: str) -> dict[str, Any]:
    return {**acct.to_doc(), "provisioner": provisioner}


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


def new_account(ctx: Ctx, body: bytes) -> Reply:
    req = authenticate(ctx, body, jwk=True, kid=False)
    payload = _payload(req)
    thumb = jose.thumbprint(req.jwk)
    existing = store.get(KEY, _key_id(ctx, thumb))
    if existing is not None and existing.doc.get("account"):
        rec = store.get(ACCOUNT, existing.doc["account"])
        if rec is not None and rec.doc.get("provisioner") == ctx.prov.name:
            if rec.doc["status"] != VALID:  # RFC 8555 §7.3.6: a deactivated account's key is refused
                raise unauthorized(f"the account of this key is {rec.doc['status']}")
            return Reply(200, _account(rec).to_json(ctx.links), {"location": ctx.links.account(rec.id)})
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
    writes.append(AcmeRecord(ACCOUNT, acct.id, _account_doc(acct, ctx.prov.name)))
    key_doc = {"account": acct.id}
    writes.append(existing.next(key_doc) if existing is not None else AcmeRecord(KEY, _key_id(ctx, thumb), key_doc))
    if eab_key_id is not None:
        writes.append(eab.next({**eab.doc, "account": acct.id, "bound_at": ctx.now}))
    store.write(*writes)
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
    acct = _account(rec)
    payload = _payload(req, allow_empty=True)
    changed = acct
    if "contact" in payload:
        changed = dataclasses.replace(changed, contact=_contacts(payload["contact"]))
    if "status" in payload:
        if payload["status"] != DEACTIVATED:
            raise malformed("an account's status can only be changed to deactivated")
        changed = dataclasses.replace(changed, status=DEACTIVATED)
    if changed != acct:
        store.write(rec.next(_account_doc(changed, ctx.prov.name)))
    return Reply(200, changed.to_json(ctx.links), {"location": ctx.links.account(acct.id)})


def orders(ctx: Ctx, body: bytes, account_id: str) -> Reply:
    req = authenticate(ctx, body)
    acct = _account(_own_account(ctx, req, account_id))
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
            _account_id_from_kid(ctx, payload.get("account")) != req.account.id:
        raise unauthorized("the inner JWS names another account")
    try:
        same_old = jose.thumbprint(payload.get("oldKey") or {}) == req.account.doc["thumbprint"]
    except (KeyError, TypeError):
        same_old = False
    if not same_old:
        raise unauthorized("oldKey is not the account's key")
    new_jwk = jose.public_part(h["jwk"])
    thumb = jose.thumbprint(new_jwk)
    taken = store.get(KEY, _key_id(ctx, thumb))
    if taken is not None and taken.doc.get("account"):
        raise AcmeError("malformed", "the new key belongs to an account already", status=409,
                        headers={"location": ctx.links.account(taken.doc["account"])})
    acct = dataclasses.replace(_account(req.account), key=new_jwk, thumbprint=thumb)
    old = store.get(KEY, _key_id(ctx, req.account.doc["thumbprint"]))
    writes = [req.account.next(_account_doc(acct, ctx.prov.name)),
              taken.next({"account": acct.id}) if taken else AcmeRecord(KEY, _key_id(ctx, thumb), {"account": acct.id})]
    if old is not None:
        writes.append(old.next({"account": None}))
    store.write(*writes)
    return Reply(200, acct.to_json(ctx.links), {"location": ctx.links.account(acct.id)})


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
    payload = _payload(req)
    raw = payload.get("identifiers")
    if not isinstance(raw, list) or not raw:
        raise malformed("identifiers must be a non-empty list")
    if len(raw) > 100:
        raise AcmeError("rejectedIdentifier", "an order may name at most 100 identifiers")
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
    acct = _account(req.account)
    acct = dataclasses.replace(acct, orders=(*acct.orders, order.id)[-MAX_ORDERS_LISTED:])
    store.write(AcmeRecord(ORDER, order.id, order.to_doc(), expires=expires),
                *(AcmeRecord(AUTHZ, a.id, a.to_doc(), expires=expires) for a in authzs),
                req.account.next(_account_doc(acct, ctx.prov.name)))
    return Reply(201, order.to_json(ctx.links, PENDING), {"location": ctx.links.order(order.id)})


def _load(kind: str, id: str, account_id: str) -> AcmeRecord:
    rec = store.get(kind, id)
    if rec is None:
        raise AcmeError("malformed", f"{kind} {id[:64]} does not exist", status=404)
    if rec.doc.get("account_id") != account_id:
        raise unauthorized(f"the {kind} belongs to another account")
    return rec


def _order_status(order: Order, now: int) -> str:
    """An order's current status: ready once every authorization is valid, invalid once one is or it expired."""
    if order.status != PENDING:
        return order.status
    if now > order.expires:
        return INVALID
    statuses = set()
    for authz_id in order.authorizations:
        rec = store.get(AUTHZ, authz_id)
        statuses.add(Authorization.from_doc(rec.doc).current_status(now) if rec else INVALID)
    if statuses & {INVALID, DEACTIVATED, "expired", "revoked"}:
        return INVALID
    return READY if statuses == {VALID} else PENDING


def get_order(ctx: Ctx, body: bytes, order_id: str) -> Reply:
    req = authenticate(ctx, body)
    assert req.account is not None
    order = Order.from_doc(_load(ORDER, order_id, req.account.id).doc)
    return Reply(200, order.to_json(ctx.links, _order_status(order, ctx.now)), {"location": ctx.links.order(order_id)})


def get_authz(ctx: Ctx, body: bytes, authz_id: str) -> Reply:
    req = authenticate(ctx, body)
    assert req.account is not None
    authz = Authorization.from_doc(_load(AUTHZ, authz_id, req.account.id).doc)
    payload = _payload(req, allow_empty=True)
    if payload.get("status") == DEACTIVATED:  # RFC 8555 §7.5.2
        rec = store.get(AUTHZ, authz_id)
        authz = dataclasses.replace(authz, status=DEACTIVATED)
        store.write(rec.next(authz.to_doc()))  # type: ignore[union-attr]
    return Reply(200, authz.to_json(ctx.links, ctx.now), {"location": ctx.links.authz(authz_id)})


def challenge(ctx: Ctx, body: bytes, authz_id: str, challenge_id: str) -> Reply:
    """Validate the challenge now (synchronously); the authorization becomes valid or invalid with it."""
    req = authenticate(ctx, body)
    assert req.account is not None
    rec = _load(AUTHZ, authz_id, req.account.id)
    authz = Authorization.from_doc(rec.doc)
    ch = next((c for c in authz.challenges if c.id == challenge_id), None)
    if ch is None:
        raise AcmeError("malformed", "no such challenge", status=404)
    headers = {"link": f'<{ctx.links.authz(authz_id)}>;rel="up"',
               "location": ctx.links.challenge(authz_id, challenge_id)}
    if req.jws.post_as_get or ch.status != PENDING or authz.current_status(ctx.now) != PENDING:
        return Reply(200, ch.to_json(ctx.links, authz_id), headers)
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
    authz = dataclasses.replace(authz, challenges=tuple(ch if c.id == challenge_id else c for c in authz.challenges))
    store.write(rec.next(authz.to_doc()))
    return Reply(200, ch.to_json(ctx.links, authz_id), headers)


# --- finalize, certificate, revocation --------------------------------------------------------------------

def _csr(value: Any) -> csrs.Request:
    if not isinstance(value, str) or not value:
        raise malformed("finalize needs a csr (base64url DER)")
    try:
        der = jose.b64d(value)
    except ValueError as e:
        raise AcmeError("badCSR", "the csr is not base64url") from e
    pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der).decode() + \
          "-----END CERTIFICATE REQUEST-----\n"
    try:
        return csrs.read(pem)
    except BadRequest as e:
        raise AcmeError("badCSR", e.detail) from e


def _check_csr(req: csrs.Request, order: Order) -> SANs:
    """The CSR must request exactly the order's identifiers (its CN, if any, one of them)."""
    wanted_dns = {i.value for i in order.identifiers if i.type == "dns"}
    wanted_ip = {i.value for i in order.identifiers if i.type == "ip"}
    dns = {csrs.ascii_lower(n) for n in req.sans.dns}
    ips = set(req.sans.ips)
    cn = req.common_name
    if cn and csrs.ascii_lower(cn) not in wanted_dns and cn not in wanted_ip:
        raise AcmeError("badCSR", f"the CSR's common name {cn[:64]!r} is not one of the order's identifiers")
    if req.sans.emails or req.sans.uris:
        raise AcmeError("badCSR", "the CSR may only request the order's DNS names and IP addresses")
    if cn and not dns and not ips:  # a CN-only CSR of a one-name order
        dns, ips = ({csrs.ascii_lower(cn)}, set()) if csrs.ascii_lower(cn) in wanted_dns else (set(), {cn})
    if dns != wanted_dns or ips != wanted_ip:
        extra = sorted((dns - wanted_dns) | (ips - wanted_ip))
        missing = sorted((wanted_dns - dns) | (wanted_ip - ips))
        raise AcmeError("badCSR", f"the CSR's names must be the order's identifiers (extra: {extra}, "
                                  f"missing: {missing})")
    return SANs(dns=tuple(sorted(wanted_dns)), ips=tuple(sorted(wanted_ip)))


def finalize(ctx: Ctx, body: bytes, order_id: str) -> Reply:
    req = authenticate(ctx, body)
    assert req.account is not None
    rec = _load(ORDER, order_id, req.account.id)
    order = Order.from_doc(rec.doc)
    status = _order_status(order, ctx.now)
    if status != READY:
        raise AcmeError("orderNotReady", f"the order is {status}, not ready", status=403)
    csr = _csr(_payload(req).get("csr"))
    sans = _check_csr(csr, order)
    processing = rec.next({**order.to_doc(), "status": PROCESSING})
    store.write(processing)  # one finalize at a time: a second one meets a version conflict
    try:
        serial = _issue(ctx, csr, sans, order)
    except Exception as e:  # the order must not stay "processing": it fails with the reason, then the request
        if isinstance(e, AcmeError):
            problem = e
        elif isinstance(e, StepError) and e.status < 500:
            problem = AcmeError("badCSR", e.detail)
        else:
            problem = AcmeError("serverInternal")
        store.write(processing.next(dataclasses.replace(order, status=INVALID, error=problem.to_json()).to_doc()))
        raise
    done = dataclasses.replace(order, status=VALID, certificate=serial)
    store.write(processing.next(done.to_doc()),
                AcmeRecord(CERT, serial, {"account_id": req.account.id, "order": order.id}))
    return Reply(200, done.to_json(ctx.links, VALID), {"location": ctx.links.order(order.id)})


def _issue(ctx: Ctx, req: csrs.Request, sans: SANs, order: Order) -> str:
    """Sign and record the certificate (as POST /sign does); its serial."""
    auth, prov, now = ctx.auth, ctx.prov, clock.now()
    claims = prov.claims
    limits = Limits(claims.default_tls, claims.min_tls, claims.max_tls, auth.backdate)
    nb = TimeArg(instant=dt.datetime.fromtimestamp(order.not_before, dt.UTC)) if order.not_before else TimeArg()
    na = TimeArg(instant=dt.datetime.fromtimestamp(order.not_after, dt.UTC)) if order.not_after else TimeArg()
    try:
        not_before, not_after = window(nb, na, limits, now)
    except StepError as e:
        raise malformed(f"the order's validity is not allowed: {e.detail}") from e
    names = sans.names()
    cn = csrs.ascii_lower(req.common_name) if req.common_name else (names[0] if prov.force_cn or names else "")
    cert = profile.leaf(public_key=req.public_key, common_name=cn, sans=sans, not_before=not_before,
                        not_after=not_after, issuer=auth.intermediate, signer=auth.intermediate_signer,
                        provisioner=(prov.type_code, prov.name, ""), crl_url=settings.crl_distribution_point())
    ts = int(now.timestamp())
    item = record(cert, provisioner=prov.name, provisioner_type=prov.type, issued_at=ts, sans=sans)
    commit(cert, item, None, "acme", ts)
    metrics.issued("x509", prov.type, provisioner=prov.name, serial=item.serial)
    logger.info("certificate issued", extra={"serial": item.serial, "provisioner": prov.name, "subject": cn})
    return item.serial


def certificate(ctx: Ctx, body: bytes, order_id: str) -> Reply:
    """The PEM chain (leaf, intermediate) of a valid order."""
    req = authenticate(ctx, body)
    assert req.account is not None
    order = Order.from_doc(_load(ORDER, order_id, req.account.id).doc)
    cert_rec = certificates.get(order.certificate) if order.status == VALID and order.certificate else None
    if cert_rec is None:
        raise AcmeError("malformed", "the order has no certificate", status=404)
    return Reply(200, cert_rec.pem + ctx.auth.intermediate_pem, {"content-type": "application/pem-certificate-chain"})


REASONS = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10}


def revoke_cert(ctx: Ctx, body: bytes) -> Reply:
    """RFC 8555 §7.6: by the account that ordered it, or signed with the certificate's own key."""
    req = authenticate(ctx, body, jwk=True)
    payload = _payload(req)
    try:
        cert = x509.load_der_x509_certificate(jose.b64d(str(payload.get("certificate") or "")))
    except ValueError as e:
        raise malformed("certificate must be a base64url DER certificate") from e
    reason = payload.get("reason", 0)
    if isinstance(reason, bool) or not isinstance(reason, int) or reason not in REASONS:
        raise AcmeError("badRevocationReason", f"reason {str(reason)[:8]} is not allowed")
    try:
        chain.check_ours(cert, ctx.auth.intermediates)
    except StepError as e:
        raise unauthorized("the certificate was not issued by this CA") from e
    serial = str(cert.serial_number)
    rec = certificates.get(serial)
    if rec is None or rec.provisioner != ctx.prov.name:
        raise unauthorized("the certificate was not issued by this ACME provisioner")
    if req.account is not None:
        owner = store.get(CERT, serial)
        if owner is None or owner.doc.get("account_id") != req.account.id:
            raise unauthorized("the account did not order this certificate")
        revoked_by = f"acme-account:{req.account.id}"
    else:
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        signer = jwss.account_key(req.jwk).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if spki != signer:
            raise unauthorized("the JWS is signed by neither the account nor the certificate's key")
        revoked_by = "acme-certificate-key"
    from stepless.services import crl  # the revoke function's modules: not imported by the sign function
    from stepless.services.revoke import _record  # the revocation record every revocation writes
    from stepless.stores import revocations

    try:
        revocations.put(_record(serial, rec, "", reason, ctx.now, revoked_by))
    except StepError as e:
        if "already revoked" in e.detail:
            raise AcmeError("alreadyRevoked") from e
        raise
    crl.invalidate()
    metrics.revoked("x509", provisioner=ctx.prov.name, serial=serial)
    logger.info("certificate revoked", extra={"serial": serial, "reasonCode": reason, "revoked_by": revoked_by})
    return Reply(200, "")
