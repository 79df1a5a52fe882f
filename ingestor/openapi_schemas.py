"""The component schemas of the OpenAPI document (see `ingestor.openapi`).

What a handler answers is the record it renders: those schemas are derived from the
records themselves (`shapes.schema_of`). What a handler accepts is described here, its
bounds from the constants the handlers validate with where they have one. The schema
helpers live in `ingestor.shapes`.
"""

from __future__ import annotations

from ingestor import patterns, records, records_metrics
from ingestor.auth import TIER_LIMITS
from ingestor.cursors import CursorShape
from ingestor.dead_letters import MAX_EVENT_TYPE as MAX_DEAD_TYPE
from ingestor.dead_letters import MAX_NOTE
from ingestor.endpoint_input import (
    DEFAULT_MAX_TIMEOUT,
    DEFAULT_PRIORITY,
    MAX_DESCRIPTION,
    MAX_EVENT_TYPES,
    MAX_HEADERS,
    MAX_PRIORITY,
    MAX_RATE,
    MAX_STATUSES,
    MAX_TYPE,
    MAX_URL,
    MAX_YEAR,
    MIN_PRIORITY,
    MIN_TIMEOUT,
    MIN_YEAR,
)
from ingestor.ops_deliveries import DEAD_LETTER_CURSOR, DELIVERIES_CURSOR
from ingestor.ops_events import INBOX_CURSOR, MAX_ACK
from ingestor.records import DELIVERY_STATUSES
from ingestor.routes_keys import MAX_ORG_NAME
from ingestor.shapes import (
    TIME,
    UUID,
    Schema,
    array,
    boolean,
    const,
    enum,
    integer,
    nullable,
    number,
    obj,
    ref,
    schema_of,
    string,
)
from ingestor.validation import MAX_BATCH_EVENTS, MAX_DEPTH, MAX_EVENT_BYTES, MAX_NAME

TIME_IN = string(format="date-time", pattern=patterns.TIME, description=(
    f"An RFC 3339 time with a year from {MIN_YEAR} to {MAX_YEAR}, such as "
    "2024-05-01T00:00:00Z. Also read: a space for the `T`, and no offset (UTC)."))
NAME = string(minLength=1, maxLength=MAX_NAME, pattern=patterns.NAME,
              description=f"Not blank, at most {MAX_NAME} characters, no NUL.")
NO_NUL = patterns.NO_NUL


def cursor(shape: CursorShape) -> Schema:
    """A page cursor of one list: opaque, but every string of its pattern is a position."""
    return string(pattern=shape.pattern, description="Opaque: a `next_cursor` of the same "
                                                     "list.")


def next_cursor(shape: CursorShape) -> Schema:
    return nullable(string(pattern=shape.pattern, description="Pass back as `cursor` for "
                                                              "the next page; null on the "
                                                              "last page."))


# -- component schemas ----------------------------------------------------------------

def _error_schemas() -> dict[str, Schema]:
    return {
        "Error": obj({"error": string(description="What went wrong, for a person.")}, {
            "index": integer(minimum=0, description="The faulty item of a batch or "
                                                    "event_ids array."),
            "delivery_status": enum(DELIVERY_STATUSES, description="Why a retry or a "
                                                                   "resolve is refused."),
            "resolved_at": TIME, "resolved_by": string(description="On a resolve of a "
                                                       "dead letter already resolved: "
                                                       "when, and by which key."),
            "outcome": enum(("unknown", "partial"), description=(
                "On an event's error: `unknown` (503) when it may be stored (look it up "
                "by `id`, or each item's id in `results`); `partial` when some items of a "
                "batch are stored and others not. A 503 without `outcome` means not "
                "stored.")),
            "id": string(format="uuid", description="The event whose commit outcome is "
                                                    "unknown."),
            "limit": integer(minimum=1, description="On a 413 batch: the organization's "
                                                    "events per minute, which no batch may "
                                                    "exceed."),
            "results": array(obj({"id": UUID, "status": enum(
                ("accepted", "duplicate", "not_stored", "unknown", "rejected", "failed"))},
                {"dedup_id": string()}), description="A batch's items, in its order.")},
            description="Every error answer; some carry the extra fields listed."),
        "DuplicateEvent": obj({"error": const("Duplicate event detected"),
                               "id": string(format="uuid", description="The original "
                                                                       "event's id."),
                               "dedup_id": string()}),
        "RateLimited": obj({"error": const("Rate limit exceeded"), "limit": integer(),
                            "retry_after": integer(minimum=1, description="Seconds.")}),
    }


