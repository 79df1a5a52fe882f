"""Alerter: Slack-compatible alerts (`{"text": ...}`) to TRIGGERD_ALERT_WEBHOOK_URL, each
recorded in the `alerts` table with what became of it.

Fire-and-forget: `notify()` never blocks and drops the alert when the mailbox is full;
a failed post is only logged. Dead letters are coalesced: at most one message per
endpoint per minute, the next one counting what was held back meanwhile.

Each alert is recorded once its outcome is known: `sent` (the hook answered 2xx),
`failed` (with the error: "HTTP 500", or the exception), `not_configured` (no hook),
`coalesced` (a dead letter held back, counted into a later message). An `AlertLog`
writes the rows in batches from a task of its own, holds at most MAX_WAITING of them
(beyond that they are dropped and counted), and only logs a failed write (throttled):
recording never blocks the Alerter nor crashes it.

Messages: `Alert`, `Flush`. Restart: permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg

from supervisor import Actor
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient
from workers import queries_alerts

log = logging.getLogger(__name__)

COALESCE_S = 60.0
POST_TIMEOUT_S = 5.0
MAX_POSTS = 100  # posts in flight; an alert beyond them is recorded as failed
RECORD_BATCH = 200  # rows per INSERT
RECORD_LINGER_S = 0.2  # a lone row waits this long for others to share its INSERT
RECORD_TIMEOUT_S = 5.0  # per INSERT, the pool's acquire included
RECORD_CLOSE_S = 0.5  # on stop, after the posts: the last rows get this long
MAX_WAITING = 2_000  # rows held for recording at most
ERROR_LIMIT = 500  # characters of an error kept


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # "dead_letter" | "disabled" | "breaker_opened"
    endpoint_id: str
    url: str
    text: str

    @classmethod
    def dead_letter(cls, endpoint_id: str, url: str, event_id: str, error: str | None) -> Alert:
        return cls("dead_letter", endpoint_id, url,
                   f"triggerd: event {event_id} moved to the dead-letter queue for {url} "
                   f"(endpoint {endpoint_id}): {error or 'attempts exhausted'}")

    @classmethod
    def disabled(cls, endpoint_id: str, url: str, reason: str | None) -> Alert:
        return cls("disabled", endpoint_id, url,
                   f"triggerd: endpoint {endpoint_id} ({url}) disabled: {reason}")

    @classmethod
    def breaker_opened(cls, endpoint_id: str, url: str, failures: int, cooldown: int) -> Alert:
        return cls("breaker_opened", endpoint_id, url,
                   f"triggerd: circuit breaker opened for {url} (endpoint {endpoint_id}) after "
                   f"{failures} consecutive failures; deliveries held, probing in {cooldown}s")


@dataclass(frozen=True, slots=True)
class Flush:
    """Time to report the dead letters held back for one endpoint."""

    endpoint_id: str


@dataclass(frozen=True, slots=True)
class Record:
    """One row of the alerts table, as raised."""

    endpoint_id: uuid.UUID
    kind: str
    message: str
    status: str  # "sent" | "failed" | "not_configured" | "coalesced"
    error: str | None
    raised_at: datetime


class AlertLog:
    """Records alerts in batches, off the caller's path (see the module docstring)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], *, batch: int = RECORD_BATCH,
                 linger: float = RECORD_LINGER_S, max_waiting: int = MAX_WAITING) -> None:
        self._pool = pool
        self._batch = batch
        self._linger = linger
        self._max_waiting = max_waiting
        self._waiting: list[Record] = []
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()
        self._warn = Throttle(10.0)
        self.recorded = 0
        self.lost = 0  # not recorded: too many waiting, or their write failed

    def add(self, alert: Alert, status: str, error: str | None = None,
            raised_at: datetime | None = None) -> None:
        try:
            endpoint = uuid.UUID(alert.endpoint_id)
        except ValueError:  # not an endpoint's id: no organization to record it for
            return
        if len(self._waiting) >= self._max_waiting:
            self.lost += 1
            self._warn.log(log, logging.WARNING, "alert not recorded: %d waiting already",
                           len(self._waiting))
            return
        self._waiting.append(Record(endpoint, alert.kind, alert.text, status,
                                    error[:ERROR_LIMIT] if error else None,
                                    raised_at or datetime.now(UTC)))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="Alerter.record")

    async def _drain(self) -> None:
        while self._waiting:
            if len(self._waiting) < self._batch and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self._linger)
            batch = self._waiting[:self._batch]
            del self._waiting[:self._batch]
            await self._write(batch)

    async def _write(self, batch: list[Record]) -> None:
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                stored = await self._pool().fetchval(
                    queries_alerts.INSERT_ALERTS, [r.endpoint_id for r in batch],
                    [r.kind for r in batch], [r.message for r in batch],
                    [r.status for r in batch], [r.error for r in batch],
                    [r.raised_at for r in batch])
        except Exception as exc:  # classified below; recording must never crash the Alerter
            self.lost += len(batch)
            level = logging.WARNING if is_transient(exc) else logging.ERROR
            self._warn.log(log, level, "%d alert(s) not recorded: %s: %s", len(batch),
                           type(exc).__name__, exc)
            return
        self.recorded += int(stored)

    async def close(self, timeout: float) -> None:
        """Writes what is waiting, within `timeout`; what is left then is lost."""
        self._hurry.set()
        task = self._task
        if task is None or task.done():
            return
        await asyncio.wait((task,), timeout=timeout)
        if not task.done():
            task.cancel()
            self.lost += len(self._waiting)
            self._waiting.clear()


