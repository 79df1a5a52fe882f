"""A real webhook receiver on 127.0.0.1 for tests, with scriptable misbehaviour."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

Behaviour = Callable[["Received", int], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


async def ok(_: Received, __: int) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


def fail_first(k: int, status: int = 500) -> Behaviour:
    async def behave(_: Received, nth: int) -> web.StreamResponse:
        return web.Response(status=status, text=f"failure {nth}") if nth <= k else web.Response()
    return behave


def status(code: int, **headers: str) -> Behaviour:
    async def behave(_: Received, __: int) -> web.StreamResponse:
        return web.Response(status=code, headers=headers, text=f"answer {code}")
    return behave


def hang_first(k: int, seconds: float) -> Behaviour:
    async def behave(_: Received, nth: int) -> web.StreamResponse:
        if nth <= k:
            await asyncio.sleep(seconds)
        return web.Response()
    return behave


@dataclass
class Receiver:
    base: str
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    per_event: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    max_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def url(self, path: str, behaviour: Behaviour = ok) -> str:
        self.behaviours[path] = behaviour
        return self.base + path

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(request.path, {k.lower(): v for k, v in request.headers.items()},
                       await request.read(), time.monotonic())
        self.requests.append(got)
        event = got.headers.get("webhook-id", "")
        self.per_event[(request.path, event)] += 1
        self.in_flight[request.path] += 1
        self.max_in_flight[request.path] = max(self.max_in_flight[request.path],
                                               self.in_flight[request.path])
        try:
            behaviour = self.behaviours.get(request.path, ok)
            return await behaviour(got, self.per_event[(request.path, event)])
        finally:
            self.in_flight[request.path] -= 1

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    holder: list[Receiver] = []

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await holder[0].handle(request)

    app.router.add_route("POST", "/{tail:.*}", dispatch)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    holder.append(Receiver(f"http://127.0.0.1:{port}"))
    try:
        yield holder[0]
    finally:
        await runner.cleanup()
