"""Database: the node's asyncpg pool, and the embedded PostgreSQL when no DATABASE_URL is set.

The first child of the node: everything else reaches PostgreSQL through it, and
the node's rest_for_one strategy restarts them all if it has to restart.
Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from supervisor import Resident
from supervisor.node.config import Config
from supervisor.node.migrate import migrate
from supervisor.node.postgres import EmbeddedPostgres

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
            async with self._pool.acquire() as conn:
                await migrate(conn)

    async def _connect(self, dsn: str) -> asyncpg.Pool:
        """Opens the pool, waiting up to ~30 s for a PostgreSQL that is still starting."""
        attempt = 1
        while True:
            try:
                return await asyncpg.create_pool(
                    dsn, min_size=2, max_size=self._config.db_pool_size,
                    max_inactive_connection_lifetime=60)
            except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError) as exc:
                if attempt >= CONNECT_ATTEMPTS:
                    raise
                log.warning("PostgreSQL not reachable yet (%s); retrying", exc)
                attempt += 1
                await asyncio.sleep(1.0)

    async def terminate(self, reason: BaseException | None) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except asyncio.TimeoutError:
                self._pool.terminate()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
