"""stores.attributes marshals DynamoDB attribute values exactly as boto3's TypeSerializer/TypeDeserializer."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary as Boto3Binary
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from stepless.stores import attributes
from stepless.stores.attributes import Binary, deserialize, serialize
from stepless.stores.dynamo import from_item, to_item

_ser = TypeSerializer()
_de = TypeDeserializer()

VALUES: list[Any] = [
    None, True, False,
    "", "text", "ünïcødé ✓",
    0, 1, -7, 2**63, 10**37, -(10**37) + 1, 12345678901234567890123456789012345678, 10**38 - 1, -(10**38) + 1,
    Decimal("0"), Decimal("1.5"), Decimal("-0.001"), Decimal("1E+2"), Decimal("1.000"), Decimal("3.14159265358979"),
    Decimal("1E-100"), Decimal("9.9E+125"),
    b"", b"\x00\xffbytes", bytearray(b"array"),
    {"a", "b", "c"}, frozenset({"x"}), {1, 2, Decimal("2.5")}, {b"x", b"y"}, set(), {True, 2},
    [], [1, "two", None, b"3", [4, [5]], {"six": 6}], (1, "tuple"),
    {}, {"k": "v", "n": None, "nested": {"deeper": {"list": [{"m": Decimal("0.5")}], "set": {"s"}}}},
]


def _ids(values: list[Any]) -> list[str]:
    """Stable test ids (repr of a set or an object differs between xdist workers)."""
    return [f"{i}-{type(v).__name__}" for i, v in enumerate(values)]


def _plain(value: Any) -> Any:
    """``value`` with types made explicit (so Decimal('1') != 1) and either Binary class as bytes."""
    if isinstance(value, (Binary, Boto3Binary)):
        return ("Binary", bytes(value.value))
    if isinstance(value, dict):
        return ("dict", {k: _plain(v) for k, v in value.items()})
    if isinstance(value, list):
        return ("list", [_plain(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return ("set", sorted((_plain(v) for v in value), key=repr))
    return (type(value).__name__, value)


@pytest.mark.parametrize("value", VALUES, ids=_ids(VALUES))
def test_serialize_is_boto3s(value: Any) -> None:
    ours = serialize(value)
    assert ours == _ser.serialize(value)
    assert _plain(ours) == _plain(_ser.serialize(value))  # same types too (bytearray stays bytearray, ...)


@pytest.mark.parametrize("value", VALUES, ids=_ids(VALUES))
def test_round_trip_is_boto3s(value: Any) -> None:
    wire = _ser.serialize(value)
    back = deserialize(wire)
    assert _plain(back) == _plain(_de.deserialize(wire))
    assert serialize(back) == wire or isinstance(value, (set, frozenset))  # sets: any order
    if isinstance(value, (set, frozenset)):
        (kind, items), = serialize(back).items()
        assert kind in wire and sorted(items) == sorted(next(iter(wire.values())))


def test_numbers_and_binary_read_back() -> None:
    assert deserialize({"N": "42"}) == Decimal(42) and isinstance(deserialize({"N": "42"}), Decimal)
    assert deserialize({"N": "0.1"}) == Decimal("0.1")
    b = deserialize({"B": b"raw"})
    assert isinstance(b, Binary) and b == b"raw" and b.value == b"raw" and bytes(b) == b"raw"
    assert b == Binary(b"raw") and b != b"other" and hash(b) == hash(b"raw")
    assert serialize(b) == {"B": b"raw"}
    assert deserialize({"BS": [b"a", b"b"]}) == {b"a", b"b"}
    assert deserialize({"NS": ["1", "2.5"]}) == {Decimal(1), Decimal("2.5")}
    assert deserialize({"SS": ["a"]}) == {"a"}
    assert deserialize({"NULL": True}) is None
    assert deserialize({"BOOL": False}) is False
    assert deserialize({"L": [{"S": "a"}, {"M": {"x": {"N": "1"}}}]}) == ["a", {"x": Decimal(1)}]


UNSUPPORTED: list[Any] = [
    1.5, 0.0, [1, 2.5], {"k": {"deep": [0.1]}}, {1.5}, float("nan"),
    object(), 1j, {1, "mixed"}, {"a", b"b"}, [object()], {"k": {1, "mixed"}},
    Decimal("Infinity"), Decimal("NaN"),
]


@pytest.mark.parametrize("value", UNSUPPORTED, ids=_ids(UNSUPPORTED))
def test_type_errors_like_boto3(value: Any) -> None:
    with pytest.raises(TypeError):
        _ser.serialize(value)
    with pytest.raises(TypeError):
        serialize(value)


def test_float_message() -> None:
    with pytest.raises(TypeError, match="Float types are not supported"):
        serialize({"a": [1.0]})


@pytest.mark.parametrize("value", [
    Decimal("1.23456789012345678901234567890123456789"),  # 39 digits: inexact
    10**38 + 1,
    Decimal("1E+200"),  # overflow
    Decimal("1E-200"),  # underflow
], ids=repr)
def test_numbers_dynamodb_cannot_hold(value: Any) -> None:
    with pytest.raises(decimal.DecimalException) as boto:
        _ser.serialize(value)
    with pytest.raises(decimal.DecimalException) as ours:
        serialize(value)
    assert type(ours.value) is type(boto.value)


@pytest.mark.parametrize("value", [{}, {"X": "?"}, {"SET": ["a"]}])
def test_bad_attribute_values(value: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        deserialize(value)


def test_binary_rejects_str() -> None:
    with pytest.raises(TypeError):
        Binary("text")  # type: ignore[arg-type]


def test_context_is_boto3s() -> None:
    from boto3.dynamodb.types import DYNAMODB_CONTEXT

    ours = attributes.DYNAMODB_CONTEXT
    assert (ours.prec, ours.Emin, ours.Emax) == (DYNAMODB_CONTEXT.prec, DYNAMODB_CONTEXT.Emin, DYNAMODB_CONTEXT.Emax)
    assert {t for t, on in ours.traps.items() if on} == {t for t, on in DYNAMODB_CONTEXT.traps.items() if on}


# ------------------------------------------------------------------------------- to_item / from_item


def _boto3_to_item(values: dict[str, Any]) -> dict[str, Any]:
    """What stores.dynamo.to_item did with boto3."""
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None and v != [] and v != ""}


def _boto3_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """What stores.dynamo.from_item did with boto3."""
    out = {}
    for k, v in item.items():
        value = _de.deserialize(v)
        if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):
            value = int(value) if value == int(value) else float(value)
        out[k] = value
    return out


RECORD = {
    "serial": "123456789", "kind": "x509", "subject": "", "sans": ["a.example", "10.0.0.1"], "empty": [],
    "not_before": 1_700_000_000, "not_after": 1_700_086_400, "ratio": Decimal("0.25"), "exact": Decimal("2.0"),
    "parent_serial": None, "rekey": False, "zero": 0, "tuple": (), "map": {"n": 1, "none": None, "s": ""},
    "tags": {"x", "y"}, "blob": b"\x01\x02",
}


def test_to_item_drops_none_empty_list_and_empty_string() -> None:
    item = to_item(RECORD)
    assert item == _boto3_to_item(RECORD)
    assert not {"subject", "empty", "parent_serial"} & item.keys()
    assert item["rekey"] == {"BOOL": False} and item["zero"] == {"N": "0"} and item["tuple"] == {"L": []}
    assert item["map"] == {"M": {"n": {"N": "1"}, "none": {"NULL": True}, "s": {"S": ""}}}  # only top level dropped


def test_from_item_like_before() -> None:
    item = to_item(RECORD)
    back = from_item(item)
    assert _plain(back) == _plain(_boto3_from_item(item))
    assert back["not_before"] == 1_700_000_000 and type(back["not_before"]) is int
    assert back["ratio"] == 0.25 and type(back["ratio"]) is float
    assert back["exact"] == 2 and type(back["exact"]) is int
    assert back["map"]["n"] == Decimal(1) and type(back["map"]["n"]) is Decimal  # nested numbers stay Decimal
    assert back["sans"] == ["a.example", "10.0.0.1"] and back["tags"] == {"x", "y"} and back["blob"] == b"\x01\x02"


def test_to_item_rejects_float() -> None:
    with pytest.raises(TypeError):
        to_item({"x": 1.5})
