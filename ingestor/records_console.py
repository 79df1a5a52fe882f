"""The console's records: frozen dataclasses at the database boundary, rendered to JSON
by shapes.to_json and to HTML by console_pages (which escapes every text)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class OrgName:
    id: UUID
    name: str


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """An endpoint in the console's table, with its last hour."""

    id: UUID
    org_id: UUID
    org_name: str
    url: str
    description: str | None
    state: str  # enabled, paused, breaker_open, breaker_half_open, disabled
    disabled_reason: str | None
    paused_by: str | None
    consecutive_failures: int
    attempts_1h: int
    success_rate_1h: float | None
    p99_ms_1h: float | None
    due: int  # capped at console_ops.DUE_CAP


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: int
    attempt: int
    event_type: str | None
    response_status: int | None
    duration_ms: float
    error: str | None
    response_excerpt: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    org_id: UUID
    org_name: str
    endpoint_id: UUID
    url: str
    event_type: str
    attempts: int
    response_status: int | None
    last_error: str | None
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    items: tuple[DeadLetterRow, ...]
    next_before: str | None  # the next page's `before`


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute of the last hour (UTC, its start)."""

    minute: datetime
    events: int
    delivered: int
    http_error: int
    failed: int
    duration_p50_ms: float | None
    duration_p99_ms: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None


@dataclass(frozen=True, slots=True)
class QueueSample:
    """The waiting deliveries at one minute (its start), as sampled then."""

    minute: datetime
    depth: int
    due: int
    oldest_due_age_s: float


@dataclass(frozen=True, slots=True)
class Live:
    """The live page's data: per-minute series over the last hour, the queue now and its
    per-minute samples over the last hour."""

    at: datetime
    minutes: tuple[Minute, ...]
    events_1h: int
    delivered_1h: int
    failed_1h: int
    queue_depth: int
    oldest_due_s: float
    capped: bool  # a series read its cap: its counts are lower bounds
    queue_samples: tuple[QueueSample, ...]  # the last hour's, oldest first


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    org_id: UUID | None
    org_name: str | None
    who: str
    action: str
    target: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class ActionDone:
    """What a console action did, in a sentence."""

    action: str
    message: str
