"""Supervisor start order, stop order, shutdown timeouts, init failure, introspection."""

from __future__ import annotations

import asyncio
import logging

import pytest

from supervisor import ChildSpec, Restart, Supervisor

from .helpers import InitFailed, Record, crash, exited, running, until


async def test_children_start_in_order_each_after_the_previous_init() -> None:
    record = Record()
    record.gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    sup = Supervisor([record.spec("a"), record.spec("b"), record.spec("c")])
    starting = asyncio.create_task(sup.start())
    await until(lambda: record.events == ["init:a"])
    await asyncio.sleep(0.01)
    assert record.events == ["init:a"]  # b waits for a's init
    record.gates["a"].set()
    await until(lambda: record.events[-1] == "init:b")
    assert not starting.done()
    record.gates["b"].set()
    await starting
    assert record.events == ["init:a", "ready:a", "init:b", "ready:b", "init:c", "ready:c"]
    assert [id for id, _ in sup.which_children()] == ["a", "b", "c"]
    await sup.stop(1.0)


async def test_children_stop_in_reverse_order() -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("b"), record.spec("c")], name="Root")
    await sup.start()
    children = [running(sup.child(id)) for id in "abc"]
    del record.events[:]
    await sup.stop(1.0)
    assert record.events == [
        "stop:c", "terminate:c", "stop:b", "terminate:b", "stop:a", "terminate:a",
    ]
    assert all(child.done and child.exit_reason() is None for child in children)
    assert sup.exit_reason() is None
    assert sup.which_children() == [("a", None), ("b", None), ("c", None)]
    assert sup.restarts == 0


async def test_child_ignoring_the_graceful_stop_is_cancelled_after_its_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("stubborn", shutdown=0.05, ignore_stop=True)])
    await sup.start()
    stubborn = running(sup.child("stubborn"))
    del record.events[:]
    await sup.stop(1.0)
    assert record.events == ["stop:stubborn", "terminate:stubborn", "stop:a", "terminate:a"]
    assert stubborn.killed
    assert record.reasons["stubborn"] == [None]
    assert "child stubborn of Supervisor did not stop within 0.05s; cancelled" in caplog.messages


async def test_init_failure_fails_start_and_stops_started_children_in_reverse() -> None:
    record = Record()
    record.fail_next["c"] = 1
    sup = Supervisor([record.spec("a"), record.spec("b"), record.spec("c"), record.spec("d")],
                     name="Ingest")
    with pytest.raises(InitFailed) as failure:
        await sup.start()
    assert "while Ingest was starting child 'c'" in (failure.value.__notes__ or [])
    assert record.events == [
        "init:a", "ready:a", "init:b", "ready:b", "init:c", "terminate:c",
        "stop:b", "terminate:b", "stop:a", "terminate:a",
    ]
    assert sup.done and isinstance(sup.exit_reason(), InitFailed)


async def test_cancelled_supervisor_still_stops_its_children_in_reverse() -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("b")], name="Cancelled")
    await sup.start()
    del record.events[:]
    next(t for t in asyncio.all_tasks() if t.get_name() == "Cancelled").cancel()
    await exited(sup)
    assert record.events == ["stop:b", "terminate:b", "stop:a", "terminate:a"]
    assert record.reasons == {"a": [None], "b": [None]}
    assert isinstance(sup.exit_reason(), asyncio.CancelledError)


async def test_killed_supervisor_whose_stop_is_cancelled_kills_the_rest() -> None:
    record = Record()
    sup = Supervisor([record.spec("a", ignore_stop=True, shutdown=5.0),
                      record.spec("b", ignore_stop=True, shutdown=5.0)])
    await sup.start()
    a, b = running(sup.child("a")), running(sup.child("b"))
    await sup.stop(0.05)  # the children would need 5 s each: the supervisor is cancelled
    assert sup.done and a.done and b.done
    assert b.killed and a.killed
    assert sup.exit_reason() is None


async def test_degraded_while_a_child_is_restarting() -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("b")])
    assert sup.degraded  # not started yet
    await sup.start()
    assert not sup.degraded
    record.gates["b"] = asyncio.Event()
    old = running(sup.child("b"))
    old.crash()
    await until(lambda: record.events[-1] == "init:b")
    assert sup.degraded
    assert sup.child("b") is None
    record.gates["b"].set()
    await until(lambda: not sup.degraded)
    assert sup.child("b") is not old
    assert sup.restarts == 1
    await sup.stop(1.0)


async def test_degraded_looks_into_child_supervisors() -> None:
    record = Record()
    inner = ChildSpec("inner", lambda: Supervisor([record.spec("leaf")], name="Inner"))
    root = Supervisor([inner], name="Root")
    await root.start()
    assert not root.degraded
    record.gates["leaf"] = asyncio.Event()
    inner_sup = root.child("inner")
    assert isinstance(inner_sup, Supervisor)
    running(inner_sup.child("leaf")).crash()
    await until(lambda: record.events[-1] == "init:leaf")
    assert root.degraded
    record.gates["leaf"].set()
    await until(lambda: not root.degraded)
    await root.stop(1.0)


async def test_transient_normal_exit_is_not_degraded() -> None:
    record = Record()
    sup = Supervisor([record.spec("job", Restart.TRANSIENT)])
    await sup.start()
    await crash(sup, "job", normal=True)
    assert not sup.degraded
    assert sup.which_children() == [("job", None)]
    await sup.stop(1.0)


async def test_normal_exit_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="supervisor.supervisor")
    record = Record()
    sup = Supervisor([record.spec("job", Restart.TRANSIENT), record.spec("tmp", Restart.TEMPORARY)],
                     name="S")
    await sup.start()
    await crash(sup, "job", normal=True)
    await crash(sup, "tmp", normal=True)
    await sup.stop(1.0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "transient child job of S exited normally"),
        (logging.DEBUG, "temporary child tmp of S exited"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"intensity": -1}, {"period": 0}, {"strategy": "one_for_one"}],
)
def test_invalid_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Supervisor([], **kwargs)  # type: ignore[arg-type]


def test_duplicate_child_ids_are_refused() -> None:
    record = Record()
    with pytest.raises(ValueError, match="duplicate child ids"):
        Supervisor([record.spec("a"), record.spec("a")])


async def test_stop_during_a_restart_cancels_the_starting_child() -> None:
    record = Record()
    sup = Supervisor([record.spec("a"), record.spec("b")])
    await sup.start()
    record.gates["b"] = asyncio.Event()  # b's next init never completes
    running(sup.child("b")).crash()
    await until(lambda: record.events[-1] == "init:b")
    del record.events[:]
    await sup.stop(0.05)
    assert record.events == ["terminate:b", "stop:a", "terminate:a"]
    assert record.reasons["b"][-1] is None
    assert sup.done and sup.exit_reason() is None
