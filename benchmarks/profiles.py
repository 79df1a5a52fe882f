"""How long and how large each measure is: the full run (under 6 minutes on 2 cores),
--quick (about 2 minutes), and --smoke (seconds; what the test suite runs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    connections: tuple[int, ...] = (64, 128)
    ingest_s: float = 8.0           # each closed-loop ingest run
    warmup_s: float = 2.0           # before each ingest run, discarded
    keys: int = 16                  # organizations a load run is spread over
    source_connections: int = 128   # Stripe-signed deliveries beside plain ingest
    sequential: int = 1000          # requests of the sequential latency run
    batch_s: float = 5.0
    batch_size: int = 100
    batch_connections: int = 16
    routing_events: int = 100_000
    routing_timeout_s: float = 45.0
    deliveries: int = 20_000
    delivery_timeout_s: float = 20.0  # each of the two delivery runs
    pool_size: int = 50
    e2e_rate: float = 200.0         # events per second, open loop
    e2e_s: float = 10.0
    isolation_rate: float = 100.0   # events per second for the healthy endpoint G
    isolation_hang_rate: float = 200.0  # and for the hanging endpoint H (at least G's)
    isolation_s: float = 18.0       # each phase; past the default 15 s request timeout
    priority_backlog: int = 8_000   # low-priority deliveries queued before the high stream
    priority_rate: float = 50.0     # high-priority events per second, open loop
    priority_s: float = 10.0        # the open loop of each phase
    priority_pool: int = 20         # POOL_SIZE and TRIGGERD_ENDPOINT_CONCURRENCY
    priority_delay_ms: int = 15     # the receiver's answer delay
    priority_timeout_s: float = 90.0  # waiting for the high stream's arrivals after it
    memory_s: float = 60.0          # sustained ingest while RSS is sampled
    memory_connections: int = 64
    db_down_s: float = 10.0         # posting while PostgreSQL is stopped
    stall_s: float = 15.0           # no progress for this long: that part is missing

    def replace(self, **changes: object) -> Profile:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


FULL = Profile("full")
QUICK = FULL.replace(name="quick", ingest_s=3.0, warmup_s=1.0, sequential=300, batch_s=3.0,
                     routing_events=20_000, routing_timeout_s=20.0, deliveries=5_000,
                     delivery_timeout_s=10.0, e2e_s=5.0, isolation_s=6.0,
                     priority_backlog=3_000, priority_s=4.0, priority_timeout_s=30.0,
                     memory_s=10.0, db_down_s=4.0, stall_s=10.0)
SMOKE = FULL.replace(name="smoke", ingest_s=1.0, warmup_s=0.0, keys=4, sequential=20,
                     batch_s=1.0, batch_connections=4, routing_events=1_000,
                     routing_timeout_s=10.0, deliveries=200, delivery_timeout_s=5.0,
                     e2e_rate=50.0, e2e_s=1.0, isolation_rate=20.0,
                     isolation_hang_rate=20.0, isolation_s=1.0, priority_backlog=300,
                     priority_rate=20.0, priority_s=1.0, priority_timeout_s=10.0,
                     memory_s=2.0, memory_connections=16, db_down_s=1.5, stall_s=4.0)
PROFILES = {p.name: p for p in (FULL, QUICK, SMOKE)}
