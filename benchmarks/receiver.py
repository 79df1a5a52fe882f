"""A minimal webhook receiver: answers 200 to every POST and records when each event
arrived (wall clock, keyed by x-event-id, else webhook-id), for the delivery and
end-to-end measures.

    GET  /_stats      {"received": n, "unique": n}
    GET  /_arrivals   {"<event id>": <unix time of first arrival>, ...}
    POST /_reset      forget everything

    python -m benchmarks.receiver --port 4103
"""

from __future__ import annotations

import argparse
import time

from aiohttp import web

from benchmarks._serve import serve

ARRIVALS = web.AppKey("arrivals", dict)
COUNTS = web.AppKey("counts", dict)


async def hook(request: web.Request) -> web.Response:
    arrived = time.time()
    await request.read()
    event_id = request.headers.get("x-event-id") or request.headers.get("webhook-id") or ""
    request.app[ARRIVALS].setdefault(event_id, arrived)
    request.app[COUNTS]["received"] += 1
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"received": request.app[COUNTS]["received"],
                              "unique": len(request.app[ARRIVALS])})


async def arrivals(request: web.Request) -> web.Response:
    return web.json_response(request.app[ARRIVALS])


async def reset(request: web.Request) -> web.Response:
    request.app[ARRIVALS].clear()
    request.app[COUNTS]["received"] = 0
    return web.json_response({"reset": True})


async def make_app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[ARRIVALS] = {}
    app[COUNTS] = {"received": 0}
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", arrivals)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", hook)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(make_app, parser.parse_args().port)
