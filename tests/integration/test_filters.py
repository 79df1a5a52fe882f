"""Filters on real PostgreSQL, evaluated as routing does (queries_filters.MATCH): every
operator, their combinations, missing fields, null, types that differ, exact numbers,
arrays, unicode, headers, injection attempts and regular-expression characters in
$endsWith; each verdict also checked through the stored (normalized) jsonpath and
against `explain`."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from ingestor.filters import Filter, explain, parse_filter, subject
from ingestor.queries_filters import MATCH
from ingestor.validation import decode_json

# As the routing statement evaluates an endpoint's filter (queries_filters.MATCH), and
# again through the text PostgreSQL prints for the stored jsonpath (what a filter_path
# column gives back).
ROUTE = ("SELECT (" + MATCH + "), (" + MATCH.replace("$2::text::jsonpath",
                                                    "$2::text::jsonpath::text::jsonpath") + ")")

F = orjson.Fragment
Case = tuple[str, dict[str, Any], bool]  # the payload (JSON text), a filter on data, verdict


def _compiled(document: dict[str, Any]) -> Filter:
    flt = parse_filter(document)
    assert flt is not None
    return flt


async def verdict(db: asyncpg.Connection, document: dict[str, Any], subject_json: str) -> bool:
    flt = _compiled(document)
    direct, stored = await db.fetchrow(ROUTE, subject_json, flt.path)
    assert isinstance(direct, bool) and stored is direct, (document, direct, stored)
    explained = await explain(db, flt, subject_json)
    assert explained["matches"] is direct
    assert all(isinstance(c["matched"], bool) for c in explained["conditions"])
    return direct


async def check(db: asyncpg.Connection, cases: list[Case], event_type: str = "order.created",
                headers: dict[str, str] | None = None) -> None:
    wrong = []
    for data, document, expected in cases:
        subject_json = orjson.dumps(subject(event_type, data, headers)).decode()
        got = await verdict(db, {"data": document}, subject_json)
        if got is not expected:
            wrong.append((data, document, f"expected {expected}, got {got}"))
    assert not wrong, "\n".join(map(repr, wrong))


EQUALITY: list[Case] = [
    ('{"a": 1}', {"a": 1}, True), ('{"a": 1}', {"a": 2}, False),
    ('{"a": "1"}', {"a": 1}, False), ('{"a": 1}', {"a": "1"}, False),
    ('{"a": 1.0}', {"a": 1}, True), ('{"a": 1}', {"a": {"$eq": 1}}, True),
    ('{"a": 1}', {"a": {"$neq": 1}}, False), ('{"a": 2}', {"a": {"$neq": 1}}, True),
    ('{}', {"a": {"$neq": 1}}, True), ('{"a": null}', {"a": {"$neq": 1}}, True),
    ('{"a": "1"}', {"a": {"$neq": 1}}, True), ('{}', {"a": 1}, False),
    ('{"a": null}', {"a": None}, True), ('{}', {"a": None}, False),
    ('{"a": 0}', {"a": None}, False), ('{"a": null}', {"a": {"$neq": None}}, False),
    ('{}', {"a": {"$neq": None}}, True), ('{"a": null}', {"a": 1}, False),
    ('{"a": false}', {"a": False}, True), ('{"a": false}', {"a": 0}, False),
    ('{"a": 0}', {"a": False}, False), ('{"a": true}', {"a": True}, True),
    ('{"a": true}', {"a": "true"}, False), ('{"a": "x"}', {"a": "x"}, True),
    ('{"a": "x"}', {"a": "X"}, False), ('{"a": "x "}', {"a": "x"}, False),
    ('{"a": {"b": {"c": "x"}}}', {"a": {"b": {"c": "x"}}}, True),
    ('{"a": {"b": {"c": "x"}}}', {"a": {"b": {"c": "y"}}}, False),
    ('{"a": {"b": 1}}', {"a": 1}, False), ('{"a": {"b": 1}}', {"a": {"$neq": 1}}, True),
    ('{"a": 1}', {"a": {"b": 1}}, False), ('{"a": 1}', {"a": {"b": {"$neq": 1}}}, True),
    ('{"a": 1, "b": 2}', {"a": 1, "b": 2}, True), ('{"a": 1, "b": 2}', {"a": 1, "b": 3}, False),
]

ORDER: list[Case] = [
    ('{"n": 5}', {"n": {"$gt": 4}}, True), ('{"n": 5}', {"n": {"$gt": 5}}, False),
    ('{"n": 5}', {"n": {"$gte": 5}}, True), ('{"n": 5}', {"n": {"$lt": 5}}, False),
    ('{"n": 5}', {"n": {"$lte": 5}}, True), ('{"n": 5}', {"n": {"$lt": 6}}, True),
    ('{"n": 5}', {"n": {"$gte": 4, "$lte": 6}}, True), ('{"n": 7}', {"n": {"$gte": 4, "$lte": 6}},
                                                         False),
    ('{"n": "5"}', {"n": {"$gt": 4}}, False), ('{"n": 5}', {"n": {"$gt": "4"}}, False),
    ('{"n": null}', {"n": {"$gt": 0}}, False), ('{"n": null}', {"n": {"$lt": 0}}, False),
    ('{}', {"n": {"$lt": 0}}, False), ('{"n": true}', {"n": {"$gt": 0}}, False),
    ('{"n": -1}', {"n": {"$lt": -0.5}}, True), ('{"s": "b"}', {"s": {"$gt": "a"}}, True),
    ('{"s": "b"}', {"s": {"$lt": "a"}}, False), ('{"s": "B"}', {"s": {"$gt": "a"}}, False),
    ('{"s": "ab"}', {"s": {"$lt": "abc"}}, True), ('{"s": "é"}', {"s": {"$gt": "z"}}, True),
    ('{"s": "😀"}', {"s": {"$gt": "\uffff"}}, True),  # code points, not UTF-16 units
    ('{"s": "\uffff"}', {"s": {"$lt": "😀"}}, True),
    ('{"s": "2024-05-01T00:00:00Z"}', {"s": {"$gte": "2024-01-01"}}, True),
    ('{"s": "10"}', {"s": {"$gt": "9"}}, False),  # strings compare as text
]

EXACT: list[Case] = [
    ('{"n": 1e400}', {"n": F("1e400")}, True), ('{"n": 1e400}', {"n": F("1E400")}, True),
    ('{"n": 1e400}', {"n": {"$gt": F("9.99e399")}}, True),
    ('{"n": 1e400}', {"n": {"$lt": 1.7976931348623157e308}}, False),
    ('{"n": 1e400}', {"n": {"$gt": 1e308}}, True), ('{"n": 1E400}', {"n": 10 ** 400}, True),
    ('{"n": 1e400}', {"n": 10 ** 400 + 1}, False),
    ('{"n": 18446744073709551616}', {"n": 2 ** 64}, True),
    ('{"n": 18446744073709551616}', {"n": 2 ** 64 + 1}, False),
    ('{"n": 18446744073709551616}', {"n": {"$gt": 2 ** 64 - 1}}, True),
    ('{"n": 18446744073709551617}', {"n": {"$gt": 2 ** 64}}, True),
    # orjson.loads reads 2**64 as the float 1.8446744073709552e+19, whose repr differs
    ('{"n": 18446744073709551616}', {"n": orjson.loads(b"18446744073709551616")}, False),
    ('{"n": 0.10000000000000000001}', {"n": 0.1}, False),
    ('{"n": 0.10000000000000000001}', {"n": {"$gt": 0.1}}, True),
    ('{"n": 0.10000000000000000001}', {"n": F("0.10000000000000000001")}, True),
    ('{"n": 0.1}', {"n": 0.1}, True), ('{"n": 0.30000000000000004}', {"n": 0.1 + 0.2}, True),
    # a float keeps up to 15 significant digits as written, not always more
    ('{"n": 0.123456789012345}', {"n": orjson.loads(b"0.123456789012345")}, True),
    ('{"n": 1.0000000000000001}', {"n": orjson.loads(b"1.0000000000000001")}, False),
    ('{"n": 0.3}', {"n": 0.1 + 0.2}, False), ('{"n": 1e16}', {"n": 1e16}, True),
    ('{"n": 10000000000000000}', {"n": 1e16}, True), ('{"n": -0.5}', {"n": -0.5}, True),
    ('{"n": -0.5}', {"n": {"$lt": 0}}, True), ('{"n": 1e-400}', {"n": {"$gt": 0}}, True),
    ('{"n": 1e-400}', {"n": {"$lt": F("1e-399")}}, True), ('{"n": 100}', {"n": F("1e2")}, True),
    ('{"n": 0}', {"n": -0.0}, True), ('{"n": 1.50}', {"n": 1.5}, True),
    ('{"n": 19.99}', {"n": {"$gte": 19.99}}, True), ('{"n": 19.989}', {"n": {"$gte": 19.99}},
                                                      False),
    ('{"n": 1e1000}', {"n": {"$gte": F("1e1000")}}, True),
    ('{"n": 1}', {"n": {"$gt": F("-1e-1000")}}, True),
]

IN_LISTS: list[Case] = [
    ('{"c": "EUR"}', {"c": {"$in": ["EUR", "USD"]}}, True),
    ('{"c": "EUR"}', {"c": {"$in": ["GBP"]}}, False),
    ('{"c": "EUR"}', {"c": {"$nin": ["GBP"]}}, True),
    ('{"c": "EUR"}', {"c": {"$nin": ["GBP", "EUR"]}}, False),
    ('{}', {"c": {"$in": ["EUR"]}}, False), ('{}', {"c": {"$nin": ["EUR"]}}, True),
    ('{"c": null}', {"c": {"$in": [None]}}, True), ('{"c": null}', {"c": {"$in": ["x", None]}},
                                                    True),
    ('{"c": null}', {"c": {"$nin": [None]}}, False), ('{"c": null}', {"c": {"$nin": ["x"]}},
                                                      True),
    ('{"c": 1}', {"c": {"$in": ["1"]}}, False), ('{"c": 1}', {"c": {"$in": [True, "1", 1]}},
                                                 True),
    ('{"c": true}', {"c": {"$in": [1]}}, False), ('{"c": 1e400}', {"c": {"$in": [F("1e400")]}},
                                                  True),
    ('{"c": 7}', {"c": {"$in": list(range(100))}}, True),
]

TEXT: list[Case] = [
    ('{"s": "order.created"}', {"s": {"$startsWith": "order."}}, True),
    ('{"s": "order.created"}', {"s": {"$startsWith": "Order."}}, False),
    ('{"s": "order.created"}', {"s": {"$startsWith": "order.created.x"}}, False),
    ('{"s": "order.created"}', {"s": {"$startsWith": ""}}, True),
    ('{"s": 5}', {"s": {"$startsWith": "5"}}, False), ('{}', {"s": {"$startsWith": ""}}, False),
    ('{"s": "x.*"}', {"s": {"$startsWith": "x.*"}}, True),
    ('{"s": "xy"}', {"s": {"$startsWith": "x.*"}}, False),
    ('{"s": 5}', {"s": {"$endsWith": "5"}}, False), ('{"s": null}', {"s": {"$endsWith": ""}},
                                                     False),
    ('{"s": "ab"}', {"s": {"$endsWith": ""}}, True), ('{"s": ""}', {"s": {"$endsWith": ""}}, True),
    ('{"s": "AB"}', {"s": {"$endsWith": "b"}}, False),
    ('{"s": "ab\\n"}', {"s": {"$endsWith": "b"}}, False),  # the end of the text, not a line
    ('{"s": "ab\\ncd"}', {"s": {"$endsWith": "ab"}}, False),
    ('{"s": "x\\tab\\ncd"}', {"s": {"$endsWith": "\tab\ncd"}}, True),
    ('{"s": "é😀"}', {"s": {"$endsWith": "😀"}}, True), ('{"s": "🙂"}', {"s": {"$endsWith": "😀"}},
                                                      False),
    ('{"s": "\\u0001"}', {"s": {"$endsWith": "\x01"}}, True),
    ('{"s": "\\u007f"}', {"s": {"$endsWith": "\x7f"}}, True),
]

# $endsWith operands full of regular-expression syntax: (payload string, operand, verdict).
ENDS_WITH: list[tuple[str, str, bool]] = [
    ("a.b", "a.b", True), ("axb", "a.b", False), ("x*", "x*", True), ("xxx", "x*", False),
    ("x", "x*", False), ("", "x*", False), ("(", "(", True), ("a(b", "(b", True),
    ("(", "()", False), ("[", "[", True), ("a[b]", "[b]", True), ("ab", "[b]", False),
    ("\\", "\\", True), ("a\\", "\\", True), ("a", "\\", False), ("$", "$", True),
    ("a$", "a$", True), ("a", "a$", False), ("^ab", "^ab", True), ("ab", "^ab", False),
    ("xb", "a|b", False), ("a|b", "a|b", True), ("a+b", "+b", True), ("aab", "a+b", False),
    ("a?", "?", True), ("a", "a?", False), ("a{2}", "{2}", True), ("aa", "a{2}", False),
    ("a b", " b", True), ("***:x", "***:x", True), ("x", "***:x", False),
    ("***=x", "***=x", True), ("\\d", "\\d", True), ("5", "\\d", False), ("\\w", "\\w", True),
    ("(?i)A", "(?i)a", False), ("a", "(?i)a", False), ("x.*", ".*", True), ("xyz", ".*", False),
    ("a\\.b", "\\.b", True), ("a.b", "\\.b", False), ("a-b", "-b", True), ("#x", "#x", True),
    ("%_", "%_", True), ("ab", "%_", False), ('"q"', '"q"', True), ("it's", "'s", True),
    ("a)", ")", True), ("a]", "]", True), ("}", "}", True), ("/", "/", True), ("~`!@&=,;:<>",
                                                                             "!@&=,;:<>", True),
]

EXISTENCE: list[Case] = [
    ('{"a": null}', {"a": {"$exist": True}}, True), ('{}', {"a": {"$exist": True}}, False),
    ('{}', {"a": {"$exist": False}}, True), ('{"a": null}', {"a": {"$exist": False}}, False),
    ('{"a": []}', {"a": {"$exist": True}}, True), ('{"a": {}}', {"a": {"$exist": True}}, True),
    ('{"a": false}', {"a": {"$exist": True}}, True),
    ('{"a": 1}', {"a": {"b": {"$exist": True}}}, False),
    ('{"a": 1}', {"a": {"b": {"$exist": False}}}, True),
    ('{"a": {"b": null}}', {"a": {"b": {"$exist": True}}}, True),
    ('{"a": 1}', {"$exist": True}, True),  # data itself
]

LOGIC: list[Case] = [
    ('{"a": 1}', {"$or": [{"a": 2}, {"a": 1}]}, True),
    ('{"a": 3}', {"$or": [{"a": 2}, {"a": 1}]}, False),
    ('{"a": 1, "b": 2}', {"$and": [{"a": 1}, {"b": 2}]}, True),
    ('{"a": 1, "b": 3}', {"$and": [{"a": 1}, {"b": 2}]}, False),
    ('{"a": 1}', {"$not": {"a": 1}}, False), ('{"a": 1}', {"$not": {"a": 2}}, True),
    ('{}', {"$not": {"a": 1}}, True), ('{"a": "x"}', {"a": {"$not": {"$gt": 1}}}, True),
    ('{"a": null}', {"a": {"$not": {"$lt": 1}}}, True),
    ('{"a": 1}', {"$not": {"$not": {"a": 1}}}, True), ('{}', {"$not": {"$not": {"a": 1}}}, False),
    ('{"n": -1}', {"n": {"$or": [{"$lt": 0}, {"$gt": 10}]}}, True),
    ('{"n": 5}', {"n": {"$or": [{"$lt": 0}, {"$gt": 10}]}}, False),
    ('{"n": 11}', {"n": {"$or": [{"$lt": 0}, {"$gt": 10}]}}, True),
    ('{"n": "x"}', {"n": {"$or": [{"$lt": 0}, {"$gt": 10}]}}, False),
    ('{}', {"n": {"$not": {"$or": [{"$lt": 0}, {"$gt": 10}]}}}, True),
    ('{"a": 1, "b": 5}', {"$or": [{"a": 2}, {"b": {"$not": {"$gt": 3}}}]}, False),
    ('{"a": 1, "b": 2}', {"$or": [{"a": 2}, {"b": {"$not": {"$gt": 3}}}]}, True),
    ('{"a": 2, "b": 5}', {"$not": {"$or": [{"a": 2}, {"b": {"$gt": 3}}]}}, False),
    ('{"a": 3, "b": 1}', {"$not": {"$or": [{"a": 2}, {"b": {"$gt": 3}}]}}, True),
    ('{"a": 1, "b": 2}', {"$and": [{"$or": [{"a": 1}, {"a": 2}]}, {"$not": {"b": 3}}]}, True),
    ('{"x": {"y": 1, "z": "k"}}', {"x": {"$or": [{"y": 2}, {"$and": [{"y": 1}, {"z": "k"}]}]}},
     True),
    ('{"x": {"y": 1, "z": "j"}}', {"x": {"$or": [{"y": 2}, {"$and": [{"y": 1}, {"z": "k"}]}]}},
     False),
    ('{"a": 1}', {"a": 1, "$not": {"b": {"$exist": True}}}, True),
    ('{"a": 1, "b": null}', {"a": 1, "$not": {"b": {"$exist": True}}}, False),
]

ARRAYS: list[Case] = [
    ('{"tags": ["x", "y"]}', {"tags": "x"}, True), ('{"tags": ["x", "y"]}', {"tags": "z"}, False),
    ('{"tags": ["x", "y"]}', {"tags": {"$neq": "x"}}, False),
    ('{"tags": ["x", "y"]}', {"tags": {"$neq": "z"}}, True),
    ('{"tags": ["x", "y"]}', {"tags": {"$in": ["z", "y"]}}, True),
    ('{"tags": ["x", "y"]}', {"tags": {"$nin": ["y"]}}, False),
    ('{"tags": ["x", "y"]}', {"tags": {"$startsWith": "y"}}, True),
    ('{"tags": ["ax", "by"]}', {"tags": {"$endsWith": "y"}}, True),
    ('{"tags": []}', {"tags": "x"}, False), ('{"tags": []}', {"tags": {"$neq": "x"}}, True),
    ('{"tags": []}', {"tags": {"$exist": True}}, True),
    ('{"n": [1, 10]}', {"n": {"$gte": 5}}, True), ('{"n": [1, 10]}', {"n": {"$lt": 5}}, True),
    ('{"n": [1, 10]}', {"n": {"$gte": 5, "$lt": 6}}, True),  # each on an element of its own
    ('{"n": [1, 10]}', {"n": {"$gt": 10}}, False),
    ('{"n": [[2]]}', {"n": 2}, True), ('{"n": [[[2]]]}', {"n": 2}, False),
    ('{"n": [1, "a"]}', {"n": "a"}, True), ('{"n": [null]}', {"n": None}, True),
    ('{"items": [{"sku": "a"}, {"sku": "b"}]}', {"items": {"sku": "b"}}, True),
    ('{"items": [{"sku": "a"}, {"sku": "b"}]}', {"items": {"sku": "c"}}, False),
    ('{"items": [{"sku": "a"}, {"n": 1}]}', {"items": {"sku": {"$exist": True}}}, True),
    ('{"items": [{"n": 1}]}', {"items": {"sku": {"$exist": False}}}, True),
    ('{"items": [[{"sku": "a"}]]}', {"items": {"sku": "a"}}, False),
    ('{"a": [1, 2]}', {"a": {"$exist": True}}, True),
]

UNICODE: list[Case] = [
    ('{"café": "é"}', {"café": "é"}, True), ('{"k": "e\\u0301"}', {"k": "é"}, False),
    ('{"😀": 1}', {"😀": 1}, True), ('{"שלום": "עולם"}', {"שלום": "עולם"}, True),
    ('{"\\u202eevil": "x"}', {"\u202eevil": "x"}, True),
    ('{"k": "\\u2028"}', {"k": "\u2028"}, True),
    ('{"a\\"b": 1}', {'a"b': 1}, True), ('{"a\\\\b": 1}', {"a\\b": 1}, True),
    ('{"a.b": 1}', {"a.b": 1}, True), ('{"a": {"b": 1}}', {"a.b": 1}, False),
    ('{"a\\nb": 1}', {"a\nb": 1}, True), ('{"ab": 1}', {"a\nb": 1}, False),
    ('{"": 1}', {"": 1}, True), ('{"x\')@?$": 1}', {"x')@?$": 1}, True),
    ('{"k": "\\ufeff"}', {"k": "\ufeff"}, True), ('{"k": ""}', {"k": "\ufeff"}, False),
]

# Keys and strings written to break out of their literal: with quotes and backslashes
# escaped they are only text, matched when the payload holds exactly that text.
HOSTILE = ['" || true || "', '")) || true || (("', '\\" || true || \\"', "\\u0022",
           '" || @ == @ || "', "$", "@", "$.data", "exists($)", "last", "strict $",
           ' like_regex ".*"', '") || exists($) || ("', "\\", '\\"', "' || true || '",
           '"\n|| true ||\n"', "?(@ == @)"]


@pytest.mark.parametrize(("name", "cases"), [
    ("equality", EQUALITY), ("order", ORDER), ("exact", EXACT), ("in", IN_LISTS),
    ("text", TEXT), ("existence", EXISTENCE), ("logic", LOGIC), ("arrays", ARRAYS),
    ("unicode", UNICODE)])
async def test_verdicts(db: asyncpg.Connection, name: str, cases: list[Case]) -> None:
    await check(db, cases)


async def test_ends_with_regex_characters(db: asyncpg.Connection) -> None:
    await check(db, [(orjson.dumps({"s": text}).decode(), {"s": {"$endsWith": operand}},
                      expected) for text, operand, expected in ENDS_WITH])


async def test_hostile_keys_and_strings_are_only_text(db: asyncpg.Connection) -> None:
    cases: list[Case] = []
    for text in HOSTILE:
        key = "k" + text  # a key starting with $ would be an operator
        held = orjson.dumps({"k": text, key: "v"}).decode()
        cases += [
            ('{"k": "x"}', {"k": text}, False), (held, {"k": text}, True),
            ('{"k": "x"}', {key: "v"}, False), (held, {key: "v"}, True),
            ('{"k": "x"}', {"k": {"$in": [text, 0]}}, False), (held, {"k": {"$in": [text]}}, True),
            ('{"k": "x"}', {"k": {"$startsWith": text}}, False),
            (held, {"k": {"$startsWith": text}}, True),
            ('{"k": "x"}', {"k": {"$endsWith": text}}, False),
            (held, {"k": {"$endsWith": text}}, True),
            ('{"k": "x"}', {"k": {"$neq": text}}, True), (held, {key: {"$exist": False}}, False),
            ('{"k": "x"}', {"k": {"$gte": text, "$lte": text}}, False),
        ]
    await check(db, cases)


async def test_decode_json_filters_keep_every_digit(db: asyncpg.Connection) -> None:
    document = decode_json(b'{"data": {"n": {"$in": [18446744073709551616, 1e400]}, '
                           b'"m": {"$lt": 0.10000000000000000001}}}')
    for payload, expected in [('{"n": 18446744073709551616, "m": 0.1}', True),
                              ('{"n": 18446744073709551617, "m": 0.1}', False),
                              ('{"n": 1e400, "m": 0.1000000000000000000099}', True),
                              ('{"n": 1e400, "m": 0.10000000000000000001}', False)]:
        subject_json = orjson.dumps(subject("t", payload, None)).decode()
        assert await verdict(db, document, subject_json) is expected, payload


async def test_type_and_headers(db: asyncpg.Connection) -> None:
    github = orjson.dumps(subject("push", '{}', {"X-GitHub-Event": "push",
                                                 "X-Hub-Delivery": "d-1"})).decode()
    plain = orjson.dumps(subject("order.created", '{"a": 1}', None)).decode()
    for document, on_github, on_plain in [
        ({"headers": {"x-github-event": "push"}}, True, False),
        ({"headers": {"x-github-event": "pull_request"}}, False, False),
        ({"headers": {"x-github-event": {"$exist": True}}}, True, False),
        ({"headers": {"x-github-event": {"$exist": False}}}, False, True),
        ({"headers": {"x-hub-delivery": {"$startsWith": "d-"}}, "type": "push"}, True, False),
        ({"type": "order.created"}, False, True),
        ({"type": {"$startsWith": "order."}}, False, True),
        ({"type": {"$in": ["push", "order.created"]}}, True, True),
        ({"type": {"$neq": "push"}, "data": {"a": 1}}, False, True),
        ({"$or": [{"type": "push"}, {"data": {"a": {"$gte": 1}}}]}, True, True),
        ({"$not": {"headers": {"$exist": True}}}, False, False),  # {} is present
    ]:
        assert await verdict(db, document, github) is on_github, document
        assert await verdict(db, document, plain) is on_plain, document


async def test_explain_a_match(db: asyncpg.Connection) -> None:
    flt = _compiled({"type": "order.paid", "data": {"amount": {"$gte": 100}}})
    subject_json = orjson.dumps(subject("order.paid", '{"amount": 1e400}', None)).decode()
    result = await explain(db, flt, subject_json)
    assert orjson.dumps(result) == orjson.dumps({
        "matches": True, "conditions": [
            {"field": "type", "operator": "$eq", "operand": "order.paid", "matched": True,
             "present": True, "actual": "order.paid"},
            {"field": "data.amount", "operator": "$gte", "operand": 100, "matched": True,
             "present": True, "actual": F("1" + "0" * 400)}],
        "reason": None})


async def test_explain_names_what_failed(db: asyncpg.Connection) -> None:
    flt = _compiled({"data": {"amount": {"$gte": 100}, "currency": {"$in": ["EUR"]},
                              "note": {"$exist": True}, "tags": "vip",
                              "$not": {"test": True}}})
    payload = '{"amount": 50, "currency": "EUR", "tags": ["a", "b"], "test": true, "x": null}'
    result = await explain(db, flt, orjson.dumps(subject("t", payload, None)).decode())
    assert result["matches"] is False
    assert [(c["field"], c["matched"], c["present"], c["actual"])
            for c in result["conditions"]] == [
        ("data.amount", False, True, 50), ("data.currency", True, True, "EUR"),
        ("data.note", False, False, None), ("data.tags", False, True, ["a", "b"]),
        ("data.test", True, True, True)]
    assert result["reason"] == (
        "the filter does not match: data.amount $gte 100 does not hold (found 50); "
        "data.note $exist true does not hold (field absent); "
        'data.tags $eq "vip" does not hold (found ["a","b"]); and 1 more')


async def test_explain_null_and_negations(db: asyncpg.Connection) -> None:
    flt = _compiled({"$not": {"$or": [{"data": {"x": None}}, {"type": {"$neq": "t"}}]}})
    result = await explain(db, flt, orjson.dumps(subject("t", '{"x": null}', None)).decode())
    assert result["matches"] is False
    assert [(c["matched"], c["present"], c["actual"]) for c in result["conditions"]] == [
        (True, True, None), (False, True, "t")]
    assert result["reason"] == ("the filter does not match: data.x $eq null holds under $not "
                                "(found null)")
    long = _compiled({"data": {"s": "x" * 300}})
    reason = (await explain(db, long, orjson.dumps(subject("t", '{}', None)).decode()))["reason"]
    assert reason == f'the filter does not match: data.s $eq "{"x" * 99}... does not hold ' \
                     "(field absent)"


async def test_bounds_compile_on_postgresql(db: asyncpg.Connection) -> None:
    widest = {"data": {f"k{i}": {"$in": ["\U0001f600\x01\"\\" * 256] * 2}
                       for i in range(4)},
              "$or": [{"data": {"n": {"$in": [F("1e1000"), F("-1e-1000"), 10 ** 1000]}}},
                      {"data": {"s": {"$endsWith": "\\$.*" * 256}}}]}
    flt = _compiled(widest)
    assert await db.fetchval("SELECT length($1::jsonpath::text) > 0", flt.path)
    assert await verdict(db, widest, orjson.dumps(subject("t", '{}', None)).decode()) is False
