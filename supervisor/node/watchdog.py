"""Watchdog: `WATCHDOG=1` to systemd while the node is healthy, silence when it is stuck.

What "stuck" means, and who notices:
- The event loop is blocked (a callback that never yields, a deadlock in C code, a
  process stopped by a debugger): the pings are a timer on that very loop, re-armed
  after each ping, never a thread, so they stop with it. systemd kills the node once
  WatchdogSec passes without a ping. A ping that fires a period late is logged.
- The tree no longer recovers: `TreeHealth` reports the root supervisor exited, or
  degraded (some child not running: restarting, or hung in its start or stop) for
  longer than `stuck_after` (TRIGGERD_STUCK_AFTER). A restart that succeeds within the
  bound is not stuck. The pings resume if the tree recovers before systemd acts.

Without WATCHDOG_USEC the same timer still keeps `STATUS=` current (degraded, stuck,
back to ready) every few seconds, so `systemctl status` says what the tree is doing.
Not a child of the tree: it watches the tree from outside, started once the node is ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from supervisor import Supervisor
from supervisor.node import sdnotify

log = logging.getLogger(__name__)

STATUS_ONLY_PERIOD_S = 5.0  # how often STATUS= is refreshed when there is no watchdog


def down_children(sup: Supervisor, path: str = "") -> Iterator[str]:
    """The children that should run but do not, as "subtree/child" paths."""
    for child_id, proc in sup.which_children():
        name = f"{path}{child_id}"
        if proc is None or proc.done:
            yield name
        elif isinstance(proc, Supervisor):
            yield from down_children(proc, name + "/")


class TreeHealth:
    """Samples the root supervisor: None while healthy, else why the node is stuck."""

    def __init__(self, root: Supervisor, stuck_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.stuck_after = stuck_after
        self._clock = clock
        self._degraded_since: float | None = None

    def __repr__(self) -> str:
        return f"TreeHealth({self.root.name}, stuck_after={self.stuck_after:g}s)"

    def degraded(self) -> str | None:
        """Which parts are down (e.g. "ingest/http"), or None when all of them run."""
        if not self.root.degraded:
            return None
        return ", ".join(down_children(self.root)) or "a supervisor"

    def stuck(self) -> str | None:
        now = self._clock()
        if self.root.done:
            return "the root supervisor has exited"
        down = self.degraded()
        if down is None:
            self._degraded_since = None
            return None
        if self._degraded_since is None:
            self._degraded_since = now
        elapsed = now - self._degraded_since
        if elapsed > self.stuck_after:
            return f"not recovered for {elapsed:.0f}s: {down} not running"
        return None


class Watchdog:
    """Pings every `period` seconds (None: no watchdog, STATUS= only) while not stuck."""

    def __init__(self, health: TreeHealth, period: float | None, ready_status: str) -> None:
        self.health = health
        self.period = period
        self.ready_status = ready_status
        self.pings = 0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._shown = ready_status
        self.stuck: str | None = None

    def __repr__(self) -> str:
        return f"Watchdog(period={self.period}, pings={self.pings}, stuck={self.stuck!r})"

    def start(self) -> None:
        self._due = asyncio.get_running_loop().time()
        self._beat()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        interval = self.period or STATUS_ONLY_PERIOD_S
        if now - self._due > interval:
            log.warning("event loop was blocked: watchdog timer ran %.1fs late", now - self._due)
        stuck, self.stuck = self.stuck, self.health.stuck()
        if self.stuck is None:
            if stuck is not None:
                log.warning("node recovered; watchdog pings resume")
            if self.period is not None:
                sdnotify.notify("WATCHDOG=1")
                self.pings += 1
            down = self.health.degraded()
            self._show(self.ready_status if down is None else f"degraded: restarting {down}")
        else:
            if stuck is None:
                log.error("node is stuck (%s); watchdog pings stop, so systemd restarts it",
                          self.stuck)
            self._show(f"stuck: {self.stuck}")
        self._due = now + interval
        self._handle = loop.call_at(self._due, self._beat)

    def _show(self, text: str) -> None:
        if text != self._shown:
            self._shown = text
            sdnotify.status(text)

    def show_ready(self, text: str) -> None:
        """The ready status was just sent again (after a reload); the next beat corrects
        it if the tree is degraded."""
        self.ready_status = text
        self._shown = text
