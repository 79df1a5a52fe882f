"""Priority under a backlog: a high-priority endpoint's delivery latency while a
low-priority endpoint of the same organization drains a backlog, beside the same setup
with both at the default priority, in the same run.

One node with every role and a small pool (`priority_pool` workers, the same per-endpoint
cap, so the backlog alone can fill the pool), delivering to the receiver's /delay/ path,
which answers after `priority_delay_ms`: the pool, not the receiver, is the bottleneck.
Two endpoints made through `POST /api/endpoints`: L (event type bench.backlog) and H
(benchmark.test, the type of the open loop's events). Each phase, on a database and node
of its own:

1. warm-up events for H, until they arrive;
2. `priority_backlog` pending deliveries to L (and their events) inserted in one
   statement, carrying L's stored priority as routing would;
3. once L's deliveries are being delivered, events for H through POST /api/events at
   `priority_rate` per second (open loop) for `priority_s`, every answer's status
   counted; then until each of them has arrived (bounded).

A latency is the receiver's arrival time of an H webhook minus the time its POST was
sent (same clock). L's drain rate is its deliveries whose `delivered_at` falls within
the open loop's time, per second. The ranked phase has L at 1 and H at 10; the baseline
both at 5, where H's deliveries queue behind the backlog.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from benchmarks.benchmark_async import percentile
from benchmarks.loadgen import open_loop
from benchmarks.measure_ingest import Say, new_keys
from benchmarks.measure_queue import Missing, ask_receiver
from benchmarks.procs import Child, Children, Postgres
from benchmarks.profiles import Profile

LOW_TYPE, HIGH_TYPE = "bench.backlog", "benchmark.test"  # HIGH_TYPE: loadgen's EVENT
POLL_S = 0.2
SLOWEST = 5  # the slowest H deliveries reported with their time in the open loop

# $2 delivered events of org $1 with pending deliveries to endpoint $3 (routed now, ids
# random, due now), each delivery carrying the endpoint's stored priority.
BACKLOG = """
WITH made AS (
    INSERT INTO events (id, org_id, type, payload, routed_at)
    SELECT gen_random_uuid(), $1, 'bench.backlog',
           jsonb_build_object('n', i, 'data', 'benchmark backlog'), now()
    FROM generate_series(1, $2) AS i
    RETURNING id
)
INSERT INTO deliveries (event_id, endpoint_id, org_id, priority)
SELECT made.id, endpoint.id, endpoint.org_id, endpoint.priority
FROM made, endpoints AS endpoint WHERE endpoint.id = $3
"""
# Per endpoint $1: deliveries delivered, those delivered within [$2, $3), those open.
COUNTS = """
SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE delivered_at >= $2 AND delivered_at < $3) AS within,
       count(*) FILTER (WHERE status IN ('pending', 'failed', 'in_flight')) AS open
