"""Validation of posted events: shapes, types and sizes, with messages a client can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ingestor.http import ApiError

MAX_EVENT_BYTES = 256 * 1024
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_BATCH_EVENTS = 1_000
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class EventIn:
    type: str
    payload: str  # JSON text
    dedup_id: str | None


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{where}{name} is required and must be a non-empty string")
    if len(value) > MAX_NAME or "\x00" in value:
        raise ApiError(400, f"{where}{name} must be at most {MAX_NAME} characters, without NUL")
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
        text = orjson.dumps(payload)
        if len(text) > MAX_EVENT_BYTES:
            raise ApiError(413, f"{where}payload larger than {MAX_EVENT_BYTES} bytes")
        if b"\\u0000" in text:
            raise ApiError(400, f"{where}payload must not contain NUL characters (\\u0000)")
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
