"""EventWriter: the group-commit actor between the HTTP handlers and `events`.

Handlers put a `Pending` event in the bounded mailbox and await its reply. The
writer takes whatever has queued up (at most `max_batch`) and writes it with one
INSERT; while that flush waits on the commit, new arrivals gather for the next
one, so batches grow with load and an idle writer flushes a lone event at once,
never waiting on a timer for company. Up to `concurrency` flushes overlap.

A reply is resolved only after its row's commit (202), as a duplicate with the
stored id (409), or with `WriterUnavailable` (503): nothing is acknowledged from
memory. Messages: `Pending`. Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from uuid import UUID

import asyncpg
from cachetools import TTLCache

from ingestor import metrics, queries
from supervisor import Actor

log = logging.getLogger(__name__)

DedupKey = tuple[UUID, str]


class WriterUnavailable(Exception):
    """The event could not be committed now; the client should retry later."""


class EventRejected(Exception):
    """PostgreSQL refused this event's data; retrying it will not help."""


class Written(NamedTuple):
    """A commit outcome: the stored id, and whether the event was a duplicate."""

    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Pending:
    """An accepted event waiting for its commit."""

    id: str  # a UUIDv7 in text form, as the client will see it
    org_id: UUID
    type: str
    payload: str
    dedup_id: str | None
    reply: asyncio.Future[Written] = field(repr=False, compare=False)


def new_dedup_cache(size: int, ttl: float) -> TTLCache[DedupKey, str]:
    return TTLCache(maxsize=size, ttl=ttl)


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
        task = asyncio.create_task(self._flush(batch), name="EventWriter.flush")
        self._flushing.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        self._slots.release()

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
        await flush(self._pool(), self._dedup, batch)


async def flush(pool: asyncpg.Pool, dedup: TTLCache[DedupKey, str], batch: list[Pending]) -> None:
    """Commits `batch` in one statement and resolves every reply; never raises for a
    database failure (the replies carry it)."""
    started = time.perf_counter()
    unique, twins = _split_twins(batch)
    try:
        outcome = await _write(pool, unique)
    except asyncpg.DataError as exc:
        if len(unique) == 1:
            _fail(unique, EventRejected(str(exc)))
        else:  # isolate the row PostgreSQL refused; the others still commit
            for one in unique:
                await flush(pool, dedup, [one])
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        log.warning("flush of %d events failed: %s", len(batch), exc)
        _fail(unique, WriterUnavailable(str(exc)))
    else:
        committed, duplicates = _settle(unique, outcome, dedup)
        metrics.flushed(len(batch), committed, duplicates + len(twins),
                        time.perf_counter() - started)
    for twin, first in twins:
        _chain(twin, first)
    log.debug("flushed events=%d took_ms=%.2f", len(batch), (time.perf_counter() - started) * 1000)


def _settle(unique: list[Pending], outcome: dict[str, Written | None] | None,
            dedup: TTLCache[DedupKey, str]) -> tuple[int, int]:
    """Answers each committed event (`outcome` None: all inserted under their own ids);
    returns how many were inserted and how many were duplicates."""
    committed = duplicates = 0
    for pending in unique:
        written = Written(pending.id, False) if outcome is None else outcome.get(
            pending.id, Written(pending.id, False))
        if written is None:  # its dedup conflict vanished before the look-up (pruned)
            if not pending.reply.done():
                pending.reply.set_exception(WriterUnavailable("dedup conflict unresolved; retry"))
            continue
        if written.duplicate:
            duplicates += 1
        else:
            committed += 1
        if pending.dedup_id is not None:
            dedup[(pending.org_id, pending.dedup_id)] = written.id
        if not pending.reply.done():
            pending.reply.set_result(written)
    return committed, duplicates


async def _write(pool: asyncpg.Pool, batch: list[Pending]) -> dict[str, Written | None] | None:
    """Inserts the batch. Returns None when every row was inserted, else the outcome of
    each row that carries a dedup id (inserted, or a duplicate of the stored id)."""
    async with pool.acquire() as conn:
        status = await conn.execute(
            queries.INSERT_EVENTS,
            [p.id for p in batch],
            [p.org_id for p in batch],
            [p.type for p in batch],
            [p.payload for p in batch],
            [p.dedup_id for p in batch],
        )
        if int(status.rpartition(" ")[2]) == len(batch):
            return None
        keyed = [p for p in batch if p.dedup_id is not None]
        found = await conn.fetch(queries.EXISTING_DEDUP, [p.org_id for p in keyed],
                                 [p.dedup_id for p in keyed])
    stored = {(r["org_id"], r["dedup_id"]): str(r["id"]) for r in found}
    outcome: dict[str, Written | None] = {}
    for p in keyed:
        original = stored.get((p.org_id, p.dedup_id or ""))
        outcome[p.id] = None if original is None else Written(original, original != p.id)
    return outcome


def _split_twins(batch: list[Pending]) -> tuple[list[Pending], list[tuple[Pending, Pending]]]:
    """Separates events repeating a dedup key seen earlier in the same batch."""
    first: dict[DedupKey, Pending] = {}
    unique: list[Pending] = []
    twins: list[tuple[Pending, Pending]] = []
    for pending in batch:
        if pending.dedup_id is None:
            unique.append(pending)
            continue
        key = (pending.org_id, pending.dedup_id)
        if key in first:
            twins.append((pending, first[key]))
        else:
            first[key] = pending
            unique.append(pending)
    return unique, twins


def _chain(twin: Pending, first: Pending) -> None:
    """Answers a repeated key like its first occurrence: a duplicate of the same id."""
    if twin.reply.done():
        return
    if first.reply.done() and not first.reply.cancelled():
        error = first.reply.exception()
        if error is None:
            twin.reply.set_result(Written(first.reply.result().id, True))
        else:
            twin.reply.set_exception(error)
    else:
        twin.reply.set_exception(WriterUnavailable("event could not be committed"))


def _fail(batch: list[Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.reply.done():
            pending.reply.set_exception(exc)
