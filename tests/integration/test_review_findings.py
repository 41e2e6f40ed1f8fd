"""Regression tests for what the outside review of the issue 10/11 work found (one test per finding)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import ec

from stepless.services import ssh_info
from stepless.ssh import parse_certificate
from tests.integration.test_ssh_info import reads_of
from tests.integration.test_ssh_renew import revoke, sshpop_token
from tests.integration.test_ssh_sign import sign


def test_a_replayed_ssh_revocation_writes_nothing(test_ca):
    """A revoke of an already revoked SSH certificate does not consume its token (the transaction fails), so
    the holder of any SSH certificate can mint SSHPOP tokens and revoke it again and again for as long
    as the certificate is valid. Each replay re-ran the whole KRL write: the revoked-set UpdateItem (bumping the
    KRL version every time), the S3 KRL and one UpdateItem per host principal — writes amplified by the
    number of principals, from a revoked credential. Completing a lost KRL write must cost a read, not
    writes, once the revoked set has the serial."""
    principals = [f"h{i}.example.com" for i in range(20)]
    key = ec.generate_private_key(ec.SECP256R1())
    status, body = sign(test_ca, principals[0], key=key, token_opts={"certType": "host", "principals": principals})
    assert status == 201, body
    crt = body["crt"]
    serial = parse_certificate(base64.b64decode(crt)).serial
    token = sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial))
    assert revoke(serial, token)[0] == 200
    version = ssh_info._revoked(test_ca.authority).version

    out = []
    again = sshpop_token(crt, key, "/1.0/ssh/revoke", sub=str(serial))  # its holder mints as many as it likes
    calls = reads_of(lambda: out.append(revoke(serial, again)))
    assert out[0][0] == 400 and "already revoked" in out[0][1]["message"]
    assert not [c for c in calls if c.split(".")[1] in ("UpdateItem", "PutItem", "PutObject")], calls
    assert sum(calls.values()) <= 4, calls
    ssh_info._krl_cache = None
    assert ssh_info._revoked(test_ca.authority).version == version
