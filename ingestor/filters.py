"""Payload filters: an endpoint's `filter` document, validated and compiled once, when it
is written, to one jsonpath predicate that routing evaluates in SQL (PostgreSQL decides;
Python never evaluates a filter). Pure, but for `explain`.

The subject of an event is `{"type": ..., "data": <payload>, "headers": {...}}` (header
names lower-case; `{}` for an event not from a source). It is never built as one
document: the compiled path reads `data` as the root `$` and `type` and `headers` as
the variables `$"type"` and `$"headers"`, and is evaluated as
`jsonb_path_match(payload, filter_path, {"type": ..., "headers": ...}, silent => true)`
(MATCH below), so the payload is matched where it is stored, never copied per endpoint.
A filter document is an object:
- a field name (a key not starting with `$`) holding an object is a document one level
  down; holding a scalar, `$eq` that scalar; holding an array, refused (use `$in`). A key
  is one name, dots included: nest objects to go deeper. A key starting with `$` cannot
  be addressed. The top has only type, data and headers; type and each header are
  strings, without fields; header names are lower-case.
- `$and`, `$or`: a non-empty array of documents at the same place; `$not`: one document.
- comparisons of the value at that place (so never at the top): `$eq`, `$neq` (a
  scalar), `$gt`, `$gte`, `$lt`, `$lte` (a number or a string), `$in`, `$nin` (a
  non-empty array of scalars), `$startsWith`, `$endsWith` (a string), `$exist` (true: the
  field is present, even as null; false: absent).
The keys of a document must all hold. No document is empty: null is no filter.

A condition compiles to `exists(<field> ? (@ <test>))` (`$exist`: `exists(<field>)`),
true or false, never unknown, so `!` negates it exactly:
- a missing field, null (but for `$eq null`) or a value of another type (the string "1"
  against the number 1) matches no comparison; `$neq v` is `!($eq v)`, `$nin` is
  `!($in)`: both match a missing field, null and other types.
- arrays (lax mode): an array matches when one of its elements does, or an element of an
  element array (`[[2]]` equals 2, `[[[2]]]` does not): `"x"` matches `["x", "y"]` and
  `$neq "x"` does not; `[]` matches only `$exist: true`, `$neq`, `$nin`. A field below an
  array of objects (`data.items.sku`) is each element's. Two conditions on one field may
  hold on different elements (`[1, 10]` has `$gte 5` and `$lt 6`).
- numbers compare as PostgreSQL numerics, exactly, with operands rendered as received:
  an int in full, an orjson.Fragment as written (ingestor.validation.decode_json keeps
  2**64, 1e400 or 0.10000000000000000001 so), a float by repr, the shortest text that
  reads back as that double (what was written, up to 15 significant digits; orjson.loads
  makes such floats of longer numbers, so parse filters with decode_json).
- strings compare by code point, whatever the collation ("B" < "a"). `$startsWith` is
  `starts with`; `$endsWith` a `like_regex` with every ASCII character but letters and
  digits backslash-escaped, anchored with `$` (the end of the text, not of a line).
  Names and strings are jsonpath string literals (`"`, `\\` and control characters
  escaped): nothing in a filter is read as syntax. NUL and lone surrogates are refused.
Bounds are the MAX_* constants; a filter beyond one, or wrong, is an ApiError(400) naming
the place: `filter.data.amount.$gte: must be a number or a string`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from ingestor import queries_filters as queries
from ingestor.errors import ApiError
from ingestor.validation import decode_json

MAX_DEPTH = 8  # documents within documents, the top one included
MAX_CONDITIONS = 50  # comparisons (leaves) in one filter
MAX_IN = 100  # items of a $in or $nin list
MAX_FIELD_NAME = 256  # characters of a field name
MAX_STRING = 1024  # characters of a string operand
MAX_NUMBER = 1024  # characters of a number operand's literal
MAX_EXPONENT = 1000  # a number's decimal exponent either way (numeric allows far more)
MAX_PATH = 32_768  # characters of the compiled jsonpath

SUBJECT_FIELDS = ("type", "data", "headers")
# Where each field of the subject is found by a compiled path: the payload is the root,
# the type and the headers are variables (see the module docstring).
_ROOTS = {"data": "$", "type": '$"type"', "headers": '$"headers"'}
_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_COMPARISONS = ("$eq", "$neq", *_ORDER, "$in", "$nin", "$startsWith", "$endsWith", "$exist")
_LOGICAL = ("$and", "$or", "$not")
_KNOWN = ", ".join((*_LOGICAL, *_COMPARISONS))
_SCALAR = "must be a string, a number, true, false or null"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_QUOTED = {ord('"'): '\\"', ord("\\"): "\\\\",
           **{c: f"\\u{c:04x}" for c in (*range(0x20), 0x7F)}}
_REGEX = {c: "\\" + chr(c) for c in range(128) if not chr(c).isalnum()}
_SHOWN = 100  # characters of an operand or a value quoted in a reason
_TOO_LONG = f"the filter compiles to more than {MAX_PATH} characters of jsonpath"


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison of a filter, for explanations."""

    field: str  # the field's names joined by dots, as written: "data.amount"
    operator: str  # "$gte", "$exist", ... (a bare scalar is "$eq")
    operand: Any
    path: str  # a jsonpath predicate of this condition alone (as MATCH evaluates it)
    target: str  # the jsonpath of the field: $."amount" (data), $"type", $"headers"."x"
    negated: bool  # under an odd number of $not: the filter wants it false


