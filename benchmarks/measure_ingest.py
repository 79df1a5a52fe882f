"""Ingest measures: triggerd beside its baselines at 64 and 128 connections, sequential
latency (the benchmark_async method, in-process), batch ingest, and the node's resident
memory under sustained load and while PostgreSQL is stopped.

Each load run gets organizations of its own (rate limits are per organization and
minute), so no run is slowed by the one before; non-2xx answers are counted and reported.
Around each load run (not its warm-up) the server's CPU time and, for naive and
triggerd, that of the benchmark's PostgreSQL (the postmaster and all its children) are
read from /proc (benchmarks.cpu) and divided by the run's 2xx answers: microseconds of
CPU per request or per accepted event, a figure that other load on the machine disturbs
far less than throughput.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from benchmarks import benchmark_async
from benchmarks.cpu import CpuMeter
from benchmarks.loadgen import Load, LoadGenerator, closed_loop
from benchmarks.procs import Child, Postgres
from benchmarks.profiles import Profile

Say = Callable[[str], None]


async def new_keys(url: str, count: int) -> list[str]:
    """`count` fresh enterprise organizations on the node at `url`; their API keys."""
    tag = secrets.token_hex(4)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        return list(await asyncio.gather(*(
            benchmark_async.create_org(session, url, f"bench-{tag}-{i}")
            for i in range(count))))


def _figures(name: str, run: dict[str, Any]) -> dict[str, Any]:
    return {f"{name}_rps": run["rps"], f"{name}_p50_ms": run["p50_ms"],
            f"{name}_p99_ms": run["p99_ms"], f"{name}_non_2xx": run["non_2xx"],
            f"{name}_errors": run["errors"], f"{name}_cpu_us": run.get("cpu_us"),
            f"{name}_pg_cpu_us": run.get("pg_cpu_us")}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


async def measured(gen: LoadGenerator, load: Load, server: Child,
                   pg: Postgres | None = None) -> dict[str, Any]:
    """One load run with the CPU it cost: `cpu_us`, the server's microseconds of CPU per
    2xx answer, and `pg_cpu_us`, PostgreSQL's (None without `pg`)."""
    own = CpuMeter(server.cpu_s).start()
    database = CpuMeter(pg.cpu_s).start() if pg is not None else None
    run = await gen.run(load)
    own.stop()
    run["cpu_us"] = own.per(run["ok"])
    run["cpu_s"] = own.seconds
    if database is not None:
        database.stop()
        run["pg_cpu_us"] = database.per(run["ok"])
    return run


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} us"


async def ingest(gen: LoadGenerator, profile: Profile, node: Child, bare: Child,
                 naive: Child, pg: Postgres, say: Say) -> dict[str, Any]:
    """Per connection count: bare, naive and triggerd, one after the other, same load."""
    section: dict[str, Any] = {"seconds_per_run": profile.ingest_s, "path": "/api/events"}
    for connections in profile.connections:
        row: dict[str, Any] = {"connections": connections}
        for name, server in (("bare", bare), ("naive", naive), ("triggerd", node)):
            keys = tuple(await new_keys(node.url, profile.keys))
            if profile.warmup_s:
                await gen.run(Load(server.url, keys, connections, profile.warmup_s))
            run = await measured(gen, Load(server.url, keys, connections, profile.ingest_s),
                                 server, None if name == "bare" else pg)
            row.update(_figures(name, run))
            say(f"ingest c{connections} {name}: {run['rps']:.0f} req/s, p50 "
                f"{run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, non-2xx {run['non_2xx']}; "
                f"CPU per 2xx: server {_us(run['cpu_us'])}, PostgreSQL "
                f"{_us(run.get('pg_cpu_us'))}")
        row["p50_ms"] = row["triggerd_p50_ms"]
        row["p99_ms"] = row["triggerd_p99_ms"]
        row["vs_bare"] = _ratio(row["triggerd_rps"], row["bare_rps"])
        row["vs_naive"] = _ratio(row["triggerd_rps"], row["naive_rps"])
        row["cpu_vs_bare"] = _ratio(row["triggerd_cpu_us"], row["bare_cpu_us"])
        section[f"c{connections}"] = row
    return section


