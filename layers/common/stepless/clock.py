"""The one source of "now" (UTC). Tests replace it with :func:`freeze`."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

_offset = dt.timedelta(0)
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    """The current time, timezone-aware UTC, with microseconds dropped."""
    if _frozen is not None:
        return _frozen
    return (dt.datetime.now(dt.UTC) + _offset).replace(microsecond=0)


@contextlib.contextmanager
def freeze(at: dt.datetime) -> Iterator[None]:
    """Pin :func:`now` to ``at`` inside the block."""
    global _frozen
    previous, _frozen = _frozen, at
    try:
        yield
    finally:
        _frozen = previous


@contextlib.contextmanager
def shift(by: dt.timedelta) -> Iterator[None]:
    """Move :func:`now` by ``by`` inside the block (a clock running ahead or behind)."""
    global _offset
    previous, _offset = _offset, _offset + by
    try:
        yield
    finally:
        _offset = previous