def _event_schemas() -> dict[str, Schema]:
    return {
        "EventIn": obj({"type": NAME, "payload": ref("Payload")}, {"dedup_id": nullable({
            **NAME, "description": "The event's key: a second event with the same key is "
                                   "a duplicate (409). Also taken from the Idempotency-Key "
                                   "header; when both are given they must be equal (400)."})}),
        "Payload": {"type": "object", "propertyNames": {"pattern": NO_NUL},
                    "additionalProperties": ref("JsonValue"), "description": (
                        f"Any JSON object, at most {MAX_EVENT_BYTES} bytes encoded and "
                        f"{MAX_DEPTH} levels deep, without NUL (\\u0000) in any string "
                        "or key; stored and delivered exactly as sent.")},
        "JsonValue": {"type": ["object", "array", "string", "number", "boolean", "null"],
                      "pattern": NO_NUL, "propertyNames": {"pattern": NO_NUL},
                      "additionalProperties": ref("JsonValue"), "items": ref("JsonValue"),
                      "description": "Any JSON value without NUL in a string or key."},
        "EventAccepted": obj({"id": UUID, "status": const("accepted"), "message": string()}),
        "BatchIn": obj({"events": array(ref("EventIn"), minItems=1,
                                        maxItems=MAX_BATCH_EVENTS)}),
        "BatchAccepted": obj({
            "accepted": integer(minimum=0), "duplicates": integer(minimum=0),
            "results": array(obj({"id": UUID, "status": enum(("accepted", "duplicate"))},
                                 {"dedup_id": string()}),
                             description="One per event, in the batch's order.")}),
        "Event": schema_of(records.Event),
        "EventDetail": schema_of(records.EventDetail),
        "Inbox": obj({"events": array(ref("Event")), "next_cursor": next_cursor(INBOX_CURSOR)}),
        "AckIn": obj({"event_ids": array(UUID, minItems=1, maxItems=MAX_ACK)}),
        "Acked": schema_of(records.Acked),
        "AckedMany": schema_of(records.AckedMany),
    }


def _key_schemas() -> dict[str, Schema]:
    tier = enum(tuple(TIER_LIMITS))
    org = {"organization_id": UUID, "organization_name": string(), "tier": tier,
           "rate_limit_per_minute": integer()}
    return {
        "KeyRequest": obj({"organization_name": string(minLength=1, maxLength=MAX_ORG_NAME,
                                                       pattern=patterns.NAME)},
                          {"tier": {**tier, "default": "free"}}),
        "NewKey": obj({"api_key": string(description="Shown once."), **org}),
        "Organization": obj({**org, "active_keys": integer(minimum=0), "created_at": TIME}),
        "RotatedKey": obj({"api_key": string(description="Shown once."),
                           "organization_id": UUID, "message": string()}),
    }


def _endpoint_fields() -> dict[str, Schema]:
    """What a create or a PATCH accepts (create requires `url`)."""
    url = string(minLength=1, maxLength=MAX_URL, format="uri", pattern=patterns.HTTP_URL,
                 description="http or https, with a host and a valid port; not a loopback, "
                             "private, link-local or multicast target (nor a name resolving "
                             "to one) unless the node allows private targets.")
    pattern = string(minLength=1, maxLength=MAX_TYPE, pattern=patterns.EVENT_FILTER,
                     description="An exact type, `prefix.*`, or `*` (every type); no "
                                 "whitespace or NUL.")
    return {"url": url,
            "event_types": nullable(array(pattern, minItems=1, maxItems=MAX_EVENT_TYPES,
                                          description="null = every type.")),
            "description": nullable(string(maxLength=MAX_DESCRIPTION, pattern=NO_NUL)),
            "rate_limit_per_second": nullable(integer(minimum=1, maximum=MAX_RATE)),
            "ordered": boolean(), **_routing_fields(),
            "paused": boolean(description=(
                "true: deliveries are routed to it and wait, none is attempted (POST "
                ".../pause); false: they go (POST .../resume). A PATCH pausing a paused "
                "endpoint keeps when and by whom it was first paused."))}


def _routing_fields() -> dict[str, Schema]:
    """The routing rules and delivery settings an endpoint accepts."""
    header = {"type": "object", "maxProperties": MAX_HEADERS,
              "propertyNames": {"pattern": patterns.HEADER_NAME},
              "additionalProperties": string(pattern=patterns.HEADER_VALUE),
              "description": "Sent with every webhook. Names that sign or frame the webhook "
                             "(webhook-*, x-event-*, x-delivery-attempt, content-*, host, "
                             "user-agent, connection headers) are refused."}
    return {
        "filter": nullable({"type": "object", "description": (
            "A payload filter over {type, data, headers}: field paths with the operators "
            "$eq $neq $gt $gte $lt $lte $in $nin $startsWith $endsWith $exist and "
            "$and $or $not (see the README for the grammar and its bounds).")}),
        "priority": integer(minimum=MIN_PRIORITY, maximum=MAX_PRIORITY,
                            default=DEFAULT_PRIORITY,
                            description="Higher is claimed first when deliveries wait for "
                                        "workers; a fifth of every claim goes to the "
                                        "longest-waiting whatever their priority."),
        "timeout_s": nullable(number(minimum=MIN_TIMEOUT, maximum=DEFAULT_MAX_TIMEOUT,
                                     description=(
            "Seconds; null = the node's TRIGGERD_REQUEST_TIMEOUT; at most "
            f"TRIGGERD_MAX_REQUEST_TIMEOUT ({DEFAULT_MAX_TIMEOUT:g} by default)."))),
        "headers": nullable(header),
        "success_statuses": nullable(array(integer(minimum=200, maximum=299), minItems=1,
                                           maxItems=MAX_STATUSES,
                                           description="null = any 2xx."))}


