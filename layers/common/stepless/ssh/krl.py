"""OpenSSH key revocation lists (PROTOCOL.krl), unsigned, revoking certificates by serial."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from stepless.ssh import keys, wire
from stepless.ssh.keys import SSHPublicKey

KRL_MAGIC = b"SSHKRL\n\x00"
KRL_FORMAT_VERSION = 1
KRL_SECTION_CERTIFICATES = 1
KRL_SECTION_CERT_SERIAL_LIST = 0x20
KRL_SECTION_CERT_SERIAL_RANGE = 0x21
MIN_RANGE = 3  # a range subsection (21 bytes) beats list entries (8 bytes each) from 3 serials on


def _runs(serials: list[int]) -> Iterable[tuple[int, int]]:
    """``(lo, hi)`` runs of consecutive values in a sorted, duplicate-free list."""
    if not serials:
        return
    lo = hi = serials[0]
    for serial in serials[1:]:
        if serial == hi + 1:
            hi = serial
            continue
        yield lo, hi
        lo = hi = serial
    yield lo, hi


def _subsection(kind: int, data: bytes) -> bytes:
    return wire.byte(kind) + wire.string(data)


def _serial_subsections(serials: Iterable[int]) -> bytes:
    """Serial list plus range subsections for the sorted unique non-zero ``serials``."""
    ordered = sorted(set(serials))
    if ordered and (ordered[0] < 0 or ordered[-1] > wire.MAX_UINT64):
        raise ValueError("SSH certificate serials are unsigned 64-bit integers")
    singles: list[int] = []
    ranges: list[bytes] = []
    for lo, hi in _runs([s for s in ordered if s != 0]):  # OpenSSH never matches serial 0
        if hi - lo + 1 >= MIN_RANGE:
            ranges.append(_subsection(KRL_SECTION_CERT_SERIAL_RANGE, wire.uint64(lo) + wire.uint64(hi)))
        else:
            singles.extend(range(lo, hi + 1))
    parts = []
    if singles:
        parts.append(_subsection(KRL_SECTION_CERT_SERIAL_LIST, struct.pack(f">{len(singles)}Q", *singles)))
    return b"".join(parts + ranges)


def build_krl(
    ca_public_key: SSHPublicKey,
    serials: Iterable[int],
    *,
    version: int,
    generated_at: int,
    comment: str = "",
) -> bytes:
    """An unsigned KRL revoking the certificates ``ca_public_key`` issued with these ``serials``.

    ``version`` is the KRL version (uint64, increase it on each change); ``generated_at`` is Unix
    seconds. Serial 0 is skipped (OpenSSH ignores it when checking certificates).
    """
    header = b"".join(
        (
            KRL_MAGIC,
            wire.uint32(KRL_FORMAT_VERSION),
            wire.uint64(version),
            wire.uint64(generated_at),
            wire.uint64(0),  # flags
            wire.string(b""),  # reserved
            wire.string(comment),
        )
    )
    subsections = _serial_subsections(serials)
    if not subsections:
        return header
    certs = wire.string(keys.encode_public_key(ca_public_key)) + wire.string(b"") + subsections
    return header + _subsection(KRL_SECTION_CERTIFICATES, certs)
