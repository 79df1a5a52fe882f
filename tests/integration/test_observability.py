"""What an SRE alerts on, on a real node and a real PostgreSQL: the request, latency,
endpoint-state, result-writer and pool series of /metrics, the log lines of attempts
with their ids, and the nodes' heartbeat rows.

Counters and histograms are process-wide, so the tests compare two scrapes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from ingestor.nodes import list_nodes
from ingestor.queries_node import ENDPOINT_STATES
from supervisor.node import logs
from supervisor.node.tree import Node
from tests.conftest import Api, free_port, node_config
from tests.integration.test_delivery import endpoint, post, running, wait_statuses
from tests.integration.test_metrics_dashboard import Values, delta, scrape, wait_scrape
from tests.integration.test_result_fencing import _claim, _events, _org, _outcome, _writer
from tests.receiver import fail_first, receiver, status
from workers.deliverer import VERSION

ROOT = Path(__file__).resolve().parents[2]
LATENCY = "triggerd_ingest_to_delivered_seconds"


def requests(values: Values, group: str, status_class: str) -> float:
    labels = f'route_group="{group}",status_class="{status_class}"'
    return values.get(f"triggerd_http_request_seconds_count{{{labels}}}", 0.0)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the process logs at INFO and above while the test runs."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_requests_are_timed_by_route_group_and_status_class(api: Api) -> None:
    before = await scrape(api)
    key = await api.new_org()
    assert await post(api, key) is not None
    async with api.request("POST", "/api/events", data=b"{not json",
                           headers={"X-API-Key": key, "Content-Type": "application/json"}
                           ) as resp:
        assert resp.status == 400
    async with api.request("GET", "/api/endpoints", headers={"X-API-Key": "tgd_wrong"}) as resp:
        assert resp.status == 401
    async with api.request("GET", f"/no/such/{uuid.uuid4()}") as resp:
        assert resp.status == 404
    after = await scrape(api)
    assert requests(after, "ingest", "2xx") - requests(before, "ingest", "2xx") == 1
    assert requests(after, "ingest", "4xx") - requests(before, "ingest", "4xx") == 1
    assert requests(after, "api", "4xx") - requests(before, "api", "4xx") == 1
    assert requests(after, "unmatched", "4xx") - requests(before, "unmatched", "4xx") == 1
    assert requests(after, "node", "2xx") - requests(before, "node", "2xx") >= 1  # a scrape
    # the label sets are fixed: nothing of the paths or ids clients sent
    names = {name for name in after if name.startswith("triggerd_http_request_seconds")}
    assert not [name for name in names if "/" in name]


async def test_a_delivery_is_timed_from_acceptance_and_logged_with_its_ids(
        database_url: str, log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    async with receiver() as rx, running(database_url, log_delivered_sample=1.0) as (node, api):
        before = await scrape(api)
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/ok"))
        event_id = await post(api, key)
        after = await wait_scrape(api, lambda v: delta(before, v, f"{LATENCY}_count") == 1)
        assert 0 < delta(before, after, f"{LATENCY}_sum") < 10
        # no other delivery in the test moves it (wait long enough for a second one)
        await asyncio.sleep(0.3)
        assert delta(before, await scrape(api), f"{LATENCY}_count") == 1
    [line] = [x for x in log_lines() if x["logger"] == "workers.attempt_log"]
    assert line["level"] == "info" and "delivered on attempt 1" in line["msg"]
    assert line["event_id"] == event_id and line["endpoint_id"] == ep["id"]
    assert line["node"] == node.name and line["outcome"] == "delivered"
    assert line["response_status"] == 200 and isinstance(line["delivery_id"], int)
    assert isinstance(line["org_id"], str) and 0 < line["latency_s"] < 10
    # every line the node's tree wrote says which node it was, without being told
    recorded = [x for x in log_lines() if x["msg"].startswith("recorded outcomes=")]
    assert recorded and {x.get("node") for x in recorded} == {node.name}


async def test_failed_attempts_are_logged_one_line_each(
        database_url: str, db: asyncpg.Connection,
        log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        flaky = await endpoint(api, key, rx.url("/flaky", fail_first(2)))
        down = await endpoint(api, key, rx.url("/down", status(503)))
        event_id = await post(api, key)
        await wait_statuses(db, {"delivered", "dead_letter"}, 2)
    attempts = [x for x in log_lines() if x["logger"] == "workers.attempt_log"]
    by_endpoint = {e["id"]: [x for x in attempts if x["endpoint_id"] == e["id"]]
                   for e in (flaky, down)}
    # the default sample is 0: the success is not logged, only the two failures
    assert [(x["attempt"], x["level"]) for x in by_endpoint[flaky["id"]]] == [
        (1, "info"), (2, "info")]
    # the schedule's 3 retries, then a dead letter
    assert [(x["attempt"], x["level"]) for x in by_endpoint[down["id"]]] == [
        (1, "info"), (2, "info"), (3, "info"), (4, "warning")]
    for line in attempts:
        assert line["event_id"] == event_id and line["org_id"] and line["node"]
        assert line["outcome"] == "http_error" and line["response_status"] in (500, 503)
        assert line["error"] == f"HTTP {line['response_status']}" and line["duration_ms"] >= 0
        assert isinstance(line["delivery_id"], int)
    assert all("next_attempt_at" in x for x in attempts if x["level"] == "info")
    assert "now a dead letter" in by_endpoint[down["id"]][-1]["msg"]


async def test_endpoint_states_are_counted_node_wide(database_url: str,
                                                     db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url, breaker_threshold=1,
                                         breaker_cooldown=60.0) as (_, api):
        empty = await wait_scrape(api, lambda v: 'triggerd_endpoints{state="paused"}' in v)
        assert {s: empty[f'triggerd_endpoints{{state="{s}"}}'] for s in (
            "disabled", "paused", "breaker_open", "breaker_half_open")} == dict.fromkeys(
            ("disabled", "paused", "breaker_open", "breaker_half_open"), 0)
        key = await api.new_org()
        await endpoint(api, key, f"http://127.0.0.1:{free_port()}/refused")
        await endpoint(api, key, rx.url("/gone", status(410)))
        await post(api, key)
        # another organization's endpoints count too: one paused, one half-open
        other = await api.new_org("other")
        paused = await endpoint(api, other, rx.url("/paused"))
        half_open = await endpoint(api, other, rx.url("/probe"))
        await db.execute("UPDATE endpoints SET paused_at = now() WHERE id = $1",
                         uuid.UUID(paused["id"]))
        await db.execute("UPDATE endpoints SET breaker_cooldown_s = 30, breaker_open_until = "
                         "now() - interval '1 second' WHERE id = $1", uuid.UUID(half_open["id"]))

        def counted(v: Values) -> bool:
            return all(v.get(f'triggerd_endpoints{{state="{state}"}}') == 1 for state in (
                "disabled", "paused", "breaker_open", "breaker_half_open"))

        await wait_scrape(api, counted)


async def test_the_endpoint_states_read_only_the_held_index(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    await db.execute("INSERT INTO endpoints (id, org_id, url, secret) "
                     "SELECT gen_random_uuid(), $1, 'http://example.com/', 'whsec_eA==' "
                     "FROM generate_series(1, 20000)", org)
    await db.execute("UPDATE endpoints SET enabled = false WHERE id IN "
                     "(SELECT id FROM endpoints LIMIT 3)")
    await db.execute("ANALYZE endpoints")
    rows = await db.fetch("EXPLAIN (ANALYZE) " + ENDPOINT_STATES, 10_000)
    plan = "\n".join(r[0] for r in rows)
    assert "endpoints_held" in plan and "Seq Scan" not in plan, plan
    assert (await db.fetchrow(ENDPOINT_STATES, 10_000))["disabled"] == 3
    assert (await db.fetchrow(ENDPOINT_STATES, 2))["read"] == 2  # bounded


async def test_writer_backlog_pool_use_and_build_info(database_url: str) -> None:
    async with running(database_url, db_pool_size=7) as (_, api):
        values = await scrape(api)
    assert values["triggerd_result_writer_backlog"] == 0
    for kind in ("transient", "refused"):
        assert f'triggerd_result_write_failures_total{{kind="{kind}"}}' in values
    in_use = values['triggerd_db_pool_connections{state="in_use"}']
    idle = values['triggerd_db_pool_connections{state="idle"}']
    assert in_use >= 0 and idle >= 0 and 1 <= in_use + idle <= 7  # at least min_size open
    assert values["triggerd_db_pool_max_connections"] == 7
    build = f'triggerd_build_info{{python="{platform.python_version()}",version="{VERSION}"}}'
    assert values[build] == 1


async def test_result_write_failures_are_counted_by_kind(
        database_url: str, db: asyncpg.Connection) -> None:
    def failures(kind: str) -> float:
        return REGISTRY.get_sample_value("triggerd_result_write_failures_total",
                                         {"kind": kind}) or 0.0

    before = {kind: failures(kind) for kind in ("transient", "refused")}
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        org, _ = await _org(db)
        await _events(db, org, 3)
        first, *rest = await _claim(pool, 3)
        away = [True]

        def flaky_pool() -> asyncpg.Pool:
            if away:
                away.pop()
                raise ConnectionError("database is restarting")
            return pool

        writer = _writer(pool)
        writer._pool = flaky_pool
        await writer._record([_outcome(first)])  # fails once, then is written
        await db.execute("ALTER TABLE delivery_attempts ADD CONSTRAINT no_poison "
                         "CHECK (response_body IS DISTINCT FROM 'poison')")
        await writer._record([_outcome(rest[0], body="poison"), _outcome(rest[1])])
    assert failures("transient") - before["transient"] == 1
    assert failures("refused") - before["refused"] == 2  # the batch of two, then the row
    assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 2


async def _row(db: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM nodes WHERE name = $1", name)


async def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_node_beats_while_it_runs_and_leaves_when_it_stops(
        database_url: str, db: asyncpg.Connection) -> None:
    async with running(database_url, heartbeat_interval=0.2) as (node, _):
        await _until(lambda: _row(db, node.name))  # the first beat, as the tree starts
        row = await _until(lambda: _full_beat(db, node.name))
        assert row["roles"] == ["deliver", "ingest", "process"] and row["pid"] == os.getpid()
        assert row["version"] == VERSION and row["interval_s"] == pytest.approx(0.2)
        assert row["host"] == node.name.split(":")[0]
        stats = orjson.loads(row["stats"])
        assert stats["restarts"] == {"Node": 0, "Maintenance": 0, "Processing": 0,
                                     "Ingest": 0}
        assert stats["pool"] == {"size": 50, "busy": 0} and stats["degraded"] is False
        assert stats["writer_queue"] == 0 and stats["results_backlog"] == 0
        assert stats["db_pool"]["max"] == node.config.db_pool_size
        later = await _until(lambda: _seen_after(db, node.name, row["seen_at"]))
        assert later["started_at"] == row["started_at"]
        [listed] = await list_nodes(db)
        assert listed.name == node.name and listed.alive and listed.seen_ago_s < 1
        assert listed.roles == ("deliver", "ingest", "process") and listed.stats["pool"]
    assert await _row(db, node.name) is None  # a clean stop deletes the row


async def _full_beat(db: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    """The node's row once it was written with the whole tree running."""
    row = await _row(db, name)
    return row if row is not None and "Ingest" in orjson.loads(row["stats"])["restarts"] else None


