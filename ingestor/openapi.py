"""The OpenAPI 3.1 document of the HTTP API, as the handlers answer.

`document()` builds it: paths and operations here, component schemas in
`ingestor.openapi_schemas`. `routes_meta` serves it at GET /openapi.json, and
tests/integration/test_openapi.py checks it against the app's router and real answers, so
a route added or changed without its description fails there.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from ingestor import patterns
from ingestor.cursors import CursorShape
from ingestor.dead_letters import MAX_BODY as DEAD_LETTER_BODY
from ingestor.openapi_schemas import (
    NAME,
    TIME_IN,
    cursor,
    schemas,
)
from ingestor.ops_deliveries import DEAD_LETTER_CURSOR, DELIVERIES_CURSOR
from ingestor.ops_events import INBOX_CURSOR, INBOX_STATUSES, MAX_ACK
from ingestor.ops_metrics import RANGES
from ingestor.records import DELIVERY_STATUSES
from ingestor.routes_docs import ASSET_CACHE as DOCS_CACHE
from ingestor.routes_docs import ASSETS as DOCS_ASSETS
from ingestor.routes_endpoints import MAX_BODY as ENDPOINT_BODY
from ingestor.routes_inbox import ACK_BODY
from ingestor.shapes import (
    UUID,
    Schema,
    enum,
    integer,
    ref,
    string,
)
from ingestor.validation import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BODY,
)

MAX_DELIVERY_ID = 2**63 - 1
_JSON = "application/json"
_KEY_AUTH: list[dict[str, list[str]]] = [{"ApiKey": []}, {"BearerKey": []}]


# -- parameters, responses and operations ---------------------------------------------

def query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter; given, it must be valid (an empty value is a 400)."""
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def text_query(name: str, description: str) -> Schema:
    return query(name, string(minLength=1, maxLength=255, pattern=patterns.TEXT),
                 description)


def path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def limit(default: int, high: int) -> Schema:
    return query("limit", integer(minimum=1, maximum=high, default=default),
                 f"Page size, 1 to {high} (400 outside).")


def cursor_param(shape: CursorShape) -> Schema:
    return query("cursor", cursor(shape), "A `next_cursor` from the previous page.")


EVENT_ID = path_param("event_id", UUID)
ENDPOINT_ID = path_param("endpoint_id", UUID)
DELIVERY_ID = path_param("delivery_id", integer(minimum=1, maximum=MAX_DELIVERY_ID))


