"""Processes per host: ingest at 128 connections on one node process, then on two
`serve --reuse-port` processes sharing one port, in the same run, on the same PostgreSQL.

Each case gets a freshly migrated database of its own (so both start from empty
tables) and ingest-only nodes; after a warm-up, one closed-loop run through the port.
Around that run the nodes' CPU time (summed over the processes) and PostgreSQL's (the
postmaster and all its children) are read from /proc (benchmarks.cpu), and so is the
whole machine's busy time (/proc/stat: whatever else runs on the machine counts too).
A process's share of the nodes' CPU shows how evenly the kernel spread the connections
(wrk opens its connections once, so each stays on the process it first reached).
The transaction ids PostgreSQL handed out over the run count the write transactions (the
writers' group-commit flushes, a few heartbeats): events per write is the batching.
Afterwards the events stored are counted against the 2xx answers (each request carries
a dedup_id unique to the run, see loadgen.LUA), so a lost or doubled event shows.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import asyncpg

from benchmarks.cpu import CpuMeter, process_cpu
from benchmarks.loadgen import Load, LoadGenerator
from benchmarks.measure_ingest import new_keys
from benchmarks.procs import Child, Children, Postgres, free_port
from benchmarks.profiles import Profile

Say = Callable[[str], None]
CONNECTIONS = 128
CASES = (("one", 1), ("two", 2))
# The next transaction id, without taking one: the write transactions (each of the
# writers' flushes is one) committed or begun between two readings.
NEXT_XID = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (every core; /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def _start(children: Children, dsn: str, count: int) -> list[Child]:
    port = free_port()
    args = ["-m", "supervisor.node.cli", "serve"] + (["--reuse-port"] if count > 1 else [])
    env = {"DATABASE_URL": dsn, "PORT": str(port), "TRIGGERD_ROLES": "ingest",
           "TRIGGERD_LOG_FORMAT": "json"}
    nodes = [await children.spawn(f"triggerd-processes-{count}-{i}", args, env, port)
             for i in range(count)]
    for node in nodes:  # each its own line: the port answers as soon as one is up
        await node.wait_log("node up")
    return nodes


def _nodes_cpu(nodes: list[Child]) -> Callable[[], float | None]:
    def read() -> float | None:
        seconds = [process_cpu(node.pid) for node in nodes]
        return None if None in seconds else sum(s for s in seconds if s is not None)
    return read


async def _case(gen: LoadGenerator, profile: Profile, pg: Postgres, children: Children,
                count: int, say: Say) -> dict[str, Any]:
    dsn = await pg.database(f"bench_processes_{count}")
    nodes = await _start(children, dsn, count)
    try:
        url = nodes[0].url
        keys = tuple(await new_keys(url, profile.keys))
        answered, runs = 0, 1 + bool(profile.warmup_s)
        if profile.warmup_s:
            answered += (await gen.run(Load(url, keys, CONNECTIONS, profile.warmup_s)))["ok"]
        conn = await asyncpg.connect(dsn)
        try:
            each = [CpuMeter(functools.partial(process_cpu, node.pid)).start()
                    for node in nodes]
            total, database = CpuMeter(_nodes_cpu(nodes)).start(), CpuMeter(pg.cpu_s).start()
            machine = CpuMeter(machine_busy_s).start()
            xids = int(await conn.fetchval(NEXT_XID))
            run = await gen.run(Load(url, keys, CONNECTIONS, profile.ingest_s))
            writes = int(await conn.fetchval(NEXT_XID)) - xids
            for meter in (*each, total, database, machine):
                meter.stop()
            answered += run["ok"]
            stored = int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()
    finally:
        for node in nodes:
            await children.stop(node)
    shares = [m.seconds / total.seconds if m.seconds is not None and total.seconds else None
              for m in each]
    figures = {
        "processes": count, "events_per_s": run["rps"], "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"], "non_2xx": run["non_2xx"], "errors": run["errors"],
        "node_cpu_us": total.per(run["ok"]), "pg_cpu_us": database.per(run["ok"]),
        "node_cpu_pct": _pct(total.seconds, run["seconds"]),
        "pg_cpu_pct": _pct(database.seconds, run["seconds"]),
        "machine_busy_pct": _pct(machine.seconds, run["seconds"]),
        "node_cpu_shares": shares, "write_transactions": writes,
        "events_per_write": round(run["ok"] / writes, 1) if writes else None,
        "answered_2xx": answered, "stored": stored,
        # Requests still in flight when a run ends commit too: at most one per connection.
        "stored_as_expected": answered <= stored <= answered + CONNECTIONS * runs}
    say(f"processes {count}: {run['rps']:.0f} events/s, p99 {run['p99_ms']:.2f} ms, non-2xx "
        f"{run['non_2xx']}; CPU per event: nodes {_us(figures['node_cpu_us'])}, PostgreSQL "
        f"{_us(figures['pg_cpu_us'])}; nodes {figures['node_cpu_pct']} %, PostgreSQL "
        f"{figures['pg_cpu_pct']} %, machine {figures['machine_busy_pct']} % busy; "
        f"shares {shares}; {figures['events_per_write']} events per write transaction; "
        f"stored {stored} of {answered} 2xx")
    return figures


def _pct(seconds: float | None, wall: float) -> float | None:
    return None if seconds is None or not wall else round(100 * seconds / wall, 1)


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} us"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


async def processes(gen: LoadGenerator, profile: Profile, pg: Postgres, children: Children,
                    say: Say) -> dict[str, Any]:
    """One process, then two sharing the port: the same load, one after the other."""
    section: dict[str, Any] = {"connections": CONNECTIONS, "seconds_per_run": profile.ingest_s,
                               "cores": len(os.sched_getaffinity(0)),
                               "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    for name, count in CASES:
        section[name] = await _case(gen, profile, pg, children, count, say)
    one, two = section["one"], section["two"]
    section["events_per_s_ratio"] = _ratio(two["events_per_s"], one["events_per_s"])
    section["p99_ratio"] = _ratio(two["p99_ms"], one["p99_ms"])
    section["node_cpu_per_event_ratio"] = _ratio(two["node_cpu_us"], one["node_cpu_us"])
    section["pg_cpu_per_event_ratio"] = _ratio(two["pg_cpu_us"], one["pg_cpu_us"])
    shares = [s for s in two["node_cpu_shares"] if s is not None]
    section["two_spread"] = round(min(shares) / max(shares), 2) if len(shares) == 2 else None
    section["non_2xx"] = one["non_2xx"] + two["non_2xx"]
    return section
