"""DeliveryPool: POOL_SIZE workers fed by a bounded mailbox of claimed deliveries.

Each worker takes a `Claimed` delivery, checks this node's per-endpoint limits
(concurrency cap, `rate_limit_per_second`), has the Deliverer make the attempt and
sends the Outcome to the ResultWriter. A delivery the limits hold back is handed back
as a deferred outcome that spends no attempt. The Poller claims only `free_slots()`
deliveries, so the mailbox never overflows and no lease waits in memory for long.

Messages: `Claimed`. Restart: permanent (a crash loses only leases, which the
Rescuer returns to the queue).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from supervisor import Actor
from workers import metrics
from workers.deliverer import Deliverer, Job, Outcome

DEFERRED = "deferred"  # handed back by this node's limits: spends no attempt
INTERRUPTED = "interrupted"  # cut short by a stop or crash: refunded, counted as a rescue


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased by the Poller for this node."""

    job: Job
    rate_limit_per_second: int | None


class EndpointLimits:
    """Per-endpoint concurrency and rate on this node (a token bucket per endpoint)."""

    def __init__(self, max_in_flight: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._claimed: dict[str, int] = {}  # claimed and not yet finished, per endpoint
        self._buckets: dict[str, tuple[float, float]] = {}  # endpoint -> (tokens, at)

    def claimed(self, endpoint_id: str) -> None:
        """A delivery to `endpoint_id` was claimed for this node."""
        self._claimed[endpoint_id] = self._claimed.get(endpoint_id, 0) + 1

    def finished(self, endpoint_id: str) -> None:
        """A claimed delivery's attempt is over (made, deferred or handed back)."""
        left = self._claimed.get(endpoint_id, 1) - 1
        if left > 0:
            self._claimed[endpoint_id] = left
        else:
            self._claimed.pop(endpoint_id, None)

    def rooms(self) -> tuple[list[str], list[int], list[str]]:
        """What a claim may take per endpoint: the endpoints this node holds claims for
        with the room each has left, and those with none left."""
        busy, room, full = [], [], []
        for endpoint, held in self._claimed.items():
            if held >= self.max_in_flight:
                full.append(endpoint)
            else:
                busy.append(endpoint)
                room.append(self.max_in_flight - held)
        return busy, room, full

    def acquire(self, endpoint_id: str, rate: int | None) -> float:
        """0 when the attempt may go now (and is counted), else seconds to wait."""
        if self._in_flight.get(endpoint_id, 0) >= self.max_in_flight:
            return 0.05
        if rate is not None:
            now = self._clock()
            tokens, at = self._buckets.get(endpoint_id, (float(rate), now))
            tokens = min(float(rate), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[endpoint_id] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[endpoint_id] = (tokens - 1.0, now)
        self._in_flight[endpoint_id] = self._in_flight.get(endpoint_id, 0) + 1
        return 0.0

    def saturated(self) -> list[str]:
        """Endpoints at their concurrency cap: the Poller leaves their deliveries alone."""
        return [e for e, n in self._in_flight.items() if n >= self.max_in_flight]

    def release(self, endpoint_id: str) -> None:
        left = self._in_flight.get(endpoint_id, 1) - 1
        if left:
            self._in_flight[endpoint_id] = left
        else:
            self._in_flight.pop(endpoint_id, None)


def deferred(job: Job, wait: float, reason: str, kind: str = DEFERRED) -> Outcome:
    return Outcome(job=job, kind=kind, status=None, duration_ms=0.0, error=reason,
                   body=None, retry_after=wait)


class DeliveryPool(Actor[Claimed]):
    def __init__(self, deliverer: Callable[[], Deliverer | None],
                 report: Callable[[Outcome], None], *, size: int = 50,
                 max_per_endpoint: int = 10,
                 capacity_freed: Callable[[], None] = lambda: None,
                 unrecorded: Callable[[], int] = lambda: 0) -> None:
        # Room for `size` claims plus one stop marker per worker.
        super().__init__(name="DeliveryPool", mailbox_size=2 * size)
        self.size = size
        self._deliverer = deliverer
        self._report = report
        self._limits = EndpointLimits(max_per_endpoint)
        self._busy = 0
        self._capacity_freed = capacity_freed
        self._unrecorded = unrecorded
        self._attempting: dict[int, Job] = {}

    @property
    def busy(self) -> int:
        """Workers in an attempt now (read by the node's metrics)."""
        return self._busy

    def saturated_endpoints(self) -> list[str]:
        return self._limits.saturated()

    def claim_rooms(self) -> tuple[list[str], list[int], list[str]]:
        """Per endpoint, how many more deliveries this node may claim (EndpointLimits.rooms)."""
        return self._limits.rooms()

    @property
    def max_per_endpoint(self) -> int:
        return self._limits.max_in_flight

    def submit(self, claimed: Claimed) -> None:
        """Hands a claimed delivery to the workers (the Poller claimed it for a free slot)."""
        self._limits.claimed(claimed.job.endpoint_id)
        self.mailbox.put_nowait(claimed)

    def free_slots(self) -> int:
        """How many more deliveries this node may lease. An attempt whose outcome is not
        yet recorded still holds its lease, so it still counts: a node never holds more
        than `size` leases, which bounds the duplicates a crash can cause. (A claim
        handed to the mailbox is counted there; `_busy` from the moment a worker takes
        it; `unrecorded` from the moment its outcome is reported.)"""
        return max(0, self.size - self._busy - self.mailbox.qsize() - self._unrecorded())

    async def run(self) -> None:
        workers = [asyncio.create_task(self._work(), name=f"DeliveryPool.worker{i}")
                   for i in range(self.size)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def request_stop(self) -> None:
        # Workers finish the attempt in hand, then see `stopping` and leave.
        self.stopping = True
        for _ in range(self.size):
            self.mailbox.put_nowait(None)  # type: ignore[arg-type]

    async def _work(self) -> None:
        while not self.stopping:
            claimed = await self.mailbox.get()
            if claimed is None:
                return
            self._busy += 1
            try:
                await self._attempt(claimed)
            finally:
                self._busy -= 1
            if self.mailbox.empty():
                self._capacity_freed()

    async def _attempt(self, claimed: Claimed) -> None:
        try:
            await self._attempt_once(claimed)
        finally:
            self._limits.finished(claimed.job.endpoint_id)

    async def _attempt_once(self, claimed: Claimed) -> None:
        job = claimed.job
        wait = self._limits.acquire(job.endpoint_id, claimed.rate_limit_per_second)
        if wait:
            self._send(deferred(job, wait, "held by the endpoint's limits on this node"))
            return
        deliverer = self._deliverer()
        if deliverer is None:
            self._limits.release(job.endpoint_id)
            self._send(deferred(job, 1.0, "deliverer restarting"))
            return
        # Left in place if the attempt is cancelled or crashes: terminate() hands it back.
        self._attempting[job.delivery_id] = job
        outcome = await deliverer.deliver(job)
        del self._attempting[job.delivery_id]
        self._limits.release(job.endpoint_id)
        self._send(outcome)

    def _send(self, outcome: Outcome) -> None:
        metrics.attempted(outcome)
        self._report(outcome)

    async def terminate(self, reason: BaseException | None) -> None:
        """Hands back what was claimed but not finished, so it is requeued at once rather
        than when its lease ends. An attempt cut short by a crash may have reached the
        receiver: that is the at-least-once duplicate. It counts as a rescue, so an
        attempt that crashes its worker every time ends as a dead letter."""
        for job in self._attempting.values():
            self._send(deferred(job, 0.0, "attempt interrupted", INTERRUPTED))
        self._attempting.clear()
        while not self.mailbox.empty():
            claimed = self.mailbox.get_nowait()
            if claimed is not None:
                self._send(deferred(claimed.job, 0.0, "node stopping"))
