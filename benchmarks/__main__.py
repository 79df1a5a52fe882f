"""The benchmark suite: `python -m benchmarks [--quick | --smoke] [--out FILE]`.

Starts its own PostgreSQL (the embedded code, in a temporary directory), triggerd nodes,
the baselines and a minimal receiver as subprocesses; measures ingest beside its
baselines, verified (Stripe-signed) source deliveries beside plain ingest, sequential
latency, batch ingest, routing (plain, then through ten payload filters, checked against
the deliveries expected), delivery, end-to-end latency, a healthy endpoint's latency
beside one that hangs (and alone), a high-priority endpoint's latency while a
low-priority backlog drains (and at equal priorities), ingest on one node process
beside two sharing the port (--reuse-port), and the node's memory;
writes results.json and RESULTS.md (beside --out). A measure that fails records null
and its error, and the suite carries on. `--only` runs some sections (the rest stay null).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    measure_filters,
    measure_ingest,
    measure_isolation,
    measure_priority,
    measure_processes,
    measure_queue,
    measure_sources,
    report,
)
from benchmarks.loadgen import LoadGenerator, find_wrk
from benchmarks.procs import Child, Children, Postgres
from benchmarks.profiles import FULL, PROFILES, Profile

INGEST_SIDE = ("ingest", "sources", "sequential", "batch", "memory")


class Suite:
    def __init__(self, profile: Profile, gen: LoadGenerator, results: dict[str, Any],
                 ingest_roles: str, only: frozenset[str] = frozenset()) -> None:
        self.profile = profile
        self.only = only
        self.gen = gen
        self.results = results
        self.ingest_roles = ingest_roles
        self.started = time.monotonic()
        self.log_dir = Path(tempfile.mkdtemp(prefix="tgd-bench-logs-"))
        self.pg = Postgres()
        self.children = Children(self.log_dir)
        self.node: Child | None = None

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {line}", file=sys.stderr, flush=True)

    async def step(self, section: str, measure: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Runs one measure; on failure its figures stay null and its error is recorded."""
        if not self.wanted(section):
            return
        try:
            self.results[section].update(await measure())
        except Exception as exc:  # noqa: BLE001 - fail soft: record it and carry on
            error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, (measure_queue.Missing, RuntimeError)):
                error += "\n" + traceback.format_exc(limit=3)
            self.results[section]["error"] = error
            self.say(f"{section}: not measured: {error.splitlines()[0]}")

    def wanted(self, *sections: str) -> bool:
        return not self.only or any(section in self.only for section in sections)

    async def run(self) -> None:
        try:
            await self.pg.start()
            self.results["machine"] = report.machine(await self.pg.version())
            self.say(f"PostgreSQL up in {self.pg.data_dir}; logs in {self.log_dir}; load "
                     f"generator: {self.gen.name}")
            if self.wanted(*INGEST_SIDE):
                await self._ingest_side()
            await self.step("processes", lambda: measure_processes.processes(
                self.gen, self.profile, self.pg, self.children, self.say))
            await self._queue_side()
            if self.node is not None:
                await self.step("memory", lambda: measure_ingest.memory(
                    self.gen, self.profile, self.node, self.pg, self.say))  # type: ignore[arg-type]
        finally:
            await self.children.stop_all()
            await self.pg.stop()

    async def _ingest_side(self) -> None:
        p, say = self.profile, self.say
        try:
            self.node = await self.children.node(
                "triggerd-ingest", await self.pg.database("bench_ingest"), self.ingest_roles)
            bare = await self.children.server("bare", "bare_server")
            naive = await self.children.server(
                "naive", "naive_server", "--dsn", await self.pg.database("bench_naive", False))
        except Exception as exc:  # noqa: BLE001 - nothing of the ingest side can run
            for section in INGEST_SIDE:
                self.results[section]["error"] = f"{type(exc).__name__}: {exc}"
            self.node = None
            say(f"ingest side not started: {exc}")
            return
        node = self.node
        self.results["ingest"]["node_roles"] = self.ingest_roles
        # Sequential first: the latency an operator sees on a node that is not under load.
        await self.step("sequential", lambda: measure_ingest.sequential(p, node, say))
        await self.step("ingest",
                        lambda: measure_ingest.ingest(self.gen, p, node, bare, naive, self.pg,
                                                      say))
        dsn = self.pg.dsn_of("bench_ingest")
        await self.step("sources",
                        lambda: measure_sources.sources(self.gen, p, node, dsn, say))
        await self.step("batch", lambda: measure_ingest.batch(self.gen, p, node, say))
        await self.children.stop(bare)
        await self.children.stop(naive)

    async def _queue_side(self) -> None:
        p, pg, children, say = self.profile, self.pg, self.children, self.say
        await self.step("routing", lambda: measure_queue.routing(pg, children, p, say))
        # Right after the plain figure, so the ratio compares like conditions.
        await self.step("routing_filters", lambda: measure_filters.routing_filters(
            pg, children, p, say, self.results["routing"].get("events_per_s")))
        if self.wanted("delivery", "e2e"):
            await self._receiver_side()
        await self.step("isolation", lambda: measure_isolation.isolation(pg, children, p, say))
        await self.step("priority", lambda: measure_priority.priority(pg, children, p, say))

    async def _receiver_side(self) -> None:
        p, pg, children, say = self.profile, self.pg, self.children, self.say
        try:
            receiver = await children.server("receiver", "receiver")
        except Exception as exc:  # noqa: BLE001
            for section in ("delivery", "e2e"):
                self.results[section]["error"] = f"receiver not started: {exc}"
            return
        await self.step("delivery", lambda: measure_queue.delivery(pg, children, p, receiver, say))
        await self.step("e2e", lambda: measure_queue.e2e(pg, children, p, receiver, say))
        await children.stop(receiver)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter runs (about 2 minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny counts, seconds (for the tests)")
    parser.add_argument("--out", type=Path, default=report.HERE / "results.json",
                        help="results.json to write; RESULTS.md goes beside it "
                             "(default benchmarks/results.json)")
    parser.add_argument("--no-wrk", action="store_true",
                        help="use the built-in asyncio load generator even if wrk is there")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install wrk when it is missing")
    parser.add_argument("--ingest-roles", default="ingest",
                        help="roles of the node measured for ingest and memory (default ingest)")
    parser.add_argument("--only", default="", metavar="SECTIONS",
                        help="comma-separated sections to run (e.g. routing,routing_filters); "
                             "the others stay null")
    parser.add_argument("--render", action="store_true",
                        help="only render RESULTS.md again from the existing --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render:
        print(report.rerender(args.out))
        return 0
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else FULL.name]
    only = frozenset(filter(None, args.only.split(",")))
    unknown = only - set(report.SECTIONS)
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(report.SECTIONS)}")
    wrk = None if args.no_wrk else find_wrk(install=not args.no_install)
    gen = LoadGenerator(wrk)
    command = "python -m benchmarks" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    results = report.skeleton(profile, command)
    results["load_generator"] = gen.name
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    suite = Suite(profile, gen, results, args.ingest_roles, only)
    try:
        import uvloop
        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(suite.run())
    results["duration_s"] = round(time.monotonic() - suite.started, 1)
    if only:  # the sections not run keep their figures from the file being replaced
        report.keep_previous(results, args.out, only)
    markdown = report.write(results, args.out)
    suite.say(f"wrote {args.out} and {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
