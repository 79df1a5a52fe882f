"""The delivery, dead-letter and metrics API on a real node and a real PostgreSQL:
shapes, filters, pagination, retry transitions, counts and isolation. Deliveries and
attempts are written straight into the tables (no poller or deliverer runs here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.conftest import Api
from tests.integration.delivery_helpers import (
    insert_attempt,
    insert_delivery,
    new_endpoint,
    new_event,
)

FIELDS = {"id", "event_id", "endpoint_id", "event_type", "status", "attempts",
          "response_status", "last_error", "next_attempt_at", "delivered_at", "created_at",
          "updated_at", "resolved_at", "resolved_by", "resolution_note"}
HOUR = timedelta(hours=1)


async def test_list_filters_and_pages(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    a, b = await new_endpoint(api, key), await new_endpoint(api, key)
    ids = []
    for i in range(5):
        event_id = await new_event(api, key, "order.created" if i % 2 else "user.signup")
        ids.append(await insert_delivery(db, event_id, a["id"] if i < 3 else b["id"],
                                         "failed" if i == 4 else "delivered"))
    status, body, resp = await api.call("GET", "/api/deliveries", key)
    assert status == 200 and "x-ratelimit-remaining" in resp.headers
    assert [d["id"] for d in body["deliveries"]] == ids[::-1] and body["next_cursor"] is None
    assert all(set(d) == FIELDS for d in body["deliveries"])
    first = body["deliveries"][0]
    assert first["endpoint_id"] == b["id"] and first["event_type"] == "user.signup"
    assert first["status"] == "failed" and first["attempts"] == 0
    for params, expected in [({"status": "failed"}, [ids[4]]),
                             ({"endpoint_id": a["id"]}, ids[2::-1]),
                             ({"event_type": "order.created"}, [ids[3], ids[1]]),
                             ({"endpoint_id": a["id"], "event_type": "user.signup"},
                              [ids[2], ids[0]])]:
        _, body, _ = await api.call("GET", "/api/deliveries", key, params=params)
        assert [d["id"] for d in body["deliveries"]] == expected, params
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        _, body, _ = await api.call("GET", "/api/deliveries", key, params=params)
        seen += [d["id"] for d in body["deliveries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


async def test_list_rejects_bad_parameters(api: Api) -> None:
    key = await api.new_org()
    for params, word in [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                         ({"limit": "x"}, "limit"), ({"status": "lost"}, "status"),
                         ({"endpoint_id": "nope"}, "endpoint_id"),
                         ({"event_type": "a\x00b"}, "event_type"),
                         ({"event_type": "t" * 256}, "event_type"),
                         ({"cursor": "!!!"}, "cursor"), ({"cursor": "AAAA"}, "cursor")]:
        status, err, _ = await api.call("GET", "/api/deliveries", key, params=params)
        assert status == 400 and word in str(err["error"]), (params, err)


async def test_get_delivery_with_its_attempts(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    delivery = await insert_delivery(db, await new_event(api, key), ep["id"], "failed",
                                     attempts=2, response_status=500, last_error="HTTP 500")
    await insert_attempt(db, delivery, 2, 500, 12.5, "HTTP 500", "oops")
    await insert_attempt(db, delivery, 1, None, 15000.0, "timeout")
    status, body, _ = await api.call("GET", f"/api/deliveries/{delivery}", key)
    assert status == 200, body
    assert set(body) == FIELDS | {"attempts"} and body["id"] == delivery
    assert body["response_status"] == 500 and body["last_error"] == "HTTP 500"
    assert [(a["attempt"], a["response_status"], a["duration_ms"], a["error"],
             a["response_body"]) for a in body["attempts"]] == [
        (1, None, 15000.0, "timeout", None), (2, 500, 12.5, "HTTP 500", "oops")]
    assert all(a["created_at"] for a in body["attempts"])
    for raw, expected in [("abc", 400), ("0", 400), ("-1", 400), ("1.5", 400),
                          ("99999999999999999999", 400), (str(delivery + 1000), 404)]:
        status, _, _ = await api.call("GET", f"/api/deliveries/{raw}", key)
        assert status == expected, raw


@pytest.mark.parametrize("path", ["/api/deliveries/{}/retry",
                                  "/api/webhook-metrics/retry-failed/{}"])
async def test_retry_transitions(api: Api, db: asyncpg.Connection, path: str) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    later = datetime.now(UTC) + HOUR
    made = {}
    for status in ("failed", "dead_letter", "delivered", "in_flight", "pending"):
        made[status] = await insert_delivery(db, await new_event(api, key), ep["id"], status,
                                             attempts=5, next_attempt_at=later)
    for status in ("failed", "dead_letter"):
        code, body, resp = await api.call("POST", path.format(made[status]), key)
        assert code == 202 and body == {"id": made[status], "status": "pending"}, body
        assert "x-ratelimit-limit" in resp.headers
    rows = {r["id"]: r for r in await db.fetch(
        "SELECT id, status, attempts, next_attempt_at <= now() AS due FROM deliveries")}
    assert tuple(rows[made["failed"]].values())[1:] == ("pending", 5, True)
    assert tuple(rows[made["dead_letter"]].values())[1:] == ("pending", 0, True)
    for status in ("delivered", "in_flight", "pending", "failed"):
        code, err, _ = await api.call("POST", path.format(made[status]), key)
        assert code == 409 and "only failed or dead_letter" in str(err["error"]), (status, err)
        assert err["delivery_status"] == ("pending" if status == "failed" else status)
    assert await db.fetchval("SELECT status FROM deliveries WHERE id = $1",
                             made["delivered"]) == "delivered"
    code, _, _ = await api.call("POST", path.format(made["delivered"] + 100), key)
    assert code == 404
    code, _, _ = await api.call("POST", path.format("x"), key)
    assert code == 400


async def test_retry_refused_while_the_endpoint_is_disabled(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    delivery = await insert_delivery(db, await new_event(api, key), ep["id"], "dead_letter")
    await db.execute("UPDATE endpoints SET enabled = false")
    status, err, _ = await api.call("POST", f"/api/deliveries/{delivery}/retry", key)
    assert status == 409 and "enable it first" in str(err["error"])
    assert await db.fetchval("SELECT status FROM deliveries") == "dead_letter"


async def test_event_shows_one_delivery_per_endpoint(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    a, b = await new_endpoint(api, key), await new_endpoint(api, key)
    event_id = await new_event(api, key)
    await insert_delivery(db, event_id, a["id"], "delivered", attempts=1, response_status=200,
                          delivered_at=datetime.now(UTC))
    await insert_delivery(db, event_id, b["id"], "failed", attempts=2, response_status=503,
                          last_error="HTTP 503")
    status, body, _ = await api.call("GET", f"/api/events/{event_id}", key)
    assert status == 200
    got = body["deliveries"]
    assert [(d["endpoint_id"], d["url"], d["status"], d["attempts"], d["response_status"],
             d["last_error"]) for d in got] == [
        (a["id"], a["url"], "delivered", 1, 200, None),
        (b["id"], b["url"], "failed", 2, 503, "HTTP 503")]
    assert got[0]["delivered_at"] is not None and got[1]["delivered_at"] is None
    assert set(got[0]) == {"endpoint_id", "url", "status", "attempts", "response_status",
                           "last_error", "next_attempt_at", "delivered_at"}


async def test_queue_health_counts(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    _, body, _ = await api.call("GET", "/api/webhook-metrics/queue-health", key)
    assert body["healthy"] is True and body["stats"] == {
        "queue_depth": 0, "oldest_pending_age_s": 0, "failure_rate": 0, "paused": 0}
    ep = await new_endpoint(api, key)
    now = datetime.now(UTC)
    rows = [("pending", now - timedelta(minutes=10), now - timedelta(seconds=1)),  # waiting
            ("pending", now, now),                                              # waiting
            ("pending", now, now + HOUR),                                       # delayed
            ("failed", now, now + HOUR),                                        # delayed
            ("failed", now, now - timedelta(seconds=1)),
            ("in_flight", now, now), ("delivered", now, now), ("delivered", now, now),
            ("dead_letter", now - 2 * HOUR, now)]
    made = []
    for state, created, due in rows:
        made.append(await insert_delivery(db, await new_event(api, key), ep["id"], state,
                                          created_at=created, next_attempt_at=due))
    await insert_attempt(db, made[6], 1, 200)
    await insert_attempt(db, made[3], 1, 500)
    await insert_attempt(db, made[4], 1, None, error="connection refused")
    await insert_attempt(db, made[7], 1, 204)
    await insert_attempt(db, made[8], 1, 500, created_at=now - 2 * HOUR)  # outside the hour
    status, body, resp = await api.call("GET", "/api/webhook-metrics/queue-health", key)
    assert status == 200 and "x-ratelimit-limit" in resp.headers
    assert body["metrics"] == {"waiting": 2, "active": 1, "completed": 2, "failed": 2,
                               "delayed": 2, "dead_letter": 1}
    assert body["stats"]["queue_depth"] == 6
    assert 600 <= body["stats"]["oldest_pending_age_s"] < 660
    assert body["stats"]["failure_rate"] == 0.5
    assert body["healthy"] is False and body["timestamp"]
    await db.execute("UPDATE deliveries SET created_at = now() WHERE id = $1", made[0])
    await insert_attempt(db, made[6], 2, 200)
    _, body, _ = await api.call("GET", "/api/webhook-metrics/queue-health", key)
    assert body["stats"]["failure_rate"] == 0.4 and body["healthy"] is True
    assert body["stats"]["paused"] == 0
    await api.call("POST", f"/api/endpoints/{ep['id']}/pause", key)
    _, body, _ = await api.call("GET", "/api/webhook-metrics/queue-health", key)
    assert body["stats"]["paused"] == 5  # its pending and failed ones, not the one in flight


async def test_delivery_stats(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    now = datetime.now(UTC)
    plan = [("order.created", "delivered", 1, now, [100.0]),
            ("order.created", "delivered", 2, now, [200.0]),
            ("order.created", "dead_letter", 8, now, []),
            ("user.signup", "delivered", 1, now - 2 * HOUR, [300.0]),
            ("user.signup", "failed", 3, now - 2 * HOUR, []),
            ("user.signup", "delivered", 1, now - 2 * 24 * HOUR, [5000.0])]
    for type_, state, attempts, created, latencies in plan:
        delivery = await insert_delivery(db, await new_event(api, key, type_), ep["id"],
                                         state, attempts=attempts, created_at=created)
        await insert_attempt(db, delivery, 1, 500, 40_000.0)  # a failure: not in latency
        for latency in latencies:
            await insert_attempt(db, delivery, attempts, 200, latency)
    status, body, resp = await api.call("GET", "/api/webhook-metrics/delivery-stats", key)
    assert status == 200 and "x-ratelimit-limit" in resp.headers
    assert body["range"] == "24h"
    summary = body["summary"]
    assert {k: summary[k] for k in ("total", "delivered", "failed", "dead_letter", "pending")} \
        == {"total": 5, "delivered": 3, "failed": 1, "dead_letter": 1, "pending": 0}
    assert summary["success_rate"] == 0.6 and summary["avg_attempts"] == 3.0
    assert summary["latency_ms"] == {"p50": 200.0, "p95": 290.0, "p99": 298.0}
    assert body["by_event_type"] == [
        {"event_type": "order.created", "total": 3, "delivered": 2, "dead_letter": 1,
         "success_rate": 0.6667},
        {"event_type": "user.signup", "total": 2, "delivered": 1, "dead_letter": 0,
         "success_rate": 0.5}]
    _, body, _ = await api.call("GET", "/api/webhook-metrics/delivery-stats", key,
                                params={"range": "1h"})
    assert body["summary"]["total"] == 3 and len(body["by_event_type"]) == 1
    _, body, _ = await api.call("GET", "/api/webhook-metrics/delivery-stats", key,
                                params={"range": "7d"})
    assert body["summary"]["total"] == 6 and body["summary"]["latency_ms"]["p99"] > 4000
    status, err, _ = await api.call("GET", "/api/webhook-metrics/delivery-stats", key,
                                    params={"range": "30d"})
    assert status == 400 and "range" in str(err["error"])


async def test_delivery_stats_when_empty(api: Api) -> None:
    key = await api.new_org()
    _, body, _ = await api.call("GET", "/api/webhook-metrics/delivery-stats", key)
    assert body == {"range": "24h", "summary": {
        "total": 0, "delivered": 0, "failed": 0, "dead_letter": 0, "pending": 0,
        "success_rate": 0, "avg_attempts": 0,
        "latency_ms": {"p50": None, "p95": None, "p99": None}}, "by_event_type": []}


async def test_recent_failures(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    event_id = await new_event(api, key)
    delivery = await insert_delivery(db, event_id, ep["id"], "failed", attempts=3)
    now = datetime.now(UTC)
    await insert_attempt(db, delivery, 1, 500, error="HTTP 500", created_at=now - 3 * HOUR)
    await insert_attempt(db, delivery, 2, None, error="timeout", created_at=now - 2 * HOUR)
    await insert_attempt(db, delivery, 3, 200, created_at=now - HOUR)
    status, body, _ = await api.call("GET", "/api/webhook-metrics/recent-failures", key)
    assert status == 200
    assert [(f["attempt"], f["response_status"], f["error"]) for f in body["failures"]] == [
        (2, None, "timeout"), (1, 500, "HTTP 500")]
    first = body["failures"][0]
    assert first["delivery_id"] == delivery and first["event_id"] == event_id
    assert first["endpoint_id"] == ep["id"] and first["endpoint_url"] == ep["url"]
    assert first["event_type"] == "order.created" and first["created_at"]
    _, body, _ = await api.call("GET", "/api/webhook-metrics/recent-failures", key,
                                params={"limit": "1"})
    assert len(body["failures"]) == 1
    for bad in ("0", "101", "x"):
        status, _, _ = await api.call("GET", "/api/webhook-metrics/recent-failures", key,
                                      params={"limit": bad})
        assert status == 400


async def test_dead_letter_queue_pages(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    now = datetime.now(UTC)
    dead = []
    for i in range(5):
        dead.append(await insert_delivery(db, await new_event(api, key), ep["id"],
                                          "dead_letter", attempts=8,
                                          updated_at=now - timedelta(minutes=i)))
    # Two rows dead at the same instant: the id breaks the tie.
    same = now - timedelta(minutes=10)
    for _ in range(2):
        dead.append(await insert_delivery(db, await new_event(api, key), ep["id"],
                                          "dead_letter", updated_at=same))
    await insert_delivery(db, await new_event(api, key), ep["id"], "failed")
    expected = dead[:5] + dead[:4:-1]
    seen, cursor = [], None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        status, body, _ = await api.call("GET", "/api/webhook-metrics/dead-letter-queue", key,
                                         params=params)
        assert status == 200
        assert all(set(d) == FIELDS and d["status"] == "dead_letter" for d in body["deliveries"])
        seen += [d["id"] for d in body["deliveries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    for params in ({"limit": "0"}, {"cursor": "AAAA"}, {"cursor": "f" * 22}):
        status, _, _ = await api.call("GET", "/api/webhook-metrics/dead-letter-queue", key,
                                      params=params)
        assert status == 400, params


async def test_deliveries_are_isolated_between_organizations(
        api: Api, db: asyncpg.Connection) -> None:
    alice, bob = await api.new_org("alice"), await api.new_org("bob")
    ep = await new_endpoint(api, alice)
    event_id = await new_event(api, alice)
    delivery = await insert_delivery(db, event_id, ep["id"], "dead_letter", attempts=2)
    await insert_attempt(db, delivery, 1, 500, error="HTTP 500")
    for path, field in [("/api/deliveries", "deliveries"),
                        ("/api/webhook-metrics/dead-letter-queue", "deliveries"),
                        ("/api/webhook-metrics/recent-failures", "failures")]:
        _, body, _ = await api.call("GET", path, bob)
        assert body[field] == [], path
        _, body, _ = await api.call("GET", path, alice)
        assert len(body[field]) == 1, path
    _, health, _ = await api.call("GET", "/api/webhook-metrics/queue-health", bob)
    assert health["metrics"]["dead_letter"] == 0 and health["stats"]["failure_rate"] == 0
    _, stats, _ = await api.call("GET", "/api/webhook-metrics/delivery-stats", bob)
    assert stats["summary"]["total"] == 0
    for method, path in [("GET", f"/api/deliveries/{delivery}"),
                         ("POST", f"/api/deliveries/{delivery}/retry"),
                         ("POST", f"/api/webhook-metrics/retry-failed/{delivery}")]:
        status, _, _ = await api.call(method, path, bob)
        assert status == 404, path
    assert await db.fetchval("SELECT status FROM deliveries") == "dead_letter"
