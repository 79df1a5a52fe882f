"""The ingest side's Prometheus metrics, and what a `/metrics` scrape renders.

Counters and histograms live on prometheus_client's default registry and are
process-wide. The hot path stays cheap: committed events are counted once per flush
(by the batch's size), rejections once per refused request; each request is timed
once by the `timing` middleware (ingestor/timing.py, a lock-free histogram of its
own). The queue and endpoint gauges are not kept here: the `/metrics` handler reads
them from PostgreSQL at scrape time into a `QueueState` and `queue_families` turns that
into metric families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

EVENTS_COMMITTED = Counter(
    "triggerd_events_committed", "Events committed in PostgreSQL (answered 202)")
EVENTS_DUPLICATE = Counter(
    "triggerd_events_duplicate",
    "Events refused as duplicates of a stored dedup_id (by the cache or the database)")
INGEST_REJECTED = Counter(
    "triggerd_ingest_rejected",
    "Ingest requests refused: rate_limited (429); saturated, unavailable, commit_timeout "
    "(503, not stored); outcome_unknown (503 carrying the id: the event may be stored)",
    ["reason"])
INTERNAL_ERRORS = Counter(
    "triggerd_internal_errors",
    "Failures that are bugs, not the database being away (answered 500, never retried)",
    ["where"])
WRITER_FLUSH_SECONDS = Histogram(
    "triggerd_writer_flush_seconds", "Duration of one successful group-commit flush",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
WRITER_BATCH_EVENTS = Histogram(
    "triggerd_writer_batch_events", "Events in one successful group-commit flush",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))

# Bound once, so a refusal costs one increment and no label look-up.
REJECTED = {reason: INGEST_REJECTED.labels(reason)
            for reason in ("rate_limited", "saturated", "unavailable", "commit_timeout",
                           "outcome_unknown")}

DELIVERY_STATES = ("pending", "in_flight", "failed", "dead_letter")
ENDPOINT_STATES = ("disabled", "paused", "breaker_open", "breaker_half_open")


def internal_error(where: str) -> None:
    """Counts one bug-type failure; `where` is "http" (a request) or "writer" (a flush)."""
    INTERNAL_ERRORS.labels(where).inc()


def flushed(batch: int, committed: int, duplicates: int, seconds: float) -> None:
    """Records one flush of `batch` events."""
    EVENTS_COMMITTED.inc(committed)
    if duplicates:
        EVENTS_DUPLICATE.inc(duplicates)
    WRITER_FLUSH_SECONDS.observe(seconds)
    WRITER_BATCH_EVENTS.observe(batch)


@dataclass(frozen=True, slots=True)
class QueueState:
    """The node-wide queues, as one query read them (all organizations)."""

    deliveries: dict[str, int]  # status (DELIVERY_STATES) -> count
    due: int  # pending or failed deliveries whose next attempt is due now
    unrouted: int  # events not yet routed into deliveries
    oldest_pending_age_s: float  # the oldest pending or failed delivery, 0 without one
    # state (ENDPOINT_STATES) -> count; empty when not read
    endpoints: dict[str, int] = field(default_factory=dict)


def queue_families(state: QueueState | None) -> list[Metric]:
    """`triggerd_database_up`, and the queue gauges when the database answered (an
    unknown value is left out rather than reported as 0)."""
    up = GaugeMetricFamily("triggerd_database_up",
                           "1 when PostgreSQL answered this scrape's queue query within 1 s")
    up.add_metric([], 0.0 if state is None else 1.0)
    if state is None:
        return [up]
    deliveries = GaugeMetricFamily("triggerd_queue_deliveries",
                                   "Deliveries by status (delivered ones are not counted)",
                                   labels=["status"])
    for status in DELIVERY_STATES:
        deliveries.add_metric([status], state.deliveries.get(status, 0))
    families: list[Metric] = [
        up, deliveries,
        GaugeMetricFamily("triggerd_queue_deliveries_due",
                          "Pending or failed deliveries whose next attempt is due",
                          value=state.due),
        GaugeMetricFamily("triggerd_queue_events_unrouted", "Events not yet routed",
                          value=state.unrouted),
        GaugeMetricFamily("triggerd_queue_oldest_pending_age_seconds",
                          "Age of the oldest pending or failed delivery",
                          value=state.oldest_pending_age_s),
    ]
    if state.endpoints:
        endpoints = GaugeMetricFamily(
            "triggerd_endpoints",
            "Endpoints (of every organization, deleted ones left out) that are disabled, "
            "or enabled and paused, or enabled with their breaker open or half-open",
            labels=["state"])
        for name in ENDPOINT_STATES:
            endpoints.add_metric([name], state.endpoints.get(name, 0))
        families.append(endpoints)
    return families


class Scrape:
    """What one scrape renders: the process's metrics (default registry), the node's
    (its tree, writer and pool) and the queue families read for this scrape."""

    def __init__(self, node: Iterable[Metric], queue: list[Metric]) -> None:
        self._node = node
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self._node
        yield from self._queue

    def values(self) -> dict[str, float]:
        """Every sample by `name` or `name{label="value",...}`, for the dashboard."""
        found: dict[str, float] = {}
        for family in self.collect():
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return found
