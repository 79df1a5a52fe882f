"""The node's supervision tree (DESIGN section 2), assembled from the parts.

This is the one module that imports both the runtime and the webhook packages.

    Node (rest_for_one)
    ├─ Database
    ├─ Maintenance (one_for_one)       always
    │  ├─ Heartbeat                    the node's row in `nodes`; stops last, deleting it
    │  ├─ Alerter
    │  ├─ Rescuer
    │  ├─ Pruner
    │  └─ Sampler                      the queue's per-minute history, one node a minute
    ├─ Processing (one_for_one)        roles "process" and/or "deliver"
    │  ├─ ResultWriter                 deliver: stops last, after the pool drained
    │  ├─ Deliverer                    deliver
    │  ├─ DeliveryPool                 deliver
    │  ├─ Poller                       routes (process), claims (deliver); stops first
    │  └─ Notifier
    └─ Ingest (one_for_one)            role "ingest"
       ├─ EventWriter
       └─ HttpAcceptor                 last, so it stops first
    (without the ingest role, an HttpAcceptor for /health, /metrics and /dashboard only)

The whole tree runs in a context of its own where logs.NODE is the node's name, so each
log line says which node wrote it.
"""

from __future__ import annotations

import contextvars
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import asyncpg
from prometheus_client import CollectorRegistry, disable_created_metrics

from ingestor.app import HttpAcceptor, create_app
from ingestor.auth import KeyStore
from ingestor.context import Ingest
from ingestor.ratelimit import RateLimiter
from ingestor.writer import EventWriter, new_dedup_cache
from supervisor import ChildSpec, Process, Strategy, Supervisor
from supervisor.node import logs
from supervisor.node.config import Config, listens_locally, parse_durations, parse_tier_limits
from supervisor.node.database import Database
from supervisor.node.heartbeat import Heartbeat, Identity
from supervisor.node.metrics import NodeCollector, Parts, live_stats, tree_status
from workers import metrics as worker_metrics
from workers.alerter import Alert, Alerter
from workers.breaker import Breaker
from workers.deliverer import VERSION, Deliverer, Outcome
from workers.notifier import Notifier
from workers.poller import Poller
from workers.pool import DeliveryPool
from workers.pruner import Pruner
from workers.rescuer import Rescuer
from workers.results import ResultWriter
from workers.sampler import Sampler
from workers.schedule import RetrySchedule

P = TypeVar("P", bound=Process)


def _current(sup: Callable[[], Supervisor | None], child_id: str, kind: type[P]) -> P | None:
    """The running child `child_id` of a subtree, or None while it is (re)starting."""
    parent = sup()
    child = parent.child(child_id) if parent is not None else None
    return cast(P, child) if child is not None and not child.done else None


