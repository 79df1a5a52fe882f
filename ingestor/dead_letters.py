"""Dead-letter review: the filter that selects an organization's dead letters (from the
dead-letter queue's query string or a bulk retry's body), resolving one without sending
it again, and re-queuing every dead letter a filter selects in bounded batches.

Routes parse with these functions, call `resolve` or `retry_matching`, and render.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from ingestor import patterns
from ingestor import queries_delivery as q
from ingestor.endpoint_input import parse_time
from ingestor.http import ApiError, query_choice, query_param, query_text
from ingestor.ids import parse_uuid

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # of a resolve's or a bulk retry's JSON body
MAX_NOTE = 2000
MAX_EVENT_TYPE = 255  # as GET /api/deliveries reads event_type
RETRY_BATCH = 1000  # dead letters one statement of a bulk retry re-queues at most
FILTER_KEYS = ("endpoint_id", "event_type", "since", "until", "resolved")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters: reviewed or not, of one endpoint, of one exact event type,
    dead in [since, until) (their updated_at). None: no condition."""

    resolved: bool | None = None
    endpoint_id: UUID | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def args(self) -> tuple[Any, ...]:
        """$2 to $6 of queries_delivery.DEAD_LETTER_MATCH."""
        return self.resolved, self.endpoint_id, self.event_type, self.since, self.until


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


async def resolve(pool: asyncpg.Pool, org_id: UUID, delivery: int, key_id: str,
                  note: str | None) -> Any:
    """Marks a dead letter reviewed by `key_id`; the delivery's row, or a 404 or 409."""
    row = await pool.fetchrow(q.RESOLVE_DEAD_LETTER, delivery, org_id, key_id, note)
    if row is None:
        raise ApiError(404, "Delivery not found")
    if row["was_status"] != "dead_letter":
        raise ApiError(409, f"Delivery is {row['was_status']}: only dead_letter deliveries "
                            "can be resolved", delivery_status=row["was_status"])
    if row["id"] is None:
        raise ApiError(409, "Delivery is already resolved", delivery_status="dead_letter",
                       resolved_at=row["was_resolved_at"], resolved_by=row["was_resolved_by"])
    return row


async def retry_matching(pool: Callable[[], asyncpg.Pool], org_id: UUID,
                         selected: DeadLetterFilter) -> tuple[int, int]:
    """Re-queues the organization's dead letters that `selected` matches, newest first,
    RETRY_BATCH per statement, so no statement runs long or locks many rows. Returns how
    many were re-queued and how many were skipped (their endpoint disabled or deleted)."""
    started = time.monotonic()
    requeued = skipped = batches = 0
    at: datetime | None = None
    after = 0
    while True:
        row = await pool().fetchrow(q.RETRY_DEAD_LETTERS, org_id, *selected.args(), at, after,
                                    RETRY_BATCH)
        batches += 1
        requeued += row["requeued"]
        skipped += row["skipped"]
        if row["scanned"] < RETRY_BATCH:
            break
        at, after = row["at"], row["id"]
    log.info("dead letters re-queued: org %s, %d re-queued, %d skipped, %d batches, "
             "took_ms %.1f", org_id, requeued, skipped, batches,
             (time.monotonic() - started) * 1000)
    return requeued, skipped
