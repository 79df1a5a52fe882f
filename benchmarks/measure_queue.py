"""Queue measures: routing from a pre-filled event queue, delivery to the minimal
receiver, and end-to-end latency (POST sent -> webhook arrived) at a light open-loop rate.

Each runs a node of its own on a database of its own, written against the documented
schema (sql/002_delivery.sql) and API. A part of the product that is not there yet shows
as no progress within `stall_s`: the measure raises `Missing` and the suite records null.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from benchmarks.benchmark_async import percentile
from benchmarks.loadgen import open_loop
from benchmarks.measure_ingest import Say, new_keys
from benchmarks.procs import Child, Children, Postgres
from benchmarks.profiles import Profile


class Missing(RuntimeError):
    """The part of the product a measure needs made no progress at all."""


# One organization: $1 id, $2 name.
ORG = "INSERT INTO organizations (id, name, tier) VALUES ($1, $2, 'enterprise')"
# One endpoint for every event type: $1 id, $2 org, $3 url, $4 secret.
ENDPOINT = "INSERT INTO endpoints (id, org_id, url, secret) VALUES ($1, $2, $3, $4)"
# $2 events of org $1, ids UUIDv7-shaped and ascending (1 ms apart, ending at about now,
# from $3 = now in ms - $2), routed at $4 (NULL: they wait in the event queue).
EVENTS = """
INSERT INTO events (id, org_id, type, payload, routed_at)
SELECT (lpad(to_hex($3::bigint + i), 12, '0') || '7' || substr(md5(i::text), 1, 3)
        || '8' || substr(md5(i::text), 4, 15))::uuid,
       $1, 'benchmark.test', jsonb_build_object('timestamp', i, 'data', 'benchmark payload'),
       $4::timestamptz
