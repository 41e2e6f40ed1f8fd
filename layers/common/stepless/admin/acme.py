"""ACME administration: External Account Binding keys (RFC 8555 §7.3.4) for an ACME provisioner."""

from __future__ import annotations

import dataclasses

from stepless import authority, clock
from stepless.acme import eab
from stepless.errors import ClientError
from stepless.provisioners.acme import ACMEProvisioner
from stepless.stores import acme as store

MAX_REFERENCE = 256


@dataclasses.dataclass(frozen=True)
class EabKey:
    provisioner: str
    key_id: str
    hmac_key: str  # base64url; shown once, to hand to the client (certbot --eab-hmac-key, lego --hmac)
    reference: str


def add_eab_key(provisioner: str, reference: str = "") -> EabKey:
    """A new EAB key for the ACME provisioner ``provisioner`` (stored; binds one account, once)."""
    if len(reference) > MAX_REFERENCE:
        raise ClientError(f"the reference is longer than {MAX_REFERENCE} characters")
    authority.reset()
    prov = authority.get().provisioners.get(provisioner)
    if not isinstance(prov, ACMEProvisioner):
        raise ClientError(f"no ACME provisioner is named {provisioner!r}")
    key_id, hmac_key, record = eab.new_key(provisioner, reference, int(clock.now().timestamp()))
    store.write(record)
    return EabKey(provisioner, key_id, hmac_key, reference)
