"""Process lifecycle, Actor mailboxes and PeriodicActor ticks."""

from __future__ import annotations

import asyncio
import time

import pytest

from supervisor import Actor, PeriodicActor, Process, Tick

from .helpers import exited, until


class Traced(Process):
    def __init__(self, *, fail_init: bool = False, ignore_stop: bool = False) -> None:
        super().__init__(name="traced")
        self.fail_init = fail_init
        self.ignore_stop = ignore_stop
        self.events: list[str] = []
        self.reasons: list[BaseException | None] = []
        self.gate = asyncio.Event()
        self.crash_with: Exception | None = None
        self.init_gate: asyncio.Event | None = None

    async def init(self) -> None:
        self.events.append("init")
        if self.init_gate is not None:
            await self.init_gate.wait()
        if self.fail_init:
            raise ValueError("no")
        self.events.append("ready")

    async def run(self) -> None:
        self.events.append("run")
        await self.gate.wait()
        if self.crash_with is not None:
            raise self.crash_with

    def request_stop(self) -> None:
        self.stopping = True
        if not self.ignore_stop:
            self.gate.set()

    async def terminate(self, reason: BaseException | None) -> None:
        self.events.append("terminate")
        self.reasons.append(reason)


async def test_start_returns_after_init_and_task_is_named() -> None:
    proc = Traced()
    proc.init_gate = asyncio.Event()
    starting = asyncio.create_task(proc.start())
    await until(lambda: proc.events == ["init"])
    await asyncio.sleep(0.01)
    assert not starting.done()
    proc.init_gate.set()
    await starting
    assert proc.events[:2] == ["init", "ready"]
    assert "traced" in {t.get_name() for t in asyncio.all_tasks()}
    await proc.stop(1.0)
    assert proc.events == ["init", "ready", "run", "terminate"]
    assert proc.reasons == [None]
    assert proc.done and proc.exit_reason() is None and not proc.killed


async def test_init_failure_propagates_and_finishes_the_task() -> None:
    proc = Traced(fail_init=True)
    calls: list[Process] = []
    proc.add_exit_callback(calls.append)
    with pytest.raises(ValueError, match="no"):
        await proc.start()
    assert proc.done
    assert proc.events == ["init", "terminate"]
    assert isinstance(proc.exit_reason(), ValueError)
    await until(lambda: calls == [proc])


async def test_crash_sets_exit_reason_and_calls_back_once() -> None:
    proc = Traced()
    calls: list[Process] = []
    proc.add_exit_callback(calls.append)
    await proc.start()
    proc.crash_with = RuntimeError("boom")
    proc.gate.set()
    await exited(proc)
    await asyncio.sleep(0)
    assert calls == [proc]
    assert isinstance(proc.exit_reason(), RuntimeError)
    assert proc.reasons == [proc.exit_reason()]
    late: list[Process] = []
    proc.add_exit_callback(late.append)
    await until(lambda: late == [proc])


async def test_stop_is_idempotent_and_safe_before_start_and_after_exit() -> None:
    never = Traced()
    await never.stop(0.1)
    assert not never.done and never.stopping
    proc = Traced()
    await proc.start()
    await asyncio.gather(proc.stop(1.0), proc.stop(1.0))
    await proc.stop(1.0)
    assert proc.reasons == [None]
    with pytest.raises(RuntimeError, match="already started"):
        await proc.start()


async def test_stop_cancels_after_timeout_and_terminate_still_runs() -> None:
    proc = Traced(ignore_stop=True)
    await proc.start()
    began = time.monotonic()
    await proc.stop(0.05)
    took = time.monotonic() - began
    assert 0.05 <= took < 0.5
    assert proc.killed
    assert proc.events[-1] == "terminate"
    assert proc.reasons == [None]  # a requested stop, even by cancellation, is not a crash


async def test_default_process_waits_until_stopped() -> None:
    proc = Process(name="plain")
    await proc.start()
    await asyncio.sleep(0)
    assert not proc.done
    await proc.stop(1.0)
    assert proc.done and proc.exit_reason() is None and not proc.killed


async def test_foreign_cancellation_is_a_crash() -> None:
    proc = Process(name="victim")
    await proc.start()
    next(t for t in asyncio.all_tasks() if t.get_name() == "victim").cancel()
    await exited(proc)
    assert isinstance(proc.exit_reason(), asyncio.CancelledError)


async def test_cancelled_start_leaves_no_task_behind() -> None:
    class SlowInit(Traced):
        async def init(self) -> None:
            self.events.append("init")
            await asyncio.Event().wait()

    proc = SlowInit()
    starting = asyncio.create_task(proc.start())
    await until(lambda: proc.events == ["init"])
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert proc.done
    assert proc.events == ["init", "terminate"]


