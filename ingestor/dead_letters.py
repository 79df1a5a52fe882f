"""Dead-letter review input: the filter that selects an organization's dead letters
(from the dead-letter queue's query string or a bulk retry's body) and a resolve's
note, parsed with messages a client can act on.

The routes parse with these functions and call the operations of
`ingestor.ops_deliveries` (list_dead_letters, resolve_dead_letter, retry_dead_letters).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingestor import patterns
from ingestor.endpoint_input import parse_time
from ingestor.errors import ApiError
from ingestor.http import query_choice, query_param, query_text
from ingestor.ids import parse_uuid
from ingestor.ops_deliveries import DeadLetterFilter

MAX_BODY = 64 * 1024  # of a resolve's or a bulk retry's JSON body
MAX_NOTE = 2000
MAX_EVENT_TYPE = 255  # as GET /api/deliveries reads event_type
FILTER_KEYS = ("endpoint_id", "event_type", "since", "until", "resolved")
_BOOLEANS = {"true": True, "false": False}


def filter_from_query(request: web.Request) -> DeadLetterFilter:
    """The filter of GET /api/webhook-metrics/dead-letter-queue, or a 400."""
    resolved = query_choice(request, "resolved", tuple(_BOOLEANS))
    raw_endpoint = query_param(request, "endpoint_id")
    endpoint = None if raw_endpoint is None else parse_uuid(raw_endpoint)
    if raw_endpoint is not None and endpoint is None:
        raise ApiError(400, "endpoint_id must be a UUID")
    since, until = query_param(request, "since"), query_param(request, "until")
    return DeadLetterFilter(
        None if resolved is None else _BOOLEANS[resolved], endpoint,
        query_text(request, "event_type", MAX_EVENT_TYPE),
        None if since is None else parse_time(since, "since"),
        None if until is None else parse_time(until, "until"))


def filter_from_body(body: Any) -> DeadLetterFilter:
    """The filter of a bulk retry's body `{"filter": {...}}`, or a 400."""
    if not isinstance(body, dict) or "filter" not in body:
        raise ApiError(400, "body must be a JSON object with a filter object ({} for every "
                            "dead letter)")
    _only(body, ("filter",), "body")
    given = body["filter"]
    if not isinstance(given, dict):
        raise ApiError(400, "filter must be a JSON object ({} for every dead letter)")
    _only(given, FILTER_KEYS, "filter")
    resolved, endpoint, event_type, since, until = (given.get(k) for k in (
        "resolved", "endpoint_id", "event_type", "since", "until"))
    if resolved is not None and not isinstance(resolved, bool):
        raise ApiError(400, "filter.resolved must be true or false")
    parsed = None if endpoint is None else parse_uuid(endpoint)
    if endpoint is not None and parsed is None:
        raise ApiError(400, "filter.endpoint_id must be a UUID")
    if event_type is not None and not _text(event_type, 1, MAX_EVENT_TYPE):
        raise ApiError(400, f"filter.event_type must be a string of 1 to {MAX_EVENT_TYPE} "
                            "characters, without NUL")
    return DeadLetterFilter(
        resolved, parsed, event_type,
        None if since is None else parse_time(since, "filter.since"),
        None if until is None else parse_time(until, "filter.until"))


def parse_note(body: Any) -> str | None:
    """The note of a resolve's body `{"note": ...}` (optional), or a 400."""
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object, {} or {\"note\": \"...\"}")
    _only(body, ("note",), "body")
    note = body.get("note")
    if note is not None and not _text(note, 0, MAX_NOTE):
        raise ApiError(400, f"note must be a string of at most {MAX_NOTE} characters, "
                            "without NUL")
    return note


def _only(given: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in given if k not in allowed)
    if unknown:
        names = ", ".join(repr(k[:50]) for k in unknown[:5])
        raise ApiError(400, f"{where} has unknown fields {names}: only "
                            f"{', '.join(allowed)}")


def _text(value: Any, low: int, high: int) -> bool:
    return (isinstance(value, str) and low <= len(value) <= high
            and patterns.matches(patterns.NO_NUL, value))
