"""GET /openapi.json: the OpenAPI 3.1 document of this API, without authentication.

The document is built and encoded once, on the first request, and then served as is.
"""

from __future__ import annotations

import functools

import orjson
from aiohttp import web

from ingestor.http import json_response
from ingestor.openapi import document

routes = web.RouteTableDef()


@functools.cache
def _encoded() -> orjson.Fragment:
    # A Fragment is written out verbatim, so json_response does not encode it again.
    return orjson.Fragment(orjson.dumps(document()))


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(_encoded())
