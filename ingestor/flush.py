"""One group-commit flush: a batch of Pending events written with one INSERT, every
reply answered with the truth about its own row.

- Nothing sent (no connection, or the database restarting): each reply is "not stored".
- PostgreSQL answered the statement with an error (ERROR severity: rolled back): a
  transient one is "not stored"; a refusal of the data is split in halves until the
  bad row is found (400 for it, the others commit); anything else is a bug (500).
- The connection was lost once the statement may have been sent (connection closed
  mid-statement, a FATAL, a client-side timeout): `verify.stored_ids` ends the backend,
  then looks the ids up. Found: committed (202). Missing: "not stored". No answer
  before the requests' deadline: "outcome unknown".

Events repeating a dedup key already in the batch are answered like their first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from cachetools import TTLCache

from ingestor import metrics, queries
from ingestor.pending import (
    DedupKey,
    EventRejected,
    OutcomeUnknown,
    Pending,
    WriteFailed,
    WriterUnavailable,
    Written,
)
from ingestor.verify import stored_ids
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

PoolSource = Callable[[], asyncpg.Pool]
Outcome = dict[str, Written | Exception]  # per event id, when not simply "inserted"
_DATA_CLASSES = ("22", "23", "54")  # data exception, integrity violation, too large
_FAILED = Throttle(10.0)


@dataclass(frozen=True, slots=True)
class Flush:
    """What the steps of one flush share."""

    pool: PoolSource
    dedup: TTLCache[DedupKey, str]
    yield_slot: Callable[[], None]


class NotSent(Exception):
    """Nothing of the batch reached PostgreSQL."""


class SendFailed(Exception):
    """The INSERT failed after it may have reached PostgreSQL."""

    def __init__(self, cause: Exception, pid: int, sent: list[Pending]) -> None:
        super().__init__(repr(cause))
        self.cause = cause
        self.pid = pid
        self.sent = sent


async def flush(pool: PoolSource, dedup: TTLCache[DedupKey, str], batch: list[Pending], *,
                yield_slot: Callable[[], None] = lambda: None) -> None:
    """Commits `batch` in one statement and answers every reply; never raises for a
    failure of the database or of this code (the replies carry it). `yield_slot` is
    called when the flush stops using the database except to check a lost statement."""
    started = time.perf_counter()
    unique, twins = _split_twins(batch)
    try:
        committed, duplicates = await _commit(Flush(pool, dedup, yield_slot), unique)
    except Exception as exc:  # a bug here must still answer every request truthfully
        log.error("flush of %d events failed: %r", len(batch), exc, exc_info=exc)
        metrics.internal_error("writer")
        for pending in unique:
            _answer(pending, OutcomeUnknown("internal error") if pending.sent
                    else WriteFailed("internal error"))
        committed = duplicates = 0
    for twin, first in twins:
        duplicates += _chain(twin, first)
    took = time.perf_counter() - started
    if committed or duplicates:
        metrics.flushed(len(batch), committed, duplicates, took)
    log.debug("flushed events=%d took_ms=%.2f", len(batch), took * 1000)


async def _commit(job: Flush, batch: list[Pending]) -> tuple[int, int]:
    """Writes `batch` (no dedup key twice) and answers it; returns (committed, duplicates)."""
    try:
        sent, outcome = await _send(job.pool, batch)
    except NotSent as exc:
        cause = exc.__cause__ or exc
        if not is_transient(cause):
            log.error("flush of %d events: %r", len(batch), cause)
            metrics.internal_error("writer")
            _fail(batch, WriteFailed("internal error"))
        else:
            _FAILED.log(log, logging.WARNING, "flush of %d events not sent: %r", len(batch), cause)
            _fail(batch, WriterUnavailable("database unavailable"))
        return 0, 0
    except SendFailed as failed:
        return await _failed(job, failed)
    return _settle(sent, outcome, job.dedup)


async def _send(pool: PoolSource, batch: list[Pending]) -> tuple[list[Pending], Outcome | None]:
    """Inserts the events of `batch` whose request still waits. Returns them, with None
    when every one was inserted, else the outcome of each that carries a dedup_id."""
    try:
        source = pool()
        conn = await source.acquire()
    except Exception as exc:
        raise NotSent() from exc
    try:
        if conn.is_closed():
            raise NotSent() from ConnectionError("connection closed")
        sent = [p for p in batch if not p.reply.done()]
        if not sent:
            return sent, None
        for pending in sent:
            pending.sent = True
        pid = conn.get_server_pid()
        try:
            status = await conn.execute(
                queries.INSERT_EVENTS, [p.id for p in sent], [p.org_id for p in sent],
                [p.type for p in sent], [p.payload for p in sent], [p.dedup_id for p in sent],
                [p.source_id for p in sent], [p.provider_id for p in sent],
                [p.headers for p in sent])
        except Exception as exc:
            raise SendFailed(exc, pid, sent) from exc
        if int(status.rpartition(" ")[2]) == len(sent):
            return sent, None
        return sent, await _conflicts(conn, sent)
    finally:
        await _release(source, conn)


async def _conflicts(conn: asyncpg.Connection, sent: list[Pending]) -> Outcome:
    """After an INSERT that committed fewer rows than sent: which keyed events were
    duplicates, and of which stored id. Events without a dedup_id were all inserted."""
    keyed = [p for p in sent if p.dedup_id is not None]
    try:
        found = await conn.fetch(queries.EXISTING_DEDUP, [p.org_id for p in keyed],
                                 [p.dedup_id for p in keyed])
    except Exception as exc:
        if not is_transient(exc):
            log.error("dedup look-up after a commit failed: %r", exc)
            metrics.internal_error("writer")
        return {p.id: OutcomeUnknown("dedup look-up failed after the commit") for p in keyed}
    stored = {(r["org_id"], r["dedup_id"]): str(r["id"]) for r in found}
    outcome: Outcome = {}
    for p in keyed:
        original = stored.get((p.org_id, p.dedup_id or ""))
        outcome[p.id] = (WriterUnavailable("dedup conflict unresolved; retry") if original is None
                         else Written(original, original != p.id))
    return outcome


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Returns the connection; a failure here (asyncpg then closes it) changes nothing
    about the statement, which has answered already."""
    try:
        await pool.release(conn)
    except Exception as exc:
        if not is_transient(exc):
            raise


