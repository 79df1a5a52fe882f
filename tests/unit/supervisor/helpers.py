"""Event-driven test children for the supervisor tests: no sleeps, a shared record."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable

from supervisor import ChildSpec, Process, Restart, Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Record:
    """What happened to every child, in order, across restarts."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.starts: Counter[str] = Counter()
        self.reasons: defaultdict[str, list[BaseException | None]] = defaultdict(list)
        self.gates: dict[str, asyncio.Event] = {}
        self.fail_next: Counter[str] = Counter()

    def spec(self, id: str, restart: Restart = Restart.PERMANENT, *, shutdown: float = 1.0,
             ignore_stop: bool = False) -> ChildSpec:
        return ChildSpec(id, lambda: Child(self, id, ignore_stop=ignore_stop),
                         restart=restart, shutdown=shutdown)


class InitFailed(Exception):
    pass


class Child(Process):
    """Runs until told to finish or crash; logs init/ready/stop/terminate to its Record."""

    def __init__(self, record: Record, id: str, *, ignore_stop: bool = False) -> None:
        super().__init__(name=id)
        self.record = record
        self.id = id
        self.ignore_stop = ignore_stop
        self._exit = asyncio.Event()
        self._error: Exception | None = None

    async def init(self) -> None:
        self.record.events.append(f"init:{self.id}")
        gate = self.record.gates.get(self.id)
        if gate is not None:
            await gate.wait()
        if self.record.fail_next[self.id] > 0:
            self.record.fail_next[self.id] -= 1
            raise InitFailed(f"{self.id} cannot start")
        self.record.events.append(f"ready:{self.id}")
        self.record.starts[self.id] += 1

    async def run(self) -> None:
        await self._exit.wait()
        if self._error is not None:
            raise self._error

    def crash(self, error: Exception | None = None) -> None:
        self._error = error or RuntimeError(f"{self.id} crashed")
        self._exit.set()

    def finish(self) -> None:
        self._exit.set()

    def request_stop(self) -> None:
        self.stopping = True
        self.record.events.append(f"stop:{self.id}")
        if not self.ignore_stop:
            self._exit.set()

    async def terminate(self, reason: BaseException | None) -> None:
        self.record.events.append(f"terminate:{self.id}")
        self.record.reasons[self.id].append(reason)


async def until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Yields to the loop until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def exited(proc: Process, timeout: float = 1.0) -> None:
    ended = asyncio.Event()
    proc.add_exit_callback(lambda _: ended.set())
    async with asyncio.timeout(timeout):
        await ended.wait()


def running(proc: Process | None) -> Child:
    if not isinstance(proc, Child) or proc.done:
        raise LookupError(f"no running child: {proc!r}")
    return proc


async def crash(sup: Supervisor, id: str, error: Exception | None = None, *,
                normal: bool = False) -> Child:
    """Ends child `id` of `sup` and waits until the supervisor has dealt with it."""
    old = running(sup.child(id))
    if normal:
        old.finish()
    else:
        old.crash(error)
    await until(lambda: old.done)
    await until(lambda: sup.done or not sup.degraded)
    return old
