"""DER encoding of the few ASN.1 shapes stepless writes by hand (tests check them against cryptography's)."""

from __future__ import annotations

import datetime as dt
import hashlib

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = b"\x05\x00"
TRUE = b"\x01\x01\xff"


def length(n: int) -> bytes:
    """A definite length: short form under 128, else long form."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    """Tag, length, value."""
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    return bytes((tag,)) + length(n) + body


def read(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    """(tag, start, end) of the TLV at ``pos``: its value is ``buf[start:end]``; ValueError when malformed."""
    if pos + 2 > len(buf):
        raise ValueError("truncated DER")
    tag, first = buf[pos], buf[pos + 1]
    start = pos + 2
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or start + count > len(buf):
            raise ValueError("bad DER length")
        first = int.from_bytes(buf[start:start + count], "big")
        start += count
    end = start + first
    if end > len(buf):
        raise ValueError("truncated DER")
    return tag, start, end


def sequence(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def subject_public_key_bits(spki: bytes) -> bytes:
    """The subjectPublicKey BIT STRING contents of a SubjectPublicKeyInfo (no unused-bits octet)."""
    _, start, _ = read(spki)
    _, _, algorithm_end = read(spki, start)
    tag, bits_start, bits_end = read(spki, algorithm_end)
    if tag != BIT_STRING:
        raise ValueError("not a SubjectPublicKeyInfo")
    return spki[bits_start + 1:bits_end]


def subject_key_id(spki: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits of a SubjectPublicKeyInfo."""
    return hashlib.sha1(subject_public_key_bits(spki)).digest()  # noqa: S324 - the identifier RFC 5280 names


def integer(n: int) -> bytes:
    """A two's-complement INTEGER in the fewest octets."""
    return tlv(INTEGER, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def octet_string(body: bytes) -> bytes:
    return tlv(OCTET_STRING, body)


def bit_string(body: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits)."""
    return tlv(BIT_STRING, b"\x00" + body)


def explicit(number: int, body: bytes) -> bytes:
    """A context-specific, constructed (EXPLICIT) tag ``[number]`` around ``body``."""
    return tlv(0xA0 | number, body)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def time(t: dt.datetime) -> bytes:
    """RFC 5280 Time of ``t`` (in UTC): UTCTime for 1950–2049, GeneralizedTime otherwise; whole seconds, "Z"."""
    if not 1950 <= t.year <= 2049:
        return tlv(0x18, b"%04d%02d%02d%02d%02d%02dZ" % (t.year, t.month, t.day, t.hour, t.minute, t.second))
    return tlv(0x17, b"%02d%02d%02d%02d%02d%02dZ" % (t.year % 100, t.month, t.day, t.hour, t.minute, t.second))


def extension(oid_der: bytes, value: bytes, critical: bool = False) -> bytes:
    """One X.509 Extension: ``SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }``."""
    return sequence(oid_der, TRUE if critical else b"", octet_string(value))