FROM generate_series(1, $2) AS i
"""
# One pending delivery per event of org $1, due now, to the endpoints $2 in turn.
DELIVERIES = """
INSERT INTO deliveries (event_id, endpoint_id, org_id)
SELECT id, ($2::uuid[])[1 + (row_number() OVER (ORDER BY id) - 1) % cardinality($2::uuid[])], $1
FROM events WHERE org_id = $1
"""
# Routing progress, cheap while it runs (the identity's head), exact at the end.
ROUTED_HEAD = "SELECT coalesce(max(id), 0) FROM deliveries"
ROUTED = "SELECT count(*) FROM deliveries"
# Deliveries not yet done (over the deliveries_due and deliveries_leased partial indexes).
UNDELIVERED = "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed', 'in_flight')"
DELIVERED = "SELECT count(*) FROM deliveries WHERE status = 'delivered'"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


async def watch(progress: Callable[[], Awaitable[int]], target: int, timeout: float,
                stall: float) -> dict[str, Any]:
    """Polls `progress` every 100 ms until it reaches `target`, stalls or times out.

    The rate is taken between the first poll that saw progress and the last change, so
    neither the node's start nor the polling interval at the start counts; a run too
    short for that (under 1 s) is timed from the first poll instead."""
    started = last_change = time.monotonic()
    last, first = 0, None
    while True:
        count = await progress()
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
            first = (now, count) if first is None else first
        if count >= target or now - started > timeout or now - last_change > stall:
            break
        await asyncio.sleep(0.1)
    seconds = last_change - started
    rate: float | None
    if first is not None and last_change - first[0] >= 1.0:
        rate = (last - first[1]) / (last_change - first[0])
    else:
        rate = last / seconds if seconds > 0 else None
    return {"done": last >= target, "count": last, "seconds": seconds, "rate": rate,
            "first_after_s": None if first is None else first[0] - started}


def _rate(progress: dict[str, Any], target: int, what: str, stall: float) -> dict[str, Any]:
    if progress["count"] == 0:
        raise Missing(f"no {what} within {stall:.0f} s of the node's start")
    out = {"seconds": progress["seconds"], "first_after_s": progress["first_after_s"],
           "completed": progress["count"]}
    if not progress["done"]:
        out["note"] = (f"stopped at {progress['count']} of {target} {what} after "
                        f"{progress['seconds']:.1f} s; the rate is over that part")
    return out


async def _org_and_endpoint(conn: asyncpg.Connection, url: str) -> tuple[uuid.UUID, uuid.UUID]:
    org, endpoint = uuid.uuid4(), uuid.uuid4()
    await conn.execute(ORG, org, f"bench-{org.hex[:8]}")
    await conn.execute(ENDPOINT, endpoint, org, url, new_secret())
    return org, endpoint


async def routing(pg: Postgres, children: Children, profile: Profile, say: Say) -> dict[str, Any]:
    """100k unrouted events, one endpoint; a process-only node that sends nothing."""
    n = profile.routing_events
    conn = await asyncpg.connect(await pg.database("bench_routing"))
    try:
        org, _ = await _org_and_endpoint(conn, "http://127.0.0.1:9/unused")
        await conn.execute(EVENTS, org, n, int(time.time() * 1000) - n, None)
        await conn.execute("VACUUM ANALYZE events")
        node = await children.node("triggerd-routing", pg.dsn_of("bench_routing"), "process",
                                   DISABLE_WEBHOOK_DELIVERY="true")

        async def progress() -> int:
            head = int(await conn.fetchval(ROUTED_HEAD))
            return head if head < n else int(await conn.fetchval(ROUTED))

        try:
            watched = await watch(progress, n, profile.routing_timeout_s, profile.stall_s)
        finally:
            await children.stop(node)
    finally:
        await conn.close()
    out = _rate(watched, n, "deliveries created", profile.stall_s)
    out.update(events=n, endpoints=1, events_per_s=watched["rate"])
    say(f"routing: {out['events_per_s']:.0f} events/s ({watched['count']} of {n} in "
        f"{watched['seconds']:.2f} s)")
    return out


async def ask_receiver(receiver: Child, method: str, path: str) -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.request(method, receiver.url + path) as resp:
            return await resp.json()


async def delivery(pg: Postgres, children: Children, profile: Profile, receiver: Child,
                   say: Say) -> dict[str, Any]:
    """Deliveries to one endpoint (the figure), then spread over four endpoints of the
    same receiver (so a per-endpoint concurrency cap below POOL_SIZE cannot be the limit)."""
    out = await _delivery_run(pg, children, profile, receiver, 1, say)
    try:
        out["four_endpoints"] = await _delivery_run(pg, children, profile, receiver, 4, say)
    except Exception as exc:  # noqa: BLE001 - the one-endpoint figure stands on its own
        out["four_endpoints"] = {"deliveries_per_s": None, "error": f"{type(exc).__name__}: {exc}"}
    return out


async def _delivery_run(pg: Postgres, children: Children, profile: Profile, receiver: Child,
                        endpoints: int, say: Say) -> dict[str, Any]:
    """N pending deliveries over `endpoints` endpoints of the receiver; a process,deliver
    node with POOL_SIZE workers; timed until none is pending, failed or in flight."""
    n, name = profile.deliveries, f"bench_delivery_{endpoints}"
    await ask_receiver(receiver, "POST", "/_reset")
    conn = await asyncpg.connect(await pg.database(name))
    try:
        org, first = await _org_and_endpoint(conn, receiver.url + "/hook/0")
        ids = [first]
        for j in range(1, endpoints):
            ids.append(uuid.uuid4())
            await conn.execute(ENDPOINT, ids[-1], org, f"{receiver.url}/hook/{j}", new_secret())
        await conn.execute(EVENTS, org, n, int(time.time() * 1000) - n,
                           datetime.now(UTC))
        await conn.execute(DELIVERIES, org, ids)
        await conn.execute("VACUUM ANALYZE")
        node = await children.node(
            f"triggerd-delivery-{endpoints}", pg.dsn_of(name), "process,deliver",
            POOL_SIZE=str(profile.pool_size), TRIGGERD_ALLOW_PRIVATE_TARGETS="true")

        async def progress() -> int:
            return n - int(await conn.fetchval(UNDELIVERED))

        try:
            watched = await watch(progress, n, profile.delivery_timeout_s, profile.stall_s)
            delivered = int(await conn.fetchval(DELIVERED))
        finally:
            await children.stop(node)
    finally:
        await conn.close()
    out = _rate(watched, n, "deliveries completed", profile.stall_s)
    seen = await ask_receiver(receiver, "GET", "/_stats")
    out.update(deliveries=n, delivered=delivered, pool_size=profile.pool_size,
               endpoints=endpoints, deliveries_per_s=watched["rate"],
               receiver_received=seen["received"], receiver_unique=seen["unique"])
    if delivered < watched["count"]:
        out["error"] = f"only {delivered} of {watched['count']} finished as 'delivered'"
    say(f"delivery to {endpoints} endpoint(s): {out['deliveries_per_s']:.0f} deliveries/s "
        f"({delivered} delivered of {n} in {watched['seconds']:.2f} s; receiver saw "
        f"{seen['received']})")
    return out


async def create_endpoint(node: Child, key: str, url: str, dsn: str) -> str:
    """POST /api/endpoints; straight into the table when the route is not there yet."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(node.url + "/api/endpoints", json={"url": url},
                                headers={"X-API-Key": key}) as resp:
            if resp.status == 201:
                return "api"
            async with session.get(node.url + "/api/keys", headers={"X-API-Key": key}) as me:
                org = (await me.json(content_type=None)).get("organization_id")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(ENDPOINT, uuid.uuid4(), uuid.UUID(str(org)), url, new_secret())
    finally:
        await conn.close()
    return f"sql (POST /api/endpoints answered {resp.status})"


