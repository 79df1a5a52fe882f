"""Shapes defined once: a record's JSON rendering and its JSON Schema come from the same
frozen dataclass.

A record (ingestor.records) lists the fields the API shows, in the order it shows them.
`to_json(record)` renders one; `schema_of(cls)` describes it for the OpenAPI document:
each field's schema is derived from its type (str, int, float, bool, UUID, datetime,
Literal[...], X | None, tuple[X, ...], a nested record) with the keywords its `show()`
metadata adds, or is the schema given there. Also the small schema helpers the document
modules build with.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID as _Uuid

import orjson

Schema = dict[str, Any]
_META = "shape"


# -- schema helpers -------------------------------------------------------------------

def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(**keywords: Any) -> Schema:
    return {"type": "string", **keywords}


def integer(**keywords: Any) -> Schema:
    return {"type": "integer", **keywords}


def number(**keywords: Any) -> Schema:
    return {"type": "number", **keywords}


def boolean(**keywords: Any) -> Schema:
    return {"type": "boolean", **keywords}


def array(items: Schema, **keywords: Any) -> Schema:
    return {"type": "array", "items": items, **keywords}


def const(value: str | bool) -> Schema:
    return {"const": value}


def enum(values: tuple[str, ...] | list[str], **keywords: Any) -> Schema:
    return {"type": "string", "enum": list(values), **keywords}


def nullable(schema: Schema) -> Schema:
    """The same schema, also allowing null (OpenAPI 3.1: a type list)."""
    if "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    widened = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        widened["enum"] = [*schema["enum"], None]
    return widened


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, *,
        closed: bool = False, **keywords: Any) -> Schema:
    """An object with these properties, those in `required` always present."""
    schema: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return {**schema, **keywords}


UUID = string(format="uuid")
TIME = string(format="date-time")


# -- records --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class _Shown:
    schema: Schema | None
    raw: bool
    flatten: bool
    keywords: dict[str, Any]


def show(schema: Schema | None = None, *, raw: bool = False, flatten: bool = False,
         **keywords: Any) -> dict[str, Any]:
    """A record field's metadata, for `dataclasses.field(metadata=show(...))`: its
    schema derived from its type with `keywords` added, or `schema` as given; `raw`: a
    JSON text shown as it is (never parsed); `flatten`: a record whose fields are shown
    in place of this one (a later field of the same name replaces it where it stands)."""
    return {_META: _Shown(schema, raw, flatten, keywords)}


def _shown(f: dataclasses.Field[Any]) -> _Shown:
    found = f.metadata.get(_META)
    return found if isinstance(found, _Shown) else _Shown(None, False, False, {})


@cache
def _layout(cls: type) -> tuple[tuple[str, _Shown], ...]:
    return tuple((f.name, _shown(f)) for f in dataclasses.fields(cls))


def to_json(value: Any) -> Any:
    """A record (or a list or dict holding records) as the API shows it, JSON-ready."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for name, shown in _layout(type(value)):
            item = getattr(value, name)
            if shown.flatten:
                out.update(to_json(item))
            elif shown.raw:
                out[name] = None if item is None else orjson.Fragment(item)
            else:
                out[name] = to_json(item)
        return out
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, _Uuid):
        return str(value)
    return value


def schema_of(cls: type, **keywords: Any) -> Schema:
    """The JSON Schema of a record's rendering: every field present."""
    return obj(_properties(cls), **keywords)


def _properties(cls: type) -> dict[str, Schema]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Schema] = {}
    for name, shown in _layout(cls):
        if shown.flatten:
            props.update(_properties(hints[name]))
        else:
            props[name] = shown.schema or _derive(hints[name], shown.keywords)
    return props


def _derive(tp: Any, keywords: dict[str, Any]) -> Schema:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1, tp
        return nullable(_derive(rest[0], keywords))
    if origin is Literal:
        return enum([str(a) for a in args], **keywords)
    if origin in (tuple, list):
        return array(_derive(args[0], {}), **keywords)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return schema_of(tp, **keywords)
    simple: dict[Any, Schema] = {bool: boolean(), int: integer(), float: number(),
                                 str: string(), _Uuid: UUID, datetime: TIME}
    assert tp in simple, f"no schema for {tp!r}: give one with show(schema)"
    return {**simple[tp], **keywords}
