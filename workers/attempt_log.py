"""The log lines of delivery attempts, with the ids as fields.

The ResultWriter calls `recorded()` for each attempt it recorded under a current lease
(so once per attempt row; deferred and interrupted outcomes spend no attempt and are
not logged): a failed attempt is one line, INFO while the delivery will be retried
(saying when), WARNING when it made the delivery a dead letter; a success is one INFO
line only when sampled, TRIGGERD_LOG_DELIVERED_SAMPLE being the share logged (0, the
default: none; 1: all).

Fields (`extra=`): node, org_id, endpoint_id, event_id, delivery_id, attempt,
outcome (the Outcome's kind), response_status, error, duration_ms, and
next_attempt_at (a retry) or latency_s (a success: from the event's acceptance).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from workers.deliverer import Outcome

log = logging.getLogger(__name__)

ERROR_SHOWN = 300  # characters of an attempt's error in its line


class AttemptLog:
    def __init__(self, node: str, delivered_sample: float = 0.0, *,
                 draw: Callable[[], float] = random.random) -> None:
        if not 0.0 <= delivered_sample <= 1.0:
            raise ValueError(f"delivered_sample must be in [0, 1], got {delivered_sample}")
        self.node = node
        self.delivered_sample = delivered_sample
        self._draw = draw

    def __repr__(self) -> str:
        return f"AttemptLog(node={self.node!r}, delivered_sample={self.delivered_sample:g})"

    def recorded(self, outcome: Outcome, status: str, next_at: datetime | None,
                 latency_s: float | None) -> None:
        """Logs one recorded attempt; `status` is its delivery's new status."""
        job = outcome.job
        if outcome.ok:
            if self._sampled():
                log.info("delivery %d delivered on attempt %d in %.1f ms, %.3f s after "
                         "acceptance", job.delivery_id, job.attempt, outcome.duration_ms,
                         latency_s or 0.0, extra=self._fields(outcome, latency_s=latency_s))
            return
        error = (outcome.error or outcome.kind)[:ERROR_SHOWN]
        if status == "dead_letter":
            log.warning("delivery %d attempt %d failed: %s; now a dead letter",
                        job.delivery_id, job.attempt, error,
                        extra=self._fields(outcome, error=error))
            return
        retry_at = next_at.isoformat(timespec="milliseconds") if next_at else None
        log.info("delivery %d attempt %d failed: %s; next attempt at %s", job.delivery_id,
                 job.attempt, error, retry_at,
                 extra=self._fields(outcome, error=error, next_attempt_at=retry_at))

    def _sampled(self) -> bool:
        sample = self.delivered_sample
        return sample >= 1.0 or (sample > 0.0 and self._draw() < sample)

    def _fields(self, outcome: Outcome, **more: Any) -> dict[str, Any]:
        job = outcome.job
        return {"node": self.node, "org_id": job.org_id, "endpoint_id": job.endpoint_id,
                "event_id": job.event_id, "delivery_id": job.delivery_id,
                "attempt": job.attempt, "outcome": outcome.kind,
                "response_status": outcome.status,
                "duration_ms": round(outcome.duration_ms, 1), **more}
