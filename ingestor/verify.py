"""After a flush failed once its INSERT may have reached PostgreSQL: which events committed?

A lost connection (PostgreSQL restarting, the backend terminated, a client-side timeout,
a protocol error) says nothing about the INSERT: it may have committed just before, it
may never have run, or, on a slow or frozen server, it may still be running and commit
later. `stored_ids` first makes sure the backend that ran it is gone (terminating it
and waiting for it to exit), so nothing can commit after the look; then it reads which
of the ids are in `events`. Until the deadline it retries on fresh connections (a
server coming back from a restart); past it, the answer is None: unknown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from ingestor import metrics, queries
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

RETRY_S = 0.1
TERMINATE_WAIT_S = 1.0  # at most, per attempt, for the old backend to exit


class _StillRunning(Exception):
    """The backend that ran the INSERT did not exit in time."""


async def stored_ids(pool: Callable[[], asyncpg.Pool], pid: int, ids: list[str],
                     deadline: float) -> set[str] | None:
    """The ids of `ids` that committed, once backend `pid` is gone; None when that cannot
    be known before `deadline` (event-loop time)."""
    loop = asyncio.get_running_loop()
    while deadline - loop.time() > 0:
        try:
            return await _look(pool, pid, ids, lambda: max(0.001, deadline - loop.time()))
        except _StillRunning:
            pass
        except Exception as exc:
            if not is_transient(exc):
                log.error("cannot check whether events %s committed (backend %d): %r",
                          ids[:10], pid, exc)
                metrics.internal_error("writer")
                return None
        await asyncio.sleep(min(RETRY_S, max(0.0, deadline - loop.time())))
    return None


async def _look(pool: Callable[[], asyncpg.Pool], pid: int, ids: list[str],
                left: Callable[[], float]) -> set[str]:
    async with pool().acquire(timeout=left()) as conn:
        wait_ms = max(1, round(min(left(), TERMINATE_WAIT_S) * 1000))
        if not await conn.fetchval(queries.END_BACKEND, pid, wait_ms, timeout=left()):
            raise _StillRunning
        rows = await conn.fetch(queries.STORED_EVENTS, ids, timeout=left())
    return {str(row["id"]) for row in rows}
