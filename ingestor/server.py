"""The HTTP server's guards against slow, greedy and malformed clients.

aiohttp's own parts, with three changes:
- **An open-connection cap.** Past `max_connections`, a new connection is answered
  `503 {"error": "Too many connections"}` and closed at once, so a flood of idle or
  trickling connections cannot take every file descriptor of the process.
- **Protocol errors as JSON.** A request aiohttp cannot parse (a NUL or bad byte in a
  header, too many or too long headers, a bad Content-Length, garbage instead of HTTP)
  is answered with its 4xx status and `{"error": ...}`, logged at INFO without a
  traceback; an unexpected exception that escaped every handler is a JSON 500.
- **Slow clients** are bounded by aiohttp's keep-alive timer, which in this aiohttp also
  runs while a request's headers are still arriving: a connection gets
  `keepalive_timeout` seconds, from its start or from its previous answer, to deliver
  a complete request head. The body has its own deadline (`read_json`'s timeout).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger(__name__)

_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
             b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 33\r\n\r\n"
             b'{"error":"Too many connections"}\n')


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse in JSON."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is under way: the connection is broken
            raise ConnectionError("response already started; cannot answer the error")
        if status >= 500:
            log.error("unhandled error answering %s %s", request.method, request.path,
                      exc_info=exc)
            text = "Internal error"
        else:
            reason = getattr(exc, "message", None) or message or "Bad request"
            log.info("protocol error from %s: %s %s", request.remote, status,
                     str(reason)[:200])
            text = f"Malformed HTTP request: {str(reason)[:200]}"
        response = web.Response(status=status, body=orjson.dumps({"error": text}),
                                content_type="application/json")
        response.force_close()
        return response


class _Refused(asyncio.Protocol):
    """Answers a connection over the cap with a 503 and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(_TOO_MANY)
        transport.close()


class _GuardedServer:
    """Stands in for aiohttp's Server as the protocol factory: same server, capped, with
    JsonErrorHandler for each connection."""

    def __init__(self, server: web.Server, max_connections: int) -> None:
        self._server = server
        self.max_connections = max_connections
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def __call__(self) -> asyncio.Protocol:
        server = self._server
        if len(server.connections) >= self.max_connections:
            self.refused += 1
            return _Refused()
        return JsonErrorHandler(server, loop=server._loop, **server._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server applies the guards above."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._max_connections = max_connections

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return cast(web.Server, _GuardedServer(server, self._max_connections))