async def _seen_after(db: asyncpg.Connection, name: str, seen: Any) -> asyncpg.Record | None:
    row = await _row(db, name)
    return row if row is not None and row["seen_at"] > seen else None


async def test_an_ingest_only_node_reports_no_pool(database_url: str,
                                                   db: asyncpg.Connection) -> None:
    node = Node(node_config(database_url, heartbeat_interval=0.2))
    await node.root.start()
    try:
        row = await _until(lambda: _full_beat(db, node.name))
        stats = orjson.loads(row["stats"])
        assert stats["pool"] is None and stats["results_backlog"] is None
        assert row["roles"] == ["ingest"]
    finally:
        await node.root.stop(10)


async def test_old_rows_are_pruned_and_stale_ones_are_not_alive(
        database_url: str, db: asyncpg.Connection) -> None:
    for name, seen in (("gone:1:1", "2 days"), ("quiet:1:1", "10 seconds")):
        await db.execute("INSERT INTO nodes (name, roles, version, pid, host, started_at, "
                         "interval_s, seen_at) VALUES ($1, '{ingest}', '0', 1, 'h', now(), 1, "
                         f"now() - interval '{seen}')", name)
    async with running(database_url, heartbeat_interval=0.2) as (node, _):
        await _until(lambda: _row(db, node.name))

        async def pruned() -> bool:  # not seen for over a day
            return await _row(db, "gone:1:1") is None

        await _until(pruned)
        alive = {n.name: n.alive for n in await list_nodes(db)}
        assert alive == {node.name: True, "quiet:1:1": False}


