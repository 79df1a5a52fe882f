"""TimedPool: the node's asyncpg pool, where nothing waits on PostgreSQL without a limit.

- Every statement has a server-side `statement_timeout` (and idle transactions an
  `idle_in_transaction_session_timeout`), set on each connection at connect, plus a
  client-side one (asyncpg's `command_timeout`) a little longer, for a server that
  cannot answer at all (frozen, or a network that drops packets).
- Every `acquire()` without an explicit timeout gets `acquire_timeout`. asyncpg also
  gives `release()` the acquire's timeout as its budget.
- A connection whose statement was abandoned (a client-side timeout, or its task was
  cancelled) is closed at release rather than kept: asyncpg would first wait for
  PostgreSQL to acknowledge the cancel request, which a frozen server never does.
- A release that fails (the connection died meanwhile; asyncpg closes it) is not the
  caller's failure: the statement had already answered, so it is not raised.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

CLIENT_MARGIN_S = 0.5  # the client gives up this long after the server's own timeout
CONNECT_TIMEOUT_S = 10.0
_DROPPED = Throttle(10.0)


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


class TimedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    def __init__(self, dsn: str, *, acquire_timeout: float, statement_timeout: float,
                 idle_in_transaction_timeout: float, **pool_options: Any) -> None:
        settings = {"statement_timeout": _ms(statement_timeout),
                    "idle_in_transaction_session_timeout": _ms(idle_in_transaction_timeout),
                    "application_name": "triggerd"}
        options: dict[str, Any] = {
            "max_queries": 50_000, "max_inactive_connection_lifetime": 60.0, "loop": None,
            "connection_class": asyncpg.Connection, "record_class": asyncpg.Record,
            "timeout": CONNECT_TIMEOUT_S, **pool_options}
        super().__init__(dsn, command_timeout=statement_timeout + CLIENT_MARGIN_S,
                         server_settings=settings, **options)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        if _abandoned(connection):
            connection.terminate()  # returns its holder to the pool; release is then a no-op
        try:
            await super().release(connection, timeout=timeout)
        except Exception as exc:
            if not is_transient(exc):
                raise
            _DROPPED.log(log, logging.INFO, "connection dropped at release: %r", exc)

    def __repr__(self) -> str:
        return (f"TimedPool(size={self.get_size()}, idle={self.get_idle_size()}, "
                f"acquire_timeout={self.acquire_timeout:g})")


def _abandoned(connection: Any) -> bool:
    """True when the connection still waits for PostgreSQL to acknowledge the cancel of a
    statement its caller gave up on (asyncpg has no public test for it)."""
    protocol = getattr(getattr(connection, "_con", None), "_protocol", None)
    cancelling = getattr(protocol, "_is_cancelling", None)
    return bool(cancelling()) if callable(cancelling) else False


async def open_pool(dsn: str, *, size: int, acquire_timeout: float, statement_timeout: float,
                    idle_in_transaction_timeout: float) -> TimedPool:
    """A started TimedPool (two connections open, up to `size`)."""
    pool = TimedPool(dsn, min_size=min(2, size), max_size=size, acquire_timeout=acquire_timeout,
                     statement_timeout=statement_timeout,
                     idle_in_transaction_timeout=idle_in_transaction_timeout)
    await pool
    return pool
