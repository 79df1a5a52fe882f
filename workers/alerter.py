"""Alerter: Slack-compatible alerts (`{"text": ...}`) to TRIGGERD_ALERT_WEBHOOK_URL.

Fire-and-forget: `notify()` never blocks and drops the alert when the mailbox is full;
a failed post is only logged. Dead letters are coalesced: at most one message per
endpoint per minute, the next one counting what was held back meanwhile.

Messages: `Alert`, `Flush`. Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp

from supervisor import Actor

log = logging.getLogger(__name__)

COALESCE_S = 60.0
POST_TIMEOUT_S = 5.0


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


class Alerter(Actor["Alert | Flush"]):
    def __init__(self, url: str | None) -> None:
        super().__init__(name="Alerter", mailbox_size=1000)
        self._url = url
        self._session: aiohttp.ClientSession | None = None
        self._last_sent: dict[str, float] = {}
        self._held: dict[str, tuple[int, str]] = {}  # endpoint -> (count, url)
        self._posts: set[asyncio.Task[None]] = set()
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
            count, url = self._held.pop(message.endpoint_id, (0, ""))
            if count:
                self._post(f"triggerd: {count} more event(s) moved to the dead-letter queue for "
                           f"{url} (endpoint {message.endpoint_id}) in the last minute")
                self._last_sent[message.endpoint_id] = time.monotonic()
            return
        if message.kind == "dead_letter":
            last = self._last_sent.get(message.endpoint_id)
            now = time.monotonic()
            if last is not None and now - last < COALESCE_S:
                count, _ = self._held.get(message.endpoint_id, (0, message.url))
                if count == 0:
                    asyncio.get_running_loop().call_later(
                        last + COALESCE_S - now, self._flush_later, message.endpoint_id)
                self._held[message.endpoint_id] = (count + 1, message.url)
                return
            self._last_sent[message.endpoint_id] = now
        self._post(message.text)

    def _flush_later(self, endpoint_id: str) -> None:
        try:
            self.send_nowait(Flush(endpoint_id))
        except asyncio.QueueFull:
            pass

    def _post(self, text: str) -> None:
        log.warning("%s", text)
        self.sent.append(text)
        del self.sent[:-100]
        if self._session is None or self._url is None:
            return
        task = asyncio.create_task(self._deliver(self._session, self._url, text))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    @staticmethod
    async def _deliver(session: aiohttp.ClientSession, url: str, text: str) -> None:
        try:
            async with session.post(url, json={"text": text}, allow_redirects=False) as resp:
                if resp.status >= 300:
                    log.warning("alert webhook answered %d", resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("alert webhook failed: %s", exc)

    async def terminate(self, reason: BaseException | None) -> None:
        if self._posts:
            await asyncio.wait(self._posts, timeout=POST_TIMEOUT_S)
        if self._session is not None:
            await self._session.close()