FROM deliveries WHERE endpoint_id = $1
"""
# Deliveries of endpoint $1 by status, at the end.
STATUSES = "SELECT status, count(*) AS n FROM deliveries WHERE endpoint_id = $1 GROUP BY status"
EPOCH = datetime.fromtimestamp(0, UTC)


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


async def _endpoint(node: Child, key: str, url: str, priority: int,
                    event_type: str) -> uuid.UUID:
    body = {"url": url, "priority": priority, "event_types": [event_type]}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(node.url + "/api/endpoints", json=body,
                                headers={"X-API-Key": key}) as resp:
            answer = await resp.json(content_type=None)
    if resp.status != 201 or answer.get("priority") != priority:
        raise RuntimeError(f"POST /api/endpoints (priority {priority}) answered "
                           f"{resp.status}: {str(answer)[:300]}")
    return uuid.UUID(answer["id"])


class Phase:
    """One node, two endpoints, one backlog, one open loop."""

    def __init__(self, pg: Postgres, children: Children, profile: Profile, receiver: Child,
                 low: int, high: int) -> None:
        self.pg, self.children, self.profile, self.receiver = pg, children, profile, receiver
        self.low_priority, self.high_priority = low, high
        self.name = f"bench_priority_{low}_{high}"

    async def run(self) -> dict[str, Any]:
        p = self.profile
        dsn = await self.pg.database(self.name)
        node = await self.children.node(
            f"triggerd-priority-{self.low_priority}-{self.high_priority}", dsn,
            "ingest,process,deliver", POOL_SIZE=str(p.priority_pool),
            TRIGGERD_ENDPOINT_CONCURRENCY=str(p.priority_pool),
            TRIGGERD_ALLOW_PRIVATE_TARGETS="true")
        conn = await asyncpg.connect(dsn)
        try:
            key = (await new_keys(node.url, 1))[0]
            path = f"{self.receiver.url}/delay/{p.priority_delay_ms}"
            low = await _endpoint(node, key, f"{path}/low", self.low_priority, LOW_TYPE)
            high = await _endpoint(node, key, f"{path}/high", self.high_priority, HIGH_TYPE)
            warm = await self._warm_up(conn, node, key, high)
            org = await conn.fetchval("SELECT org_id FROM endpoints WHERE id = $1", low)
            await conn.execute(BACKLOG, org, p.priority_backlog, low)
            await self._until(conn, low, 1, "backlog deliveries")
            return await self._measure(conn, node, key, low, high, warm)
        finally:
            await conn.close()
            await self.children.stop(node)

    async def _warm_up(self, conn: asyncpg.Connection, node: Child, key: str,
                       high: uuid.UUID) -> int:
        """Connections and caches warm; H's first webhooks arrive or it is Missing."""
        warm, statuses = await open_loop(node.url, [key], 20.0, 0.5)
        if not warm:
            raise RuntimeError(f"warm-up events were not accepted: {dict(statuses)}")
        await self._until(conn, high, len(warm), "warm-up webhooks")
        return len(warm)

    async def _until(self, conn: asyncpg.Connection, endpoint: uuid.UUID, count: int,
                     what: str) -> None:
        deadline = time.monotonic() + self.profile.stall_s
        while (await conn.fetchrow(COUNTS, endpoint, EPOCH, EPOCH))["delivered"] < count:
            if time.monotonic() > deadline:
                raise Missing(f"no {what} delivered within {self.profile.stall_s:.0f} s")
            await asyncio.sleep(0.05)

    async def _measure(self, conn: asyncpg.Connection, node: Child, key: str, low: uuid.UUID,
                       high: uuid.UUID, warm: int) -> dict[str, Any]:
        p = self.profile
        started = time.time()
        sent_at, statuses = await open_loop(node.url, [key], p.priority_rate, p.priority_s)
        ended = time.time()
        at_end = await conn.fetchrow(COUNTS, low, _at(started), _at(ended))
        waited = await self._arrivals(conn, low, high, warm + len(sent_at))
        # deliveries finishing within the open loop (counted once they are recorded)
        drained = (await conn.fetchrow(COUNTS, low, _at(started), _at(ended)))["within"]
        served = (await conn.fetchrow(COUNTS, high, _at(started), _at(ended)))["within"]
        arrivals: dict[str, float] = await ask_receiver(self.receiver, "GET", "/_arrivals")
        timed = sorted(((arrivals[i] - t) * 1000, t - started) for i, t in sent_at.items()
                       if i in arrivals)
        high_statuses = {r["status"]: r["n"] for r in await conn.fetch(STATUSES, high)}
        return _figures(self, sent_at, statuses, timed, ended - started,
                        (drained, served), int(at_end["open"]), high_statuses, waited)

    async def _arrivals(self, conn: asyncpg.Connection, low: uuid.UUID, high: uuid.UUID,
                        target: int) -> float:
        """Until H's deliveries are all delivered, nothing at all is delivered for
        `stall_s`, or `priority_timeout_s` passes; the seconds waited."""
        started = last_change = time.monotonic()
        last = -1
        while True:
            done = (await conn.fetchrow(COUNTS, high, EPOCH, EPOCH))["delivered"]
            moving = done + (await conn.fetchrow(COUNTS, low, EPOCH, EPOCH))["delivered"]
            now = time.monotonic()
            if moving != last:
                last, last_change = moving, now
            if done >= target or now - started > self.profile.priority_timeout_s \
                    or now - last_change > self.profile.stall_s:
                return now - started
            await asyncio.sleep(POLL_S)