def _endpoint_schemas() -> dict[str, Schema]:
    fields = _endpoint_fields()
    url = fields["url"]
    create = {name: schema for name, schema in fields.items() if name != "url"}
    return {
        "EndpointIn": obj({"url": url}, {**create, "ordered": boolean(default=False),
                                          "paused": boolean(default=False, description=(
                                              "true: created paused."))},
                          closed=True),
        "EndpointPatch": obj({}, fields, closed=True,
                             minProperties=1, description="Only the fields given change; "
                                                          "null clears a field."),
        "WebhookConfigIn": obj({"webhook_url": url}),
        "Endpoint": schema_of(records.Endpoint),
        "EndpointWithSecret": schema_of(records.NewEndpoint),
        "RotatedEndpoint": schema_of(records.RotatedEndpoint),
        "Endpoints": obj({"endpoints": array(ref("Endpoint"))}),
        "EndpointDeleted": schema_of(records.EndpointDeleted),
        "RecoverIn": obj({"since": TIME_IN}, {"until": nullable(TIME_IN)},
                         description="The window [since, until): until defaults to now, "
                                     "and since must be before it (400)."),
        "Recovered": schema_of(records.Recovered),
        "FilterTestIn": obj({"event": obj(
            {"type": NAME, "payload": ref("Payload")},
            {"headers": {"type": "object", "maxProperties": 50,
                         "propertyNames": {"pattern": patterns.HEADER_NAME},
                         "additionalProperties": string(pattern=NO_NUL)}}, closed=True)},
            {"filter": nullable({"type": "object", "description": "A filter to try "
                                 "instead of the endpoint's own (null: none)."})},
            description="An event as it would be ingested (or come from a source, with "
                        "its headers)."),
        "FilterTest": schema_of(records.FilterTest),
    }


def _delivery_schemas() -> dict[str, Schema]:
    return {
        "Delivery": schema_of(records.Delivery),
        "DeliveryDetail": schema_of(records.DeliveryDetail),
        "Deliveries": obj({"deliveries": array(ref("Delivery")),
                           "next_cursor": next_cursor(DELIVERIES_CURSOR)}),
        "DeadLetters": obj({"deliveries": array(ref("Delivery")),
                            "next_cursor": next_cursor(DEAD_LETTER_CURSOR)}),
        "Retried": schema_of(records.Retried),
        **_dead_letter_schemas(),
    }


def _dead_letter_schemas() -> dict[str, Schema]:
    return {
        "ResolveIn": obj({}, {"note": nullable(string(maxLength=MAX_NOTE, pattern=NO_NUL))},
                         closed=True, description="Why it needs no retry; optional."),
        "DeadLetterFilter": obj({}, {
            "endpoint_id": nullable(UUID), "event_type": nullable(string(
                minLength=1, maxLength=MAX_DEAD_TYPE, pattern=patterns.TEXT,
                description="An exact event type.")),
            "since": nullable(TIME_IN), "until": nullable(TIME_IN),
            "resolved": nullable(boolean(description="true: resolved ones only; false: "
                                                     "unresolved ones only."))},
            closed=True, description="Which dead letters: those dead (updated_at) in "
                                     "[since, until), of the endpoint, of the exact event "
                                     "type, resolved or not. An absent or null field does "
                                     "not narrow; {} selects every one of the "
                                     "organization's."),
        "DeadLetterRetryIn": obj({"filter": ref("DeadLetterFilter")}, closed=True),
        "DeadLettersRetried": schema_of(records.DeadLettersRetried),
    }


def _metric_schemas() -> dict[str, Schema]:
    return {
        "QueueHealth": schema_of(records_metrics.QueueHealth),
        "DeliveryStats": schema_of(records_metrics.DeliveryStats),
        "RecentFailures": obj({"failures": array(schema_of(records_metrics.RecentFailure))}),
    }


def _health_schemas() -> dict[str, Schema]:
    return {
        "Live": obj({"status": const("ok")}),
        "Ready": obj({"status": enum(("ready", "not ready")),
                      "checks": obj({"database": string(description="`ok`, or "
                                                        "`unreachable: <reason>`."),
                                     "tree": enum(("ok", "degraded"))})}),
    }


def schemas() -> dict[str, Schema]:
    return {**_error_schemas(), **_event_schemas(), **_key_schemas(), **_endpoint_schemas(),
            **_delivery_schemas(), **_metric_schemas(), **_health_schemas()}
