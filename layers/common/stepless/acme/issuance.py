"""ACME finalize, certificate download and revokeCert (RFC 8555 §7.4, §7.4.2, §7.6): issuance through the
CA's own path (claims, records, metrics), revocation like any other."""


from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stepless import clock, jose, settings
from stepless.acme import jws as jwss
from stepless.acme.errors import AcmeError, malformed, unauthorized
from stepless.acme.messages import (
    INVALID,
    PROCESSING,
    READY,
    VALID,
    Order,
)
from stepless.acme.orders import authorizations, order_status
from stepless.acme.service import (
    CERT,
    ORDER,
    Ctx,
    Reply,
    authenticate,
    load,
    payload_of,
)
from stepless.authority import Authority
from stepless.durations import TimeArg
from stepless.errors import BadRequest, StepError
from stepless.observability import logger, metrics
from stepless.services.issuance import commit, record
from stepless.stores import acme as store
from stepless.stores import certificates
from stepless.stores.acme import AcmeConflict, AcmeRecord
from stepless.x509 import chain, profile
from stepless.x509 import csr as csrs
from stepless.x509.csr import SANs
from stepless.x509.validity import Limits, window

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
    rec = load(ORDER, order_id, req.account.id)
    order = Order.from_doc(rec.doc)
    authzs = authorizations(order)
    status = order_status(order, ctx.now, authzs)
    if status != READY:
        raise AcmeError("orderNotReady", f"the order is {status}, not ready", status=403)
    csr = _csr(payload_of(req).get("csr"))
    sans = _check_csr(csr, order)
    processing = rec.next({**order.to_doc(), "status": PROCESSING})
    try:
        store.write(processing)  # one finalize at a time: a second one meets a version conflict
    except AcmeConflict as e:  # only finalize changes an order: another finalize of it went first
        raise AcmeError("orderNotReady", "the order is being finalized by another request", status=403) from e
    try:
        serial, not_after, pem = _issue(ctx, csr, sans, order)
    except Exception as e:  # the order must not stay "processing": it fails with the reason, then the request
        if isinstance(e, AcmeError):
            problem = e
        elif isinstance(e, StepError) and e.status < 500:
            problem = AcmeError("badCSR", e.detail)
        else:
            problem = AcmeError("serverInternal")
        store.write(processing.next(dataclasses.replace(order, status=INVALID, error=problem.to_json()).to_doc()))
        raise
    # a valid order, its authorizations and its certificate link are kept until the certificate expires (not
    # the pending order's 24 h), so a client may download it, or read the order, any time before then
    done = dataclasses.replace(order, status=VALID, certificate=serial, expires=not_after)
    _complete([processing.next(done.to_doc(), expires=not_after),
               AcmeRecord(CERT, serial, {"account_id": req.account.id, "order": order.id, "pem": pem},
                          expires=not_after)],
              authzs, not_after)
    return Reply(200, done.to_json(ctx.links, VALID), {"location": ctx.links.order(order.id)})


def _complete(records: list[AcmeRecord], authzs: list[AcmeRecord | None], until: int) -> None:
    """Write the valid order and its certificate link, and keep the order's authorizations until ``until``: one
    transaction when they fit in one (:data:`~stepless.stores.acme.MAX_WRITE` records), else the authorizations
    in a second. The certificate is issued already: when an authorization changed meanwhile (or the second
    write fails), that is logged, the order and link are written alone, and those authorizations expire as
    pending ones would."""
    kept = [r.next({**r.doc, "expires": until}, expires=until) for r in authzs if r is not None]
    if kept and len(records) + len(kept) <= store.MAX_WRITE:
        try:
            store.write(*records, *kept)
            return
        except AcmeConflict as e:
            _not_kept(e)
            kept = []
    store.write(*records)
    try:
        for i in range(0, len(kept), store.MAX_WRITE):
            store.write(*kept[i:i + store.MAX_WRITE])
    except StepError as e:
        _not_kept(e)


def _not_kept(e: StepError) -> None:
    logger.warning("ACME authorizations of a valid order keep their 24 h expiry", extra={"reason": e.detail})


def _issue(ctx: Ctx, req: csrs.Request, sans: SANs, order: Order) -> tuple[str, int, str]:
    """Sign and record the certificate (as POST /sign does); its serial, notAfter (epoch s) and PEM."""
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
    return item.serial, int(not_after.timestamp()), item.pem