async def _failed(job: Flush, failed: SendFailed) -> tuple[int, int]:
    exc, sent = failed.cause, failed.sent
    if not _definitive(exc):
        return await _verify(job, failed)
    if is_transient(exc):
        _FAILED.log(log, logging.WARNING, "flush of %d events refused: %r", len(sent), exc)
        _fail(sent, WriterUnavailable("database unavailable"))
        return 0, 0
    if _bad_data(exc) and len(sent) > 1:  # isolate the row PostgreSQL refused
        half = len(sent) // 2
        first = await _commit(job, sent[:half])
        second = await _commit(job, sent[half:])
        return first[0] + second[0], first[1] + second[1]
    if _bad_data(exc):
        log.info("event %s refused by PostgreSQL: %r", sent[0].id, exc)
        _fail(sent, EventRejected("it holds a value PostgreSQL cannot store"))
    else:
        _bug(sent, exc)
    return 0, 0


async def _verify(job: Flush, failed: SendFailed) -> tuple[int, int]:
    """Answers a batch whose INSERT may or may not have committed."""
    sent, cause = failed.sent, failed.cause
    job.yield_slot()
    stored = await stored_ids(job.pool, failed.pid, [p.id for p in sent],
                              max(p.deadline for p in sent))
    if stored is None:
        _FAILED.log(log, logging.WARNING, "flush of %d events failed once sent (%r); "
                    "outcome unknown", len(sent), cause)
        _fail(sent, OutcomeUnknown(_reason(cause)))
        return 0, 0
    missing = [p for p in sent if p.id not in stored]
    if not is_transient(cause) and missing:
        _bug(missing, cause)
    else:
        _FAILED.log(log, logging.WARNING, "flush of %d events failed once sent (%r); "
                    "checked: %d committed", len(sent), cause, len(stored))
        _fail(missing, WriterUnavailable("database unavailable"))
    return _settle([p for p in sent if p.id in stored], None, job.dedup)


def _bug(batch: list[Pending], exc: Exception) -> None:
    log.error("flush of events %s failed: %r", [p.id for p in batch[:10]], exc)
    metrics.internal_error("writer")
    _fail(batch, WriteFailed("internal error"))


def _definitive(exc: Exception) -> bool:
    """True when the statement certainly did not commit: PostgreSQL answered it with an
    error of ERROR severity (rolled back; a FATAL, which ends the session, may follow a
    commit), or the driver refused a value before executing anything."""
    if isinstance(exc, asyncpg.PostgresError):
        severity = getattr(exc, "severity_en", None) or getattr(exc, "severity", None)
        return severity == "ERROR"
    return _bad_data(exc)


def _bad_data(exc: Exception) -> bool:
    """A refusal of the data itself: PostgreSQL's data, integrity and size classes, or a
    value the driver could not encode."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _DATA_CLASSES
    return isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "PostgreSQL did not answer in time"
    return "the connection to PostgreSQL was lost"


def _settle(sent: list[Pending], outcome: Outcome | None,
            dedup: TTLCache[DedupKey, str]) -> tuple[int, int]:
    """Answers each event of a committed statement (`outcome` None: all inserted under
    their own ids); returns how many were inserted and how many were duplicates."""
    committed = duplicates = 0
    for pending in sent:
        written = Written(pending.id, False) if outcome is None else outcome.get(
            pending.id, Written(pending.id, False))
        if isinstance(written, Exception):
            _answer(pending, written)
            continue
        if written.duplicate:
            duplicates += 1
        else:
            committed += 1
        if pending.dedup_id is not None:  # learned even when the request gave up
            dedup[(pending.org_id, pending.dedup_id)] = written.id
        _answer(pending, written)
    return committed, duplicates


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


def _chain(twin: Pending, first: Pending) -> int:
    """Answers a repeated key like its first occurrence: a duplicate of the same id (1
    is returned). When the first was not committed, or may not have been, the twin is
    "not stored", which is true of it (it is never sent); its retry gets the exact
    answer through the dedup_id."""
    if twin.reply.done():
        return 0
    if first.reply.done() and not first.reply.cancelled() and first.reply.exception() is None:
        _answer(twin, Written(first.reply.result().id, True))
        return 1
    _answer(twin, WriterUnavailable("event could not be committed"))
    return 0


def _answer(pending: Pending, outcome: Written | Exception) -> None:
    if pending.reply.done():
        return
    if isinstance(outcome, Exception):
        pending.reply.set_exception(outcome)
    else:
        pending.reply.set_result(outcome)


def _fail(batch: list[Pending], exc: Exception) -> None:
    for pending in batch:
        _answer(pending, exc)
