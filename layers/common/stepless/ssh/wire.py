"""SSH wire format (RFC 4251 section 5): encoders and a bounds-checked :class:`Reader`."""

from __future__ import annotations

import struct

from stepless.errors import BadRequest

MAX_UINT32 = 0xFFFFFFFF
MAX_UINT64 = 0xFFFFFFFFFFFFFFFF


class WireError(BadRequest):
    """Malformed SSH wire data."""


def byte(value: int) -> bytes:
    """One byte."""
    return bytes((value,))


def uint32(value: int) -> bytes:
    """Big-endian 32-bit unsigned integer."""
    return struct.pack(">I", value)


def uint64(value: int) -> bytes:
    """Big-endian 64-bit unsigned integer."""
    return struct.pack(">Q", value)


def string(value: bytes | str) -> bytes:
    """Length-prefixed byte string (``str`` is UTF-8 encoded)."""
    data = value.encode() if isinstance(value, str) else value
    return struct.pack(">I", len(data)) + data


def mpint(value: int) -> bytes:
    """Two's complement big-endian integer, minimal length (zero is the empty string)."""
    if value == 0:
        return string(b"")
    length = (value + (value < 0)).bit_length() // 8 + 1
    data = value.to_bytes(length, "big", signed=True)
    return string(data)


def name_list(names: list[str] | tuple[str, ...]) -> bytes:
    """Comma-separated ASCII names as one string."""
    return string(",".join(names).encode("ascii"))


def strings(values: list[bytes] | tuple[bytes, ...] | list[str] | tuple[str, ...]) -> bytes:
    """Concatenated strings (the body of a principals list)."""
    return b"".join(string(v) for v in values)


class Reader:
    """Consumes SSH wire values from a byte buffer; raises :class:`WireError` when short."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(bytes(data))
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self._data):
            raise WireError("truncated SSH data")
        chunk = bytes(self._data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        return len(self._data) - self.pos

    def at_end(self) -> bool:
        """True when everything has been read."""
        return self.remaining == 0

    def expect_end(self) -> None:
        """Raise if bytes are left over."""
        if not self.at_end():
            raise WireError("trailing bytes after SSH data")

    def byte(self) -> int:
        """One byte."""
        return self._take(1)[0]

    def uint32(self) -> int:
        """Big-endian 32-bit unsigned integer."""
        return int(struct.unpack(">I", self._take(4))[0])

    def uint64(self) -> int:
        """Big-endian 64-bit unsigned integer."""
        return int(struct.unpack(">Q", self._take(8))[0])

    def string(self) -> bytes:
        """Length-prefixed byte string."""
        return self._take(self.uint32())

    def text(self) -> str:
        """A string decoded as UTF-8."""
        try:
            return self.string().decode()
        except UnicodeDecodeError as exc:
            raise WireError("SSH string is not valid UTF-8") from exc

    def mpint(self) -> int:
        """Two's complement big-endian integer."""
        return int.from_bytes(self.string(), "big", signed=True)

    def name_list(self) -> list[str]:
        """Comma-separated names."""
        raw = self.string()
        if not raw:
            return []
        try:
            return raw.decode("ascii").split(",")
        except UnicodeDecodeError as exc:
            raise WireError("SSH name-list is not ASCII") from exc

    def rest(self) -> bytes:
        """Everything not yet read."""
        return self._take(self.remaining)
