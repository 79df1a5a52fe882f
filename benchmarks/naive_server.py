"""The "before" of the reference documents: one INSERT per request through an asyncpg
pool, answered 202 after its own commit. No batching, no cache.

    python -m benchmarks.naive_server --port 4102 --dsn postgresql://...
"""

from __future__ import annotations

import argparse

import asyncpg
import orjson
from aiohttp import web

from benchmarks._serve import read_event, serve

POOL = web.AppKey("pool", asyncpg.Pool)

# The simple events table of the "before" design.
SCHEMA = """
CREATE TABLE IF NOT EXISTS naive_events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    api_key     text NOT NULL,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    dedup_id    text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""
# One event: $1 key, $2 type, $3 payload (JSON text), $4 dedup_id or NULL.
INSERT = """
INSERT INTO naive_events (api_key, type, payload, dedup_id) VALUES ($1, $2, $3::jsonb, $4)
RETURNING id
"""


async def post_event(request: web.Request) -> web.Response:
    body = await read_event(request)
    if isinstance(body, web.Response):
        return body
    key = request.headers["X-API-Key"]
    try:
        event_id = await request.app[POOL].fetchval(
            INSERT, key, body["type"], orjson.dumps(body["payload"]).decode(),
            body.get("dedup_id"))
    except asyncpg.UniqueViolationError:
        return web.json_response({"error": "Duplicate event detected"}, status=409)
    return web.Response(body=orjson.dumps({"id": str(event_id), "status": "accepted",
                                           "message": "Event accepted"}),
                        status=202, content_type="application/json")


def app_factory(dsn: str, pool_size: int):  # type: ignore[no-untyped-def]
    async def make_app() -> web.Application:
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        await pool.execute(SCHEMA)
        app = web.Application()
        app[POOL] = pool
        app.router.add_post("/api/events", post_event)

        async def close(app: web.Application) -> None:
            await pool.close()
        app.on_cleanup.append(close)
        return app
    return make_app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--pool-size", type=int, default=20)
    args = parser.parse_args()
    serve(app_factory(args.dsn, args.pool_size), args.port)
