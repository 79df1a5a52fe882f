"""Payloads are kept exact or refused with a reason; limits are the same for a single
event and a batch item."""

from __future__ import annotations

import json

import pytest

from ingestor.http import ApiError
from ingestor.validation import MAX_DEPTH, MAX_EVENT_BYTES, decode_json, parse_batch, parse_event

EXACT = [
    '{"n": 18446744073709551616}', '{"n": -18446744073709551617}',
    '{"n": 123456789012345678901234567890}', '{"n": 0.10000000000000000001}',
    '{"n": 1e400}', '{"n": 1E2}', '{"n": -0.0}', '{"n": 19.99}', '{"n": 1.5e-7}',
    '{"n": 42, "s": "v1.2"}', '{"n": [1, 2.50, {"m": 3e0}]}',
]


def _payload(body: str, batch: bool = False) -> str:
    if batch:
        document = decode_json(('{"events": [{"type": "t", "payload": ' + body + '}]}').encode())
        return parse_batch(document)[0].payload
    return parse_event(decode_json(('{"type": "t", "payload": ' + body + '}').encode())).payload


@pytest.mark.parametrize("body", EXACT)
@pytest.mark.parametrize("batch", [False, True])
def test_numbers_are_kept_as_sent(body: str, batch: bool) -> None:
    stored = _payload(body, batch)
    # The same numbers, digit for digit, whatever the whitespace.
    assert json.loads(stored, parse_float=str, parse_int=str) == json.loads(
        body, parse_float=str, parse_int=str)


def test_plain_payloads_take_the_fast_path_unchanged() -> None:
    assert _payload('{"order": 42, "name": "caf\\u00e9"}') == '{"order":42,"name":"café"}'


@pytest.mark.parametrize("batch", [False, True])
def test_depth_limit(batch: bool) -> None:
    ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    _payload('{"a": ' + ok + "}", batch)
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(ApiError, match=f"deeper than {MAX_DEPTH}") as caught:
        _payload('{"a": ' + deep + "}", batch)
    assert caught.value.status == 400


@pytest.mark.parametrize("levels", [300, 1100, 5000])
def test_absurd_nesting_is_a_clear_400(levels: int) -> None:
    body = '{"type": "t", "payload": {"a": ' + "[" * levels + "]" * levels + "}}"
    with pytest.raises((ApiError, ValueError)):
        parse_event(decode_json(body.encode()))


@pytest.mark.parametrize("batch", [False, True])
def test_size_limit_is_the_same_for_both(batch: bool) -> None:
    filler = "x" * (MAX_EVENT_BYTES - len('{"s":""}'))
    _payload('{"s": "' + filler + '"}', batch)  # exactly the limit, compacted
    with pytest.raises(ApiError) as caught:
        _payload('{"s": "' + filler + 'x"}', batch)
    assert caught.value.status == 413


def test_nul_is_refused_but_an_escaped_backslash_u_is_text() -> None:
    with pytest.raises(ApiError, match="NUL"):
        _payload('{"s": "a\\u0000b"}')
    assert _payload('{"s": "\\\\u0000"}') == '{"s":"\\\\u0000"}'


@pytest.mark.parametrize("body", ['{"s": "\\ud800"}', '{"s": "\\udc00 1.5"}'])
def test_lone_surrogates_are_refused(body: str) -> None:
    with pytest.raises((ApiError, ValueError)):
        _payload(body)


@pytest.mark.parametrize("raw", [b'{"n": NaN, "x": 1.5}', b'{"n": Infinity}', b'{"x": 1.5',
                                 b'\xff{"x": 1.5}'])
def test_not_json(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(raw)


@pytest.mark.parametrize("field", ["type", "dedup_id"])
def test_names_that_are_not_utf8_text_are_refused(field: str) -> None:
    event = {"type": "t", "payload": {}, field: "a\udcff"}
    with pytest.raises(ApiError, match="UTF-8") as caught:
        parse_event(event)
    assert caught.value.status == 400


def test_an_idempotency_key_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ApiError, match="Idempotency-Key must be UTF-8"):
        parse_event({"type": "t", "payload": {}}, "key-\udcff")


def test_every_event_type_is_checked_even_beside_a_star() -> None:
    from ingestor.endpoint_input import parse_event_types

    assert parse_event_types(["*"]) is None
    assert parse_event_types(["order.*", "a"]) == ["order.*", "a"]
    with pytest.raises(ApiError, match=r"event_types\[1\]"):
        parse_event_types(["*", "**"])
