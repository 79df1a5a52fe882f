"""The OpenAPI description of the monitoring routes (ingestor/routes_monitoring.py):
delivery performance and alerts, and their component schemas. `openapi.document()`
merges them in."""

from __future__ import annotations

from ingestor.openapi import cursor_param, limit, operation, query, reply
from ingestor.openapi_schemas import (
    next_cursor,
)
from ingestor.ops_metrics import RANGES
from ingestor.routes_monitoring import (
    ALERTS_CURSOR,
    MAX_ALERTS_PAGE,
    MAX_GROUPS,
    PERFORMANCE_CAP,
    STATEMENT_TIMEOUT_MS,
)
from ingestor.shapes import (
    TIME,
    UUID,
    Schema,
    array,
    boolean,
    enum,
    integer,
    nullable,
    number,
    obj,
    ref,
    string,
)

ALERT_STATUSES = ("sent", "failed", "not_configured", "coalesced", "pending")


def _stats() -> dict[str, Schema]:
    def percentiles(what: str) -> Schema:
        ms = nullable(number(minimum=0, description=f"Milliseconds; null {what}."))
        return obj({name: ms for name in ("p50", "p95", "p99")})
    return {"attempts": integer(minimum=1),
            "delivered": integer(minimum=0, description="Attempts that succeeded."),
            "success_rate": number(minimum=0, maximum=1),
            "duration_ms": percentiles("never (over every attempt: the request's time)"),
            "latency_ms": percentiles("without a success (from the event's acceptance "
                                      "to the receiver's answer)")}


def monitoring_schemas() -> dict[str, Schema]:
    stats = _stats()
    endpoint = obj({"endpoint_id": UUID, "url": nullable(string()), **stats})
    event_type = obj({"event_type": string(), **stats})
    alert = obj({
        "id": integer(minimum=1),
        "kind": string(description="`dead_letter`, `disabled` or `breaker_opened`."),
        "endpoint_id": nullable(UUID), "message": string(),
        "status": enum(ALERT_STATUSES, description=(
            "`sent`: the alert hook answered 2xx; `failed`: it did not (see `error`); "
            "`not_configured`: no TRIGGERD_ALERT_WEBHOOK_URL; `coalesced`: a dead letter "
            "counted into a later message about its endpoint.")),
        "error": nullable(string()), "created_at": TIME})
    return {
        "DeliveryPerformance": obj({
            "range": enum(tuple(RANGES)),
            "by_endpoint": array(endpoint, maxItems=MAX_GROUPS,
                                 description="The endpoints with the most attempts."),
            "by_event_type": array(event_type, maxItems=MAX_GROUPS,
                                   description="The event types with the most attempts."),
            "sampled": boolean(description=f"True when the range holds more than "
                                           f"{PERFORMANCE_CAP} attempts: only the latest "
                                           f"{PERFORMANCE_CAP} were read."),
            "timestamp": TIME}),
        "Alerts": obj({"alerts": array(alert), "next_cursor": next_cursor(ALERTS_CURSOR)}),
    }


def monitoring_paths() -> dict[str, Schema]:
    return {
        "/api/webhook-metrics/performance": {"get": operation(
            "delivery_performance", "metrics", "Attempts in a range per endpoint and per "
            "event type: success rates and percentiles of duration and latency. Answers "
            f"503 when the query takes longer than {STATEMENT_TIMEOUT_MS / 1000:g} s.",
            {"200": reply("Per endpoint and per event type.", ref("DeliveryPerformance"))},
            errors=("400",), params=(query("range", enum(tuple(RANGES), default="24h"),
                                           "How far back."),))},
        "/api/webhook-metrics/alerts": {"get": operation(
            "list_alerts", "metrics", "Alerts raised about the organization's endpoints, "
            "newest first, with whether the alert hook took each.",
            {"200": reply("A page.", ref("Alerts"))}, errors=("400",),
            params=(limit(50, MAX_ALERTS_PAGE), cursor_param(ALERTS_CURSOR)))},
    }
