"""POST /sign: a CSR and a one-time token in, a recorded certificate out."""

from __future__ import annotations

from typing import Any, cast

from stepless import settings
from stepless.authority import Authority
from stepless.durations import TimeArg
from stepless.errors import BadRequest, Forbidden, Unauthorized
from stepless.observability import logger, metrics
from stepless.provisioners import SignAuthorization
from stepless.services.authorize import SIGN, authorize
from stepless.services.issuance import commit, record, sign_response
from stepless.x509 import csr as csrs
from stepless.x509 import profile, tbs
from stepless.x509.csr import SANs
from stepless.x509.validity import Limits, window


def _check_names(req: csrs.Request, subject: str, token_sans: tuple[str, ...]) -> SANs:
    """The token's SANs (what the certificate carries), when the CSR's names pass step-ca's per-type rule
    and its common name is the subject or one of those names (else 403).

    As step-ca 0.19: a type (DNS, IP, email, URI) the CSR has no names of passes; a type it has names of
    must list exactly the token's names of that type. So a CSR without SANs gets the token's names.
    """
    allowed = SANs.split(token_sans)
    wrong = req.sans.mismatches(allowed)
    if wrong:
        detail = "; ".join(f"{csrs.SAN_TYPES[kind]} requested {sorted(getattr(req.sans, kind))}, "
                           f"token allows {sorted(getattr(allowed, kind))}" for kind in wrong)
        raise Forbidden(f"certificate request SANs do not match the token: {detail}", reason="sans_mismatch")
    cn = req.common_name
    if cn and cn != subject and cn not in token_sans and csrs.ascii_lower(cn) not in allowed.dns:
        raise Forbidden(f"certificate request common name {cn!r} is not the token subject or one of its SANs",
                        reason="sans_mismatch")
    return allowed


def sign(body: dict[str, Any], auth: Authority) -> dict[str, Any]:
    """Verify everything, issue, record, respond (201)."""
    ott = body.get("ott")
    if not isinstance(ott, str) or not ott:
        raise BadRequest("missing ott", reason="missing_token")
    req = csrs.read(body.get("csr"))
    nb = TimeArg.parse(body.get("notBefore"), "notBefore")
    na = TimeArg.parse(body.get("notAfter"), "notAfter")
    if body.get("templateData") not in (None, {}) and not isinstance(body.get("templateData"), dict):
        raise BadRequest("templateData must be a JSON object", reason="invalid_json")

    granted = authorize(auth, ott, SIGN)
    prov, authz, now = granted.provisioner, cast(SignAuthorization, granted.grant), granted.now
    sans = req.sans if authz.any_sans else _check_names(req, authz.subject, authz.sans)
    claims = prov.claims
    limits = Limits(claims.default_tls, claims.min_tls, claims.max_tls, auth.backdate,
                    authz.not_before_limit, authz.not_after_limit)
    not_before, not_after = window(nb, na, limits, now)
    common_name = (req.common_name or authz.subject) if authz.any_sans else authz.subject
    csrs.check_names([common_name, *sans.names()])
    if not authz.any_sans:  # the token's names (the CSR's were checked when read)
        problem = sans.problem()
        if problem:
            raise BadRequest(problem)
    if common_name and not tbs.subject_common_name(common_name) and not sans.names():  # named by SANs only
        raise BadRequest(f"common name is longer than {tbs.UB_COMMON_NAME} characters, the most a certificate "
                         "subject may carry, and the request has no subject alternative name to carry it")

    cert = profile.leaf(
        public_key=req.public_key,
        common_name=common_name,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
        issuer=auth.intermediate,
        signer=auth.intermediate_signer,
        provisioner=(prov.type_code, prov.name, prov.credential_id),
        crl_url=settings.crl_distribution_point(),
    )
    ts = int(now.timestamp())
    item = record(cert, provisioner=prov.name, provisioner_type=prov.type, issued_at=ts, sans=sans)
    commit(cert, item, granted.use, SIGN, ts)
    metrics.issued("x509", prov.type, provisioner=prov.name, serial=item.serial)
    logger.info("certificate issued", extra={"serial": str(cert.serial_number), "provisioner": prov.name,
                                              "subject": authz.subject})
    return sign_response(item.pem, auth)


__all__ = ["sign", "Unauthorized"]