def _figures(phase: Phase, sent_at: dict[str, float], statuses: Counter[str],
             timed: list[tuple[float, float]], seconds: float, within: tuple[int, int],
             low_left: int, high_statuses: dict[str, int], waited: float) -> dict[str, Any]:
    """`timed`: H's latencies (ms) with their send time in the open loop (s), fastest
    first; `within`: L's and H's deliveries that finished within the open loop."""
    latencies = [ms for ms, _ in timed]
    if not latencies:
        raise Missing("none of the high-priority events reached the receiver")
    non_2xx = sum(n for status, n in statuses.items() if not status.startswith("2"))
    drained, served = within
    out: dict[str, Any] = {
        "low_priority": phase.low_priority, "high_priority": phase.high_priority,
        "sent": len(sent_at), "received": len(latencies), "non_2xx": non_2xx,
        "statuses": dict(statuses), "high_deliveries": high_statuses,
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99), "max_ms": latencies[-1],
        "low_drained": drained, "low_drain_per_s": drained / seconds if seconds else None,
        "low_left_at_end": low_left, "high_delivered_within": served,
        # the whole pool's pace: a backlog drained slower only because H went first is not
        # a loss
        "delivered_per_s": (drained + served) / seconds if seconds else None,
        "waited_after_s": round(waited, 2),
        "slowest": [{"ms": round(ms, 1), "sent_at_s": round(at, 2)}
                    for ms, at in timed[-SLOWEST:][::-1]]}
    problems = []
    if non_2xx:
        problems.append(f"{non_2xx} of {sum(statuses.values())} POSTs were not 2xx")
    if len(latencies) < len(sent_at):
        problems.append(f"{len(sent_at) - len(latencies)} of {len(sent_at)} never arrived "
                        f"(waited {waited:.1f} s)")
    if problems:
        out["error"] = "; ".join(problems)
    if low_left == 0:
        out["note"] = ("the backlog was gone before the open loop ended: the latencies "
                       "are partly without it")
    return out


async def priority(pg: Postgres, children: Children, profile: Profile,
                   say: Say) -> dict[str, Any]:
    receiver = await children.server("receiver-priority", "receiver")
    try:
        ranked = await Phase(pg, children, profile, receiver, 1, 10).run()
        say(_line("L at 1, H at 10", ranked))
        baseline = await Phase(pg, children, profile, receiver, 5, 5).run()
        say(_line("both at 5", baseline))
    finally:
        await children.stop(receiver)
    p = profile
    return {"rate_per_s": p.priority_rate, "seconds": p.priority_s,
            "pool_size": p.priority_pool, "endpoint_concurrency": p.priority_pool,
            "receiver_delay_ms": p.priority_delay_ms, "backlog": p.priority_backlog,
            **ranked, "baseline": baseline,
            "p99_vs_baseline": (ranked["p99_ms"] / baseline["p99_ms"]
                                if baseline["p99_ms"] else None)}


def _line(what: str, phase: dict[str, Any]) -> str:
    return (f"priority, {what}: H p50 {phase['p50_ms']:.1f} ms, p95 {phase['p95_ms']:.1f} ms, "
            f"p99 {phase['p99_ms']:.1f} ms ({phase['received']} of {phase['sent']} arrived, "
            f"non-2xx {phase['non_2xx']}); L drained {phase['low_drain_per_s']:.0f}/s "
            f"(the pool {phase['delivered_per_s']:.0f}/s), {phase['low_left_at_end']} left "
            "at the end")