async def sequential(profile: Profile, node: Child, say: Say) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        key = await benchmark_async.create_org(session, node.url,
                                               f"bench-seq-{secrets.token_hex(4)}")
        result = await benchmark_async.sequential(session, node.url, key, profile.sequential)
    say(f"sequential: avg {result['avg_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms, {result['throughput_rps']:.0f} req/s")
    return result


async def batch(gen: LoadGenerator, profile: Profile, node: Child, say: Say) -> dict[str, Any]:
    # A batch costs as many as it carries: give the run twice the organizations.
    keys = tuple(await new_keys(node.url, 2 * profile.keys))
    load = Load(node.url, keys, profile.batch_connections, profile.batch_s,
                path="/api/events/batch", batch=profile.batch_size)
    if profile.warmup_s:
        await gen.run(dataclasses.replace(load, duration=1.0))
    run = await gen.run(load)
    result = {"events_per_s": run["rps"] * profile.batch_size, "requests_per_s": run["rps"],
              "batch_size": profile.batch_size, "connections": profile.batch_connections,
              "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"], "non_2xx": run["non_2xx"],
              "errors": run["errors"]}
    say(f"batch: {result['events_per_s']:.0f} events/s ({run['rps']:.0f} req/s of "
        f"{profile.batch_size}), non-2xx {run['non_2xx']}")
    return result


async def _sample(node: Child, into: list[tuple[float, float]], origin: float,
                  stop: asyncio.Event, every: float = 1.0) -> None:
    while not stop.is_set():
        mb = node.rss_mb()
        if mb is not None:
            into.append((round(time.monotonic() - origin, 1), round(mb, 1)))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


async def _sampled(node: Child, work: Any, every: float) -> tuple[Any, list[tuple[float, float]]]:
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(_sample(node, samples, time.monotonic(), stop, every))
    try:
        result = await work
    finally:
        stop.set()
        await sampler
    return result, samples


async def _wait_ready(url: str, timeout: float) -> float | None:
    """Seconds until GET /health/ready answers 200, or None."""
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() - started < timeout:
            try:
                async with session.get(url + "/health/ready") as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.1)
    return None


async def memory(gen: LoadGenerator, profile: Profile, node: Child, pg: Postgres,
                 say: Say) -> dict[str, Any]:
    """RSS sampled through a sustained closed-loop run, then while PostgreSQL is down
    (clients keep posting and should get 503s), then after PostgreSQL is back."""
    keys = tuple(await new_keys(node.url, 2 * profile.keys))
    every = max(0.25, min(1.0, profile.memory_s / 20))
    start_mb = node.rss_mb()
    run, load_samples = await _sampled(node, gen.run(Load(
        node.url, keys, profile.memory_connections, profile.memory_s)), every)
    values = [mb for _, mb in load_samples]
    third = max(1, len(values) // 3)
    first, last = statistics.median(values[:third]), statistics.median(values[-third:])
    say(f"memory under load: max {max(values):.0f} MB ({run['rps']:.0f} req/s, "
        f"non-2xx {run['non_2xx']})")

    await pg.kill()
    statuses: Counter[str] = Counter()
    down_load = Load(node.url, keys, 16, profile.db_down_s)
    _, down_samples = await _sampled(node, closed_loop(down_load, statuses), every)
    await pg.restart()
    recovered = await _wait_ready(node.url, 60.0)
    down = [mb for _, mb in down_samples]
    say(f"memory with PostgreSQL down: max {max(down):.0f} MB, answers {dict(statuses)}, "
        f"ready again after {recovered if recovered is None else round(recovered, 2)} s")
    return {
        "rss_mb_load": max(values), "rss_mb_db_down": max(down),
        "rss_mb_start": start_mb, "rss_mb_load_first_third": first,
        "rss_mb_load_last_third": last, "rss_growth_mb": last - first,
        "rss_mb_after_recovery": node.rss_mb(), "load_seconds": profile.memory_s,
        "load_rps": run["rps"], "load_events": run["ok"], "load_non_2xx": run["non_2xx"],
        "db_down_seconds": profile.db_down_s, "db_down_statuses": dict(statuses),
        "recovered_after_s": recovered,
        "samples_load": load_samples, "samples_db_down": down_samples,
    }