class Alerter(Actor["Alert | Flush"]):
    def __init__(self, url: str | None, pool: Callable[[], asyncpg.Pool]) -> None:
        super().__init__(name="Alerter", mailbox_size=1000)
        self._url = url
        self._session: aiohttp.ClientSession | None = None
        self._last_sent: dict[str, float] = {}
        self._held: dict[str, tuple[int, str]] = {}  # endpoint -> (count, url)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._posts: set[asyncio.Task[None]] = set()
        self.records = AlertLog(pool)
        self.sent: list[str] = []

    def notify(self, alert: Alert) -> None:
        try:
            self.send_nowait(alert)
        except asyncio.QueueFull:
            log.warning("alert dropped (mailbox full): %s", alert.text)

    async def init(self) -> None:
        if self._url:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S))

    async def handle(self, message: Alert | Flush) -> None:
        if isinstance(message, Flush):
            self._flush(message.endpoint_id)
        elif message.kind == "dead_letter" and self._hold(message):
            self.records.add(message, "coalesced")
        else:
            self._post(message)

    def _hold(self, alert: Alert) -> bool:
        """True when a dead letter is held back: its endpoint had a message this minute."""
        endpoint = alert.endpoint_id
        last = self._last_sent.get(endpoint)
        now = time.monotonic()
        if last is None or now - last >= COALESCE_S:
            self._last_sent[endpoint] = now
            return False
        count, _ = self._held.get(endpoint, (0, alert.url))
        if count == 0:
            self._timers[endpoint] = asyncio.get_running_loop().call_later(
                last + COALESCE_S - now, self._flush_later, endpoint)
        self._held[endpoint] = (count + 1, alert.url)
        return True

    def _flush(self, endpoint_id: str) -> None:
        self._timers.pop(endpoint_id, None)
        count, url = self._held.pop(endpoint_id, (0, ""))
        if count:
            self._post(Alert("dead_letter", endpoint_id, url,
                             f"triggerd: {count} more event(s) moved to the dead-letter queue "
                             f"for {url} (endpoint {endpoint_id}) in the last minute"))
            self._last_sent[endpoint_id] = time.monotonic()

    def _flush_later(self, endpoint_id: str) -> None:
        try:
            self.send_nowait(Flush(endpoint_id))
        except asyncio.QueueFull:
            pass

    def _post(self, alert: Alert) -> None:
        log.warning("%s", alert.text)
        self.sent.append(alert.text)
        del self.sent[:-100]
        if self._session is None or self._url is None:
            self.records.add(alert, "not_configured")
            return
        if len(self._posts) >= MAX_POSTS:
            self.records.add(alert, "failed", f"not posted: {MAX_POSTS} alerts in flight")
            return
        task = asyncio.create_task(self._deliver(self._session, self._url, alert,
                                                 datetime.now(UTC)))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _deliver(self, session: aiohttp.ClientSession, url: str, alert: Alert,
                       raised_at: datetime) -> None:
        try:
            async with session.post(url, json={"text": alert.text},
                                    allow_redirects=False) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("alert webhook failed: %r", exc)
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.records.add(alert, "failed", error, raised_at)
            return
        if 200 <= status < 300:
            self.records.add(alert, "sent", raised_at=raised_at)
        else:
            log.warning("alert webhook answered %d", status)
            self.records.add(alert, "failed", f"HTTP {status}", raised_at)

    async def terminate(self, reason: BaseException | None) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._posts:
            await asyncio.wait(self._posts, timeout=POST_TIMEOUT_S)
        if self._session is not None:
            await self._session.close()
        await self.records.close(RECORD_CLOSE_S)
