"""The node's own metrics and tree status, read at scrape time from the live tree.

`NodeCollector` is a prometheus_client collector (registered in the Node's registry)
whose `collect()` reads the running supervisors, the EventWriter and the DeliveryPool
as they are now; nothing is updated on the hot path. It never touches the database:
the queue gauges are read by the `/metrics` handler. `tree_status()` is the same walk
as plain data, for the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ingestor.writer import EventWriter
from supervisor import Supervisor
from workers.pool import DeliveryPool


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


class NodeCollector:
    """The tree's restarts and health, the writer's queue and the pool's slots."""

    def __init__(self, root: Supervisor, writer: Callable[[], EventWriter | None] | None,
                 pool: Callable[[], DeliveryPool | None] | None) -> None:
        self._root = root
        self._writer = writer  # None: this node has no ingest role
        self._pool = pool  # None: this node does not deliver

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "triggerd_supervisor_restarts",
            "Restarts made by each running supervisor (a restarted supervisor starts at 0)",
            labels=["supervisor"])
        for sup in supervisors(self._root):
            restarts.add_metric([sup.name], sup.restarts)
        yield restarts
        yield GaugeMetricFamily("triggerd_tree_degraded",
                                "1 while a part of the tree is not running (restarting)",
                                value=1.0 if self._root.degraded else 0.0)
        if self._writer is not None:
            yield from self._writer_gauges(self._writer())
        if self._pool is not None:
            yield from self._pool_gauges(self._pool())

    @staticmethod
    def _writer_gauges(writer: EventWriter | None) -> Iterator[Metric]:
        depth = writer.mailbox.qsize() if writer is not None else 0
        capacity = writer.mailbox.maxsize if writer is not None else 0
        yield GaugeMetricFamily("triggerd_writer_queue_depth",
                                "Events waiting for a flush (ingest answers 503 when full)",
                                value=depth)
        yield GaugeMetricFamily("triggerd_writer_queue_capacity",
                                "Events the writer's queue holds (TRIGGERD_WRITER_QUEUE)",
                                value=capacity)

    @staticmethod
    def _pool_gauges(pool: DeliveryPool | None) -> Iterator[Metric]:
        yield GaugeMetricFamily("triggerd_pool_size", "Delivery workers (POOL_SIZE)",
                                value=pool.size if pool is not None else 0)
        yield GaugeMetricFamily("triggerd_pool_busy", "Delivery workers in an attempt",
                                value=pool.busy if pool is not None else 0)
        yield GaugeMetricFamily("triggerd_pool_free_slots",
                                "Deliveries this node may still lease (size less leases held)",
                                value=pool.free_slots() if pool is not None else 0)
