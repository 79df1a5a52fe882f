"""Restart strategies, restart types and restart intensity (with an injectable clock)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from supervisor import ChildSpec, Restart, Strategy, Supervisor, SupervisorEscalation

from .helpers import FakeClock, Record, crash, exited, running, until


async def started(record: Record, ids: str, **kwargs: object) -> Supervisor:
    sup = Supervisor([record.spec(id) for id in ids], **kwargs)  # type: ignore[arg-type]
    await sup.start()
    del record.events[:]
    return sup


@pytest.mark.parametrize(
    ("strategy", "starts", "events"),
    [
        (Strategy.ONE_FOR_ONE, {"a": 1, "b": 2, "c": 1},
         ["terminate:b", "init:b", "ready:b"]),
        (Strategy.ONE_FOR_ALL, {"a": 2, "b": 2, "c": 2},
         ["terminate:b", "stop:c", "terminate:c", "stop:a", "terminate:a",
          "init:a", "ready:a", "init:b", "ready:b", "init:c", "ready:c"]),
        (Strategy.REST_FOR_ONE, {"a": 1, "b": 2, "c": 2},
         ["terminate:b", "stop:c", "terminate:c", "init:b", "ready:b", "init:c", "ready:c"]),
    ],
)
async def test_strategy_restarts_exactly_its_group(
    strategy: Strategy, starts: dict[str, int], events: list[str]
) -> None:
    record = Record()
    sup = await started(record, "abc", strategy=strategy)
    await crash(sup, "b")
    assert record.starts == Counter(starts)
    assert record.events == events
    assert sup.restarts == 1
    assert all(running(sup.child(id)) for id in "abc")
    await sup.stop(1.0)


@pytest.mark.parametrize(
    ("restart", "normal", "restarted", "kept"),
    [
        (Restart.PERMANENT, True, True, True),
        (Restart.PERMANENT, False, True, True),
        (Restart.TRANSIENT, True, False, True),
        (Restart.TRANSIENT, False, True, True),
        (Restart.TEMPORARY, True, False, False),
        (Restart.TEMPORARY, False, False, False),
    ],
)
async def test_restart_types(restart: Restart, normal: bool, restarted: bool, kept: bool) -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("x", restart)])
    await sup.start()
    await crash(sup, "x", normal=normal)
    assert record.starts["x"] == (2 if restarted else 1)
    assert sup.restarts == (1 if restarted else 0)
    assert ("x" in dict(sup.which_children())) is kept
    assert (sup.child("x") is not None) is restarted
    assert record.starts["a"] == 1
    await sup.stop(1.0)


async def test_temporary_sibling_is_not_restarted_by_a_group_restart() -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("tmp", Restart.TEMPORARY), record.spec("b")],
                     strategy=Strategy.ONE_FOR_ALL)
    await sup.start()
    await crash(sup, "a")
    assert record.starts == Counter({"a": 2, "b": 2, "tmp": 1})
    assert [id for id, _ in sup.which_children()] == ["a", "b"]
    await sup.stop(1.0)


async def test_crash_is_logged_once_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    record = Record()
    sup = await started(record, "ab", strategy=Strategy.ONE_FOR_ALL, name="S")
    await crash(sup, "a", ValueError("bad"))
    await sup.stop(1.0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["child a of S crashed"]
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], ValueError)


async def test_sibling_crashes_during_a_group_restart_make_one_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = Record()
    sup = await started(record, "abc", strategy=Strategy.ONE_FOR_ALL, name="S")
    a, c = running(sup.child("a")), running(sup.child("c"))
    a.crash()
    c.crash()
    await until(lambda: a.done and c.done)
    await until(lambda: not sup.degraded)
    assert sup.restarts == 1
    assert record.starts == Counter({"a": 2, "b": 2, "c": 2})
    crashed = sorted(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert crashed == ["child a of S crashed", "child c of S crashed"]
    await sup.stop(1.0)


async def test_intensity_exceeded_stops_children_and_escalates() -> None:
    record = Record()
    sup = await started(record, "abc", intensity=2, period=5.0, clock=FakeClock(), name="S")
    await crash(sup, "b")
    await crash(sup, "b")
    assert sup.restarts == 2 and not sup.done
    del record.events[:]
    await crash(sup, "b", ValueError("third"))
    await exited(sup)
    assert record.events == ["terminate:b", "stop:c", "terminate:c", "stop:a", "terminate:a"]
    reason = sup.exit_reason()
    assert isinstance(reason, SupervisorEscalation)
    assert str(reason) == (
        "supervisor S gave up: more than 2 restarts within 5s; last failing child 'b'"
    )
    assert isinstance(reason.__cause__, ValueError)
    assert sup.restarts == 2


async def test_exactly_intensity_restarts_per_sliding_period() -> None:
    clock = FakeClock()
    record = Record()
    sup = await started(record, "a", intensity=3, period=5.0, clock=clock)
    for _ in range(3):
        await crash(sup, "a")  # t=0: three restarts allowed
    clock.now = 3.0
    assert not sup.done
    clock.now = 5.0  # the restarts at t=0 have left the window
    for _ in range(2):
        await crash(sup, "a")
    clock.now = 9.0
    await crash(sup, "a")  # window (4, 9]: restarts at 5, 5, 9
    assert sup.restarts == 6 and not sup.done
    await crash(sup, "a")  # a fourth restart within 5 s
    assert isinstance(sup.exit_reason(), SupervisorEscalation)
    assert record.starts["a"] == 7


async def test_zero_intensity_escalates_on_the_first_restart() -> None:
    record = Record()
    sup = await started(record, "a", intensity=0)
    await crash(sup, "a")
    assert isinstance(sup.exit_reason(), SupervisorEscalation)
    assert record.starts["a"] == 1 and sup.restarts == 0


async def test_failed_restart_counts_as_a_crash() -> None:
    record = Record()
    sup = await started(record, "ab", intensity=3, clock=FakeClock(), strategy=Strategy.ONE_FOR_ALL)
    record.fail_next["a"] = 2
    await crash(sup, "b")
    assert sup.restarts == 3 and not sup.done
    assert record.starts == Counter({"a": 2, "b": 2})
    record.fail_next["a"] = 5
    await crash(sup, "a")
    assert isinstance(sup.exit_reason(), SupervisorEscalation)
    assert "last failing child 'a'" in str(sup.exit_reason())


async def test_nested_escalation_reaches_the_root(caplog: pytest.LogCaptureFixture) -> None:
    record = Record()
    clock = FakeClock()

    def inner() -> Supervisor:
        return Supervisor([record.spec("leaf")], intensity=0, clock=clock, name="Inner")

    root = Supervisor([record.spec("db"), ChildSpec("inner", inner)], intensity=1,
                      clock=clock, strategy=Strategy.REST_FOR_ONE, name="Root")
    await root.start()
    first = root.child("inner")
    assert isinstance(first, Supervisor)
    await crash(first, "leaf")
    await until(lambda: first.done and not root.degraded)
    assert root.restarts == 1 and record.starts == Counter({"db": 1, "leaf": 2})
    second = root.child("inner")
    assert isinstance(second, Supervisor) and second is not first
    running(second.child("leaf")).crash()
    await exited(root)
    reason = root.exit_reason()
    assert isinstance(reason, SupervisorEscalation)
    assert "Root" in str(reason) and "'inner'" in str(reason)
    assert isinstance(reason.__cause__, SupervisorEscalation)
    assert record.reasons["db"] == [None]
    escalations = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert escalations == ["child leaf of Inner crashed", "child inner of Root crashed"] * 2
