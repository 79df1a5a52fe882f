"""Isolation: a healthy endpoint's delivery latency while another organization's endpoint
never answers, beside the same endpoint alone, in the same run on the same node.

The node runs with the default delivery settings (POOL_SIZE, TRIGGERD_ENDPOINT_CONCURRENCY,
TRIGGERD_REQUEST_TIMEOUT, breaker): only TRIGGERD_ALLOW_PRIVATE_TARGETS=true, so that the
127.0.0.1 receivers are allowed. Two receivers, as two hosts would be in life: G answers
at once; H (benchmarks/receiver.py's /hang/) holds every request open until the node
gives up on it, and counts how many it holds at once. Two phases on one node:

1. alone: events for G at `isolation_rate` per second for `isolation_s`;
2. beside H: the same for G while H's organization posts at `isolation_hang_rate`
   (at least G's) for the same time. The full run lasts past the 15 s request timeout, so
   the first hanging attempts end and H's next deliveries are claimed within the phase.

A latency is the receiver's arrival time of a G webhook minus the time its 202 came back
(the event's acceptance; same clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from benchmarks.benchmark_async import percentile
from benchmarks.loadgen import open_loop
from benchmarks.measure_ingest import Say, new_keys
from benchmarks.measure_queue import Missing, arrived, ask_receiver, create_endpoint
from benchmarks.procs import Child, Children, Postgres
from benchmarks.profiles import Profile
from supervisor.node.config import Config

SLOWEST = 5  # the slowest G deliveries reported with their time in the phase


async def isolation(pg: Postgres, children: Children, profile: Profile,
                    say: Say) -> dict[str, Any]:
    dsn = await pg.database("bench_isolation")
    healthy = await children.server("receiver-healthy", "receiver")
    hanging = await children.server("receiver-hanging", "receiver")
    node: Child | None = None
    try:
        node = await children.node("triggerd-isolation", dsn, "ingest,process,deliver",
                                   TRIGGERD_ALLOW_PRIVATE_TARGETS="true")
        g_key, h_key = await new_keys(node.url, 2)
        await create_endpoint(node, g_key, healthy.url + "/hook/g", dsn)
        await create_endpoint(node, h_key, hanging.url + "/hang/h", dsn)
        await _warm_up(node, healthy, g_key, profile)
        alone = await _phase(node, healthy, g_key, profile)
        say(f"isolation, G alone: p50 {alone['p50_ms']:.1f} ms, p99 {alone['p99_ms']:.1f} ms")
        beside = await _phase(node, healthy, g_key, profile, hanging, h_key)
    finally:
        # Held requests answered first, so the node's deliverer need not wait them out.
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await ask_receiver(hanging, "POST", "/_release")
        for child in (node, healthy, hanging):
            if child is not None:
                await children.stop(child)
    return _result(profile, alone, beside, say)


async def _warm_up(node: Child, healthy: Child, key: str, profile: Profile) -> None:
    """Connections and caches warm; the first webhook arrives or the measure is Missing."""
    warm, statuses = await open_loop(node.url, [key], 20.0, 0.5)
    if not warm:
        raise RuntimeError(f"warm-up events were not accepted: {dict(statuses)}")
    if (await arrived(healthy, len(warm), profile.stall_s, profile.stall_s))["count"] == 0:
        raise Missing(f"no webhook reached the receiver within {profile.stall_s:.0f} s")


async def _phase(node: Child, healthy: Child, g_key: str, profile: Profile,
                 hanging: Child | None = None, h_key: str = "") -> dict[str, Any]:
    """G's open loop (and H's beside it, when given); G's latencies and H's counts."""
    await ask_receiver(healthy, "POST", "/_reset")
    loops = [open_loop(node.url, [g_key], profile.isolation_rate, profile.isolation_s,
                       accepted=True)]
    if hanging is not None:
        await ask_receiver(hanging, "POST", "/_reset")
        loops.append(open_loop(node.url, [h_key], profile.isolation_hang_rate,
                               profile.isolation_s, accepted=True))
    started = time.time()
    (accepted_at, statuses), *hang_loop = await asyncio.gather(*loops)
    await arrived(healthy, len(accepted_at), 30.0, profile.stall_s)
    arrivals: dict[str, float] = await ask_receiver(healthy, "GET", "/_arrivals")
    timed = sorted(((arrivals[i] - t) * 1000, t - started)
                   for i, t in accepted_at.items() if i in arrivals)
    if not timed:
        raise Missing("none of G's events reached its receiver")
    latencies = [ms for ms, _ in timed]
    out: dict[str, Any] = {
        "sent": len(accepted_at), "received": len(latencies), "statuses": dict(statuses),
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99), "max_ms": latencies[-1],
        "slowest": [{"ms": round(ms, 1), "accepted_at_s": round(at, 2)}
                    for ms, at in timed[-SLOWEST:][::-1]]}
    if len(latencies) < len(accepted_at):
        out["error"] = f"{len(accepted_at) - len(latencies)} of {len(accepted_at)} never arrived"
    if hanging is not None:
        seen = await ask_receiver(hanging, "GET", "/_stats")
        out.update(hang_sent=len(hang_loop[0][0]), hang_statuses=dict(hang_loop[0][1]),
                   hang_held_max=seen["max_holding"], hang_requests=seen["held"],
                   hang_holding_at_end=seen["holding"])
    return out


def _result(profile: Profile, alone: dict[str, Any], beside: dict[str, Any],
            say: Say) -> dict[str, Any]:
    defaults = Config()
    out = {"rate_per_s": profile.isolation_rate, "hang_rate_per_s": profile.isolation_hang_rate,
           "seconds": profile.isolation_s, "pool_size": defaults.pool_size,
           "endpoint_concurrency": defaults.endpoint_concurrency,
           "request_timeout_s": defaults.request_timeout, **beside, "alone": alone,
           "p99_vs_alone": beside["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] else None}
    if profile.isolation_s <= defaults.request_timeout:
        out["note"] = (f"phases of {profile.isolation_s:g} s end before the "
                       f"{defaults.request_timeout:g} s request timeout, so no hanging attempt "
                       "ended within them (the full run's do)")
    say(f"isolation, G beside a hanging H: p50 {beside['p50_ms']:.1f} ms, p99 "
        f"{beside['p99_ms']:.1f} ms, max {beside['max_ms']:.1f} ms ({beside['received']} of "
        f"{beside['sent']} arrived); H held at most {beside['hang_held_max']} open "
        f"({beside['hang_requests']} requests for {beside['hang_sent']} events)")
    return out
