"""Watchdog over a real notify socket: pings at the period while healthy, none while the
event loop is blocked, none once the tree stays degraded past the bound, back after."""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
from collections.abc import Iterator

import pytest

from supervisor import Supervisor
from supervisor.node.watchdog import TreeHealth, Watchdog
from tests.notify import Message, NotifySocket
from tests.unit.supervisor.helpers import Record, running, until


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    yield sock
    sock.close()


def _pings(sock: NotifySocket, after: float = 0.0, before: float = float("inf")) -> list[Message]:
    return [m for m in sock.with_field("WATCHDOG", "1") if after < m.at < before]


async def _tree(record: Record) -> Supervisor:
    sup = Supervisor([record.spec("a"), record.spec("b")], intensity=5, period=10.0, name="Root")
    await sup.start()
    return sup


async def test_pings_every_period_while_healthy(notify_socket: NotifySocket) -> None:
    sup = await _tree(Record())
    dog = Watchdog(TreeHealth(sup, stuck_after=10.0), 0.1, "ready")
    dog.start()
    try:
        pings = await notify_socket.wait_for("WATCHDOG", "1", count=8, timeout=5)
    finally:
        dog.stop()
        await sup.stop(1.0)
    gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
    assert 0.08 < statistics.median(gaps) < 0.14, gaps
    assert all(pid.pid == pings[0].pid for pid in pings)
    assert notify_socket.statuses() == []  # ready was shown by whoever started the node


async def test_no_ping_while_the_event_loop_is_blocked(
    notify_socket: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    sup = await _tree(Record())
    dog = Watchdog(TreeHealth(sup, stuck_after=10.0), 0.1, "ready")
    dog.start()
    try:
        await notify_socket.wait_for("WATCHDOG", "1", count=2, timeout=5)
        blocked = time.monotonic()
        # A wedged loop: a pinger thread would send ~10 pings meanwhile.
        time.sleep(1.0)  # noqa: ASYNC251
        unblocked = time.monotonic()
        await until(lambda: bool(_pings(notify_socket, after=unblocked)), timeout=2)
    finally:
        dog.stop()
        await sup.stop(1.0)
    assert _pings(notify_socket, after=blocked + 0.15, before=unblocked) == []
    assert "event loop was blocked" in caplog.text


async def test_silent_once_the_tree_stays_degraded_past_the_bound(
    notify_socket: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    record = Record()
    sup = await _tree(record)
    dog = Watchdog(TreeHealth(sup, stuck_after=0.4), 0.05, "ready")
    dog.start()
    try:
        record.gates["a"] = asyncio.Event()  # the restart of "a" hangs in its init
        running(sup.child("a")).crash()
        await until(lambda: sup.degraded)
        degraded = time.monotonic()
        await notify_socket.wait_for("STATUS", "degraded: restarting a", timeout=2)
        stuck = await notify_socket.wait_for("STATUS", timeout=3, count=2)
        assert stuck[-1].fields()["STATUS"].startswith("stuck: not recovered for")
        await asyncio.sleep(0.5)
        released = time.monotonic()
        record.gates["a"].set()
        await until(lambda: not sup.degraded)
        await notify_socket.wait_for("STATUS", "ready", timeout=2)
        await until(lambda: bool(_pings(notify_socket, after=released)), timeout=2)
    finally:
        dog.stop()
        await sup.stop(1.0)
    assert _pings(notify_socket, after=degraded, before=degraded + 0.3)  # not stuck yet
    assert _pings(notify_socket, after=stuck[-1].at, before=released) == []
    assert "node is stuck" in caplog.text and "node recovered" in caplog.text


async def test_an_exited_root_is_stuck_at_once(notify_socket: NotifySocket) -> None:
    sup = await _tree(Record())
    await sup.stop(1.0)
    health = TreeHealth(sup, stuck_after=60.0)
    assert health.stuck() == "the root supervisor has exited"
    dog = Watchdog(health, 0.05, "ready")
    dog.start()
    await notify_socket.wait_for("STATUS", timeout=2)
    dog.stop()
    assert _pings(notify_socket) == []
    assert notify_socket.statuses() == ["stuck: the root supervisor has exited"]


async def test_without_a_watchdog_only_status_is_kept(notify_socket: NotifySocket) -> None:
    record = Record()
    sup = await _tree(record)
    dog = Watchdog(TreeHealth(sup, stuck_after=60.0), None, "ready")
    record.gates["b"] = asyncio.Event()
    running(sup.child("b")).crash()
    await until(lambda: sup.degraded)
    dog.start()  # the first beat is at once
    await notify_socket.wait_for("STATUS", "degraded: restarting b", timeout=2)
    dog.stop()
    record.gates["b"].set()
    await until(lambda: not sup.degraded)
    await sup.stop(1.0)
    assert _pings(notify_socket) == []
