"""Revoke request validation and lineage traversal (no AWS)."""

from __future__ import annotations

import pytest

from stepless.errors import BadRequest
from stepless.services import revoke


@pytest.mark.parametrize(("value", "expected"), [("1", "1"), ("007", "7"), ("3" * 40, "3" * 40)])
def test_serial(value, expected):
    assert revoke._serial(value) == expected


@pytest.mark.parametrize("value", [None, "", "a1", "-1", "1.0", " 1", "１", 5, "9" * 51])
def test_bad_serial(value):
    with pytest.raises(BadRequest):
        revoke._serial(value)


def test_reason_code():
    assert revoke._reason_code(None) == 0
    assert [revoke._reason_code(i) for i in range(11)] == list(range(11))
    for bad in (-1, 11, "1", 1.0, True):
        with pytest.raises(BadRequest):
            revoke._reason_code(bad)


def test_reason_and_flags():
    assert revoke._reason(None) == ""
    with pytest.raises(BadRequest):
        revoke._reason(3)
    with pytest.raises(BadRequest):
        revoke._reason("x" * 2000)
    assert revoke._flag({}, "lineage", False) is False
    assert revoke._flag({"passive": None}, "passive", True) is True
    with pytest.raises(BadRequest):
        revoke._flag({"lineage": "yes"}, "lineage", False)


def test_descendants_breadth_first_and_cycle_safe():
    links = {"a": ["b", "x"], "b": ["c"], "c": ["d", "a"], "x": [], "z": ["y"]}
    children = lambda serial: links.get(serial, [])  # noqa: E731
    assert revoke.descendants("a", children) == ["b", "x", "c", "d"]
    assert revoke.descendants("c", children) == ["d", "a", "b", "x"]
    assert revoke.descendants("q", children) == []
