"""A record's JSON and its schema come from one definition (ingestor.shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import orjson
import pytest

from ingestor.shapes import const, schema_of, show, to_json


@dataclass(frozen=True, slots=True)
class Inner:
    n: int = field(metadata=show(minimum=1))
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Base:
    id: UUID
    state: Literal["on", "off"]
    count: int
    tags: tuple[str, ...] | None
    inner: tuple[Inner, ...]
    raw: str = field(metadata=show({"type": "object"}, raw=True))


@dataclass(frozen=True, slots=True)
class Detail:
    base: Base = field(metadata=show(flatten=True))
    count: tuple[Inner, ...] = field(metadata=show(description="in place of the count"))
    extra: bool = field(default=True, metadata=show(const(True)))


AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ID = UUID("01234567-89ab-7def-8123-456789abcdef")


def test_schema_follows_the_types_and_the_metadata() -> None:
    schema = schema_of(Base)
    assert schema["required"] == ["id", "state", "count", "tags", "inner", "raw"]
    props = schema["properties"]
    assert props["id"] == {"type": "string", "format": "uuid"}
    assert props["state"] == {"type": "string", "enum": ["on", "off"]}
    assert props["count"] == {"type": "integer"}
    assert props["tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert props["raw"] == {"type": "object"}
    inner = props["inner"]["items"]
    assert inner["properties"] == {
        "n": {"type": "integer", "minimum": 1},
        "at": {"type": ["string", "null"], "format": "date-time"}}


def test_flattened_fields_keep_their_place_and_a_later_one_replaces_its_namesake() -> None:
    schema = schema_of(Detail)
    assert list(schema["properties"]) == ["id", "state", "count", "tags", "inner", "raw",
                                          "extra"]
    assert schema["properties"]["count"]["type"] == "array"
    assert schema["properties"]["extra"] == {"const": True}
    detail = Detail(Base(ID, "on", 2, None, (Inner(1, AT),), '{"a": 1e400}'),
                    (Inner(2, None),))
    shown = to_json(detail)
    assert list(shown) == list(schema["properties"])
    assert shown["count"] == [{"n": 2, "at": None}] and shown["id"] == str(ID)
    assert shown["extra"] is True
    # the raw JSON text goes out as it is stored: its numbers untouched
    assert b'"raw":{"a": 1e400}' in orjson.dumps(shown)


def test_a_type_without_a_schema_is_refused() -> None:
    @dataclass(frozen=True)
    class Odd:
        value: bytes

    with pytest.raises(AssertionError, match="no schema"):
        schema_of(Odd)
