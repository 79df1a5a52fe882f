"""The node's own metrics and tree status, read at scrape time from the live tree.

`NodeCollector` is a prometheus_client collector (registered in the Node's registry)
whose `collect()` reads the running supervisors and the node's parts (`Parts`: the
EventWriter, the DeliveryPool, the ResultWriter, the database pool) as they are now;
nothing is updated on the hot path. It never runs a statement: the queue and endpoint
gauges are read by the `/metrics` handler. `tree_status()` is the same walk as plain
data, for the dashboard; `live_stats()` is what the Heartbeat stores in `nodes.stats`.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ingestor.writer import EventWriter
from supervisor import Supervisor
from workers.pool import DeliveryPool
from workers.results import ResultWriter


def supervisors(root: Supervisor) -> Iterator[Supervisor]:
    """The root and every running supervisor below it, depth first, in start order."""
    yield root
    for _, proc in root.which_children():
        if isinstance(proc, Supervisor) and not proc.done:
            yield from supervisors(proc)


def tree_status(root: Supervisor) -> list[dict[str, Any]]:
    """One entry per running supervisor: name, depth, strategy, restarts, degraded,
    and its children in start order with their state."""
    entries: list[dict[str, Any]] = []

    def visit(sup: Supervisor, depth: int) -> None:
        children: list[dict[str, Any]] = []
        entries.append({"name": sup.name, "depth": depth, "strategy": sup.strategy.value,
                        "restarts": sup.restarts, "degraded": sup.degraded,
                        "children": children})
        for child_id, proc in sup.which_children():
            running = proc is not None and not proc.done
            state = "running" if running else "stopping" if sup.stopping else "restarting"
            children.append({"id": child_id, "name": proc.name if proc else child_id,
                             "state": state, "supervisor": isinstance(proc, Supervisor)})
            if running and isinstance(proc, Supervisor):
                visit(proc, depth + 1)

    visit(root, 0)
    return entries


@dataclass(frozen=True, slots=True)
class Parts:
    """Where the node's live parts are: each accessor answers None while its part is
    (re)starting; an accessor is None itself when the node does not run that part."""

    root: Supervisor
    writer: Callable[[], EventWriter | None] | None = None
    pool: Callable[[], DeliveryPool | None] | None = None
    results: Callable[[], ResultWriter | None] | None = None
    database: Callable[[], asyncpg.Pool | None] | None = None
    version: str = "0"
    node: str = ""  # the node's name, host:pid:port


def live_stats(parts: Parts) -> dict[str, Any]:
    """The node's state now, as JSON-ready data (None for a part it does not run)."""
    def part(get: Callable[[], Any] | None, read: Callable[[Any], Any]) -> Any:
        found = get() if get is not None else None
        return read(found) if found is not None else None

    return {
        "degraded": parts.root.degraded,
        "restarts": {sup.name: sup.restarts for sup in supervisors(parts.root)},
        "pool": part(parts.pool, lambda p: {"size": p.size, "busy": p.busy}),
        "writer_queue": part(parts.writer, lambda w: w.mailbox.qsize()),
        "results_backlog": part(parts.results, lambda r: r.unrecorded()),
        "db_pool": part(parts.database, lambda d: {
            "max": d.get_max_size(), "open": d.get_size(), "idle": d.get_idle_size()}),
    }


class NodeCollector:
    """The tree's restarts and health, the writer's queue, the pool's slots, the result
    writer's backlog, the database pool's connections and the build."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        parts = self._parts
        yield from _build(parts.version)
        # Which process answered: several may share one port (--reuse-port).
        node = GaugeMetricFamily("triggerd_node_info", "The node that answered this scrape "
                                 "(always 1)", labels=["node"])
        node.add_metric([parts.node], 1.0)
        yield node
        restarts = CounterMetricFamily(
            "triggerd_supervisor_restarts",
            "Restarts made by each running supervisor (a restarted supervisor starts at 0)",
            labels=["supervisor"])
        for sup in supervisors(parts.root):
            restarts.add_metric([sup.name], sup.restarts)
        yield restarts
        yield GaugeMetricFamily("triggerd_tree_degraded",
                                "1 while a part of the tree is not running (restarting)",
                                value=1.0 if parts.root.degraded else 0.0)
        if parts.database is not None:
            yield from _database_gauges(parts.database())
        if parts.writer is not None:
            yield from _writer_gauges(parts.writer())
        if parts.pool is not None:
            yield from _pool_gauges(parts.pool())
        if parts.results is not None:
            results = parts.results()
            yield GaugeMetricFamily(
                "triggerd_result_writer_backlog",
                "Outcomes received by the ResultWriter and not yet written (their leases "
                "are held meanwhile)", value=results.unrecorded() if results else 0)


def _build(version: str) -> Iterator[Metric]:
    info = GaugeMetricFamily("triggerd_build_info", "The running build (always 1)",
                             labels=["version", "python"])
    info.add_metric([version, platform.python_version()], 1.0)
    yield info


def _database_gauges(pool: asyncpg.Pool | None) -> Iterator[Metric]:
    connections = GaugeMetricFamily(
        "triggerd_db_pool_connections",
        "The node's open PostgreSQL connections: in_use (acquired) and idle",
        labels=["state"])
    size = pool.get_size() if pool is not None else 0
    idle = pool.get_idle_size() if pool is not None else 0
    connections.add_metric(["in_use"], size - idle)
    connections.add_metric(["idle"], idle)
    yield connections
    yield GaugeMetricFamily("triggerd_db_pool_max_connections",
                            "Connections the node's pool may open (TRIGGERD_DB_POOL_SIZE)",
                            value=pool.get_max_size() if pool is not None else 0)


def _writer_gauges(writer: EventWriter | None) -> Iterator[Metric]:
    depth = writer.mailbox.qsize() if writer is not None else 0
    capacity = writer.mailbox.maxsize if writer is not None else 0
    yield GaugeMetricFamily("triggerd_writer_queue_depth",
                            "Events waiting for a flush (ingest answers 503 when full)",
                            value=depth)
    yield GaugeMetricFamily("triggerd_writer_queue_capacity",
                            "Events the writer's queue holds (TRIGGERD_WRITER_QUEUE)",
                            value=capacity)


def _pool_gauges(pool: DeliveryPool | None) -> Iterator[Metric]:
    yield GaugeMetricFamily("triggerd_pool_size", "Delivery workers (POOL_SIZE)",
                            value=pool.size if pool is not None else 0)
    yield GaugeMetricFamily("triggerd_pool_busy", "Delivery workers in an attempt",
                            value=pool.busy if pool is not None else 0)
    yield GaugeMetricFamily("triggerd_pool_free_slots",
                            "Deliveries this node may still lease (size less leases held)",
                            value=pool.free_slots() if pool is not None else 0)
