"""Validation of posted events: shapes, types and sizes, with messages a client can act on.

Payloads are kept exact: a number is stored with the digits it was sent with, or the
event is refused. The fast path parses with orjson, which is exact for integers of up to
18 digits and for text; a body that holds anything else that looks like a number (a
fraction, an exponent, 19 digits or more) is parsed again by the standard library with
every such number kept as its literal text (an orjson.Fragment), so 2**64, 1e400 or
0.10000000000000000001 reach PostgreSQL's numeric as sent.

Limits, the same for a single event and a batch item: a payload is a JSON object of at
most MAX_EVENT_BYTES bytes once compacted and MAX_DEPTH levels of nesting, holding no NUL
character (PostgreSQL's jsonb cannot store one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from ingestor import patterns
from ingestor.errors import ApiError

MAX_EVENT_BYTES = 256 * 1024
MAX_EVENT_BODY = 2 * MAX_EVENT_BYTES  # the request around one payload: room for whitespace
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_BATCH_EVENTS = 1_000
MAX_NAME = 255
MAX_DEPTH = 128

# Something orjson might not keep exact: a digit followed by a fraction or exponent, or a
# run of 19 digits. Text such as "v1.2" matches too; that only costs the slower parse.
_MAYBE_INEXACT = re.compile(rb"\d[.eE]|\d{19}")
# A NUL in the compact text: \u0000 not itself escaped by a backslash.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_SHORT_INT = 18


def _int(literal: str) -> int | orjson.Fragment:
    return int(literal) if len(literal.lstrip("-")) <= _SHORT_INT else orjson.Fragment(literal)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(raw: bytes) -> Any:
    """The body as Python values, numbers exact (see the module docstring); ValueError
    (orjson.JSONDecodeError is one) when it is not JSON."""
    if _MAYBE_INEXACT.search(raw) is None:
        return orjson.loads(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text, parse_float=orjson.Fragment, parse_int=_int,
                          parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _payload_text(payload: dict[str, Any], where: str) -> bytes:
    try:
        text = orjson.dumps(payload)
    except orjson.JSONEncodeError as exc:  # a lone surrogate, or nesting orjson refuses
        if _depth_exceeds(payload, MAX_DEPTH):
            raise ApiError(400, f"{where}payload nested deeper than {MAX_DEPTH} levels") from None
        raise ApiError(400, f"{where}payload cannot be stored: {exc}") from None
    if len(text) > MAX_EVENT_BYTES:
        raise ApiError(413, f"{where}payload larger than {MAX_EVENT_BYTES} bytes")
    if text.count(b"{") + text.count(b"[") > MAX_DEPTH and _depth_exceeds(payload, MAX_DEPTH):
        raise ApiError(400, f"{where}payload nested deeper than {MAX_DEPTH} levels")
    if b"\\u0000" in text and _NUL.search(text):
        raise ApiError(400, f"{where}payload must not contain NUL characters (\\u0000)")
    return text


@dataclass(frozen=True, slots=True)
class EventIn:
    type: str
    payload: str  # JSON text
    dedup_id: str | None
    # From a source (routes_inbound): which one, and the provider's id of the event.
    source_id: UUID | None = None
    provider_id: str | None = None
    headers: str | None = None  # JSON text: the source request's headers that matter


def _text(value: Any, name: str, where: str) -> str:
    """A name (patterns.NAME): text, not blank, at most MAX_NAME characters, no NUL."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{where}{name} is required and must be a non-empty string")
    if len(value) > MAX_NAME or "\x00" in value:
        raise ApiError(400, f"{where}{name} must be at most {MAX_NAME} characters, without NUL")
    if not patterns.matches(patterns.NAME, value):
        raise ApiError(400, f"{where}{name} is required and must not be blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, or header bytes that were not UTF-8
        raise ApiError(400, f"{where}{name} must be UTF-8 text") from None
    return value


def parse_event(item: Any, idempotency_key: str | None = None, index: int | None = None) -> EventIn:
    """An EventIn from a decoded JSON body or batch item, or a 400/413 naming the fault."""
    where = "" if index is None else f"events[{index}]: "
    extra = {} if index is None else {"index": index}
    try:
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}an event must be a JSON object")
        type_ = _text(item.get("type"), "type", where)
        if "payload" not in item:
            raise ApiError(400, f"{where}payload is required")
        payload = item["payload"]
        if not isinstance(payload, dict):
            raise ApiError(400, f"{where}payload must be a JSON object")
        raw_dedup = item.get("dedup_id")
        dedup_id = None if raw_dedup is None else _text(raw_dedup, "dedup_id", where)
        if dedup_id is None and idempotency_key is not None:
            dedup_id = _text(idempotency_key, "Idempotency-Key", where)
        elif dedup_id is not None and idempotency_key is not None and dedup_id != idempotency_key:
            raise ApiError(400, "dedup_id and the Idempotency-Key header differ")
        text = _payload_text(payload, where)
    except ApiError as exc:
        exc.extra.update(extra)
        raise
    return EventIn(type_, text.decode(), dedup_id)


def parse_batch(body: Any) -> list[EventIn]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ApiError(400, "body must be an object with an 'events' array")
    items = body["events"]
    if not 1 <= len(items) <= MAX_BATCH_EVENTS:
        raise ApiError(400, f"events must hold 1 to {MAX_BATCH_EVENTS} items")
    return [parse_event(item, index=i) for i, item in enumerate(items)]
