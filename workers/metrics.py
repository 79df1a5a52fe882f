"""The delivery side's Prometheus metrics, on prometheus_client's default registry.

Counted where the work happens: routing and claims in the Poller (once per statement),
attempts in the DeliveryPool (once per attempt), dead letters and breaker openings in
the ResultWriter once their transaction has committed. Process-wide: every node in a
process adds to the same series.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from workers.deliverer import Outcome

# Every kind of Outcome (workers/deliverer.py), plus the pool's "deferred" and
# "interrupted" hand-backs.
OUTCOMES = ("delivered", "http_error", "timeout", "connect_error", "blocked", "error",
            "deferred", "interrupted")

EVENTS_ROUTED = Counter(
    "triggerd_events_routed", "Events routed into deliveries by this process's Poller")
DELIVERIES_CREATED = Counter(
    "triggerd_deliveries_created", "Deliveries created by routing (one per matching endpoint)")
FILTER_OVERRUNS = Counter(
    "triggerd_routing_filter_overruns", "Events whose endpoints' filters took longer than "
    "the routing budget (TRIGGERD_ROUTE_TIMEOUT): routed to every endpoint their type "
    "matches, their organization's events then routed one at a time for a while")
DELIVERIES_CLAIMED = Counter(
    "triggerd_deliveries_claimed", "Deliveries leased by this process for an attempt")
DELIVERY_ATTEMPTS = Counter(
    "triggerd_delivery_attempts", "Delivery attempts by outcome; deferred ones spend no attempt",
    ["outcome"])
DELIVERY_ATTEMPT_SECONDS = Histogram(
    "triggerd_delivery_attempt_seconds", "Duration of delivery attempts (deferred ones excluded)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0))
DEAD_LETTERS = Counter(
    "triggerd_dead_letters", "Deliveries made dead letters by an outcome (attempts exhausted, 410)")
RESCUED = Counter(
    "triggerd_deliveries_rescued", "Expired leases returned to the queue by this process's "
    "Rescuer (or made dead letters at the rescue bound)", ["outcome"])
OUTCOMES_DISCARDED = Counter(
    "triggerd_outcomes_discarded", "Outcomes whose lease was no longer current when written "
    "(rescued, cancelled, or a write applied twice): nothing recorded")
OUTCOMES_DROPPED = Counter(
    "triggerd_outcomes_dropped", "Outcomes never written; their leases expire and are rescued",
    ["reason"])
BREAKER_OPENED = Counter(
    "triggerd_breaker_opened", "Endpoint circuit breakers opened (a failed probe not counted)")

# Why an outcome is dropped: the result queue was full, the ResultWriter was restarting,
# the database refused the row (a bug: logged at ERROR), or stayed away past the write
# timeout.
DROP_REASONS = ("queue_full", "writer_down", "refused", "gave_up")

# Bound once: a label look-up per attempt would take the metric's lock twice.
_ATTEMPTS = {kind: DELIVERY_ATTEMPTS.labels(kind) for kind in OUTCOMES}
OUTCOMES_DROPPED_BY = {reason: OUTCOMES_DROPPED.labels(reason) for reason in DROP_REASONS}


def attempted(outcome: Outcome) -> None:
    """Counts one outcome of the pool, and times it unless it was deferred."""
    counter = _ATTEMPTS.get(outcome.kind)
    (counter or DELIVERY_ATTEMPTS.labels(outcome.kind)).inc()
    if outcome.kind not in ("deferred", "interrupted"):
        DELIVERY_ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000.0)

INGEST_TO_DELIVERED_SECONDS = Histogram(
    "triggerd_ingest_to_delivered_seconds",
    "From an event's acceptance (events.created_at) to the receiver's successful answer, "
    "observed once per delivery recorded as delivered (retries included in the time)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
             900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0))
RESULT_WRITE_FAILURES = Counter(
    "triggerd_result_write_failures", "Failed result writes (one transaction over a batch "
    "of outcomes): transient (the database away; retried with backoff) or refused (a row it "
    "will not take; the batch is split until the row is found)", ["kind"])

# Bound once; also makes both series show (at 0) from the start.
WRITE_FAILED = {kind: RESULT_WRITE_FAILURES.labels(kind) for kind in ("transient", "refused")}
