"""A minimal webhook receiver: answers 200 to every POST and records when each event
arrived (wall clock, keyed by x-event-id, else webhook-id), for the delivery,
end-to-end, isolation and priority measures. A POST under /delay/<ms>/ is recorded as it
arrives and answered 200 after <ms> milliseconds (at most MAX_DELAY_MS), so a small
worker pool, not the receiver, bounds delivery. A POST under /hang/ is never answered:
it is held open until the client gives up, `/_release` is posted, the receiver stops
or HOLD_MAX_S passes (then 503), and the number held open at once is counted.

    GET  /_stats      {"received": n, "unique": n, "holding": n, "max_holding": n,
                       "held": n}
    GET  /_arrivals   {"<event id>": <unix time of first arrival>, ...} (not /hang/)
    POST /_reset      forget everything (requests still held stay counted as holding)
    POST /_release    answer every held request now, and any later one at once

    python -m benchmarks.receiver --port 4103
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiohttp import web

from benchmarks._serve import serve

ARRIVALS = web.AppKey("arrivals", dict)
COUNTS = web.AppKey("counts", dict)
RELEASED = web.AppKey("released", asyncio.Event)
HELD = web.AppKey("held", dict)  # id(request) -> request
HOLD_MAX_S = 120.0  # far beyond any request timeout a measure uses; keeps the loop bounded
HOLD_POLL_S = 0.05
MAX_DELAY_MS = 10_000


async def hook(request: web.Request) -> web.Response:
    arrived = time.time()
    await request.read()
    event_id = request.headers.get("x-event-id") or request.headers.get("webhook-id") or ""
    request.app[ARRIVALS].setdefault(event_id, arrived)
    request.app[COUNTS]["received"] += 1
    return web.Response(text="ok")


async def delayed(request: web.Request) -> web.Response:
    """Recorded on arrival like any hook, answered after the path's milliseconds."""
    response = await hook(request)
    await asyncio.sleep(min(int(request.match_info["ms"]), MAX_DELAY_MS) / 1000)
    return response


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _holding(app: web.Application) -> int:
    """Held requests whose client is still connected, counted now (a handler notices its
    client is gone only at its next poll)."""
    return sum(not _gone(request) for request in app[HELD].values())


async def hang(request: web.Request) -> web.Response:
    """Holds the request open; counts how many are held at once."""
    await request.read()
    app, counts = request.app, request.app[COUNTS]
    counts["held"] += 1
    app[HELD][id(request)] = request
    counts["max_holding"] = max(counts["max_holding"], _holding(app))
    try:
        deadline = time.monotonic() + HOLD_MAX_S
        # Polled, because aiohttp does not cancel a handler when its client goes away.
        while not (app[RELEASED].is_set() or _gone(request) or time.monotonic() > deadline):
            await asyncio.sleep(HOLD_POLL_S)
    finally:
        del app[HELD][id(request)]
    return web.Response(status=503, text="released")


async def stats(request: web.Request) -> web.Response:
    counts = request.app[COUNTS]
    return web.json_response({"received": counts["received"],
                              "unique": len(request.app[ARRIVALS]),
                              "holding": _holding(request.app),
                              "max_holding": counts["max_holding"],
                              "held": counts["held"]})


async def arrivals(request: web.Request) -> web.Response:
    return web.json_response(request.app[ARRIVALS])


async def reset(request: web.Request) -> web.Response:
    counts = request.app[COUNTS]
    request.app[ARRIVALS].clear()
    counts.update(received=0, held=0, max_holding=_holding(request.app))
    request.app[RELEASED].clear()
    return web.json_response({"reset": True})


async def release(request: web.Request) -> web.Response:
    request.app[RELEASED].set()
    return web.json_response({"released": True})


async def _release_on_shutdown(app: web.Application) -> None:
    app[RELEASED].set()


async def make_app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[ARRIVALS] = {}
    app[COUNTS] = {"received": 0, "max_holding": 0, "held": 0}
    app[HELD] = {}
    app[RELEASED] = asyncio.Event()
    app.on_shutdown.append(_release_on_shutdown)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", arrivals)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_release", release)
    app.router.add_post("/hang/{tail:.*}", hang)
    app.router.add_post(r"/delay/{ms:\d+}/{tail:.*}", delayed)
    app.router.add_post("/{tail:.*}", hook)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(make_app, parser.parse_args().port)
