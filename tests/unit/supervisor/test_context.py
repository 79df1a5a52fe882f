"""A tree started in a context of its own: every process below the root sees it,
restarted ones included, and the caller's context is left alone."""

from __future__ import annotations

import asyncio
import contextvars

from supervisor import ChildSpec, Process, Supervisor

from .helpers import until

TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("tag", default=None)


class Seer(Process):
    """Records the TAG its task sees, then crashes if told to."""

    def __init__(self, seen: list[str | None], crash: asyncio.Event | None = None) -> None:
        super().__init__(name="seer")
        self.seen = seen
        self.crash = crash

    async def init(self) -> None:
        self.seen.append(TAG.get())

    async def run(self) -> None:
        if self.crash is not None and not self.crash.is_set():
            self.crash.set()
            raise RuntimeError("crash once")
        await asyncio.get_running_loop().create_future()


async def test_the_whole_tree_runs_in_the_given_context() -> None:
    context = contextvars.copy_context()
    context.run(TAG.set, "node-a")
    seen: list[str | None] = []
    crash = asyncio.Event()
    inner = ChildSpec("inner", lambda: Supervisor([ChildSpec("seer", lambda: Seer(seen, crash))],
                                                  name="Inner"))
    root = Supervisor([inner], name="Root", context=context)
    await root.start()
    try:
        await until(lambda: len(seen) == 2)  # the first seer, and its restarted successor
        assert seen == ["node-a", "node-a"]
        assert TAG.get() is None  # the caller's own context is untouched
    finally:
        await root.stop(5)


async def test_without_a_context_a_process_copies_the_callers() -> None:
    TAG.set("caller")
    seen: list[str | None] = []
    root = Supervisor([ChildSpec("seer", lambda: Seer(seen))], name="Root")
    await root.start()
    try:
        assert seen == ["caller"]
    finally:
        await root.stop(5)
