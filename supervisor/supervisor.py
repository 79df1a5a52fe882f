"""Supervisor: starts children in order, restarts them by strategy, stops them in reverse.

Follows the OTP supervisor behaviour. Children start one after the other, each only
once the previous one's init succeeded, and stop in reverse order, each given its
spec's shutdown time before it is cancelled. When a child exits the supervisor applies
its restart type (permanent / transient / temporary) and the strategy (one_for_one /
one_for_all / rest_for_one). More than `intensity` restarts within `period` seconds
stop every child and crash the supervisor with SupervisorEscalation, so the parent
decides. Messages: child exit notifications on an internal queue. A supervisor is a
Process, so supervisors nest; its restart type is whatever its parent's spec says.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from supervisor.actor import Process
from supervisor.spec import ChildSpec, Restart, Strategy

log = logging.getLogger(__name__)

_Exit = tuple[str, Process]


class SupervisorEscalation(Exception):
    """A supervisor exceeded its restart intensity, stopped its children and gave up."""


class Supervisor(Process):
    """Supervises children built from ChildSpecs; see the module docstring."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        context: contextvars.Context | None = None,
    ) -> None:
        super().__init__(name=name, context=context)
        ids = [spec.id for spec in children]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"{self.name}: duplicate child ids {duplicates}")
        if not isinstance(strategy, Strategy):
            raise TypeError(f"{self.name}: strategy must be a Strategy, got {strategy!r}")
        if intensity < 0:
            raise ValueError(f"{self.name}: intensity must be >= 0, got {intensity}")
        if period <= 0:
            raise ValueError(f"{self.name}: period must be > 0, got {period}")
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.restarts = 0
        self._clock = clock
        self._specs: list[ChildSpec] = list(children)
        self._running: dict[str, Process] = {}
        self._finished: set[str] = set()  # transient children that exited normally
        self._exits: asyncio.Queue[_Exit | None] = asyncio.Queue()
        self._restart_times: deque[float] = deque()

    # Introspection

    def which_children(self) -> list[tuple[str, Process | None]]:
        """(id, current instance or None) for each child, in start order."""
        return [(spec.id, self._running.get(spec.id)) for spec in self._specs]

    def child(self, id: str) -> Process | None:
        return self._running.get(id)

    @property
    def degraded(self) -> bool:
        """True while a child that should be running is not (or a child supervisor is degraded)."""
        for spec in self._specs:
            proc = self._running.get(spec.id)
            if spec.id in self._finished:
                continue
            if proc is None or proc.done:
                return True
            if isinstance(proc, Supervisor) and proc.degraded:
                return True
        return False

    # Lifecycle

    async def init(self) -> None:
        for spec in list(self._specs):
            if self.stopping:
                return
            try:
                await self._start_child(spec)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    exc.add_note(f"while {self.name} was starting child {spec.id!r}")
                await self._stop_children(self._specs)
                raise

    async def run(self) -> None:
        while not self.stopping:
            item = await self._exits.get()
            if item is None:
                return
            spec_id, proc = item
            if self._running.get(spec_id) is proc:  # else stale: replaced or stopped on purpose
                await self._child_exited(spec_id, proc)

    def request_stop(self) -> None:
        self.stopping = True
        self._exits.put_nowait(None)

    async def terminate(self, reason: BaseException | None) -> None:
        await self._stop_children(self._specs)

    # Restarts

    async def _child_exited(self, spec_id: str, proc: Process) -> None:
        spec = next(s for s in self._specs if s.id == spec_id)
        del self._running[spec_id]
        reason = proc.exit_reason()
        if reason is not None:
            log.error("child %s of %s crashed", spec_id, self.name, exc_info=reason)
        restart = spec.restart is Restart.PERMANENT or (
            spec.restart is Restart.TRANSIENT and reason is not None
        )
        if not restart:
            if spec.restart is Restart.TEMPORARY:
                self._specs.remove(spec)
                log.debug("temporary child %s of %s exited", spec_id, self.name)
            else:
                self._finished.add(spec_id)
                log.info("transient child %s of %s exited normally", spec_id, self.name)
            return
        if reason is None:
            log.info("child %s of %s exited normally; restarting", spec_id, self.name)
        await self._restart(spec, reason)

    async def _restart(self, failed: ChildSpec, reason: BaseException | None) -> None:
        """Restarts `failed` and its strategy group; a failed start counts as a crash."""
        while not self.stopping:
            await self._count_restart(failed, reason)
            group = self._group(failed)
            await self._stop_children([s for s in group if s is not failed])
            # OTP: temporary siblings stopped by a group restart are not restarted.
            self._specs = [
                s for s in self._specs if not (s in group and s.restart is Restart.TEMPORARY)
            ]
            current = failed
            try:
                for spec in [s for s in group if s in self._specs]:
                    current = spec
                    await self._start_child(spec)
                return
            except Exception as exc:
                log.error("child %s of %s crashed", current.id, self.name, exc_info=exc)
                failed, reason = current, exc

    async def _count_restart(self, failed: ChildSpec, reason: BaseException | None) -> None:
        """Records one restart; past the intensity, stops all children and escalates."""
        now = self._clock()
        times = self._restart_times
        times.append(now)
        while now - times[0] >= self.period:
            times.popleft()
        if len(times) > self.intensity:
            await self._stop_children(self._specs)
            raise SupervisorEscalation(
                f"supervisor {self.name} gave up: more than {self.intensity} restarts "
                f"within {self.period:g}s; last failing child {failed.id!r}"
            ) from reason
        self.restarts += 1

    def _group(self, failed: ChildSpec) -> list[ChildSpec]:
        """The children restarted together with `failed`, in start order."""
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [failed]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return list(self._specs)
        return self._specs[self._specs.index(failed) :]

    # Starting and stopping children

    async def _start_child(self, spec: ChildSpec) -> None:
        proc = spec.start()
        proc.add_exit_callback(functools.partial(self._notify, spec.id))
        await proc.start()
        self._running[spec.id] = proc
        self._finished.discard(spec.id)

    def _notify(self, spec_id: str, proc: Process) -> None:
        self._exits.put_nowait((spec_id, proc))

    async def _stop_children(self, specs: Sequence[ChildSpec]) -> None:
        """Stops the running children among `specs`, in reverse order."""
        pending = [spec for spec in reversed(specs) if spec.id in self._running]
        for index, spec in enumerate(pending):
            proc = self._running.pop(spec.id)
            try:
                await proc.stop(spec.shutdown)
            except asyncio.CancelledError:
                for rest in pending[index + 1 :]:
                    orphan = self._running.pop(rest.id, None)
                    if orphan is not None:
                        orphan.kill()
                raise
            self._report_stopped(spec, proc)

    def _report_stopped(self, spec: ChildSpec, proc: Process) -> None:
        if proc.killed:
            log.warning("child %s of %s did not stop within %gs; cancelled",
                        spec.id, self.name, spec.shutdown)
        reason = proc.exit_reason()
        if reason is not None:  # crashed before or while being stopped
            log.error("child %s of %s crashed", spec.id, self.name, exc_info=reason)
