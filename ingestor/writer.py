"""EventWriter: the group-commit actor between the HTTP handlers and `events`.

Handlers put a `Pending` event in the bounded mailbox and await its reply. The
writer takes whatever has queued up (at most `max_batch`) and writes it with one
INSERT (`flush`); while that flush waits on the commit, new arrivals gather for the
next one, so batches grow with load and an idle writer flushes a lone event at once,
never waiting on a timer for company. Up to `concurrency` flushes overlap; a flush
that only waits to learn whether a lost statement committed (`verify`) gives its slot
back, so an outage does not hold the events behind it.

A reply is resolved only after its row's commit (202), as a duplicate with the
stored id (409), or with a failure that says whether the event is stored: not
stored, outcome unknown, refused, or a bug (see `pending`). Nothing is acknowledged
from memory. Messages: `Pending`. Restart: permanent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
from cachetools import TTLCache

from ingestor.flush import flush
from ingestor.pending import (
    DedupKey,
    EventRejected,
    OutcomeUnknown,
    Pending,
    WriteFailed,
    WriterUnavailable,
    Written,
    new_dedup_cache,
)
from supervisor import Actor

__all__ = ["DedupKey", "EventRejected", "EventWriter", "OutcomeUnknown", "Pending",
           "WriteFailed", "WriterUnavailable", "Written", "flush", "new_dedup_cache"]


class EventWriter(Actor[Pending]):
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        dedup: TTLCache[DedupKey, str],
        *,
        mailbox_size: int = 20_000,
        max_batch: int = 1_000,
        concurrency: int = 3,
    ) -> None:
        super().__init__(name="EventWriter", mailbox_size=mailbox_size)
        self._pool = pool
        self._dedup = dedup
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(concurrency)
        self._flushing: set[asyncio.Task[None]] = set()

    async def handle(self, message: Pending) -> None:
        batch = [message]
        while len(batch) < self._max_batch and not self.mailbox.empty():
            batch.append(self.mailbox.get_nowait())
        await self._slots.acquire()
        slot = _Slot(self._slots)
        task = asyncio.create_task(flush(self._pool, self._dedup, batch, yield_slot=slot.release),
                                   name="EventWriter.flush")
        self._flushing.add(task)
        task.add_done_callback(lambda done: self._flush_done(done, slot))

    def _flush_done(self, task: asyncio.Task[None], slot: _Slot) -> None:
        self._flushing.discard(task)
        slot.release()

    async def terminate(self, reason: BaseException | None) -> None:
        """Finishes the flushes under way, then writes what is still queued."""
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        rest: list[Pending] = []
        while not self.mailbox.empty():
            rest.append(self.mailbox.get_nowait())
        for start in range(0, len(rest), self._max_batch):
            await self._flush(rest[start : start + self._max_batch])

    async def _flush(self, batch: list[Pending]) -> None:
        await flush(self._pool, self._dedup, batch)


class _Slot:
    """One flush's hold on the writer's concurrency, given back once: when the flush
    ends, or earlier when it only waits to learn a lost statement's fate."""

    __slots__ = ("_semaphore", "_held")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()
