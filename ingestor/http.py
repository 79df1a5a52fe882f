"""JSON responses and errors shared by the routes.

Handlers and the operations they call raise `ApiError` (ingestor.errors: NotFound,
Conflict, Invalid); the `errors` middleware turns it, aiohttp's own HTTP
exceptions (unknown route, wrong method, body too large) and any other exception
into a JSON body with the right status:

- the database away (`is_transient`): 503 with Retry-After, one warning line per 10 s
  with a count of the others;
- the client gone (it closed the connection while we read its body): nothing to
  answer, a debug line;
- anything else is a bug: logged at ERROR with the method, path, organization and the
  path's ids, counted in `triggerd_internal_errors_total{where="http"}`, and answered
  500 `{"error": "Internal error"}`, which a client should not retry blindly.

Nothing a client sends yields a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from ingestor import metrics, patterns
from ingestor.errors import ApiError as ApiError
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

RETRY_AFTER_S = "1"
_JSON = "application/json"
# The organization the request being handled authenticated as, for the logs of its
# failures; set by the key store, reset by the `errors` middleware for each request.
REQUEST_ORG: ContextVar[UUID | None] = ContextVar("request_org", default=None)
_UNAVAILABLE = Throttle(10.0)


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON, headers=headers)


def error_response(exc: ApiError) -> web.Response:
    """The JSON answer of a refusal."""
    return json_response(exc.body(), exc.status, exc.headers)


def unavailable(reason: str) -> ApiError:
    return ApiError(503, reason, headers={"Retry-After": RETRY_AFTER_S})


_REASONS = {404: "Not found", 405: "Method not allowed",
            413: "Request body too large", 415: "Unsupported media type"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = REQUEST_ORG.set(None)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _REASONS.get(exc.status, exc.reason)
        return json_response({"error": message}, exc.status,
                             {k: v for k, v in exc.headers.items() if k.lower() == "allow"})
    except Exception as exc:  # classified: the database away, the client gone, or a bug
        return _unexpected(request, exc)
    finally:
        REQUEST_ORG.reset(token)


def _unexpected(request: web.Request, exc: Exception) -> web.Response:
    if isinstance(exc, ConnectionError) and _client_gone(request):
        log.debug("%s %s: the client went away: %r", request.method, request.path, exc)
        return json_response({"error": "Client closed the connection"}, 400)
    if is_transient(exc):
        _UNAVAILABLE.log(log, logging.WARNING, "%s %s: database unavailable: %r",
                         request.method, request.path, exc)
        return error_response(unavailable("Database unavailable"))
    log.error("%s %s: internal error (org %s, ids %s): %r", request.method, request.path,
              REQUEST_ORG.get(), dict(request.match_info), exc, exc_info=exc)
    metrics.internal_error("http")
    return json_response({"error": "Internal error"}, 500)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


# Seconds a client has to send a request's body once its head has arrived (the head
# itself is bounded by the server's keep-alive deadline, ingestor/server.py).
BODY_TIMEOUT = web.AppKey("body_timeout", float)
DEFAULT_BODY_TIMEOUT = 30.0


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The request's raw body, or 413 over `max_bytes`, or 408 when it does not arrive
    within the app's BODY_TIMEOUT."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"Request body too large (limit {max_bytes} bytes)")
    timeout = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            body = await request.read()
    except TimeoutError:
        raise ApiError(408, f"Request body not received within {timeout:g} s",
                       headers={"Connection": "close"}) from None
    if len(body) > max_bytes:
        raise ApiError(413, f"Request body too large (limit {max_bytes} bytes)")
    return body


async def read_json(request: web.Request, max_bytes: int,
                    decode: Callable[[bytes], Any] = orjson.loads) -> Any:
    """The request's JSON body, or an ApiError for a wrong type, size, syntax or a body
    that does not arrive in time (408). `decode` raises ValueError for what is not JSON."""
    if request.content_type != _JSON and not request.content_type.endswith("+json"):
        raise ApiError(415, "Content-Type must be application/json")
    body = await read_body(request, max_bytes)
    try:
        return decode(body)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise ApiError(400, f"Invalid JSON: {str(exc)[:300]}") from None


def query_param(request: web.Request, name: str) -> str | None:
    """An optional query parameter; given empty, a 400 (leave it out for its default)."""
    raw = request.query.get(name)
    if raw == "":
        raise ApiError(400, f"{name} must not be empty: leave it out for its default")
    return raw


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = query_param(request, name)
    if raw is None:
        return default
    if len(raw) > 20 or not patterns.matches(patterns.INTEGER, raw):
        raise ApiError(400, f"{name} must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be an integer between {low} and {high}")
    return value


def query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    """An optional query parameter that must be one of `choices`."""
    value = query_param(request, name)
    if value is not None and value not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}")
    return value


def query_text(request: web.Request, name: str, max_length: int = 255) -> str | None:
    """An optional free-text query parameter, bounded and without NUL."""
    value = query_param(request, name)
    if value is not None and (len(value) > max_length
                              or not patterns.matches(patterns.TEXT, value)):
        raise ApiError(400, f"{name} must be at most {max_length} characters, without NUL")
    return value