async def arrived(receiver: Child, count: int, timeout: float, stall: float) -> dict[str, Any]:
    async def progress() -> int:
        return int((await ask_receiver(receiver, "GET", "/_stats"))["unique"])
    return await watch(progress, count, timeout, stall)


async def e2e(pg: Postgres, children: Children, profile: Profile, receiver: Child,
              say: Say) -> dict[str, Any]:
    """A node with every role; POSTs at a light open-loop rate; webhook arrival times."""
    dsn = await pg.database("bench_e2e")
    node = await children.node("triggerd-e2e", dsn, "ingest,process,deliver",
                               TRIGGERD_ALLOW_PRIVATE_TARGETS="true")
    try:
        keys = await new_keys(node.url, 1)
        created = await create_endpoint(node, keys[0], receiver.url + "/hook", dsn)
        await ask_receiver(receiver, "POST", "/_reset")
        warm, warm_statuses = await open_loop(node.url, keys, 20.0, 0.5)  # connections, caches
        if not warm:
            raise RuntimeError(f"warm-up events were not accepted: {dict(warm_statuses)}")
        if (await arrived(receiver, len(warm), profile.stall_s, profile.stall_s))["count"] == 0:
            raise Missing(f"no webhook reached the receiver within {profile.stall_s:.0f} s "
                          f"(endpoint created via {created})")
        await ask_receiver(receiver, "POST", "/_reset")
        sent_at, statuses = await open_loop(node.url, keys, profile.e2e_rate, profile.e2e_s)
        await arrived(receiver, len(sent_at), 30.0, profile.stall_s)
        arrivals: dict[str, float] = await ask_receiver(receiver, "GET", "/_arrivals")
    finally:
        await children.stop(node)
    latencies = sorted((arrivals[i] - t) * 1000 for i, t in sent_at.items() if i in arrivals)
    if not latencies:
        raise Missing("none of the events reached the receiver")
    out = {"rate_per_s": profile.e2e_rate, "seconds": profile.e2e_s, "sent": len(sent_at),
           "received": len(latencies), "statuses": dict(statuses), "endpoint_created_via": created,
           "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
           "max_ms": latencies[-1]}
    if len(latencies) < len(sent_at):
        out["error"] = f"{len(sent_at) - len(latencies)} of {len(sent_at)} never arrived"
    say(f"e2e at {profile.e2e_rate:.0f}/s: p50 {out['p50_ms']:.1f} ms, p99 "
        f"{out['p99_ms']:.1f} ms ({len(latencies)} of {len(sent_at)} arrived)")
    return out