def chains(leaf: x509.Certificate, auth: Authority) -> dict[str, x509.Certificate]:
    """The intermediates that chain a leaf (RFC 8555 §7.4.2), by SHA-256 fingerprint: the current one first.

    The CA has one root and one signing intermediate, so the only other chain a client can be given is through
    an intermediate that ``ca rotate-intermediate`` replaced, is still valid (``Authority.intermediates``) and
    verifies the leaf: one under the same key (the kms and files backends keep the key across a rotation) —
    for clients that still pin the previous intermediate, until it expires. A rotation to a new key (the
    secrets backend) or ``--distrust-previous`` leaves no alternate.
    """
    out = {}
    for inter in auth.intermediates:
        try:
            leaf.verify_directly_issued_by(inter)
        except (ValueError, TypeError, InvalidSignature):
            continue
        out[inter.fingerprint(hashes.SHA256()).hex()] = inter
    return out


def _leaf(pem: Any, serial: str) -> x509.Certificate | None:
    """The certificate ``pem`` holds when it is the one of ``serial`` (None: no PEM, not one, another serial)."""
    if not isinstance(pem, str) or not pem:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    return cert if str(cert.serial_number) == serial else None


def certificate(ctx: Ctx, body: bytes, cert_id: str, alternate: str | None = None) -> Reply:
    """The PEM chain (leaf, intermediate) of a certificate the account ordered, named by its serial (as step-ca's
    ``/acme/<provisioner>/certificate/<id>``); ``alternate``: the chain through that (replaced) intermediate.
    ``Link: rel="alternate"`` names each other chain of the leaf (see :func:`chains`). The leaf is the one its
    certificate link keeps (finalize writes it there: one read); a link written without it (an earlier stepless)
    reads the certificate's record, and so does a link whose PEM is not that certificate (a damaged store: never
    another leaf, never a 500)."""
    req = authenticate(ctx, body)
    assert req.account is not None
    leaf_pem = load(CERT, cert_id, req.account.id).doc.get("pem")
    leaf = _leaf(leaf_pem, cert_id)
    if leaf is None:  # a link without its PEM (or a damaged one): the certificate's own record
        if leaf_pem:
            logger.warning("ACME certificate link does not hold its certificate", extra={"serial": cert_id[:64]})
        cert_rec = certificates.get(cert_id)
        leaf = _leaf(cert_rec.pem if cert_rec else None, cert_id)
        if leaf is None:
            raise AcmeError("malformed", "the certificate does not exist", status=404)
    leaf_pem = leaf.public_bytes(Encoding.PEM).decode()  # that one certificate, nothing else a PEM held
    by_fp = chains(leaf, ctx.auth)
    default = next(iter(by_fp), None)
    chosen = alternate or default
    if alternate is not None and (alternate == default or alternate not in by_fp):
        raise AcmeError("malformed", "the certificate has no such alternate chain", status=404)
    inter_pem = by_fp[chosen].public_bytes(Encoding.PEM).decode() if chosen else ctx.auth.intermediate_pem
    headers = {"content-type": "application/pem-certificate-chain"}
    links = [f'<{ctx.links.certificate(cert_id, *([fp] if fp != default else []))}>;rel="alternate"'
             for fp in by_fp if fp != chosen]
    if links:
        headers["link"] = ", ".join(links)
    return Reply(200, leaf_pem + inter_pem, headers)


REASONS = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10}


def revoke_cert(ctx: Ctx, body: bytes) -> Reply:
    """RFC 8555 §7.6: by the account that ordered it, or signed with the certificate's own key."""
    req = authenticate(ctx, body, jwk=True)
    payload = payload_of(req)
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
    # as POST /revoke records a revocation (the revoke function's modules: not imported by the sign function)
    from stepless.services import crl, ocsp
    from stepless.services.revoke import _record, recorded
    from stepless.stores import revocations
    from stepless.stores.errors import AlreadyRevoked

    item = _record(serial, rec, "", reason, ctx.now, revoked_by)
    try:
        revocations.put(item)
    except AlreadyRevoked as e:  # a retry after a failure between this write and the OCSP one completes it
        ocsp.ensure_revoked(ctx.auth, serial)
        raise AcmeError("alreadyRevoked") from e
    recorded(ctx.auth, item, ctx.prov.name)
    crl.publish(ctx.auth)
    return Reply(200, "")
