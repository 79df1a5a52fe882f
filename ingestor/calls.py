"""An API handler's parse -> call -> render, with authentication and the rate limit in
one place.

`@keyed` admits the request (`Ingest.admit`: the API key, then one request charged
against the organization's limit) before the handler runs, and hands it a `Call`: the
caller's organization, the database, who acts (the key's id), and `reply`, which
renders a record (`shapes.to_json`) with the rate-limit headers.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ingestor.auth import Org, key_id
from ingestor.context import INGEST, Ingest
from ingestor.http import json_response
from ingestor.ratelimit import Decision
from ingestor.shapes import to_json


@dataclass(frozen=True, slots=True)
class Call:
    """One admitted API request."""

    request: web.Request
    ingest: Ingest
    org: Org
    limit: Decision

    @property
    def db(self) -> Any:
        """The node's current pool (asyncpg.Pool)."""
        return self.ingest.pool()

    @property
    def by(self) -> str:
        """Who acts: the public id of the caller's key (auth.key_id)."""
        return key_id(self.request)

    def reply(self, answer: Any, status: int = 200) -> web.Response:
        """`answer` (a record, a list of them, or plain JSON values) as the JSON body."""
        return json_response(to_json(answer), status, self.limit.headers())


def keyed(handler: Callable[[Call], Awaitable[web.StreamResponse]]
          ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler that admits the request, then runs `handler` on its Call."""
    @functools.wraps(handler)
    async def admitted(request: web.Request) -> web.StreamResponse:
        ingest = request.app[INGEST]
        org, limit = await ingest.admit(request)
        return await handler(Call(request, ingest, org, limit))
    return admitted