@dataclass(frozen=True, slots=True)
class Filter:
    """A validated filter: as written, compiled, and its conditions in document order."""

    document: dict[str, Any]
    path: str
    conditions: tuple[Condition, ...]


def _fail(where: str, message: str) -> ApiError:
    return ApiError(400, f"{where}: {message}")


def quote(text: str) -> str:
    """`text` as a jsonpath string literal (also a quoted key)."""
    return '"' + text.translate(_QUOTED) + '"'


def _text(value: str, where: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise _fail(where, f"{what} must be at most {limit} characters")
    if "\x00" in value:
        raise _fail(where, f"{what} must not contain NUL (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(where, f"{what} must be Unicode text (no lone surrogates)") from None
    return value


def _number(value: Any, where: str) -> str | None:
    """The exact jsonpath literal of a number operand; None for what is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | orjson.Fragment):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "must be a finite number")
    if isinstance(value, int) and value.bit_length() > 4 * MAX_NUMBER:  # str() would be slow
        raise _fail(where, f"a number must be at most {MAX_NUMBER} characters")
    text = (repr(value) if isinstance(value, float) else str(value) if isinstance(value, int)
            else orjson.dumps(value).decode())
    if not _NUMBER.fullmatch(text):  # a Fragment of something else
        raise _fail(where, _SCALAR)
    if len(text) > MAX_NUMBER:
        raise _fail(where, f"a number must be at most {MAX_NUMBER} characters")
    exact = Decimal(text)
    exponent = exact.as_tuple().exponent
    if exact.adjusted() > MAX_EXPONENT or int(exponent) < -MAX_EXPONENT:
        raise _fail(where, f"a number's exponent must be within -{MAX_EXPONENT} and "
                           f"{MAX_EXPONENT}")
    return text


def _scalar(value: Any, where: str, message: str = _SCALAR, ordered: bool = False) -> str:
    """A scalar operand as a jsonpath literal; `ordered`: numbers and strings only."""
    if isinstance(value, str):
        return quote(_text(value, where, MAX_STRING, "a string"))
    number = _number(value, where)
    if number is not None:
        return number
    if not ordered and (value is None or isinstance(value, bool)):
        return "null" if value is None else "true" if value else "false"
    raise _fail(where, message)


def _test(operator: str, operand: Any, where: str) -> str:
    """The filter expression on `@` of a comparison other than $exist."""
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list) or not 1 <= len(operand) <= MAX_IN:
            raise _fail(where, f"must be a non-empty array of at most {MAX_IN} scalars")
        return " || ".join(f"@ == {_scalar(item, f'{where}[{index}]')}"
                           for index, item in enumerate(operand))
    if operator in ("$startsWith", "$endsWith"):
        if not isinstance(operand, str):
            raise _fail(where, "must be a string")
        text = _text(operand, where, MAX_STRING, "a string")
        if operator == "$startsWith":
            return f"@ starts with {quote(text)}"
        return f"@ like_regex {quote(text.translate(_REGEX) + '$')}"
    if operator in _ORDER:
        literal = _scalar(operand, where, "must be a number or a string", ordered=True)
        return f"@ {_ORDER[operator]} {literal}"
    return f"@ == {_scalar(operand, where)}"


def _predicate(operator: str, operand: Any, target: str, where: str) -> str:
    if operator != "$exist":
        found = f"exists({target} ? ({_test(operator, operand, where)}))"
        return "!" + found if operator in ("$neq", "$nin") else found
    if not isinstance(operand, bool):
        raise _fail(where, "must be true or false")
    return f"exists({target})" if operand else f"!exists({target})"


def _field(key: str, where: str, fields: tuple[str, ...]) -> str:
    """`key` checked as the name of a field below `fields`."""
    _text(key, where, MAX_FIELD_NAME, "a field name")
    here = f"{where}.{key}"
    if not fields and key not in SUBJECT_FIELDS:
        raise _fail(here, f"unknown field; the subject has {', '.join(SUBJECT_FIELDS)} "
                          "(the payload is data)")
    if fields == ("type",) or (len(fields) == 2 and fields[0] == "headers"):
        raise _fail(here, f"{'.'.join(fields)} is a string: it has no fields")
    if fields == ("headers",) and key != key.lower():
        raise _fail(here, f"header names are lower-case: {key.lower()}")
    return here


class _Compiler:
    """Walks a filter document once, collecting its conditions and its jsonpath."""

    def __init__(self) -> None:
        self.conditions: list[Condition] = []
        self.size = 0

    def document(self, value: Any, where: str, fields: tuple[str, ...], depth: int,
                 negated: bool) -> str:
        if not isinstance(value, dict):
            raise _fail(where, "must be an object")
        if not value:
            raise _fail(where, "must not be empty" if depth > 1 else
                        "must not be empty: null is no filter")
        if depth > MAX_DEPTH:
            raise _fail(where, f"nested deeper than {MAX_DEPTH} levels")
        return _join([self.entry(key, item, where, fields, depth, negated)
                      for key, item in value.items()], " && ")

    def entry(self, key: str, item: Any, where: str, fields: tuple[str, ...], depth: int,
              negated: bool) -> str:
        if not key.startswith("$"):
            here, below = _field(key, where, fields), (*fields, key)
            if isinstance(item, dict):
                return self.document(item, here, below, depth + 1, negated)
            if isinstance(item, list):
                raise _fail(here, 'an array is no value to compare: use {"$in": [...]}')
            return self.leaf("$eq", item, here, below, negated)
        here = f"{where}.{key[:40]}"
        if key in _LOGICAL:
            return self.logical(key, item, here, fields, depth, negated)
        if key not in _COMPARISONS:
            hint = " (did you mean $exist?)" if key == "$exists" else ""
            raise _fail(here, f"unknown operator{hint}; known: {_KNOWN}")
        if not fields:
            raise _fail(here, "an operator needs a field: the subject has "
                              f"{', '.join(SUBJECT_FIELDS)}")
        return self.leaf(key, item, here, fields, negated)

    def logical(self, key: str, item: Any, where: str, fields: tuple[str, ...], depth: int,
                negated: bool) -> str:
        if key == "$not":
            return f"!({self.document(item, where, fields, depth + 1, not negated)})"
        if not isinstance(item, list) or not 1 <= len(item) <= MAX_CONDITIONS:
            raise _fail(where, f"must be a non-empty array of at most {MAX_CONDITIONS} "
                               "filter objects")
        parts = [self.document(sub, f"{where}[{index}]", fields, depth + 1, negated)
                 for index, sub in enumerate(item)]
        return _join(parts, " && " if key == "$and" else " || ")

    def leaf(self, operator: str, operand: Any, where: str, fields: tuple[str, ...],
             negated: bool) -> str:
        if len(self.conditions) == MAX_CONDITIONS:
            raise _fail(where, f"a filter holds at most {MAX_CONDITIONS} conditions")
        target = _ROOTS[fields[0]] + "".join("." + quote(name) for name in fields[1:])
        predicate = _predicate(operator, operand, target, where)
        self.size += len(predicate) + 8
        if self.size > MAX_PATH:
            raise _fail(where, _TOO_LONG)
        self.conditions.append(Condition(".".join(fields), operator, _writable(operand),
                                         predicate, target, negated))
        return predicate


def _writable(value: Any) -> Any:
    """`value` as orjson can write it: an int beyond 64 bits becomes its digits."""
    if isinstance(value, list):
        return [_writable(item) for item in value]
    if isinstance(value, int) and not -(2 ** 63) <= value < 2 ** 64:
        return orjson.Fragment(str(value))
    return value


def _join(parts: list[str], operator: str) -> str:
    return parts[0] if len(parts) == 1 else "(" + operator.join(parts) + ")"


def parse_filter(value: Any) -> Filter | None:
    """The filter of an endpoint's `filter` field: None for null, else validated and
    compiled, or ApiError(400) naming the faulty place."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("filter", "must be an object, or null for no filter")
    compiler = _Compiler()
    path = compiler.document(value, "filter", (), 1, False)
    if len(path) > MAX_PATH:
        raise _fail("filter", _TOO_LONG)
    return Filter(value, path, tuple(compiler.conditions))


def subject(event_type: str, payload: Any,
            headers: Mapping[str, str] | None) -> dict[str, Any]:
    """The document a filter matches for an event. `payload` is the payload object, or
    its JSON text as stored (kept as it is, numbers exact)."""
    data = orjson.Fragment(payload) if isinstance(payload, str | bytes) else payload
    return {"type": event_type, "data": data,
            "headers": {name.lower(): value for name, value in (headers or {}).items()}}


async def explain(conn: asyncpg.Connection, flt: Filter, subject_json: str) -> dict[str, Any]:
    """PostgreSQL's verdict of `flt` on a subject (JSON text), with each condition's own
    verdict and the value found at its field, and a reason when it does not match."""
    row = await conn.fetchrow(queries.EXPLAIN, subject_json, flt.path,
                              [c.path for c in flt.conditions],
                              [c.target for c in flt.conditions])
    conditions = [
        {"field": c.field, "operator": c.operator, "operand": c.operand,
         "matched": matched, "present": present,
         "actual": None if actual is None else decode_json(actual.encode())}
        for c, matched, present, actual in zip(flt.conditions, row["matched"],
                                               row["present"], row["actual"], strict=True)]
    matches = bool(row["matches"])
    return {"matches": matches, "conditions": conditions,
            "reason": None if matches else _reason(flt.conditions, conditions)}


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _reason(conditions: tuple[Condition, ...], verdicts: list[dict[str, Any]]) -> str:
    """The first conditions that went against the match (false, or true under $not)."""
    against = [(c, v) for c, v in zip(conditions, verdicts, strict=True)
               if v["matched"] == c.negated]
    if not against:  # cannot happen for a formula of these conditions; PostgreSQL rules
        return "the filter does not match"
    told = [f"{c.field} {c.operator} {_shown(c.operand)} "
            f"{'holds under $not' if c.negated else 'does not hold'} "
            f"({'found ' + _shown(v['actual']) if v['present'] else 'field absent'})"
            for c, v in against[:3]]
    more = f"; and {len(against) - 3} more" if len(against) > 3 else ""
    return "the filter does not match: " + "; ".join(told) + more