class Node:
    """Builds the tree for a Config; `root` is the supervisor to start."""

    def __init__(self, config: Config, *, serve_http: bool = True) -> None:
        self.config = config
        self.serve_http = serve_http
        self.name = f"{socket.gethostname()}:{os.getpid()}:{config.port}"
        self.started_at = datetime.now(UTC)
        # A cached dedup key never outlives its event: with a retention shorter than the
        # dedup window, a 409 would name a pruned event.
        self.dedup = new_dedup_cache(config.dedup_cache_size,
                                     min(config.dedup_ttl, config.retention))
        self.keys = KeyStore(self.pool, ttl=config.key_cache_ttl,
                             tier_limits=parse_tier_limits(config.tier_limits))
        self.limiter = RateLimiter()
        self.subtrees: dict[str, Supervisor] = {}
        self.ingest = Ingest(pool=self.pool,
                             writer=lambda: self.child("ingest", "writer", EventWriter),
                             keys=self.keys, dedup=self.dedup, limiter=self.limiter,
                             admin_token=config.admin_token, commit_timeout=config.commit_timeout,
                             loopback_only=listens_locally(config.host),
                             open_signup=config.open_signup,
                             metrics_public=config.metrics_public,
                             healthy=self.healthy,
                             allow_private_targets=config.allow_private_targets,
                             allow_unverified_sources=config.allow_unverified_sources,
                             max_request_timeout=config.max_request_timeout,
                             node_name=self.name, tree_status=lambda: tree_status(self.root),
                             node_metrics=lambda: self.metrics.collect())
        children = [ChildSpec("database", lambda: Database(config), shutdown=40.0),
                    ChildSpec("maintenance", self._maintenance_tree, shutdown=15.0)]
        if config.roles & {"process", "deliver"}:
            children.append(ChildSpec("processing", self._processing_tree,
                                      shutdown=config.max_request_timeout + 30))
        if "ingest" in config.roles:
            children.append(ChildSpec("ingest", self._ingest_tree,
                                      shutdown=2 * config.shutdown_timeout + 5))
        elif serve_http:  # health, metrics and the dashboard still answer on PORT
            children.append(ChildSpec("http", lambda: self._acceptor(api=False),
                                      shutdown=config.shutdown_timeout + 2))
        context = contextvars.copy_context()
        context.run(logs.NODE.set, self.name)
        self.root = Supervisor(children, strategy=Strategy.REST_FOR_ONE,
                               intensity=3, period=60.0, name="Node", context=context)
        self.parts = self._parts()
        self.metrics = self._metrics()

    def _parts(self) -> Parts:
        """Where the collector and the heartbeat find the parts this node runs."""
        deliver = "deliver" in self.config.roles and not self.config.disable_webhook_delivery
        return Parts(
            self.root,
            writer=(lambda: self.child("ingest", "writer", EventWriter))
            if "ingest" in self.config.roles else None,
            pool=(lambda: self.child("processing", "pool", DeliveryPool)) if deliver else None,
            results=(lambda: self.child("processing", "results", ResultWriter))
            if deliver else None,
            database=self._open_pool, version=VERSION, node=self.name)

    def _metrics(self) -> CollectorRegistry:
        """The node's own gauges, in a registry of the node's: a process may run several
        nodes (the tests do), and each reports its own tree on its own /metrics."""
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
        registry = CollectorRegistry()
        registry.register(NodeCollector(self.parts))
        return registry

    def stats(self) -> dict[str, Any]:
        """The node's live state, as its heartbeat stores it."""
        return live_stats(self.parts)

    def pool(self) -> asyncpg.Pool:
        database = self.root.child("database")
        if database is None or database.done:
            raise ConnectionError("database is restarting")
        return cast(Database, database).pool

    def _open_pool(self) -> asyncpg.Pool | None:
        database = _current(lambda: self.root, "database", Database)
        return database.pool if database is not None else None

    def dsn(self) -> str:
        return cast(Database, self.root.child("database")).dsn

    def healthy(self) -> bool:
        return not self.root.degraded

    def child(self, subtree: str, child_id: str, kind: type[P]) -> P | None:
        return _current(lambda: self.subtrees.get(subtree), child_id, kind)

    def alert(self, alert: Alert) -> None:
        alerter = self.child("maintenance", "alerter", Alerter)
        if alerter is not None:
            alerter.notify(alert)

    def _subtree(self, name: str, children: list[ChildSpec], intensity: int) -> Supervisor:
        sup = Supervisor(children, strategy=Strategy.ONE_FOR_ONE, intensity=intensity,
                         period=10.0, name=name.capitalize())
        self.subtrees[name] = sup
        return sup

    def _maintenance_tree(self) -> Supervisor:
        config = self.config
        identity = Identity(self.name, tuple(sorted(config.roles)), VERSION, os.getpid(),
                            socket.gethostname(), self.started_at)
        return self._subtree("maintenance", [
            ChildSpec("heartbeat", lambda: Heartbeat(self.pool, identity, self.stats,
                                                     interval=config.heartbeat_interval)),
            # self.config: a reload (SIGHUP) replaces the URL there, then restarts the Alerter.
            ChildSpec("alerter", lambda: Alerter(self.config.alert_webhook_url, self.pool),
                      shutdown=6.0),
            ChildSpec("rescuer", lambda: Rescuer(self.pool, self.alert,
                                                 interval=config.rescue_interval,
                                                 disable_after=config.disable_after,
                                                 max_rescues=config.max_rescues)),
            ChildSpec("pruner", lambda: Pruner(self.pool, retention=config.retention,
                                               interval=config.prune_interval)),
            ChildSpec("sampler", lambda: Sampler(self.pool)),
        ], intensity=10)

    def _processing_tree(self) -> Supervisor:
        config = self.config
        deliver = "deliver" in config.roles and not config.disable_webhook_delivery
        specs: list[ChildSpec] = []
        if deliver:
            schedule = RetrySchedule(parse_durations(config.retry_schedule))
            breaker = Breaker(config.breaker_threshold, config.breaker_cooldown)
            specs += [
                ChildSpec("results", lambda: ResultWriter(
                    self.pool, self.name, schedule, breaker, self.alert,
                    recorded=self._capacity_freed, max_rescues=config.max_rescues,
                    log_delivered_sample=config.log_delivered_sample),
                    shutdown=20.0),
                ChildSpec("deliverer", lambda: Deliverer(
                    timeout=config.request_timeout, max_timeout=config.max_request_timeout,
                    allow_private=config.allow_private_targets),
                    shutdown=config.max_request_timeout + 2),
                ChildSpec("pool", lambda: DeliveryPool(
                    lambda: self.child("processing", "deliverer", Deliverer), self._report,
                    size=config.pool_size, max_per_endpoint=config.endpoint_concurrency,
                    capacity_freed=self._capacity_freed, unrecorded=self._unrecorded),
                    shutdown=config.max_request_timeout + 5),
            ]
        specs += [
            ChildSpec("poller", lambda: Poller(
                self.pool, route="process" in config.roles,
                delivery_pool=(lambda: self.child("processing", "pool", DeliveryPool))
                if deliver else None,
                node_name=self.name, request_timeout=config.request_timeout,
                max_request_timeout=config.max_request_timeout,
                interval=config.poll_interval, route_batch=config.route_batch,
                route_timeout=config.route_timeout)),
            ChildSpec("notifier", lambda: Notifier(self.dsn, self._wake_poller)),
        ]
        return self._subtree("processing", specs, intensity=10)

    def _report(self, outcome: Outcome) -> None:
        results = self.child("processing", "results", ResultWriter)
        if results is not None:
            results.report(outcome)
        else:  # the lease expires and the Rescuer requeues the delivery
            worker_metrics.OUTCOMES_DROPPED_BY["writer_down"].inc()

    def _unrecorded(self) -> int:
        results = self.child("processing", "results", ResultWriter)
        return results.unrecorded() if results is not None else 0

    def _wake_poller(self) -> None:
        poller = self.child("processing", "poller", Poller)
        if poller is not None:
            poller.wake()

    def _capacity_freed(self) -> None:
        poller = self.child("processing", "poller", Poller)
        if poller is not None:
            poller.capacity_freed()

    def _acceptor(self, *, api: bool) -> HttpAcceptor:
        config = self.config
        app = create_app(self.ingest, api=api, body_timeout=config.http_body_timeout)
        return HttpAcceptor(app, config.host, config.port,
                            config.shutdown_timeout,
                            keepalive_timeout=config.http_keepalive_timeout,
                            max_connections=config.http_max_connections,
                            reuse_port=config.reuse_port)

    def _ingest_tree(self) -> Supervisor:
        config = self.config
        specs = [ChildSpec("writer", lambda: EventWriter(
            self.pool, self.dedup, mailbox_size=config.writer_queue,
            max_batch=config.writer_max_batch, concurrency=config.writer_concurrency),
            shutdown=config.shutdown_timeout)]
        if self.serve_http:
            specs.append(ChildSpec("http", lambda: self._acceptor(api=True),
                                   shutdown=config.shutdown_timeout + 2))
        return self._subtree("ingest", specs, intensity=10)