class Collector(Actor[int]):
    def __init__(self, mailbox_size: int = 10) -> None:
        super().__init__(name="collector", mailbox_size=mailbox_size)
        self.handled: list[int] = []
        self.release = asyncio.Event()
        self.left_over: list[int] = []

    async def handle(self, message: int) -> None:
        self.handled.append(message)
        await self.release.wait()

    async def terminate(self, reason: BaseException | None) -> None:
        while not self.mailbox.empty():
            self.left_over.append(self.mailbox.get_nowait())


async def test_mailbox_is_bounded() -> None:
    actor = Collector(mailbox_size=2)
    actor.send_nowait(1)
    actor.send_nowait(2)
    with pytest.raises(asyncio.QueueFull):
        actor.send_nowait(3)
    with pytest.raises(ValueError):
        Collector(mailbox_size=0)


async def test_send_waits_for_room() -> None:
    actor = Collector(mailbox_size=1)
    actor.send_nowait(1)
    sending = asyncio.create_task(actor.send(2))
    await asyncio.sleep(0.01)
    assert not sending.done()
    await actor.start()  # takes 1, making room for 2
    await asyncio.wait_for(sending, 1.0)
    await actor.stop(0.01)


async def test_graceful_stop_finishes_current_message_and_takes_no_new_one() -> None:
    actor = Collector()
    await actor.start()
    for n in (1, 2, 3):
        actor.send_nowait(n)
    await until(lambda: actor.handled == [1])
    stopping = asyncio.create_task(actor.stop(1.0))
    await asyncio.sleep(0.01)
    assert not actor.done  # still handling 1
    actor.release.set()
    await stopping
    assert actor.handled == [1]
    assert actor.left_over == [2, 3]
    assert actor.exit_reason() is None and not actor.killed


async def test_idle_actor_stops_at_once() -> None:
    actor = Collector()
    await actor.start()
    await actor.stop(1.0)
    assert actor.exit_reason() is None and not actor.killed and actor.handled == []


class Ticker(PeriodicActor):
    def __init__(self, interval: float, work: float = 0.0) -> None:
        super().__init__(interval=interval, jitter=0.0, name="ticker")
        self.work = work
        self.active = 0
        self.max_active = 0
        self.ticks = 0
        self.gate: asyncio.Event | None = None

    async def tick(self) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.ticks += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.work)
        self.active -= 1


async def test_ticks_do_not_overlap() -> None:
    ticker = Ticker(interval=0.005, work=0.02)
    await ticker.start()
    await until(lambda: ticker.ticks >= 3)
    for _ in range(5):
        ticker.wake()  # also when asked from outside while a tick runs
        await asyncio.sleep(0.003)
    await ticker.stop(1.0)
    assert ticker.max_active == 1
    assert ticker.exit_reason() is None


async def test_wake_coalesces_and_the_timer_is_rearmed_after_each_tick() -> None:
    ticker = Ticker(interval=60.0)
    ticker.gate = asyncio.Event()
    await ticker.start()
    ticker.wake()
    await until(lambda: ticker.ticks == 1)
    for _ in range(3):
        ticker.wake()
    assert ticker.mailbox.qsize() == 1
    ticker.gate.set()
    await until(lambda: ticker.ticks == 2)
    await asyncio.sleep(0.02)
    assert ticker.ticks == 2  # three wakes during a tick make one more tick
    await ticker.stop(1.0)
    assert ticker.max_active == 1


def test_periodic_settings_are_validated_and_jitter_bounded() -> None:
    with pytest.raises(ValueError):
        Ticker(interval=0)
    with pytest.raises(ValueError):
        PeriodicActor(interval=1.0, jitter=1.0)
    ticker = PeriodicActor(interval=1.0, jitter=0.2)
    delays = [ticker.next_delay() for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert max(delays) - min(delays) > 0.1
    assert Tick() == Tick()


async def test_resident_stops_gracefully_without_cancellation() -> None:
    from supervisor import Resident

    seen: list[int] = []

    class Holder(Resident):
        async def terminate(self, reason: BaseException | None) -> None:
            task = asyncio.current_task()
            assert task is not None
            seen.append(task.cancelling())
            async with asyncio.timeout(0.01):  # usable: the task was never cancelled
                await asyncio.sleep(0)

    holder = Holder()
    await holder.start()
    await holder.stop(1.0)
    assert seen == [0] and holder.exit_reason() is None and not holder.killed
