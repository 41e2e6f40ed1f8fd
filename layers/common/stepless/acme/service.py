"""What every ACME request shares (RFC 8555 §6): its :class:`Ctx`, the :class:`Reply`, nonces, the directory,
and :func:`authenticate` — every POST is a JWS whose ``url`` must be this request's URL, whose nonce is one
this CA handed out and not used (consumed here, once), and whose key is the account's (``kid``) or the one in
the header (``jwk``: newAccount and revokeCert only). The use cases: :mod:`accounts`, :mod:`orders`,
:mod:`issuance`."""

from __future__ import annotations

import dataclasses
from typing import Any

from stepless import jose
from stepless.acme import jws as jwss
from stepless.acme import nonces
from stepless.acme.errors import AcmeError, malformed, unauthorized
from stepless.acme.messages import (
    VALID,
    Account,
    Links,
)
from stepless.authority import Authority
from stepless.provisioners.acme import ACMEProvisioner
from stepless.stores import acme as store
from stepless.stores.acme import AcmeRecord

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
    """A response's ``Replay-Nonce`` (:mod:`stepless.acme.nonces`: nothing stored)."""
    return nonces.issue(now)


def directory(ctx: Ctx) -> Reply:
    link = ctx.links.link
    return Reply(200, {"newNonce": link("new-nonce"), "newAccount": link("new-account"),
                       "newOrder": link("new-order"), "revokeCert": link("revoke-cert"),
                       "keyChange": link("key-change"),
                       "meta": {"externalAccountRequired": ctx.prov.require_eab}})


# --- authentication ---------------------------------------------------------------------------------------

def account_id_from_kid(ctx: Ctx, kid: Any) -> str:
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
    jwss.check_alg(req)  # before the nonce is spent
    if ("jwk" in h) == ("kid" in h):
        raise malformed("the JWS protected header must have exactly one of jwk and kid")
    if "jwk" in h and not jwk:
        raise malformed("this request must be signed with the account key (kid), not a jwk")
    if "kid" in h and not kid:
        raise malformed("this request must be signed with a jwk, not an account kid")
    nonce = h.get("nonce")
    if not nonces.use(nonce, ctx.now):
        raise AcmeError("badNonce", "the nonce is missing, unknown, expired or used already")
    if h.get("url") != ctx.url:
        raise unauthorized("the JWS url is not this request's URL")
    account = None
    if "jwk" in h:
        key_jwk = h["jwk"]
    else:
        account = store.get(ACCOUNT, account_id_from_kid(ctx, h["kid"]))
        if account is None or account.doc.get("provisioner") != ctx.prov.name:
            raise AcmeError("accountDoesNotExist", "no account has this kid")
        if account.doc["status"] != VALID:
            raise unauthorized(f"the account is {account.doc['status']}")
        key_jwk = account.doc["key"]
    key = jwss.account_key(key_jwk)
    jwss.verify(req, key)
    return Authenticated(req, jose.public_part(key_jwk), account)


def payload_of(req: Authenticated, *, allow_empty: bool = False) -> dict[str, Any]:
    if req.jws.post_as_get:
        if allow_empty:
            return {}
        raise malformed("this request needs a payload (POST-as-GET is not allowed here)")
    return req.jws.payload()


def account_of(rec: AcmeRecord) -> Account:
    return Account.from_doc(rec.doc)


def account_doc(acct: Account, provisioner: str) -> dict[str, Any]:
    return {**acct.to_doc(), "provisioner": provisioner}



def load(kind: str, id: str, account_id: str) -> AcmeRecord:
    rec = store.get(kind, id)
    if rec is None:
        raise AcmeError("malformed", f"{kind} {id[:64]} does not exist", status=404)
    if rec.doc.get("account_id") != account_id:
        raise unauthorized(f"the {kind} belongs to another account")
    return rec