def reply(description: str, schema: Schema, headers: dict[str, Any] | None = None,
          links: dict[str, Schema] | None = None) -> Schema:
    answer: Schema = {"description": description, "content": {_JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    if links:
        answer["links"] = links
    return answer


def links_to(parameter: str, value: str, *op_ids: str) -> dict[str, Schema]:
    """OpenAPI links: the value of this answer (a runtime expression) as `parameter` of
    each of these operations."""
    return {op_id: {"operationId": op_id, "parameters": {parameter: value}}
            for op_id in op_ids}


_TO_EVENT = links_to("event_id", "$response.body#/id", "get_event", "ack_one")
_TO_ENDPOINT = {
    **links_to("endpoint_id", "$response.body#/id", "get_endpoint", "patch_endpoint",
               "delete_endpoint", "rotate_secret", "enable_endpoint", "pause_endpoint",
               "resume_endpoint", "recover"),
    **links_to("query.endpoint_id", "$response.body#/id", "list_deliveries")}


def text_reply(description: str, *media_types: str) -> Schema:
    return {"description": description,
            "content": {media: {"schema": string()} for media in media_types}}


def _header(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


_LIMIT_HEADERS = {"x-ratelimit-limit": _header("RateLimitLimit"),
                  "x-ratelimit-remaining": _header("RateLimitRemaining")}


def _responses() -> dict[str, Schema]:
    error = ref("Error")
    retry = {"Retry-After": _header("RetryAfter")}
    return {
        "BadRequest": reply("Bad JSON, fields or parameters.", error),
        "Unauthorized": reply("Missing or invalid credentials.", error),
        "NotFound": reply("Unknown, or another organization's.", error),
        "Conflict": reply("Refused in the current state.", error),
        "TooLarge": reply("Request body too large.", error),
        "NotJson": reply("Content-Type is not application/json.", error),
        "RateLimited": reply("Over the organization's per-minute limit.", ref("RateLimited"),
                             {**retry, **_LIMIT_HEADERS}),
        "Unavailable": reply("PostgreSQL unreachable, the writer saturated or restarting, "
                             "or the commit timed out; retry. For an event: not stored, "
                             "unless `outcome` says otherwise.", error, retry),
    }


_ERRORS = {"400": "BadRequest", "401": "Unauthorized", "404": "NotFound", "409": "Conflict",
           "413": "TooLarge", "415": "NotJson", "429": "RateLimited", "503": "Unavailable"}


def operation(op_id: str, tag: str, summary: str, answers: dict[str, Schema], *,
              errors: tuple[str, ...] = (), params: tuple[Schema, ...] = (),
              body: str | None = None, max_bytes: int = 0, access: str = "key") -> Schema:
    """One operation: its own `answers` (each carrying the rate-limit headers when `access`
    is "key": API key, rate limited; else "admin" or "none"), plus the shared errors its
    access, body and `errors` imply."""
    statuses = set(errors)
    if body is not None:
        statuses |= {"400", "413", "415"}
    if access == "key":
        statuses |= {"401", "429", "503"}
        answers = {code: {**answer, "headers": _LIMIT_HEADERS}
                   for code, answer in answers.items()}
    elif access == "admin":
        statuses.add("401")
    shared = {code: {"$ref": f"#/components/responses/{_ERRORS[code]}"} for code in statuses}
    responses = {**shared, **answers}
    op: Schema = {"operationId": op_id, "tags": [tag], "summary": summary,
                  "responses": dict(sorted(responses.items()))}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "description": f"At most {max_bytes} bytes.",
                             "content": {_JSON: {"schema": ref(body)}}}
    if access == "admin":
        op["security"] = [{"AdminToken": []}, {}]
    elif access == "none":
        op["security"] = []
    return op


# -- paths ----------------------------------------------------------------------------

def _event_paths() -> dict[str, Schema]:
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": NAME, "description": "The event's `dedup_id`, for a body "
                   "without one; with a `dedup_id` in the body it must be equal (400)."}
    return {
        "/api/events": {"post": operation(
            "post_event", "events", "Accept one event, answered once committed.",
            {"202": reply("Committed.", ref("EventAccepted"), links=_TO_EVENT),
             "409": reply("Duplicate dedup_id: the original event's id.",
                          ref("DuplicateEvent"))},
            params=(idempotency,), body="EventIn", max_bytes=MAX_EVENT_BODY)},
        "/api/events/batch": {"post": operation(
            "post_batch", "events", f"Accept up to {MAX_BATCH_EVENTS} events in one "
            "statement; a bad item rejects the batch (its `index` in the error). Costs one "
            "request per event against the rate limit.",
            {"202": reply("Committed.", ref("BatchAccepted"), links=links_to(
                "event_id", "$response.body#/results/0/id", "get_event", "ack_one"))},
            body="BatchIn", max_bytes=MAX_BATCH_BYTES)},
        "/api/events/{event_id}": {"get": operation(
            "get_event", "events", "An event with one entry per endpoint.",
            {"200": reply("The event.", ref("EventDetail"))}, errors=("400", "404"),
            params=(EVENT_ID,))},
        "/api/inbox": {"get": operation(
            "inbox", "inbox", "Unacknowledged events, newest first.",
            {"200": reply("A page.", ref("Inbox"))}, errors=("400",), params=(
                query("status", enum(INBOX_STATUSES), "Only events in this status."),
                text_query("type", "Only events of this exact type."),
                limit(50, 1000), cursor_param(INBOX_CURSOR)))},
        "/api/ack/{event_id}": {"post": operation(
            "ack_one", "inbox", "Acknowledge one event (idempotent).",
            {"200": reply("Acknowledged.", ref("Acked"))}, errors=("400", "404"),
            params=(EVENT_ID,))},
        "/api/ack": {"post": operation(
            "ack_many", "inbox", f"Acknowledge up to {MAX_ACK} events.",
            {"200": reply("Acknowledged.", ref("AckedMany"))}, body="AckIn",
            max_bytes=ACK_BODY)},
    }


def _key_paths() -> dict[str, Schema]:
    return {
        "/api/keys/generate": {"post": operation(
            "generate_key", "keys", "Create an organization and its first API key. Open "
            "while no admin token is set; then `Authorization: Bearer <admin token>`.",
            {"201": reply("Created.", ref("NewKey"))}, errors=("503",), body="KeyRequest",
            max_bytes=64 * 1024, access="admin")},
        "/api/keys": {"get": operation(
            "describe_key", "keys", "The caller's organization.",
            {"200": reply("The organization.", ref("Organization"))}, errors=("404",))},
        "/api/keys/rotate": {"post": operation(
            "rotate_key", "keys", "Revoke the organization's keys and issue a new one.",
            {"200": reply("Rotated.", ref("RotatedKey"))})},
    }


def _endpoint_paths() -> dict[str, Schema]:
    def one(op_id: str, summary: str, schema: str, **extra: Any) -> Schema:
        return operation(op_id, "endpoints", summary, {"200": reply("The endpoint.",
                                                                    ref(schema))},
                         errors=("400", "404"), params=(ENDPOINT_ID,), **extra)
    return {
        "/api/webhook/config": {"post": operation(
            "webhook_config", "endpoints", "Set the organization's default endpoint (every "
            "event type).",
            {"200": reply("Its url changed.", ref("Endpoint"), links=_TO_ENDPOINT),
             "201": reply("Created, with its secret.", ref("EndpointWithSecret"),
                          links=_TO_ENDPOINT)},
            body="WebhookConfigIn", max_bytes=ENDPOINT_BODY)},
        "/api/endpoints": {
            "post": operation("create_endpoint", "endpoints", "Create an endpoint.",
                              {"201": reply("Created, with its secret.",
                                            ref("EndpointWithSecret"), links=_TO_ENDPOINT)},
                              body="EndpointIn", max_bytes=ENDPOINT_BODY),
            "get": operation("list_endpoints", "endpoints", "The organization's endpoints, "
                             "oldest first.", {"200": reply("All of them.", ref("Endpoints"))})},
        "/api/endpoints/{endpoint_id}": {
            "get": one("get_endpoint", "One endpoint.", "Endpoint"),
            "patch": one("patch_endpoint", "Change an endpoint.", "Endpoint",
                         body="EndpointPatch", max_bytes=ENDPOINT_BODY),
            "delete": one("delete_endpoint", "Delete an endpoint, its deliveries and their "
                          "attempts.", "EndpointDeleted")},
        "/api/endpoints/{endpoint_id}/rotate-secret": {"post": one(
            "rotate_secret", "New signing secret; the old one signs beside it for 24 h.",
            "RotatedEndpoint")},
        "/api/endpoints/{endpoint_id}/enable": {"post": one(
            "enable_endpoint", "Enable an endpoint and close its breaker (a paused one stays "
            "paused).", "Endpoint")},
        "/api/endpoints/{endpoint_id}/pause": {"post": one(
            "pause_endpoint", "Pause an endpoint (idempotent): events are still routed to "
            "it and its deliveries wait, none is attempted, none becomes a dead letter for "
            "waiting; the first pause's time and author stand.", "Endpoint")},
        "/api/endpoints/{endpoint_id}/resume": {"post": one(
            "resume_endpoint", "Resume an endpoint (idempotent): its waiting deliveries go, "
            "in their order; its auto-disable clock restarts.", "Endpoint")},
        "/api/endpoints/{endpoint_id}/recover": {"post": operation(
            "recover", "endpoints", "Re-queue the endpoint's failed and dead deliveries "
            "created in [since, until); 409 while it is disabled.",
            {"202": reply("Re-queued.", ref("Recovered"))}, errors=("404", "409"),
            params=(ENDPOINT_ID,), body="RecoverIn", max_bytes=ENDPOINT_BODY)},
        "/api/endpoints/{endpoint_id}/test-filter": {"post": one(
            "test_filter", "Whether an event would be routed to the endpoint, and why not "
            "(its type, then each condition of its filter).", "FilterTest",
            body="FilterTestIn", max_bytes=ENDPOINT_BODY)},
    }


def _delivery_paths() -> dict[str, Schema]:
    def retry(op_id: str, tag: str) -> Schema:
        return operation(op_id, tag, "Re-queue a failed or dead delivery; 409 when it is "
                         "neither or its endpoint is disabled.",
                         {"202": reply("Re-queued.", ref("Retried"))},
                         errors=("400", "404", "409"), params=(DELIVERY_ID,))
    return {
        "/api/deliveries": {"get": operation(
            "list_deliveries", "deliveries", "Deliveries, newest first.",
            {"200": reply("A page.", ref("Deliveries"))}, errors=("400",), params=(
                query("status", enum(DELIVERY_STATUSES), "Only deliveries in this status."),
                query("endpoint_id", UUID, "Only this endpoint's deliveries."),
                text_query("event_type", "Only this exact event type."),
                limit(50, 1000), cursor_param(DELIVERIES_CURSOR)))},
        "/api/deliveries/{delivery_id}": {"get": operation(
            "get_delivery", "deliveries", "A delivery with its attempts.",
            {"200": reply("The delivery.", ref("DeliveryDetail"))}, errors=("400", "404"),
            params=(DELIVERY_ID,))},
        "/api/deliveries/{delivery_id}/retry": {"post": retry("retry_delivery",
                                                              "deliveries")},
        "/api/webhook-metrics/queue-health": {"get": operation(
            "queue_health", "metrics", "The organization's delivery queue.",
            {"200": reply("Counts and health.", ref("QueueHealth"))})},
        "/api/webhook-metrics/delivery-stats": {"get": operation(
            "delivery_stats", "metrics", "Outcomes of the deliveries created in a range.",
            {"200": reply("Summary and per event type.", ref("DeliveryStats"))},
            errors=("400",), params=(query("range", enum(tuple(RANGES), default="24h"),
                                           "How far back."),))},
        "/api/webhook-metrics/recent-failures": {"get": operation(
            "recent_failures", "metrics", "The latest failed attempts, newest first.",
            {"200": reply("Failed attempts.", ref("RecentFailures"))}, errors=("400",),
            params=(limit(20, 100),))},
        "/api/webhook-metrics/retry-failed/{delivery_id}": {"post": retry("retry_failed",
                                                                          "metrics")},
        **_dead_letter_paths(),
    }


def _dead_letter_paths() -> dict[str, Schema]:
    return {
        "/api/deliveries/{delivery_id}/resolve": {"post": operation(
            "resolve_delivery", "deliveries", "Mark a dead letter reviewed, without sending "
            "it again: records when, the caller's key id and the note. 409 when it is not "
            "a dead letter (`delivery_status`) or is already resolved (`resolved_at`, "
            "`resolved_by`). A retry clears it.",
            {"200": reply("The resolved delivery.", ref("Delivery"))},
            errors=("400", "404", "409"), params=(DELIVERY_ID,), body="ResolveIn",
            max_bytes=DEAD_LETTER_BODY)},
        "/api/webhook-metrics/dead-letter-queue": {"get": operation(
            "dead_letter_queue", "metrics", "Dead letters, most recently dead first.",
            {"200": reply("A page.", ref("DeadLetters"))}, errors=("400",), params=(
                query("resolved", enum(("true", "false")), "Only resolved (true) or "
                      "unresolved (false) ones."),
                query("endpoint_id", UUID, "Only this endpoint's."),
                text_query("event_type", "Only this exact event type."),
                query("since", TIME_IN, "Only those dead (updated_at) at or after this."),
                query("until", TIME_IN, "Only those dead before this."),
                limit(50, 1000), cursor_param(DEAD_LETTER_CURSOR)))},
        "/api/webhook-metrics/dead-letter-queue/retry": {"post": operation(
            "retry_dead_letters", "metrics", "Re-queue every dead letter the filter selects "
            "(pending, due now, a fresh set of attempts, resolution cleared), in short "
            "batches; those of a disabled or deleted endpoint are skipped and counted.",
            {"202": reply("Re-queued.", ref("DeadLettersRetried"))},
            body="DeadLetterRetryIn", max_bytes=DEAD_LETTER_BODY)},
    }


def _node_paths() -> dict[str, Schema]:
    return {
        "/health/live": {"get": operation(
            "live", "health", "The process answers.", {"200": reply("Alive.", ref("Live"))},
            access="none")},
        "/health/ready": {"get": operation(
            "ready", "health", "PostgreSQL reachable and the tree whole.",
            {"200": reply("Ready.", ref("Ready")), "503": reply("Not ready.", ref("Ready"))},
            access="none")},
        "/metrics": {"get": operation(
            "metrics", "node", "Prometheus metrics of the node and the queues (still 200, "
            "with triggerd_database_up 0, when PostgreSQL does not answer); OpenMetrics "
            "when the Accept header asks for it. For operators, like the dashboard, unless "
            "TRIGGERD_METRICS_PUBLIC=true.",
            {"200": text_reply("The exposition.", "text/plain",
                               "application/openmetrics-text")}, access="admin")},
        "/dashboard": {"get": operation(
            "dashboard", "node", "An HTML status page for operators: `Authorization: Bearer "
            "<admin token>`, or no token on a node without one that listens on loopback only. "
            "A browser (Accept: text/html) is sent to the console's sign-in page, "
            "/dashboard/login, and with a console session gets the console.",
            {"200": text_reply("The page.", "text/html")}, access="admin")},
        "/openapi.json": {"get": operation(
            "openapi", "meta", "This document.",
            {"200": reply("OpenAPI 3.1.", {"type": "object"})}, access="none")},
        **_docs_paths(),
    }


def _docs_paths() -> dict[str, Schema]:
    cached = {"ETag": {"schema": string()},
              "Cache-Control": {"schema": string(), "description": f"`{DOCS_CACHE}`"}}
    assets = {f"/docs/{name}": {"get": operation(
        "docs_" + name.replace("-", "_").replace(".", "_"), "meta",
        "An asset of the /docs page (gzip when accepted).",
        {"200": {**text_reply("The asset.", media), "headers": cached},
         "304": {"description": "Unchanged (If-None-Match).", "headers": cached}},
        access="none")} for name, media in DOCS_ASSETS.items()}
    return {"/docs": {"get": operation(
        "docs", "meta", "This document as a page (Swagger UI), from assets the node serves "
        "itself; its Content-Security-Policy admits no other origin.",
        {"200": text_reply("The page.", "text/html")}, access="none")}, **assets}


def _version() -> str:
    try:
        return importlib.metadata.version("triggerd")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, as a JSON-ready dict."""
    from ingestor.openapi_monitoring import monitoring_paths, monitoring_schemas  # as below
    from ingestor.openapi_sources import source_paths, source_schemas  # it imports this
    return {
        "openapi": "3.1.0",
        "info": {"title": "triggerd", "version": _version(),
                 "description": "Webhook ingestion and delivery. Every error is JSON, "
                                "`{\"error\": ...}`; an unknown route answers 404 and a "
                                "wrong method 405, in that shape too."},
        "tags": [{"name": t} for t in ("events", "inbox", "keys", "endpoints", "deliveries",
                                       "sources", "metrics", "health", "node", "meta")],
        "security": _KEY_AUTH,
        "paths": {**_event_paths(), **_key_paths(), **_endpoint_paths(), **_delivery_paths(),
                  **monitoring_paths(), **source_paths(), **_node_paths()},
        "components": {
            "schemas": {**schemas(), **monitoring_schemas(), **source_schemas()},
            "responses": _responses(),
            "headers": {
                "RateLimitLimit": {"description": "Requests allowed per minute.",
                                   "schema": integer()},
                "RateLimitRemaining": {"description": "Requests left this minute.",
                                       "schema": integer(minimum=0)},
                "RetryAfter": {"description": "Seconds to wait.", "schema": integer()}},
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerKey": {"type": "http", "scheme": "bearer",
                              "description": "The API key as a bearer token."},
                "AdminToken": {"type": "http", "scheme": "bearer",
                               "description": "TRIGGERD_ADMIN_TOKEN, when the node sets one."}},
        },
    }
