"""The ceiling: a bare aiohttp + uvloop handler that parses the same JSON body as
POST /api/events, checks its fields and answers 202, storing nothing.

    python -m benchmarks.bare_server --port 4101
"""

from __future__ import annotations

import argparse
import uuid

import orjson
from aiohttp import web

from benchmarks._serve import read_event, serve


async def post_event(request: web.Request) -> web.Response:
    body = await read_event(request)
    if isinstance(body, web.Response):
        return body
    return web.Response(body=orjson.dumps({"id": str(uuid.uuid4()), "status": "accepted",
                                           "message": "Event accepted"}),
                        status=202, content_type="application/json")


async def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/events", post_event)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(make_app, parser.parse_args().port)
