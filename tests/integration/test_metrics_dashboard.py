"""GET /metrics and GET /dashboard on a real node and a real PostgreSQL.

The counters are process-wide (every node of the test process adds to them), so the
tests compare two scrapes rather than absolute values; the gauges are the node's own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingestor import queries_node
from supervisor.node.postgres import EmbeddedPostgres
from supervisor.node.tree import Node
from tests.conftest import Api, free_port, node_config
from tests.integration.test_delivery import running
from tests.receiver import receiver, status

Values = dict[str, float]
SCRIPT_PATH = "/hook<script>alert(1)</script>"


async def scrape(api: Api, token: str | None = None) -> Values:
    """Every sample of one scrape, by `name` or `name{label="value",...}`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with api.request("GET", "/metrics", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    values: Values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def delta(before: Values, after: Values, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def wait_scrape(api: Api, until: Callable[[Values], bool], timeout: float = 20.0) -> Values:
    deadline = time.monotonic() + timeout
    while True:
        values = await scrape(api)
        if until(values):
            return values
        assert time.monotonic() < deadline, "metrics did not reach the expected values"
        await asyncio.sleep(0.05)


async def dashboard(api: Api, **headers: str) -> tuple[int, str, aiohttp.ClientResponse]:
    async with api.request("GET", "/dashboard", headers=headers) as resp:
        return resp.status, await resp.text(), resp


async def post(api: Api, key: str, **event: Any) -> int:
    status_, _, _ = await api.call("POST", "/api/events", key,
                                   json={"type": "order.created", "payload": {}, **event})
    return status_


def database_up(values: Values) -> bool:
    return values.get("triggerd_database_up") == 1


async def test_ingest_counters_and_queue_gauges(api: Api, node: Node) -> None:
    before = await wait_scrape(api, database_up)
    key = await api.new_org(tier="free")  # 100 events a minute
    assert [await post(api, key) for _ in range(3)] == [202] * 3
    assert await post(api, key, dedup_id="d-1") == 202
    assert await post(api, key, dedup_id="d-1") == 409
    status_, body, _ = await api.call("POST", "/api/events/batch", key, json={"events": [
        {"type": "b", "payload": {}}, {"type": "b", "payload": {}, "dedup_id": "d-1"}]})
    assert status_ == 202 and body["accepted"] == 1 and body["duplicates"] == 1
    too_many = [{"type": "b", "payload": {}}] * 96  # 7 spent + 96 > 100 a minute
    status_, _, _ = await api.call("POST", "/api/events/batch", key, json={"events": too_many})
    assert status_ == 429

    after = await wait_scrape(api, database_up)
    assert delta(before, after, "triggerd_events_committed_total") == 5
    assert delta(before, after, "triggerd_events_duplicate_total") == 2
    assert delta(before, after, 'triggerd_ingest_rejected_total{reason="rate_limited"}') == 1
    assert delta(before, after, "triggerd_writer_batch_events_count") >= 4
    assert delta(before, after, "triggerd_writer_batch_events_sum") == 5
    assert delta(before, after, "triggerd_writer_flush_seconds_count") >= 4
    # This node only ingests: nothing routes its events.
    assert after["triggerd_queue_events_unrouted"] == 5
    assert after['triggerd_queue_deliveries{status="pending"}'] == 0
    assert after["triggerd_queue_oldest_pending_age_seconds"] == 0
    assert after["triggerd_tree_degraded"] == 0
    for name in ("Node", "Maintenance", "Ingest"):
        assert after[f'triggerd_supervisor_restarts_total{{supervisor="{name}"}}'] == 0
    assert after["triggerd_writer_queue_depth"] == 0
    assert after["triggerd_writer_queue_capacity"] == node.config.writer_queue
    assert "triggerd_pool_busy" not in after  # no deliver role


async def test_delivery_counters_and_dashboard(database_url: str,
                                              db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        before = await scrape(api)
        assert before["triggerd_pool_size"] == 50 and before["triggerd_pool_busy"] == 0
        key = await api.new_org(name="acme & <co>")
        refused = f"http://127.0.0.1:{free_port()}{SCRIPT_PATH}"
        for url in (rx.url("/ok"), rx.url("/gone", status(410)), refused):
            status_, body, _ = await api.call("POST", "/api/endpoints", key, json={"url": url})
            assert status_ == 201, body
        assert await post(api, key) == 202

        def settled(v: Values) -> bool:
            # database_up: on a loaded machine one scrape's queue query may time out, and
            # that scrape then carries no queue gauges.
            return database_up(v) and delta(
                before, v, "triggerd_dead_letters_total") >= 2 and delta(
                before, v, 'triggerd_delivery_attempts_total{outcome="delivered"}') >= 1

        after = await wait_scrape(api, settled)
        assert delta(before, after, "triggerd_events_routed_total") == 1
        assert delta(before, after, "triggerd_deliveries_created_total") == 3
        assert delta(before, after, "triggerd_deliveries_claimed_total") >= 6
        assert delta(before, after, 'triggerd_delivery_attempts_total{outcome="http_error"}') == 1
        assert delta(
            before, after, 'triggerd_delivery_attempts_total{outcome="connect_error"}') == 4
        assert delta(before, after, "triggerd_delivery_attempt_seconds_count") >= 6
        assert delta(before, after, "triggerd_dead_letters_total") == 2
        assert after["triggerd_queue_deliveries{status=\"dead_letter\"}"] == 2
        assert after["triggerd_queue_events_unrouted"] == 0

        code, page, resp = await dashboard(api)
        assert code == 200 and resp.content_type == "text/html"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        for part in ("Supervision tree", "Processing", "DeliveryPool", "HttpAcceptor"):
            assert part in page
        assert "/hook&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page
        assert "acme &amp; &lt;co&gt;" in page and rx.base + "/gone" in page
        assert "disabled: the receiver answered 410 Gone" in page


async def test_breaker_opening_is_counted_and_shown(database_url: str) -> None:
    async with running(database_url, breaker_threshold=2, breaker_cooldown=60.0) as (_, api):
        before = await scrape(api)
        key = await api.new_org()
        status_, body, _ = await api.call("POST", "/api/endpoints", key, json={
            "url": f"http://127.0.0.1:{free_port()}/down"})
        assert status_ == 201, body
        assert await post(api, key) == 202
        await wait_scrape(api, lambda v: delta(before, v, "triggerd_breaker_opened_total") == 1)
        _, page, _ = await dashboard(api)
        assert "breaker open until" in page and "/down" in page


async def test_dashboard_needs_the_admin_token_when_set(database_url: str) -> None:
    node = Node(node_config(database_url, admin_token="s3cret"))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret"}):
                status_, body, _ = await api.call("GET", "/dashboard", headers=headers)
                assert status_ == 401 and "Admin token required" in str(body["error"])
            code, page, _ = await dashboard(api, Authorization="Bearer s3cret")
            assert code == 200 and "Ingest" in page and "EventWriter" in page
            assert (await scrape(api, "s3cret"))["triggerd_database_up"] == 1
            async with api.request("GET", "/metrics") as resp:
                assert resp.status == 401  # /metrics is for operators too
    finally:
        await node.root.stop(10)


@pytest.mark.slow
async def test_scrape_succeeds_with_postgres_down(own_server: EmbeddedPostgres) -> None:
    node = Node(node_config(own_server.dsn))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            assert (await scrape(api))["triggerd_database_up"] == 1
            await asyncio.to_thread(own_server.kill)
            started = time.monotonic()
            values = await scrape(api)
            assert time.monotonic() - started < 1.5
            assert values["triggerd_database_up"] == 0
            assert "triggerd_queue_events_unrouted" not in values  # unknown, not 0
            assert "triggerd_events_committed_total" in values
            code, page, _ = await dashboard(api)
            assert code == 200 and "PostgreSQL did not answer" in page
            await asyncio.to_thread(own_server.restart_server)
            await wait_scrape(api, lambda v: v["triggerd_database_up"] == 1)
    finally:
        await node.root.stop(10)


async def test_queue_query_reads_only_the_partial_indexes(db: asyncpg.Connection) -> None:
    org, endpoint = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    await db.execute("INSERT INTO endpoints (id, org_id, url, secret) "
                     "VALUES ($1, $2, 'http://example.com/', 'whsec_eA==')", endpoint, org)
    await db.execute("INSERT INTO events (id, org_id, type, payload, routed_at) "
                     "SELECT gen_random_uuid(), $1, 't', '{}', now() "
                     "FROM generate_series(1, 20000)", org)
    # Mostly delivered, as a live table is: a few waiting, leased and dead.
    await db.execute("INSERT INTO deliveries (event_id, endpoint_id, org_id, status) "
                     "SELECT id, $1, $2, CASE WHEN random() < 0.99 THEN 'delivered' "
                     "ELSE 'pending' END FROM events", endpoint, org)
    await db.execute("ANALYZE")
    rows = await db.fetch("EXPLAIN " + queries_node.QUEUE_STATE)
    plan = "\n".join(r[0] for r in rows)
    assert "Seq Scan" not in plan, plan
    row = await db.fetchrow(queries_node.QUEUE_STATE)
    assert row["pending"] > 0 and row["unrouted"] == 0 and row["dead_letter"] == 0
