"""The records of the organization's queue and delivery metrics (ingestor.ops_metrics),
rendered and described like every record (ingestor.shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from ingestor.shapes import show

Range = Literal["1h", "24h", "7d"]
_COUNT = show(minimum=0)
_RATE = show(minimum=0, maximum=1)
_MS = show(description="Milliseconds; null without a success.")


@dataclass(frozen=True, slots=True)
class QueueCounts:
    waiting: int = field(metadata=_COUNT)
    active: int = field(metadata=_COUNT)
    completed: int = field(metadata=_COUNT)
    failed: int = field(metadata=_COUNT)
    delayed: int = field(metadata=_COUNT)
    dead_letter: int = field(metadata=_COUNT)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue_depth: int = field(metadata=_COUNT)
    oldest_pending_age_s: float = field(metadata=show(minimum=0))
    failure_rate: float = field(metadata=_RATE)
    paused: int = field(metadata=show(minimum=0, description=(
        "Waiting deliveries of paused endpoints (among `waiting`, `failed` and "
        "`delayed`): they go once it is resumed.")))


@dataclass(frozen=True, slots=True)
class QueueHealth:
    healthy: bool
    metrics: QueueCounts
    stats: QueueStats
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Latency:
    p50: float | None = field(metadata=_MS)
    p95: float | None = field(metadata=_MS)
    p99: float | None = field(metadata=_MS)


@dataclass(frozen=True, slots=True)
class StatsSummary:
    total: int = field(metadata=_COUNT)
    delivered: int = field(metadata=_COUNT)
    failed: int = field(metadata=_COUNT)
    dead_letter: int = field(metadata=_COUNT)
    pending: int = field(metadata=_COUNT)
    success_rate: float = field(metadata=_RATE)
    avg_attempts: float = field(metadata=show(minimum=0))
    latency_ms: Latency


@dataclass(frozen=True, slots=True)
class TypeStats:
    event_type: str
    total: int = field(metadata=_COUNT)
    delivered: int = field(metadata=_COUNT)
    dead_letter: int = field(metadata=_COUNT)
    success_rate: float = field(metadata=_RATE)


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    range: Range
    summary: StatsSummary
    by_event_type: tuple[TypeStats, ...] = field(metadata=show(maxItems=100))


@dataclass(frozen=True, slots=True)
class RecentFailure:
    """A failed attempt."""

    delivery_id: int = field(metadata=show(minimum=1))
    event_id: UUID
    event_type: str
    endpoint_id: UUID
    endpoint_url: str
    attempt: int = field(metadata=show(minimum=1))
    response_status: int | None
    error: str | None
    created_at: datetime
