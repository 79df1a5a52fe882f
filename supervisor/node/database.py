"""Database: the node's asyncpg pool, and the embedded PostgreSQL when no DATABASE_URL is set.

The first child of the node: everything else reaches PostgreSQL through it, and
the node's rest_for_one strategy restarts them all if it has to restart. The pool is a
TimedPool (dbpool): every statement and every acquire has a timeout. Migrations run on
a connection of their own, without a statement timeout (an index build may take long).
Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from supervisor import Resident
from supervisor.node.config import Config
from supervisor.node.dbpool import CONNECT_TIMEOUT_S, open_pool
from supervisor.node.migrate import migrate
from supervisor.node.postgres import EmbeddedPostgres
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 30


class Database(Resident):
    def __init__(self, config: Config) -> None:
        super().__init__(name="Database")
        self._config = config
        self._embedded: EmbeddedPostgres | None = None
        self._pool: asyncpg.Pool | None = None
        self.dsn = ""

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionError("database pool is not open")
        return self._pool

    async def init(self) -> None:
        dsn = self._config.database_url
        if dsn is None:
            self._embedded = EmbeddedPostgres(self._config.data_dir)
            dsn = await asyncio.to_thread(self._embedded.start)
            log.info("embedded PostgreSQL up in %s", self._config.data_dir)
        self.dsn = dsn
        self._pool = await self._connect(dsn)
        if self._config.migrate:
            conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
            try:
                await migrate(conn)
            finally:
                await conn.close(timeout=CONNECT_TIMEOUT_S)

    async def _connect(self, dsn: str) -> asyncpg.Pool:
        """Opens the pool, waiting up to ~30 s for a PostgreSQL that is still starting."""
        config = self._config
        attempt = 1
        while True:
            try:
                return await open_pool(
                    dsn, size=config.db_pool_size, acquire_timeout=config.acquire_timeout,
                    statement_timeout=config.statement_timeout,
                    idle_in_transaction_timeout=config.idle_in_transaction_timeout)
            except Exception as exc:
                if not is_transient(exc) or attempt >= CONNECT_ATTEMPTS:
                    raise
                log.warning("PostgreSQL not reachable yet (%s); retrying", exc)
                attempt += 1
                await asyncio.sleep(1.0)

    async def terminate(self, reason: BaseException | None) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except TimeoutError:
                self._pool.terminate()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
