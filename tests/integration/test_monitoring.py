"""Monitoring on real PostgreSQL and real HTTP: delivery performance per endpoint and
per event type (from known attempt rows, and from a real delivery), the alerts the
Alerter records with their outcomes (against real local hooks), their retention, and the
plans of the monitoring queries."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from ingestor import queries_monitoring, routes_monitoring
from ingestor.openapi import document
from supervisor.node.tree import Node
from tests.conftest import Api
from tests.integration.delivery_helpers import insert_delivery, new_endpoint, new_event
from tests.integration.test_delivery import endpoint, post, running, wait_statuses
from tests.integration.test_openapi import check_answer, fetch
from tests.receiver import fail_first, receiver, status
from workers import alerter as alerter_module
from workers.alerter import Alert, Alerter
from workers.pruner import Pruner

PERFORMANCE = "/api/webhook-metrics/performance"
ALERTS = "/api/webhook-metrics/alerts"


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ranked = sorted(values)
    position = fraction * (len(ranked) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ranked[low] + (ranked[high] - ranked[low]) * (position - low)


def expected(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    return {name: round(percentile_cont(values, f), 3)
            for name, f in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


async def org_of(api: Api, key: str) -> str:
    _, body, _ = await api.call("GET", "/api/keys", key)
    return str(body["organization_id"])


async def add_attempts(db: asyncpg.Connection, delivery: int, type_: str,
                       durations: list[float], latencies: list[float | None],
                       age: timedelta = timedelta(minutes=1)) -> None:
    """Attempt rows as the ResultWriter stores them (a latency only for a success)."""
    await db.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempt, response_status, duration_ms,"
        " org_id, endpoint_id, event_type, latency_ms, created_at)"
        " SELECT $1, 1, CASE WHEN u.latency IS NULL THEN 500 ELSE 200 END, u.duration,"
        "        d.org_id, d.endpoint_id, $2, u.latency, now() - $3::interval"
        " FROM unnest($4::float8[], $5::float8[]) AS u (duration, latency), deliveries d"
        " WHERE d.id = $1", delivery, type_, age, durations, latencies)


async def seeded(api: Api, db: asyncpg.Connection, name: str) -> tuple[str, list[str], int]:
    """An organization with two endpoints and a delivery to each; its key, endpoint ids
    and the first delivery."""
    key = await api.new_org(name)
    ids = [(await new_endpoint(api, key))["id"] for _ in range(2)]
    event = await new_event(api, key)
    deliveries = [await insert_delivery(db, event, i, "delivered", 1) for i in ids]
    return key, ids, deliveries[0]


async def test_performance_per_endpoint_and_event_type(api: Api, db: asyncpg.Connection) -> None:
    key, (a, b), first = await seeded(api, db, "acme")
    second = int(await db.fetchval("SELECT id FROM deliveries WHERE endpoint_id = $1", b))
    durations = [float(n) for n in range(1, 11)]
    latencies: list[float | None] = [100.0, 250.0, 90.0, None, 400.0, 120.0, 80.0, None,
                                     1000.0, 60.0]
    await add_attempts(db, first, "order.created", durations, latencies)
    await add_attempts(db, second, "user.signup", [30.0, 40.0, 50.0], [None] * 3)
    await add_attempts(db, second, "order.created", [5.0], [7.5])
    other, (foreign, _), foreign_delivery = await seeded(api, db, "other")
    await add_attempts(db, foreign_delivery, "order.created", [9.0] * 50, [1.0] * 50)

    status_, body, _ = await api.call("GET", PERFORMANCE, key)
    assert status_ == 200, body
    assert body["range"] == "24h" and body["sampled"] is False
    by_endpoint = {e["endpoint_id"]: e for e in body["by_endpoint"]}
    assert list(by_endpoint) == [a, b]  # largest first; no other organization's
    successes = [v for v in latencies if v is not None]
    assert by_endpoint[a] == {
        "endpoint_id": a, "url": "https://93.184.216.34/hook", "attempts": 10, "delivered": 8,
        "success_rate": 0.8, "duration_ms": expected(durations),
        "latency_ms": expected(successes)}
    assert by_endpoint[b]["attempts"] == 4 and by_endpoint[b]["success_rate"] == 0.25
    assert by_endpoint[b]["latency_ms"] == expected([7.5])
    types = {t["event_type"]: t for t in body["by_event_type"]}
    assert list(types) == ["order.created", "user.signup"]
    assert types["order.created"]["attempts"] == 11
    assert types["order.created"]["duration_ms"] == expected([*durations, 5.0])
    assert types["order.created"]["latency_ms"] == expected([*successes, 7.5])
    assert types["user.signup"] == {
        "event_type": "user.signup", "attempts": 3, "delivered": 0, "success_rate": 0.0,
        "duration_ms": expected([30.0, 40.0, 50.0]), "latency_ms": expected([])}
    _, theirs, _ = await api.call("GET", PERFORMANCE, other)
    assert [e["endpoint_id"] for e in theirs["by_endpoint"]] == [foreign]
    assert theirs["by_endpoint"][0]["attempts"] == 50


async def test_performance_range_and_cap(api: Api, db: asyncpg.Connection,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key, (a, _), first = await seeded(api, db, "acme")
    await add_attempts(db, first, "t", [1.0] * 2, [5.0] * 2, timedelta(minutes=5))
    await add_attempts(db, first, "t", [2.0] * 3, [5.0] * 3, timedelta(hours=3))
    await add_attempts(db, first, "t", [3.0] * 4, [5.0] * 4, timedelta(days=3))
    await add_attempts(db, first, "t", [4.0] * 5, [5.0] * 5, timedelta(days=8))
    for range_, count in (("1h", 2), ("24h", 5), ("7d", 9)):
        status_, body, _ = await api.call("GET", PERFORMANCE, key, params={"range": range_})
        assert status_ == 200 and body["range"] == range_, body
        assert body["by_endpoint"][0]["attempts"] == count, (range_, body)
    monkeypatch.setattr(routes_monitoring, "PERFORMANCE_CAP", 4)
    _, body, _ = await api.call("GET", PERFORMANCE, key, params={"range": "7d"})
    assert body["sampled"] is True
    # the latest four: the two of 5 minutes ago and two of 3 hours ago
    assert body["by_endpoint"][0]["attempts"] == 4
    assert body["by_endpoint"][0]["duration_ms"]["p50"] == 1.5


async def test_performance_over_its_time_answers_503(api: Api, db: asyncpg.Connection,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    key = await api.new_org()
    monkeypatch.setattr(routes_monitoring, "STATEMENT_TIMEOUT_MS", 300)
    async with db.transaction():  # the query waits for this lock until its timeout
        await db.execute("LOCK TABLE delivery_attempts IN ACCESS EXCLUSIVE MODE")
        status_, body, resp = await api.call("GET", PERFORMANCE, key)
    assert status_ == 503 and "longer than 0.3 s" in str(body["error"]), body
    assert resp.headers["Retry-After"] == "1"
    status_, body, _ = await api.call("GET", PERFORMANCE, key)  # the connection is fine
    assert status_ == 200 and body["by_endpoint"] == [], body


async def test_alerts_newest_first_paged_and_scoped(api: Api, db: asyncpg.Connection) -> None:
    key, (a, _), _ = await seeded(api, db, "acme")
    other, (foreign, _), _ = await seeded(api, db, "other")
    for n in range(5):
        await db.execute("INSERT INTO alerts (org_id, endpoint_id, kind, message, status)"
                         " SELECT org_id, id, 'disabled', $2, 'sent' FROM endpoints"
                         " WHERE id = $1", a, f"mine {n}")
    await db.execute("INSERT INTO alerts (org_id, endpoint_id, kind, message, status, error)"
                     " SELECT org_id, id, 'dead_letter', 'theirs', 'failed', 'HTTP 500'"
                     " FROM endpoints WHERE id = $1", foreign)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status_, body, resp = await api.call("GET", ALERTS, key, params=params)
        assert status_ == 200 and "x-ratelimit-remaining" in resp.headers, body
        seen += [str(alert["message"]) for alert in body["alerts"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"mine {n}" for n in (4, 3, 2, 1, 0)]
    _, body, _ = await api.call("GET", ALERTS, other)
    assert [(x["kind"], x["status"], x["error"], x["endpoint_id"]) for x in body["alerts"]] == [
        ("dead_letter", "failed", "HTTP 500", foreign)]


@pytest.mark.parametrize(("path", "params"), [
    (PERFORMANCE, {"range": "30d"}), (PERFORMANCE, {"range": ""}),
    (ALERTS, {"limit": "0"}), (ALERTS, {"limit": "1001"}), (ALERTS, {"limit": "ten"}),
    (ALERTS, {"cursor": "not a cursor"}), (ALERTS, {"cursor": ""})])
async def test_bad_parameters_answer_400(api: Api, path: str, params: dict[str, str]) -> None:
    key = await api.new_org()
    status_, body, resp = await api.call("GET", path, key, params=params)
    assert status_ == 400 and resp.content_type == "application/json", body
    assert isinstance(body["error"], str)
    status_, _, _ = await api.call("GET", path)
    assert status_ == 401


async def test_answers_match_the_document(api: Api, db: asyncpg.Connection) -> None:
    doc = document()
    key, (a, _), first = await seeded(api, db, "acme")
    await add_attempts(db, first, "t", [1.0, 2.0], [None, 3.0])
    await db.execute("INSERT INTO alerts (org_id, endpoint_id, kind, message, status)"
                     " SELECT org_id, id, 'disabled', 'm', 'not_configured' FROM endpoints"
                     " WHERE id = $1", a)
    for path, params in ((PERFORMANCE, {"range": "1h"}), (ALERTS, {"limit": "1"}),
                         (PERFORMANCE, {"range": "bogus"})):
        status_, body, resp = await fetch(api, "GET", path, key, params=params)
        check_answer(doc, ("GET", path), status_, body, resp)


async def test_a_real_delivery_records_what_monitoring_reads(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/hook", fail_first(1)))
        await post(api, key, "invoice.paid", n=1)
        await wait_statuses(db, {"delivered"}, 1)
        rows = await db.fetch("SELECT org_id::text, endpoint_id::text, event_type, latency_ms,"
                              " duration_ms, response_status FROM delivery_attempts ORDER BY id")
        assert [r["response_status"] for r in rows] == [500, 200]
        org = await org_of(api, key)
        assert {(r["org_id"], r["endpoint_id"], r["event_type"]) for r in rows} == {
            (org, ep["id"], "invoice.paid")}
        failed, delivered = rows
        assert failed["latency_ms"] is None
        # accepted, a failed attempt, a retry delay of 100 ms (+/- 20 %), then the answer
        assert delivered["latency_ms"] >= 80 + delivered["duration_ms"]
        _, body, _ = await api.call("GET", PERFORMANCE, key, params={"range": "1h"})
        assert body["by_endpoint"][0]["endpoint_id"] == ep["id"]
        assert body["by_endpoint"][0]["success_rate"] == 0.5
        assert body["by_event_type"][0]["latency_ms"]["p50"] == round(
            delivered["latency_ms"], 3)


async def wait_alerts(db: asyncpg.Connection, count: int,
                      timeout: float = 10.0) -> list[asyncpg.Record]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await db.fetch("SELECT org_id::text, endpoint_id::text, kind, message, status,"
                              " error FROM alerts ORDER BY id")
        if len(rows) >= count:
            return list(rows)
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.05)


async def test_dead_letter_without_a_hook_is_recorded_not_configured(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/down", status(500)))
        event_id = await post(api, key)
        await wait_statuses(db, {"dead_letter"}, 1)
        [row] = await wait_alerts(db, 1)
        assert (row["org_id"], row["endpoint_id"], row["kind"], row["status"]) == (
            await org_of(api, key), ep["id"], "dead_letter", "not_configured")
        assert event_id in row["message"] and row["error"] is None
        _, body, _ = await api.call("GET", ALERTS, key)
        assert [a["status"] for a in body["alerts"]] == ["not_configured"]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield created
    await created.close()


async def an_endpoint(db: asyncpg.Connection) -> tuple[str, str]:
    org, endpoint_id = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    await db.execute("INSERT INTO endpoints (id, org_id, url, secret) "
                     "VALUES ($1, $2, 'http://example.com/', 'whsec_eA==')", endpoint_id, org)
    return str(org), str(endpoint_id)


@pytest.fixture
async def started() -> AsyncIterator[list[Alerter]]:
    """Alerters a test starts, stopped at its end."""
    alerters: list[Alerter] = []
    yield alerters
    for one in alerters:
        await one.stop(6.0)


async def test_alerts_sent_failed_and_coalesced_with_real_hooks(
        db: asyncpg.Connection, pool: asyncpg.Pool, started: list[Alerter],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerter_module, "COALESCE_S", 0.5)
    org, ep = await an_endpoint(db)
    async with receiver() as rx:
        good, bad = Alerter(rx.url("/ok"), lambda: pool), Alerter(rx.url("/500", status(500)),
                                                                    lambda: pool)
        for one in (good, bad):
            await one.start()
            started.append(one)
        for n in range(3):
            good.notify(Alert.dead_letter(ep, "http://example.com/", f"ev{n}", "HTTP 503"))
        bad.notify(Alert.breaker_opened(ep, "http://example.com/", 20, 30))
        rows = await wait_alerts(db, 5)
        await rx.wait_for(lambda: len(rx.at("/ok")) == 2 and len(rx.at("/500")) == 1)
    by_status = sorted((r["status"], r["kind"], r["error"]) for r in rows)
    assert by_status == [("coalesced", "dead_letter", None), ("coalesced", "dead_letter", None),
                         ("failed", "breaker_opened", "HTTP 500"),
                         ("sent", "dead_letter", None), ("sent", "dead_letter", None)]
    assert {r["org_id"] for r in rows} == {org} and {r["endpoint_id"] for r in rows} == {ep}
    summary = [r["message"] for r in rows if r["status"] == "sent"]
    assert "ev0" in summary[0] and "2 more event(s)" in summary[1]


async def test_an_unreachable_hook_is_recorded_failed(
        db: asyncpg.Connection, pool: asyncpg.Pool, started: list[Alerter]) -> None:
    _, ep = await an_endpoint(db)
    async with receiver() as rx:
        closed = rx.base  # nothing listens here once the receiver is gone
    one = Alerter(closed + "/alerts", lambda: pool)
    await one.start()
    started.append(one)
    one.notify(Alert.disabled(ep, "http://example.com/", "410 Gone"))
    [row] = await wait_alerts(db, 1)
    assert row["status"] == "failed" and row["error"].startswith("ClientConnectorError")


def restarting() -> asyncpg.Pool:
    raise ConnectionError("database is restarting")


async def test_the_alerter_outlives_an_unreachable_database(
        db: asyncpg.Connection, pool: asyncpg.Pool, database_url: str,
        started: list[Alerter], caplog: pytest.LogCaptureFixture) -> None:
    _, ep = await an_endpoint(db)
    closed = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    await closed.close()
    current: list[Any] = [closed]
    async with receiver() as rx:
        one = Alerter(rx.url("/alerts"), lambda: restarting() if current[0] is None else current[0])
        await one.start()
        started.append(one)
        with caplog.at_level(logging.WARNING, logger="workers.alerter"):
            for n in range(3):  # three writes, each failing
                one.notify(Alert.disabled(ep, "http://example.com/", f"reason {n}"))
                await rx.wait_for(lambda n=n: len(rx.at("/alerts")) == n + 1)
                await rx.wait_for(lambda n=n: one.records.lost == n + 1)
        assert not one.done and one.records.recorded == 0
        assert len([r for r in caplog.records if "not recorded" in r.message]) == 1  # throttled
        current[0] = None  # what the node's pool() does while the database restarts
        one.notify(Alert.disabled(ep, "http://example.com/", "restarting"))
        await rx.wait_for(lambda: one.records.lost == 4)
        current[0] = pool
        one.notify(Alert.disabled(ep, "http://example.com/", "back"))
        [row] = await wait_alerts(db, 1)
    assert row["status"] == "sent" and "back" in row["message"] and not one.done


async def test_pruner_deletes_old_alerts(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    org, ep = await an_endpoint(db)
    for age in ("1 hour", "2 days", "8 days", "30 days"):
        await db.execute("INSERT INTO alerts (org_id, endpoint_id, kind, message, status,"
                         " created_at) VALUES ($1, $2, 'disabled', $3::text, 'sent',"
                         " now() - $3::text::interval)", uuid.UUID(org), uuid.UUID(ep), age)
    await Pruner(lambda: pool, retention=30 * 86_400.0).tick()
    left = [r["message"] for r in await db.fetch("SELECT message FROM alerts ORDER BY id")]
    assert left == ["1 hour", "2 days"]
    shorter = Pruner(lambda: pool, retention=86_400.0)  # a retention below 7 days wins
    await shorter.tick()
    assert shorter.pruned_alerts == 1
    assert [r["message"] for r in await db.fetch("SELECT message FROM alerts")] == ["1 hour"]


async def test_monitoring_queries_walk_their_indexes(db: asyncpg.Connection) -> None:
    org, ep = await an_endpoint(db)
    await db.execute("INSERT INTO events (id, org_id, type, payload) "
                     "VALUES (gen_random_uuid(), $1, 't', '{}')", uuid.UUID(org))
    delivery = await db.fetchval("INSERT INTO deliveries (event_id, endpoint_id, org_id) "
                                 "SELECT id, $1, org_id FROM events RETURNING id",
                                 uuid.UUID(ep))
    await db.execute("INSERT INTO delivery_attempts (delivery_id, attempt, duration_ms, org_id,"
                     " endpoint_id, event_type, latency_ms, created_at)"
                     " SELECT $1, 1, n % 100, CASE n % 4 WHEN 0 THEN $2::uuid WHEN 1 THEN NULL"
                     "        ELSE $4::uuid END, $3, 't', n, now() - n * interval '1 second'"
                     " FROM generate_series(1, 40000) AS n",  # a quarter ours; others, old rows
                     delivery, uuid.UUID(org), uuid.UUID(ep), uuid.uuid4())
    await db.execute("ANALYZE")
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        rows = await db.fetch("EXPLAIN (ANALYZE) " + queries_monitoring.PERFORMANCE,
                              uuid.UUID(org), timedelta(hours=24), 200_000, 100)
        alerts = await db.fetch("EXPLAIN " + queries_monitoring.ALERTS, uuid.UUID(org),
                                None, 51)
    plan = "\n".join(r[0] for r in rows)
    assert "delivery_attempts_org" in plan, plan
    assert "Seq Scan on delivery_attempts" not in plan, plan
    assert "alerts_org" in "\n".join(r[0] for r in alerts)


async def test_node_passes_the_pool_to_the_alerter(node: Node) -> None:
    one = node.child("maintenance", "alerter", Alerter)
    assert one is not None and not one.done
