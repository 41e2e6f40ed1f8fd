"""SSH wire encoding round trips."""

from __future__ import annotations

import pytest

from stepless.errors import BadRequest
from stepless.ssh import wire


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        # RFC 4251 section 5 examples
        (0, b"\x00\x00\x00\x00"),
        (0x9A378F9B2E332A7, b"\x00\x00\x00\x08\x09\xa3\x78\xf9\xb2\xe3\x32\xa7"),
        (0x80, b"\x00\x00\x00\x02\x00\x80"),
        (-0x1234, b"\x00\x00\x00\x02\xed\xcc"),
        (-0xDEADBEEF, b"\x00\x00\x00\x05\xff\x21\x52\x41\x11"),
    ],
)
def test_mpint_rfc4251_examples(value: int, encoded: bytes) -> None:
    assert wire.mpint(value) == encoded
    assert wire.Reader(encoded).mpint() == value


def test_round_trip_all_types() -> None:
    data = (
        wire.byte(7)
        + wire.uint32(0xDEADBEEF)
        + wire.uint64(wire.MAX_UINT64)
        + wire.string("héllo")
        + wire.mpint(-1)
        + wire.name_list(["a", "b-c"])
        + wire.name_list([])
        + wire.string(wire.strings(["x", "y"]))
    )
    reader = wire.Reader(data)
    assert reader.byte() == 7
    assert reader.uint32() == 0xDEADBEEF
    assert reader.uint64() == wire.MAX_UINT64
    assert reader.text() == "héllo"
    assert reader.mpint() == -1
    assert reader.name_list() == ["a", "b-c"]
    assert reader.name_list() == []
    inner = wire.Reader(reader.string())
    assert [inner.text(), inner.text()] == ["x", "y"]
    assert inner.at_end()
    reader.expect_end()


def test_truncated_and_trailing_data_raise() -> None:
    with pytest.raises(BadRequest, match="truncated"):
        wire.Reader(b"\x00\x00\x00\x05abc").string()
    with pytest.raises(BadRequest, match="truncated"):
        wire.Reader(b"\x00\x00").uint32()
    reader = wire.Reader(wire.uint32(1) + b"x")
    reader.uint32()
    with pytest.raises(BadRequest, match="trailing"):
        reader.expect_end()
    assert reader.rest() == b"x"


def test_invalid_utf8_raises() -> None:
    with pytest.raises(BadRequest):
        wire.Reader(wire.string(b"\xff\xfe")).text()
