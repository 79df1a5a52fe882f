"""Processes and actors: long-running asyncio tasks with an OTP lifecycle.

`Process` is the unit a supervisor starts and stops: init -> run -> terminate, in one
task named after the process. `Resident` is a Process that only holds a resource for
others and stops without being cancelled. `Actor` adds a bounded mailbox handled one message at a
time. `PeriodicActor` handles `Tick` messages sent by a jittered one-shot timer that is
re-armed after each tick, so ticks never overlap; `wake()` asks for a tick at once.
The restart type of each is chosen by its parent's ChildSpec. A process may be given a
`contextvars.Context` to run in: every task it starts (a supervisor's children, their
own tasks) copies it, so a context variable set there (the node's name for its log
lines, say) is seen by the whole tree below it, like OTP's logger process metadata.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

M = TypeVar("M")
Phase = Literal["new", "init", "run", "terminate", "done"]


class Process:
    """A long-running asyncio task with OTP lifecycle: init -> run -> terminate."""

    def __init__(self, *, name: str | None = None,
                 context: contextvars.Context | None = None) -> None:
        self.name = name or type(self).__name__
        self.context = context  # None: a copy of the caller's, as for any task
        self.stopping = False
        self.killed = False  # stop() or kill() had to cancel the task
        self._phase: Phase = "new"
        self._task: asyncio.Task[None] | None = None
        self._reason: BaseException | None = None
        self._callbacks: list[Callable[[Process], None]] = []
        self._stop_requested = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._phase}>"

    async def init(self) -> None:
        """Acquires what the process needs; start() returns once this has succeeded."""

    async def run(self) -> None:
        """The main body; returning is a normal exit. By default waits until stopped."""
        await asyncio.get_running_loop().create_future()

    async def terminate(self, reason: BaseException | None) -> None:
        """Releases resources; called once on the way out (reason None = normal/shutdown).

        Also called when init() failed or was interrupted, so it must cope with a
        partly initialised process (but not when the task was cancelled before init()
        even began).
        """

    def request_stop(self) -> None:
        """Asks for a graceful stop; by default cancels the task unless it is terminating."""
        self.stopping = True
        if self._task is not None and not self._task.done() and self._phase != "terminate":
            self._task.cancel()

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def exit_reason(self) -> BaseException | None:
        """After exit: None for a normal exit or a requested stop, else the crash's exception."""
        return self._reason

    def add_exit_callback(self, cb: Callable[[Process], None]) -> None:
        """Calls `cb(self)` once when the task ends, crash or not."""
        if self.done:
            asyncio.get_running_loop().call_soon(cb, self)
        else:
            self._callbacks.append(cb)

    async def start(self) -> None:
        """Starts the task; returns after init() succeeded, else raises init's exception."""
        if self._task is not None:
            raise RuntimeError(f"{self.name} was already started")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        task = loop.create_task(self._lifecycle(ready), name=self.name, context=self.context)
        self._task = task
        task.add_done_callback(self._task_done)
        try:
            await asyncio.wait((ready, task), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.kill()  # the caller gave up: leave no half-started task behind
            await asyncio.wait((task,))
            raise
        if ready.done():
            return
        if self._reason is not None:
            raise self._reason
        raise RuntimeError(f"{self.name} was stopped before its init completed")

    async def stop(self, timeout: float) -> None:
        """Requests a graceful stop, waits up to `timeout`, then cancels the task.

        Never raises the process's own exception; idempotent; safe after exit.
        """
        self.stopping = True
        task = self._task
        if task is None or task.done():
            return
        if not self._stop_requested:
            self._stop_requested = True
            self.request_stop()
        try:
            await asyncio.wait((task,), timeout=timeout)
            while not task.done():
                self.kill()
                # Re-cancelled on each round so that a task that ignores one
                # cancellation still cannot hang the shutdown forever.
                await asyncio.wait((task,), timeout=max(timeout, 0.1))
        except asyncio.CancelledError:
            self.kill()
            raise

    def kill(self) -> None:
        """Cancels the task at once, with no graceful stop (OTP's brutal_kill)."""
        self.stopping = True
        if self._task is not None and not self._task.done():
            self.killed = True
            self._task.cancel()

    async def _lifecycle(self, ready: asyncio.Future[None]) -> None:
        reason: BaseException | None = None
        try:
            self._phase = "init"
            await self.init()
            ready.set_result(None)
            self._phase = "run"
            await self.run()
        except asyncio.CancelledError as exc:
            if not self.stopping:
                reason = exc  # cancelled by someone other than stop(): abnormal
            raise
        except BaseException as exc:
            reason = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._terminate(reason)

    async def _terminate(self, reason: BaseException | None) -> None:
        self._reason = reason
        self._phase = "terminate"
        try:
            await self.terminate(reason)
        except Exception as exc:
            if reason is None:
                self._reason = exc
            else:
                reason.add_note(f"terminate() of {self.name} also failed: {exc!r}")
        finally:
            self._phase = "done"

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if self._phase != "done" and not self.stopping:
                # Cancelled before its first step: the body never ran.
                self._reason = asyncio.CancelledError()
        else:
            task.exception()  # retrieved here; the reason is kept in self._reason
        self._phase = "done"
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)


