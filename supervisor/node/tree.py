"""The node's supervision tree (DESIGN section 2), assembled from the parts.

This is the one module that imports both the runtime and the webhook packages.

    Node (rest_for_one)
    ├─ Database
    └─ Ingest (one_for_one)      when the node has the "ingest" role
       ├─ EventWriter
       └─ HttpAcceptor           last, so it stops first
"""

from __future__ import annotations

from typing import cast

import asyncpg

from ingestor.app import HttpAcceptor, create_app
from ingestor.auth import KeyStore
from ingestor.context import Ingest
from ingestor.ratelimit import RateLimiter
from ingestor.writer import EventWriter, new_dedup_cache
from supervisor import ChildSpec, Strategy, Supervisor
from supervisor.node.config import Config
from supervisor.node.database import Database


class Node:
    """Builds the tree for a Config; `root` is the supervisor to start."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dedup = new_dedup_cache(config.dedup_cache_size, config.dedup_ttl)
        self.keys = KeyStore(self.pool, ttl=config.key_cache_ttl)
        self.limiter = RateLimiter()
        children = [ChildSpec("database", lambda: Database(config), shutdown=40.0)]
        if "ingest" in config.roles:
            children.append(ChildSpec("ingest", self._ingest_tree,
                                      shutdown=2 * config.shutdown_timeout + 5))
        self.root = Supervisor(children, strategy=Strategy.REST_FOR_ONE,
                               intensity=3, period=60.0, name="Node")
        self._ingest: Supervisor | None = None

    def pool(self) -> asyncpg.Pool:
        database = self.root.child("database")
        if database is None or database.done:
            raise ConnectionError("database is restarting")
        return cast(Database, database).pool

    def healthy(self) -> bool:
        subtrees = [self.root] + ([self._ingest] if self._ingest is not None else [])
        return not any(sup.degraded for sup in subtrees)

    def _ingest_tree(self) -> Supervisor:
        config = self.config

        def writer() -> EventWriter | None:
            current = sup.child("writer")
            return None if current is None or current.done else cast(EventWriter, current)

        ingest = Ingest(pool=self.pool, writer=writer, keys=self.keys, dedup=self.dedup,
                        limiter=self.limiter, admin_token=config.admin_token,
                        commit_timeout=config.commit_timeout, healthy=self.healthy,
                        allow_private_targets=config.allow_private_targets)
        sup = Supervisor([
            ChildSpec("writer", lambda: EventWriter(
                self.pool, self.dedup, mailbox_size=config.writer_queue,
                max_batch=config.writer_max_batch, concurrency=config.writer_concurrency),
                shutdown=config.shutdown_timeout),
            ChildSpec("http", lambda: HttpAcceptor(
                create_app(ingest), config.host, config.port, config.shutdown_timeout),
                shutdown=config.shutdown_timeout + 2),
        ], strategy=Strategy.ONE_FOR_ONE, intensity=10, period=10.0, name="Ingest")
        self._ingest = sup
        return sup
