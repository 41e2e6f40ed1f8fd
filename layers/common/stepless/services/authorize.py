"""One authorization path for every token endpoint, as step-ca's ``authority.authorizeToken``.

:func:`authorize` reads the token unverified (only to pick the provisioner), selects the provisioner by
its issuer and key id, has it verify the token for ``endpoint`` (signature, audience, times, what the
token allows) and returns the provisioner, what the token grants, the verified claims and the
single-use record (:class:`TokenUse`) the service writes in the same transaction as its result. The
services then only decide: is this request within what the token grants?
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from stepless import clock, tokens
from stepless.authority import Authority
from stepless.errors import Unauthorized
from stepless.provisioners import Provisioner, SignAuthorization, SSHAuthorization, TokenUse
from stepless.provisioners.sshpop import SSHPOPAuthorization, SSHPOPProvisioner
from stepless.services.context import context

# The endpoints a token is presented to (also the single-use record's ``endpoint``).
SIGN, SSH_SIGN, REVOKE, SSH_REVOKE, SSH_RENEW, SSH_REKEY = (
    "sign", "ssh/sign", "revoke", "ssh/revoke", "ssh/renew", "ssh/rekey")
REVOKE_PATH = "/1.0/revoke"
SSH_REVOKE_PATH = "/1.0/ssh/revoke"


@dataclasses.dataclass(frozen=True)
class Authorized:
    """A verified token: who vouches for it, what it grants, and the record of its one use."""

    provisioner: Provisioner
    claims: dict[str, Any]  # verified (the provisioner checked the signature over them)
    use: TokenUse
    now: dt.datetime  # the request's time, which the token was checked against
    grant: SignAuthorization | SSHAuthorization | SSHPOPAuthorization | None = None  # None: revoke

    @property
    def subject(self) -> object:
        """The token's subject: the SSHPOP token's, else the ``sub`` claim (a serial to revoke …)."""
        if isinstance(self.grant, SSHPOPAuthorization):
            return self.grant.subject
        return self.claims.get("sub")


def authorize(auth: Authority, token: str, endpoint: str) -> Authorized:
    """Verify ``token`` for ``endpoint`` (one of the constants above); 401 (or 403) when it does not hold."""
    now = clock.now()
    header, claims = tokens.unverified(token)
    prov = auth.provisioners.select(header, claims)
    ctx = context(auth, now)
    if endpoint == SIGN:
        sign = prov.authorize_sign(token, header, claims, ctx)
        return Authorized(prov, claims, sign.token, now, sign)
    if endpoint == SSH_SIGN:
        ssh = prov.authorize_ssh_sign(token, header, claims, ctx)
        return Authorized(prov, claims, ssh.token, now, ssh)
    if endpoint in (SSH_RENEW, SSH_REKEY):
        from stepless.services import ssh_ca  # the SSH modules load on SSH routes only

        method = endpoint.removeprefix("ssh/")
        if not isinstance(prov, SSHPOPProvisioner):
            raise Unauthorized(f"ssh {method} requires an sshpop token; provisioner {prov.name} cannot {method} "
                               "ssh certificates", reason="invalid_sshpop_token")
        check = prov.authorize_ssh_renew if endpoint == SSH_RENEW else prov.authorize_ssh_rekey
        pop = check(token, header, ctx, ssh_ca.ca_keys(auth))
        return Authorized(prov, claims, pop.token, now, pop)
    if endpoint == SSH_REVOKE and isinstance(prov, SSHPOPProvisioner):
        from stepless.services import ssh_ca

        pop = prov.authorize_ssh_revoke(token, header, ctx, ssh_ca.ca_keys(auth))
        return Authorized(prov, claims, pop.token, now, pop)
    if endpoint in (REVOKE, SSH_REVOKE):
        use = prov.authorize_revoke(token, header, claims, ctx, REVOKE_PATH if endpoint == REVOKE else SSH_REVOKE_PATH)
        return Authorized(prov, claims, use, now)
    raise ValueError(f"no token endpoint {endpoint!r}")
