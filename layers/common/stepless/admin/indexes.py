"""``stepless ca upgrade``: fill the SSH host index and the revoked-SSH set from the records of a stack that
ran an earlier stepless (both are otherwise kept by issuance and revocation). Safe to run again: index
entries are set members, so adding one twice changes nothing. OCSP responses need no backfill: each is
produced on its serial's first request."""

from __future__ import annotations

import dataclasses

from stepless import authority, clock
from stepless.services import ssh_info
from stepless.ssh import FOREVER
from stepless.stores import certificates, crl_store, hosts, revocations, ssh_revoked


@dataclasses.dataclass(frozen=True)
class Backfill:
    hosts: int  # host certificates indexed
    revoked: int  # SSH revocations in the revoked set
    krl_published: bool


def backfill_ssh() -> Backfill:
    """Index every recorded host certificate (revoked ones removed again) and add every SSH revocation to the
    revoked set; publish the KRL when the stack has a bucket. One scan of each table (administrator only)."""
    now = int(clock.now().timestamp())
    revoked = {r.serial: r for r in revocations.scan_all() if r.kind == "ssh" and r.serial.startswith("ssh:")}
    indexed = 0
    for rec in certificates.scan_ssh_hosts():
        serial, principals = rec.serial.removeprefix("ssh:"), rec.principals
        not_after = rec.not_after or FOREVER
        hosts.add(principals, serial, not_after, now)
        if rec.serial in revoked:
            hosts.remove(principals, serial, not_after, now)
        indexed += 1
    state = ssh_revoked.get()
    for rec in revoked.values():
        state = ssh_revoked.add(*ssh_info.revoked_entry(rec), now)
    published = False
    auth = authority.get()
    if crl_store.shared() and (auth.ssh.get("userPublicKey") or auth.ssh.get("hostPublicKey")):
        crl_store.put_krl(ssh_info.build(auth, state))
        published = True
    return Backfill(indexed, len(revoked), published)
