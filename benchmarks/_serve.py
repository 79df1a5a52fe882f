"""Runs an aiohttp application on uvloop until SIGTERM or SIGINT: shared by the baseline
servers and the receiver, so that each is a bare process like the node it is compared with."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web


async def read_event(request: web.Request) -> dict[str, Any] | web.Response:
    """The checks both baselines make before they answer: a key, JSON, type and payload.
    Returns the decoded body, or the error response to send."""
    if request.headers.get("X-API-Key") is None:
        return web.json_response({"error": "Missing API key"}, status=401)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return web.json_response({"error": "Invalid JSON"}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str) \
            or not isinstance(body.get("payload"), dict):
        return web.json_response({"error": "type and payload are required"}, status=400)
    return body


def serve(make_app: Callable[[], Awaitable[web.Application]], port: int,
          host: str = "127.0.0.1") -> None:
    async def main() -> None:
        runner = web.AppRunner(await make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"listening on http://{host}:{port}", flush=True)
        await stop.wait()
        await runner.cleanup()

    try:
        import uvloop
        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