class Resident(Process):
    """A process whose work is done through it by others (a listening socket, a pool, a
    client session): init() acquires, terminate() releases, and run() just waits.

    Its stop is graceful without cancellation, so terminate() runs in a task that was
    never cancelled and may use timeouts freely.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._stop_event = asyncio.Event()

    async def run(self) -> None:
        await self._stop_event.wait()

    def request_stop(self) -> None:
        self.stopping = True
        self._stop_event.set()


class Actor(Process, Generic[M]):
    """A Process with a bounded mailbox, handled one message at a time.

    A graceful stop lets the message being handled finish and takes no new one; what
    is left stays in `self.mailbox` for terminate() to drain if it wants to.
    """

    def __init__(self, *, name: str | None = None, mailbox_size: int = 1000) -> None:
        super().__init__(name=name)
        if mailbox_size < 1:
            raise ValueError(f"{self.name}: mailbox_size must be >= 1, got {mailbox_size}")
        self.mailbox: asyncio.Queue[M] = asyncio.Queue(maxsize=mailbox_size)
        self._handling = False

    async def handle(self, message: M) -> None:
        """Handles one message; raising crashes the actor."""

    def send_nowait(self, message: M) -> None:
        """Queues a message; raises asyncio.QueueFull when the mailbox is full."""
        self.mailbox.put_nowait(message)

    async def send(self, message: M) -> None:
        """Queues a message, waiting for room."""
        await self.mailbox.put(message)

    async def run(self) -> None:
        while not self.stopping:
            message = await self.mailbox.get()
            self._handling = True
            try:
                await self.handle(message)
            finally:
                self._handling = False

    def request_stop(self) -> None:
        self.stopping = True
        if not self._handling:
            # Idle in mailbox.get(): cancelling there takes no message out of the queue.
            super().request_stop()


@dataclass(frozen=True, slots=True)
class Tick:
    """Time for a periodic actor's next round of work."""


class PeriodicActor(Actor[Tick]):
    """Calls tick() about every `interval` seconds (+/- `jitter` as a fraction).

    The one-shot timer is armed when the actor starts running and re-armed after each
    tick, so the interval runs from the end of one tick to the start of the next.
    """

    def __init__(self, *, interval: float, jitter: float = 0.1, name: str | None = None) -> None:
        # One queued Tick is enough: wake() and the timer coalesce into it.
        super().__init__(name=name, mailbox_size=1)
        if interval <= 0:
            raise ValueError(f"{self.name}: interval must be > 0, got {interval}")
        if not 0 <= jitter < 1:
            raise ValueError(f"{self.name}: jitter must be in [0, 1), got {jitter}")
        self.interval = interval
        self.jitter = jitter
        self._timer: asyncio.TimerHandle | None = None

    async def tick(self) -> None:
        """One round of periodic work; raising crashes the actor."""

    def wake(self) -> None:
        """Asks for a tick now, unless one is already queued or the actor is stopping."""
        if not self.stopping and self.mailbox.empty():
            self.mailbox.put_nowait(Tick())

    def next_delay(self) -> float:
        spread = self.interval * self.jitter
        return self.interval + random.uniform(-spread, spread)

    async def run(self) -> None:
        self._arm()
        try:
            await super().run()
        finally:
            self._disarm()

    async def handle(self, message: Tick) -> None:
        self._disarm()
        await self.tick()
        if not self.stopping:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(self.next_delay(), self.wake)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
