"""DynamoDB attribute values ⇄ Python values, as boto3's ``TypeSerializer``/``TypeDeserializer`` do it.

A small copy of boto3's marshaller, so the functions need botocore only (``import boto3`` costs cold-start
time for s3transfer, multiprocessing and the resource layer, none of which they use). The mapping:

=================================  ===============================
Python                             DynamoDB
=================================  ===============================
None                               ``{"NULL": True}``
bool                               ``{"BOOL": value}``
int, decimal.Decimal               ``{"N": "<number>"}`` (float: TypeError)
str                                ``{"S": value}``
bytes, bytearray, :class:`Binary`  ``{"B": bytes}``
set of numbers / str / bytes       ``{"NS": [...]}`` / ``{"SS": [...]}`` / ``{"BS": [...]}``
Mapping                            ``{"M": {key: attribute value}}``
list, tuple                        ``{"L": [attribute value, ...]}``
=================================  ===============================

Reading back, ``N`` becomes a :class:`decimal.Decimal` (38 digits, boto3's context) and ``B`` a
:class:`Binary` (equal to its bytes), exactly as boto3 returns them.
"""

from __future__ import annotations

import collections.abc
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's numbers: 38 significant digits, exponent -130..125; anything inexact is an error (as in boto3)
DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


class Binary:
    """A binary attribute read back (boto3's ``Binary``): ``.value`` is the bytes; equal to them too."""

    __slots__ = ("value",)

    def __init__(self, value: bytes | bytearray) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("Value must be of the following types: <class 'bytearray'>, <class 'bytes'>")
        self.value = value

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, Binary) else other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Binary({self.value!r})"

    def __bytes__(self) -> bytes:
        return bytes(self.value)


_BINARY = (bytes, bytearray, Binary)


def _is_number(value: Any) -> bool:
    """int or Decimal (a bool too, as in boto3: only reached inside sets, since :func:`serialize` tests
    bool first); a float raises."""
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, (int, Decimal))


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _binary(value: bytes | bytearray | Binary) -> bytes | bytearray:
    return value.value if isinstance(value, Binary) else value


_MAX_EXACT_INT = 10**38  # DynamoDB's 38 digits: a smaller int's number string is str(int)


def serialize(value: Any) -> dict[str, Any]:
    """The DynamoDB attribute value of ``value`` (TypeError for floats and unsupported types)."""
    kind = type(value)  # the common exact types first (no ABC checks: this runs for every attribute written)
    if kind is str:
        return {"S": value}
    if kind is int and -_MAX_EXACT_INT < value < _MAX_EXACT_INT:
        return {"N": str(value)}
    if kind is dict:
        return {"M": {k: serialize(v) for k, v in value.items()}}
    if kind is list:
        return {"L": [serialize(v) for v in value]}
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, _BINARY):
        return {"B": _binary(value)}
    if isinstance(value, collections.abc.Set):
        # like boto3: an empty set is a number set; a float anywhere in the set raises
        if all(_is_number(v) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, str) for v in value):
            return {"SS": list(value)}
        if all(isinstance(v, _BINARY) for v in value):
            return {"BS": [_binary(v) for v in value]}
    elif isinstance(value, collections.abc.Mapping):
        return {"M": {k: serialize(v) for k, v in value.items()}}
    elif isinstance(value, (list, tuple)):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def _deserialize_number(value: str) -> Decimal:
    return DYNAMODB_CONTEXT.create_decimal(value)


_READERS: dict[str, Any] = {
    "S": lambda v: v,
    "N": _deserialize_number,
    "BOOL": lambda v: v,
    "NULL": lambda v: None,
    "B": Binary,
    "SS": set,
    "NS": lambda v: set(map(_deserialize_number, v)),
    "BS": lambda v: set(map(Binary, v)),
    "L": lambda v: [deserialize(x) for x in v],
    "M": lambda v: {k: deserialize(x) for k, x in v.items()},
}


def deserialize(value: dict[str, Any]) -> Any:
    """The Python value of a DynamoDB attribute value (``N`` → Decimal, ``B`` → :class:`Binary`)."""
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind = next(iter(value))
    reader = _READERS.get(kind)
    if reader is None:
        raise TypeError(f"Dynamodb type {kind} is not supported")
    return reader(value[kind])
