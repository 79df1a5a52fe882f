"""Latency of POST /api/events as operators already measure it.

    REQUESTS=1000 API_URL=http://localhost:4000 python benchmarks/benchmark_async.py
    python benchmarks/benchmark_async.py --concurrency 64 --duration 10
    python benchmarks/benchmark_async.py --json

Creates an enterprise-tier organization (POST /api/keys/generate), sends 5 warm-up
requests, then REQUESTS sequential POSTs of {type: "benchmark.test", payload: {timestamp,
data}, dedup_id: "bench-<random>"} and prints Requests, Min, Avg, P50, P95, P99, Max (ms)
and Throughput, with verdicts against the <10 ms target. `--concurrency N --duration S` is
a closed loop of N workers for S seconds (without --duration: REQUESTS in all); it spreads
the load over several organizations (`--orgs`), since rate limits are per organization.
Exits 1 when a request failed (non-2xx or no answer), 2 when the API cannot be set up.

Self-contained (aiohttp, uvloop when present) so it runs against any node; the suite
(`python -m benchmarks`) imports `sequential` and `summarize` from here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

TARGET_MS = 10.0
WARMUPS = 5


def event_body(i: int) -> dict[str, Any]:
    return {"type": "benchmark.test",
            "payload": {"timestamp": time.time(), "data": f"benchmark payload {i}"},
            "dedup_id": f"bench-{secrets.token_hex(12)}"}


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def summarize(latencies_ms: list[float], failed: int, elapsed_s: float,
              statuses: Counter[str] | None = None) -> dict[str, Any]:
    """The figures printed and returned: latencies of the successful requests only."""
    ordered = sorted(latencies_ms)
    ok = len(ordered)
    return {
        "requests": ok + failed, "succeeded": ok, "failed": failed,
        "min_ms": ordered[0] if ok else None, "avg_ms": sum(ordered) / ok if ok else None,
        "p50_ms": percentile(ordered, 50) if ok else None,
        "p95_ms": percentile(ordered, 95) if ok else None,
        "p99_ms": percentile(ordered, 99) if ok else None,
        "max_ms": ordered[-1] if ok else None,
        "throughput_rps": ok / elapsed_s if elapsed_s > 0 else None,
        "elapsed_s": elapsed_s, "statuses": dict(statuses or {}),
    }


async def create_org(session: aiohttp.ClientSession, api_url: str, name: str) -> str:
    async with session.post(f"{api_url}/api/keys/generate",
                            json={"organization_name": name, "tier": "enterprise"}) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 201 or "api_key" not in body:
            raise RuntimeError(f"POST /api/keys/generate answered {resp.status}: {body}")
        return str(body["api_key"])


async def post_event(session: aiohttp.ClientSession, api_url: str, key: str,
                     i: int) -> tuple[float, str]:
    """One POST /api/events: (milliseconds, status or error class)."""
    data = json.dumps(event_body(i)).encode()
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        async with session.post(f"{api_url}/api/events", data=data, headers=headers) as resp:
            await resp.read()
            status = str(resp.status)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        status = type(exc).__name__
    return (time.perf_counter() - started) * 1000, status


async def sequential(session: aiohttp.ClientSession, api_url: str, key: str,
                     requests: int) -> dict[str, Any]:
    """5 warm-ups, then `requests` POSTs one after another."""
    for i in range(WARMUPS):
        await post_event(session, api_url, key, -1 - i)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    started = time.perf_counter()
    for i in range(requests):
        ms, status = await post_event(session, api_url, key, i)
        statuses[status] += 1
        if status.startswith("2"):
            latencies.append(ms)
    elapsed = time.perf_counter() - started
    return summarize(latencies, requests - len(latencies), elapsed, statuses)


async def closed_loop(session: aiohttp.ClientSession, api_url: str, keys: list[str],
                      concurrency: int, duration: float | None,
                      requests: int) -> dict[str, Any]:
    """`concurrency` workers, each posting as soon as its last answer came back."""
    for i in range(WARMUPS):
        await post_event(session, api_url, keys[i % len(keys)], -1 - i)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    sent = 0
    started = time.perf_counter()
    deadline = None if duration is None else started + duration

    async def worker(w: int) -> None:
        nonlocal sent
        while (time.perf_counter() < deadline) if deadline is not None else sent < requests:
            sent += 1
            ms, status = await post_event(session, api_url, keys[sent % len(keys)], sent)
            statuses[status] += 1
            if status.startswith("2"):
                latencies.append(ms)

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    result = summarize(latencies, total - len(latencies), elapsed, statuses)
    result["concurrency"] = concurrency
    return result


def verdicts(result: dict[str, Any]) -> list[str]:
    lines = []
    for label, key in (("Average", "avg_ms"), ("P95", "p95_ms"), ("P99", "p99_ms")):
        value = result.get(key)
        if value is None:
            lines.append(f"FAIL  {label} latency: no successful request")
        elif value < TARGET_MS:
            lines.append(f"PASS  {label} latency {value:.2f} ms < {TARGET_MS:.0f} ms target")
        else:
            lines.append(f"FAIL  {label} latency {value:.2f} ms >= {TARGET_MS:.0f} ms target")
    if result["failed"]:
        lines.append(f"FAIL  {result['failed']} of {result['requests']} requests failed: "
                     f"{result['statuses']}")
    return lines


def render(result: dict[str, Any], api_url: str) -> str:
    def ms(key: str) -> str:
        value = result.get(key)
        return "-" if value is None else f"{value:.2f} ms"

    mode = (f"closed loop, {result['concurrency']} connections"
            if "concurrency" in result else "sequential")
    rps = result["throughput_rps"]
    lines = [f"POST {api_url}/api/events ({mode})", "",
             f"  Requests:   {result['requests']} ({result['failed']} failed)",
             f"  Min:        {ms('min_ms')}", f"  Avg:        {ms('avg_ms')}",
             f"  P50:        {ms('p50_ms')}", f"  P95:        {ms('p95_ms')}",
             f"  P99:        {ms('p99_ms')}", f"  Max:        {ms('max_ms')}",
             f"  Throughput: {'-' if rps is None else f'{rps:.1f}'} req/s", ""]
    return "\n".join(lines + verdicts(result))


async def run(args: argparse.Namespace) -> int:
    api_url = args.api_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=30)
    limit = max(args.concurrency, 1)
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        orgs = args.orgs or (1 if args.concurrency <= 1 else min(args.concurrency, 16))
        tag = secrets.token_hex(4)
        try:
            keys = [await create_org(session, api_url, f"benchmark-{tag}-{i}")
                    for i in range(orgs)]
        except (aiohttp.ClientError, OSError, RuntimeError, ValueError) as exc:
            print(f"benchmark_async: cannot set up at {api_url}: {exc}", file=sys.stderr)
            return 2
        if args.concurrency <= 1 and args.duration is None:
            result = await sequential(session, api_url, keys[0], args.requests)
        else:
            result = await closed_loop(session, api_url, keys, max(args.concurrency, 1),
                                       args.duration, args.requests)
    print(json.dumps(result, indent=2) if args.json else render(result, api_url))
    return 1 if result["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=int(os.environ.get("REQUESTS", "100")),
                        help="requests to send (env REQUESTS, default 100)")
    parser.add_argument("--api-url", default=os.environ.get("API_URL", "http://localhost:4000"),
                        help="the node (env API_URL, default http://localhost:4000)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="closed-loop workers (default 1: sequential)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds to run the closed loop (default: REQUESTS in all)")
    parser.add_argument("--orgs", type=int, default=None,
                        help="organizations to spread the load over (default 1, or up to 16 "
                             "with --concurrency)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or (args.duration or 1) <= 0:
        parser.error("--requests and --concurrency must be at least 1, --duration positive")
    try:
        import uvloop
        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
