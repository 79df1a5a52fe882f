"""Keyset page cursors: a list's position as opaque unpadded base64url text.

A position is the sort key of the last row of a page (an id, or a time and an id).
Operations take the cursor text a previous page returned and return the next one, so
the HTTP API, a command line and the console page alike.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ingestor import patterns
from ingestor.errors import Invalid

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BAD_CURSOR = "cursor is not valid: pass back a next_cursor from a previous page"


@dataclass(frozen=True, slots=True)
class CursorShape:
    """A list's page cursors: a position of `size` bytes as unpadded base64url. Every
    string that matches `pattern` (which the document states) is a position."""

    size: int
    pattern: str


# A delivery or an alert id: any 64-bit integer is a position.
ID_CURSOR = CursorShape(8, r"^[A-Za-z0-9_-]{11}$")
# An event id: any 16 bytes are a position.
UUID_CURSOR = CursorShape(16, r"^[A-Za-z0-9_-]{22}$")
# (microseconds since 1970, delivery id); the first byte of the time is zero, so every
# position's time falls between 1970 and 4253.
TIME_ID_CURSOR = CursorShape(16, r"^A[A-P][A-Za-z0-9_-]{20}$")


def encode_cursor(position: bytes) -> str:
    """An opaque page cursor holding `position`."""
    return base64.urlsafe_b64encode(position).rstrip(b"=").decode()


def decode_cursor_text(raw: str | None, shape: CursorShape) -> bytes | None:
    """The position in cursor text `raw` (None: the first page), or Invalid."""
    if raw is None:
        return None
    if not patterns.matches(shape.pattern, raw):
        raise Invalid("cursor is not valid: pass back a next_cursor from a previous "
                      "page of the same list")
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    assert len(data) == shape.size, (shape, raw)
    return data


def int_position(*values: int) -> bytes:
    """A page position of big-endian 64-bit integers."""
    return struct.pack(f">{len(values)}q", *values)


def int_cursor(raw: str | None, shape: CursorShape) -> tuple[int, ...] | None:
    """The 64-bit integers of cursor text `raw`, None without one."""
    data = decode_cursor_text(raw, shape)
    return None if data is None else struct.unpack(f">{shape.size // 8}q", data)


def micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise Invalid(_BAD_CURSOR) from None


def page_of(rows: Sequence[T], limit: int,
            position: Callable[[T], bytes]) -> tuple[Sequence[T], str | None]:
    """A keyset page from `limit + 1` rows: the first `limit`, and the cursor after the
    last of them when the extra row shows there is more."""
    page = rows[:limit]
    return page, encode_cursor(position(page[-1])) if len(rows) > limit else None
