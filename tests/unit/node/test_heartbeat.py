"""The Heartbeat skips a beat when the database is away and keeps beating; anything
else is a crash for its supervisor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from supervisor.node.heartbeat import BEAT, LEAVE, PRUNE, Heartbeat, Identity

IDENTITY = Identity("h:1:4000", ("deliver", "ingest"), "0.1.0", 1, "h",
                    datetime(2024, 5, 1, tzinfo=UTC))


class Pool:
    """Fails as told, else records the statements it is given."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.statements.append((query, args))
        return "DELETE 0" if query in (PRUNE, LEAVE) else "INSERT 0 1"


def _heartbeat(pool: Pool) -> Heartbeat:
    return Heartbeat(lambda: pool, IDENTITY, lambda: {"degraded": False}, interval=0.01)


async def test_a_transient_error_skips_the_beat() -> None:
    pool = Pool([ConnectionError("database is restarting"), TimeoutError(),
                 asyncpg.CannotConnectNowError("starting up")])
    beat = _heartbeat(pool)
    await beat.start()
    try:
        async with asyncio.timeout(5):
            while beat.beats < 3:
                await asyncio.sleep(0.005)
        assert beat.skipped == 3 and not beat.done
        query, args = pool.statements[0]
        assert query == BEAT and args[0] == "h:1:4000" and args[1] == ["deliver", "ingest"]
        assert args[6] == 0.01 and args[7] == '{"degraded":false}'
        assert pool.statements[1][0] == PRUNE  # after the first beat that went through
    finally:
        await beat.stop(1)
    assert pool.statements[-1] == (LEAVE, ("h:1:4000",))  # a clean stop: the node leaves


async def test_any_other_error_crashes_it_and_keeps_the_row() -> None:
    pool = Pool([asyncpg.UndefinedTableError("relation \"nodes\" does not exist")])
    beat = _heartbeat(pool)
    await beat.start()
    async with asyncio.timeout(5):
        while not beat.done:
            await asyncio.sleep(0.005)
    assert isinstance(beat.exit_reason(), asyncpg.UndefinedTableError)
    assert pool.statements == []  # no LEAVE after a crash


async def test_a_clean_stop_with_the_database_away_leaves_the_row_to_go_stale() -> None:
    pool = Pool([])
    beat = _heartbeat(pool)
    await beat.start()
    async with asyncio.timeout(5):
        while beat.beats < 1:
            await asyncio.sleep(0.005)
    pool.failures.append(ConnectionError("gone"))
    await beat.stop(1)
    assert beat.exit_reason() is None


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_the_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Heartbeat(lambda: None, IDENTITY, dict, interval=interval)
