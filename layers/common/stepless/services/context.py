"""The provisioner Context of a request, and the checks it carries that need this CA's own state."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

from cryptography import x509

from stepless.authority import Authority
from stepless.errors import Unauthorized
from stepless.provisioners import Context
from stepless.stores import revocations


def context(auth: Authority, now: dt.datetime) -> Context:
    """What a provisioner needs to verify a token of this request."""
    return Context(auth.hosts, now, functools.partial(check_x5c_path, auth))


def check_x5c_path(auth: Authority, path: Sequence[x509.Certificate]) -> None:
    """401 when a verified X5C path (leaf … anchor) runs through this CA and holds what it no longer vouches
    for: a certificate of ours that we revoked (the one issued by our intermediate: one consistent read),
    or an intermediate under our root that we do not trust (replaced with ``--distrust-previous``).
    A chain outside our PKI costs no read."""
    intermediates = auth.intermediates
    for issued, issuer in zip(path, path[1:], strict=False):
        if issuer in intermediates:  # the path is verified: ``issued`` is a leaf of ours
            if revocations.get(str(issued.serial_number)) is not None:
                raise Unauthorized("x5c certificate has been revoked")
            return
    if len(path) > 1 and path[-1] in auth.roots and path[-2] not in intermediates:
        raise Unauthorized("x5c certificate chain runs through an intermediate this certificate authority "
                           "no longer trusts")
