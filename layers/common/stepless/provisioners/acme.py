"""ACME provisioner (RFC 8555): no token; accounts, orders and challenges (:mod:`stepless.acme`).

``{"type": "ACME", "name", "requireEAB"?: bool (default true), "forceCN"?: bool, "challenges"?: [...],
"policy"?: {...} (see stepless.acme.policy), "claims"?}``. ``requireEAB`` is on unless the entry turns it off:
a CA behind API Gateway is reachable from the internet, and without EAB anyone could register an account
and, with a name they control, get a certificate (``stepless dev`` creates its ACME provisioner without).
"""

from __future__ import annotations

from typing import Any

from stepless.acme.policy import Policy
from stepless.errors import ConfigError
from stepless.provisioners.base import Provisioner

CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")


class ACMEProvisioner(Provisioner):
    type = "ACME"

    def __init__(self, data: dict[str, Any], authority_claims: Any) -> None:
        super().__init__(data, authority_claims)
        self.require_eab = data.get("requireEAB", True) is not False
        self.force_cn = bool(data.get("forceCN", False))
        challenges = data.get("challenges") or list(CHALLENGES)
        if not isinstance(challenges, list) or not set(challenges) <= set(CHALLENGES):
            raise ConfigError(f"provisioner {self.name}: challenges must be among {', '.join(CHALLENGES)}")
        self.challenges = tuple(challenges)
        self.policy = Policy(data.get("policy"))
