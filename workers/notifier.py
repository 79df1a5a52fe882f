"""Notifier: owns the LISTEN connection that wakes the Poller when work is committed.

Events committed by any node fire `triggerd_work` (a statement trigger), so routing
starts within milliseconds instead of at the next 100 ms poll. The connection is
re-opened with backoff when it drops, and the Poller is woken on every reconnect in
case a notification was missed meanwhile.

Messages: none (a Process). Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from supervisor import Process
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

CHANNEL = "triggerd_work"


class Notifier(Process):
    def __init__(self, dsn: Callable[[], str], wake: Callable[[], None]) -> None:
        super().__init__(name="Notifier")
        self._dsn = dsn
        self._wake = wake
        self._conn: asyncpg.Connection | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        delay = 0.1
        while not self.stopping:
            lost = asyncio.get_running_loop().create_future()
            try:
                self._conn = await asyncpg.connect(self._dsn(), timeout=5)
                self._conn.add_termination_listener(lambda _conn, lost=lost: _settle(lost))
                await self._conn.add_listener(CHANNEL, self._notified)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
                await self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            self.connected.set()
            self._wake()
            await lost
            self.connected.clear()
            log.warning("LISTEN connection lost; reconnecting")
            await self._close()

    def _notified(self, *_: Any) -> None:
        self._wake()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def terminate(self, reason: BaseException | None) -> None:
        await self._close()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
