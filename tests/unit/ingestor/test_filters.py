"""Filters are refused with a message naming the faulty place, or compiled to one jsonpath
predicate with their conditions in document order (their meaning is checked on
PostgreSQL in tests/integration/test_filters.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingestor.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_FIELD_NAME,
    MAX_IN,
    MAX_PATH,
    MAX_STRING,
    Condition,
    parse_filter,
    quote,
    subject,
)
from ingestor.http import ApiError
from ingestor.validation import decode_json

SCALAR = "must be a string, a number, true, false or null"
ORDERED = "must be a number or a string"


def _error(value: Any) -> str:
    with pytest.raises(ApiError) as caught:
        parse_filter(value)
    assert caught.value.status == 400
    return caught.value.message


def _deep(levels: int) -> dict[str, Any]:
    document: dict[str, Any] = {"$eq": 1}
    for _ in range(levels - 2):
        document = {"k": document}
    return {"data": document}


REFUSED: list[tuple[Any, str]] = [
    ([], "filter: must be an object, or null for no filter"),
    ("type", "filter: must be an object, or null for no filter"),
    (1, "filter: must be an object, or null for no filter"),
    ({}, "filter: must not be empty: null is no filter"),
    ({"data": {}}, "filter.data: must not be empty"),
    ({"data": {"$not": {}}}, "filter.data.$not: must not be empty"),
    ({"amount": 1}, "filter.amount: unknown field; the subject has type, data, headers "
                    "(the payload is data)"),
    ({"$eq": 1}, "filter.$eq: an operator needs a field: the subject has type, data, headers"),
    ({"$exist": True}, "filter.$exist: an operator needs a field: the subject has type, data, "
                       "headers"),
    ({"$or": [{"$gt": 1}]}, "filter.$or[0].$gt: an operator needs a field: the subject has "
                            "type, data, headers"),
    ({"data": {"$foo": 1}}, "filter.data.$foo: unknown operator; known: $and, $or, $not, $eq, "
                            "$neq, $gt, $gte, $lt, $lte, $in, $nin, $startsWith, $endsWith, "
                            "$exist"),
    ({"data": {"x": {"$exists": True}}}, "filter.data.x.$exists: unknown operator (did you "
                                         "mean $exist?); known: $and, $or, $not, $eq, $neq, "
                                         "$gt, $gte, $lt, $lte, $in, $nin, $startsWith, "
                                         "$endsWith, $exist"),
    ({"data": {"tags": ["a", "b"]}}, 'filter.data.tags: an array is no value to compare: use '
                                     '{"$in": [...]}'),
    ({"data": {"tags": []}}, 'filter.data.tags: an array is no value to compare: use '
                             '{"$in": [...]}'),
    ({"$or": []}, "filter.$or: must be a non-empty array of at most 50 filter objects"),
    ({"$and": {"type": "a"}}, "filter.$and: must be a non-empty array of at most 50 filter "
                              "objects"),
    ({"$or": [{"type": "a"}, 1]}, "filter.$or[1]: must be an object"),
    ({"data": {"$and": [{"a": 1}, []]}}, "filter.data.$and[1]: must be an object"),
    ({"$not": [{"type": "a"}]}, "filter.$not: must be an object"),
    ({"$not": "a"}, "filter.$not: must be an object"),
    ({"data": {"x": {"$eq": [1]}}}, f"filter.data.x.$eq: {SCALAR}"),
    ({"data": {"x": {"$eq": {"a": 1}}}}, f"filter.data.x.$eq: {SCALAR}"),
    ({"data": {"x": {"$neq": [1]}}}, f"filter.data.x.$neq: {SCALAR}"),
    ({"data": {"x": {"$neq": {}}}}, f"filter.data.x.$neq: {SCALAR}"),
    *[({"data": {"amount": {op: bad}}}, f"filter.data.amount.{op}: {ORDERED}")
      for op in ("$gt", "$gte", "$lt", "$lte") for bad in (True, None, [1], {"a": 1})],
    *[({"data": {"x": {op: bad}}}, f"filter.data.x.{op}: must be a non-empty array of at "
                                   f"most {MAX_IN} scalars")
      for op in ("$in", "$nin") for bad in ([], 1, "a", None, {"a": 1}, list(range(MAX_IN + 1)))],
    ({"data": {"x": {"$in": [1, [2]]}}}, f"filter.data.x.$in[1]: {SCALAR}"),
    ({"data": {"x": {"$nin": ["a", {"b": 1}]}}}, f"filter.data.x.$nin[1]: {SCALAR}"),
    *[({"data": {"x": {op: bad}}}, f"filter.data.x.{op}: must be a string")
      for op in ("$startsWith", "$endsWith") for bad in (1, None, True, ["a"], {"a": "b"})],
    *[({"data": {"x": {"$exist": bad}}}, "filter.data.x.$exist: must be true or false")
      for bad in (1, 0, "true", None, [True])],
    ({"type": {"x": 1}}, "filter.type.x: type is a string: it has no fields"),
    ({"headers": {"x-a": {"b": 1}}}, "filter.headers.x-a.b: headers.x-a is a string: it has "
                                     "no fields"),
    ({"headers": {"X-GitHub-Event": "push"}}, "filter.headers.X-GitHub-Event: header names "
                                              "are lower-case: x-github-event"),
    ({"data": {"x": "a\x00b"}}, "filter.data.x: a string must not contain NUL (\\u0000)"),
    ({"data": {"x": {"$in": ["ok", "\x00"]}}}, "filter.data.x.$in[1]: a string must not "
                                                "contain NUL (\\u0000)"),
    ({"data": {"x": {"$endsWith": "\x00"}}}, "filter.data.x.$endsWith: a string must not "
                                              "contain NUL (\\u0000)"),
    ({"data": {"a\x00b": 1}}, "filter.data: a field name must not contain NUL (\\u0000)"),
    ({"data": {"x": "\ud800"}}, "filter.data.x: a string must be Unicode text (no lone "
                                "surrogates)"),
    ({"data": {"\udfff": 1}}, "filter.data: a field name must be Unicode text (no lone "
                              "surrogates)"),
    ({"data": {"x": "s" * (MAX_STRING + 1)}}, f"filter.data.x: a string must be at most "
                                              f"{MAX_STRING} characters"),
    ({"data": {"x": {"$startsWith": "s" * (MAX_STRING + 1)}}},
     f"filter.data.x.$startsWith: a string must be at most {MAX_STRING} characters"),
    ({"data": {"k" * (MAX_FIELD_NAME + 1): 1}}, f"filter.data: a field name must be at most "
                                                f"{MAX_FIELD_NAME} characters"),
    ({"data": {"x": float("nan")}}, "filter.data.x: must be a finite number"),
    ({"data": {"x": {"$gt": float("inf")}}}, "filter.data.x.$gt: must be a finite number"),
    ({"data": {"x": 10 ** 1001}}, "filter.data.x: a number's exponent must be within -1000 "
                                  "and 1000"),
    ({"data": {"x": 10 ** 5000}}, "filter.data.x: a number must be at most 1024 characters"),
    ({"data": {"x": orjson.Fragment(b"1e1001")}}, "filter.data.x: a number's exponent must "
                                                  "be within -1000 and 1000"),
    ({"data": {"x": orjson.Fragment(b"1.5e-1000")}}, "filter.data.x: a number's exponent "
                                                     "must be within -1000 and 1000"),
    ({"data": {"x": orjson.Fragment(b"1) || true")}}, f"filter.data.x: {SCALAR}"),
    (_deep(MAX_DEPTH + 1), "filter.data" + ".k" * (MAX_DEPTH - 1) + ": nested deeper than 8 "
                                                                    "levels"),
]


@pytest.mark.parametrize(("value", "message"), REFUSED)
def test_refused_with_the_faulty_place(value: Any, message: str) -> None:
    assert _error(value) == message


def test_null_is_no_filter() -> None:
    assert parse_filter(None) is None


def test_the_bounds_themselves_are_accepted() -> None:
    at_depth = parse_filter(_deep(MAX_DEPTH))
    assert at_depth is not None and at_depth.conditions[0].field == "data" + ".k" * 6
    fifty = parse_filter({"data": {f"f{i}": i for i in range(MAX_CONDITIONS)}})
    assert fifty is not None and len(fifty.conditions) == MAX_CONDITIONS
    listed = parse_filter({"data": {"x": {"$in": list(range(MAX_IN))}}})
    assert listed is not None and listed.path.count("@ ==") == MAX_IN
    long = parse_filter({"data": {"k" * MAX_FIELD_NAME: "s" * MAX_STRING}})
    assert long is not None and len(long.path) > MAX_FIELD_NAME + MAX_STRING


def test_too_many_conditions_names_the_first_one_over() -> None:
    many = {"data": {f"f{i}": i for i in range(MAX_CONDITIONS + 1)}}
    assert _error(many) == f"filter.data.f{MAX_CONDITIONS}: a filter holds at most 50 conditions"
    spread = {"$or": [{"data": {f"f{i}": i}} for i in range(MAX_CONDITIONS)]
              + [{"type": "a"}]}
    assert _error(spread) == "filter.$or: must be a non-empty array of at most 50 filter objects"
    nested = {"$or": [{"data": {"a": {"$in": [1, 2]}, "b": 2}}] * 25 + [{"type": "x"}]}
    assert _error(nested) == "filter.$or[25].type: a filter holds at most 50 conditions"


def test_total_compiled_length_is_bounded() -> None:
    long_items = ["\x01" * MAX_STRING] * MAX_IN  # each character escaped as six
    message = _error({"data": {"x": {"$in": long_items}}})
    assert message == f"filter.data.x.$in: the filter compiles to more than {MAX_PATH} " \
                      "characters of jsonpath"
    few = parse_filter({"data": {"x": {"$in": long_items[:4]}}})
    assert few is not None and len(few.path) <= MAX_PATH


def test_operator_names_are_cut_in_messages() -> None:
    assert _error({"data": {"$" + "z" * 10_000: 1}}).startswith("filter.data.$" + "z" * 39
                                                               + ": unknown operator")


def test_several_keys_are_anded_in_document_order() -> None:
    flt = parse_filter({"type": "order.paid", "data": {"amount": {"$gte": 100, "$lt": 500},
                                                       "currency": {"$in": ["EUR", "USD"]}}})
    assert flt is not None
    assert [(c.field, c.operator, c.operand) for c in flt.conditions] == [
        ("type", "$eq", "order.paid"), ("data.amount", "$gte", 100),
        ("data.amount", "$lt", 500), ("data.currency", "$in", ["EUR", "USD"])]
    assert flt.path == ('(exists($"type" ? (@ == "order.paid")) && ('
                        '(exists($."amount" ? (@ >= 100)) && '
                        'exists($."amount" ? (@ < 500))) && '
                        'exists($."currency" ? (@ == "EUR" || @ == "USD"))))')


def test_negations_compile_to_exists_negated() -> None:
    flt = parse_filter({"data": {"a": {"$neq": None}, "b": {"$nin": [1]},
                                 "c": {"$exist": False}, "$not": {"d": {"$exist": True}}}})
    assert flt is not None
    assert [c.path for c in flt.conditions] == [
        '!exists($."a" ? (@ == null))', '!exists($."b" ? (@ == 1))',
        '!exists($."c")', 'exists($."d")']
    assert [c.negated for c in flt.conditions] == [False, False, False, True]
    assert flt.path.endswith('!(exists($."d")))')


def test_negated_counts_the_nots_above() -> None:
    flt = parse_filter({"$not": {"$or": [{"type": "a"}, {"$not": {"data": {"x": 1}}}]}})
    assert flt is not None
    assert [(c.field, c.negated) for c in flt.conditions] == [("type", True), ("data.x", False)]
    assert [c.target for c in flt.conditions] == ['$"type"', '$."x"']


@pytest.mark.parametrize(("value", "literal"), [
    (1, "1"), (-7, "-7"), (2 ** 64, "18446744073709551616"), (-(10 ** 300), "-1" + "0" * 300),
    (0.5, "0.5"), (-0.5, "-0.5"), (1e16, "1e+16"), (1e-7, "1e-07"), (-0.0, "-0.0"),
    (orjson.Fragment(b"1E400"), "1E400"), (orjson.Fragment("0.10000000000000000001"),
                                           "0.10000000000000000001"),
    (True, "true"), (False, "false"), (None, "null"),
])
def test_scalar_literals_are_exact(value: Any, literal: str) -> None:
    flt = parse_filter({"data": {"n": value}})
    assert flt is not None and flt.path == f'exists($."n" ? (@ == {literal}))'


def test_decode_json_keeps_the_digits_of_a_filter() -> None:
    flt = parse_filter(decode_json(b'{"data": {"n": {"$in": [1e400, 18446744073709551617, '
                                   b'0.10000000000000000001]}}}'))
    assert flt is not None
    assert flt.path == ('exists($."n" ? (@ == 1e400 || @ == 18446744073709551617 || '
                        '@ == 0.10000000000000000001))')


@pytest.mark.parametrize(("text", "literal"), [
    ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("it's", '"it\'s"'), ("$@?)(", '"$@?)("'),
    ("l1\nl2\r\t", '"l1\\u000al2\\u000d\\u0009"'), ("\x7f\x1f", '"\\u007f\\u001f"'),
    ("é 😀 שלום", '"é 😀 שלום"'), ("\u2028", '"\u2028"'),
])
def test_strings_and_keys_are_quoted(text: str, literal: str) -> None:
    assert quote(text) == literal
    flt = parse_filter({"data": {"k" + text: text}})
    key = '"k' + literal[1:]
    assert flt is not None and flt.path == f"exists($.{key} ? (@ == {literal}))"


def test_ends_with_escapes_every_ascii_symbol() -> None:
    flt = parse_filter({"data": {"f": {"$endsWith": "a.b*(\\$ é9"}}})
    assert flt is not None
    assert flt.path == r'exists($."f" ? (@ like_regex "a\\.b\\*\\(\\\\\\$\\ é9$"))'


def test_the_document_is_kept_as_given() -> None:
    document = {"data": {"a.b": 1, "": {"$exist": True}}}
    flt = parse_filter(document)
    assert flt is not None and flt.document is document
    assert [c.field for c in flt.conditions] == ["data.a.b", "data."]
    assert flt.conditions[0] == Condition("data.a.b", "$eq", 1, 'exists($."a.b" ? (@ == 1))',
                                          '$."a.b"', False)


def test_subject_shape() -> None:
    assert subject("t", {"a": 1}, None) == {"type": "t", "data": {"a": 1}, "headers": {}}
    assert subject("t", {}, {"X-GitHub-Event": "push"})["headers"] == {"x-github-event": "push"}
    stored = subject("t", '{"n": 1e400}', {})
    assert orjson.dumps(stored) == b'{"type":"t","data":{"n": 1e400},"headers":{}}'
