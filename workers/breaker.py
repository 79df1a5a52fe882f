"""The per-endpoint circuit breaker's decisions, kept pure so they are easy to test.

Closed: attempts flow. After `threshold` consecutive failures it opens for `cooldown`
seconds: the endpoint's deliveries are held and spend no attempts. When the cooldown
is over it is half-open: one probe (the endpoint's oldest open delivery) is let
through. A success closes it; a failure opens it again for twice the cooldown, up to
`max_cooldown`. The state lives in the endpoints table, so every node agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.alerter import Alert


@dataclass(frozen=True, slots=True)
class HealthRow:
    """An endpoint's state after a batch of outcomes was folded in."""

    id: str
    url: str
    consecutive_failures: int
    cooldown_s: int | None  # None = closed
    cooldown_over: bool  # the open period has ended (half-open)
    last_success: bool  # the batch's last outcome for this endpoint succeeded


class Breaker:
    def __init__(self, threshold: int, cooldown: float, max_cooldown: float = 600.0) -> None:
        self.threshold = threshold  # 0 = off
        self.cooldown = max(1, round(cooldown))
        self.max_cooldown = max(self.cooldown, round(max_cooldown))

    def decide(self, rows: list[HealthRow]) -> tuple[dict[str, int | None], list[Alert]]:
        """Breaker changes (endpoint -> new cooldown, None = close) and the alerts to send."""
        changes: dict[str, int | None] = {}
        alerts: list[Alert] = []
        for row in rows:
            if row.last_success:
                if row.cooldown_s is not None:
                    changes[row.id] = None
                continue
            if self.threshold == 0 or row.consecutive_failures < self.threshold:
                continue
            if row.cooldown_s is None:
                changes[row.id] = self.cooldown
                alerts.append(Alert.breaker_opened(row.id, row.url, row.consecutive_failures,
                                                   self.cooldown))
            elif row.cooldown_over:  # the probe failed
                changes[row.id] = min(2 * row.cooldown_s, self.max_cooldown)
        return changes, alerts