def _spawn(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port),
           "TRIGGERD_ROLES": "ingest", "TRIGGERD_LOG_FORMAT": "json",
           "TRIGGERD_HEARTBEAT_INTERVAL": "200ms"}
    return subprocess.Popen([sys.executable, "-m", "supervisor.node.cli", "serve"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.slow
async def test_a_killed_nodes_row_goes_stale(database_url: str, db: asyncpg.Connection) -> None:
    proc = _spawn(database_url, free_port())
    try:
        async def alive() -> list[Any]:
            assert proc.poll() is None, "the node exited"
            return [n for n in await list_nodes(db) if n.pid == proc.pid and n.alive]

        [started] = await _until(alive, timeout=30)
        assert started.roles == ("ingest",)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        async def stale() -> list[Any]:
            return [n for n in await list_nodes(db) if n.pid == proc.pid and not n.alive]

        [left] = await _until(stale, timeout=5)
        assert left.seen_ago_s >= 0.6 and left.name == started.name  # its row stays
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
async def test_a_stopped_node_process_leaves(database_url: str, db: asyncpg.Connection) -> None:
    proc = _spawn(database_url, free_port())
    try:
        await _until(lambda: _rows_of(db, proc.pid), timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not await _rows_of(db, proc.pid)
    finally:
        proc.kill()
        proc.wait()


async def _rows_of(db: asyncpg.Connection, pid: int) -> list[asyncpg.Record]:
    return list(await db.fetch("SELECT * FROM nodes WHERE pid = $1", pid))
