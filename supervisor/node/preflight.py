"""Checks a node makes before it starts its tree, so each mistake fails at once, in one line.

- `check_listen`: TRIGGERD_HOST resolves and HOST:PORT can be bound (bound the way the
  HttpAcceptor binds, then released at once): a bad host or a port in use is found
  before PostgreSQL is started or migrated, not after. With `reuse_port`
  (TRIGGERD_REUSE_PORT) the probe sets SO_REUSEPORT too, so a port held by triggerd
  processes of this user that set it is not refused; anything else on the port still
  is (the kernel refuses the bind), and `sharers.check` later makes sure that whoever
  shares it is a node of the same database.
- `check_data_dir`: the embedded PostgreSQL's TRIGGERD_DATA_DIR exists or can be made,
  and this user can write in it.
- `open_database`: the embedded server started (it stays up until `close`), or
  DATABASE_URL connected to, waiting up to TRIGGERD_DB_CONNECT_TIMEOUT for a server that
  is not up yet but failing at once on what waiting cannot cure (a malformed URL, a
  wrong password, a missing database); then the migrations.

Each raises `StartupError`; `status` reports the phase for systemd's STATUS=.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from supervisor.node import failures
from supervisor.node.config import Config
from supervisor.node.failures import StartupError
from supervisor.node.migrate import migrate
from supervisor.node.postgres import EmbeddedPostgres
from supervisor.throttle import Throttle

log = logging.getLogger(__name__)

CONNECT_ATTEMPT_S = 10.0


async def check_listen(host: str, port: int, *, reuse_port: bool = False) -> None:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise failures.host_error(exc if isinstance(exc, OSError) else OSError(str(exc)),
                                  host) from None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if reuse_port and exc.errno == errno.EADDRINUSE:
                    raise _not_shared(host, port) from None
                raise failures.listen_error(exc, host, port) from None


def _not_shared(host: str, port: int) -> StartupError:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return StartupError(f"PORT: {address} is already in use by a process that does not "
                        "share it (only triggerd processes of the same user started with "
                        "--reuse-port share a port); stop it, or set PORT (or --port) to a "
                        "free port")


def check_data_dir(data_dir: Path) -> None:
    path = Path(os.path.abspath(data_dir))
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(0, f"{existing} is a file, not a directory")
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise failures.data_dir_error(exc, str(path)) from None


class Database:
    """The database a serving node starts with; `close()` stops what `open()` started."""

    def __init__(self, config: Config, status: Callable[[str], object]) -> None:
        self.config = config
        self.status = status
        self.embedded: EmbeddedPostgres | None = None
        self.applied: list[str] = []

    def __repr__(self) -> str:
        return f"preflight.Database(embedded={self.embedded!r})"

    async def open(self) -> str:
        """The DSN of a reachable, migrated database."""
        config = self.config
        if config.database_url is None:
            check_data_dir(config.data_dir)
            self.status(f"starting the embedded PostgreSQL in {config.data_dir}")
            self.embedded = EmbeddedPostgres(config.data_dir)
            dsn = await self._start_embedded(self.embedded)
        else:
            dsn = config.database_url
        conn = await self._connect(dsn)
        try:
            if config.migrate:
                self.status("migrating")
                try:
                    self.applied = await migrate(conn)
                except (asyncpg.PostgresError, OSError) as exc:
                    raise StartupError(f"migrations failed on {failures.where(dsn)}: {exc}; "
                                       "fix the cause and start again") from None
        finally:
            await conn.close(timeout=CONNECT_ATTEMPT_S)
        return dsn

    async def _start_embedded(self, embedded: EmbeddedPostgres) -> str:
        # A thread cannot be cancelled: a stop signal waits for the start to finish,
        # so that close() can stop the server instead of leaving it behind.
        start = asyncio.ensure_future(asyncio.to_thread(embedded.start))
        try:
            return await asyncio.shield(start)
        except asyncio.CancelledError:
            await asyncio.wait((start,))
            raise
        except OSError as exc:
            raise failures.data_dir_error(exc, str(self.config.data_dir)) from None

    async def close(self) -> None:
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

    async def _connect(self, dsn: str) -> asyncpg.Connection:
        limit = self.config.db_connect_timeout
        started = time.monotonic()
        throttle = Throttle(10.0)
        while True:
            left = limit - (time.monotonic() - started)
            try:
                return await asyncpg.connect(dsn, timeout=max(0.1, min(CONNECT_ATTEMPT_S, left)))
            except Exception as exc:  # noqa: BLE001 - classified just below
                permanent = failures.database_error(exc, dsn)
                if permanent is not None:
                    raise permanent from None
                waited = time.monotonic() - started
                if waited + 0.5 >= limit:
                    raise failures.unreachable(exc, dsn, waited) from None
                self.status(f"waiting for PostgreSQL at {failures.where(dsn)}")
                throttle.log(log, logging.WARNING, "PostgreSQL at %s not reachable yet (%s); "
                             "retrying for up to %.0fs", failures.where(dsn), exc, limit - waited)
                await asyncio.sleep(min(1.0, limit - waited))
