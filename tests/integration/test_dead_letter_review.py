"""Dead-letter review on a real node and a real PostgreSQL: resolving a dead letter
(who, when, why; refusals; isolation), the filtered dead-letter queue and its pages,
bulk retry in batches (counts, skipped endpoints, other organizations, concurrent
locks), retries clearing a resolution, bad input, and the index the queries walk.
Deliveries are written straight into the tables (no poller or deliverer runs here)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ingestor import dead_letters, ops_deliveries
from ingestor import queries_delivery as q
from tests.conftest import Api
from tests.integration.delivery_helpers import insert_delivery, new_endpoint, new_event

DLQ = "/api/webhook-metrics/dead-letter-queue"
BULK = DLQ + "/retry"
NOW = datetime.now(UTC).replace(microsecond=0)
MINUTE = timedelta(minutes=1)


def key_id_of(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).digest()[:8].hex()


async def dead(api: Api, db: asyncpg.Connection, key: str, endpoint: dict[str, Any],
               minutes_ago: int = 0, type_: str = "order.created", **columns: Any) -> int:
    """A dead letter that died `minutes_ago`."""
    return await insert_delivery(db, await new_event(api, key, type_), endpoint["id"],
                                 "dead_letter", attempts=8, last_error="HTTP 500",
                                 updated_at=NOW - minutes_ago * MINUTE, **columns)


async def row(db: asyncpg.Connection, delivery: int) -> asyncpg.Record:
    found = await db.fetchrow("SELECT status, attempts, updated_at, next_attempt_at <= now()"
                              " AS due, resolved_at, resolved_by, resolution_note "
                              "FROM deliveries WHERE id = $1", delivery)
    assert found is not None
    return found


async def listed(api: Api, key: str, **params: str) -> list[int]:
    """Every page of the dead-letter queue with these parameters, in order."""
    seen: list[int] = []
    cursor = None
    while True:
        page = {**params, **({"cursor": cursor} if cursor else {})}
        status, body, _ = await api.call("GET", DLQ, key, params=page)
        assert status == 200, (params, body)
        assert all(d["status"] == "dead_letter" for d in body["deliveries"])
        seen += [d["id"] for d in body["deliveries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_resolve_records_the_key_the_time_and_the_note(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    delivery = await dead(api, db, key, ep, minutes_ago=30)
    before = await row(db, delivery)
    status, body, resp = await api.call("POST", f"/api/deliveries/{delivery}/resolve", key,
                                        json={"note": "customer refunded by hand"})
    assert status == 200, body
    assert "x-ratelimit-remaining" in resp.headers
    after = await row(db, delivery)
    assert body["id"] == delivery and body["status"] == "dead_letter"
    assert body["resolved_by"] == key_id_of(key) == after["resolved_by"]
    assert body["resolution_note"] == "customer refunded by hand" == after["resolution_note"]
    assert datetime.fromisoformat(body["resolved_at"]) == after["resolved_at"]
    assert abs(after["resolved_at"] - datetime.now(UTC)) < timedelta(seconds=30)
    # Not sent again, and it keeps its place in the queue (the time it died).
    assert after["status"] == "dead_letter" and after["attempts"] == 8
    assert after["updated_at"] == before["updated_at"]
    assert body["resolved_by"].startswith("key_") and len(body["resolved_by"]) == 20
    _, shown, _ = await api.call("GET", f"/api/deliveries/{delivery}", key)
    assert (shown["resolved_at"], shown["resolved_by"], shown["resolution_note"]) == (
        body["resolved_at"], body["resolved_by"], body["resolution_note"])
    # Through Authorization: Bearer, the same key has the same id; the note may be left out.
    other = await dead(api, db, key, ep)
    status, body, _ = await api.call("POST", f"/api/deliveries/{other}/resolve",
                                     headers={"Authorization": f"Bearer {key}"}, json={})
    assert status == 200 and body["resolved_by"] == key_id_of(key), body
    assert body["resolution_note"] is None


async def test_resolve_refusals(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    for state in ("pending", "in_flight", "failed", "delivered", "cancelled"):
        delivery = await insert_delivery(db, await new_event(api, key), ep["id"], state)
        status, err, _ = await api.call("POST", f"/api/deliveries/{delivery}/resolve", key,
                                        json={"note": "x"})
        assert status == 409 and err["delivery_status"] == state, (state, err)
        assert "only dead_letter" in str(err["error"])
        assert (await row(db, delivery))["resolved_at"] is None
    delivery = await dead(api, db, key, ep)
    path = f"/api/deliveries/{delivery}/resolve"
    status, first, _ = await api.call("POST", path, key, json={"note": "first"})
    assert status == 200
    status, err, _ = await api.call("POST", path, key, json={"note": "second"})
    assert status == 409 and "already resolved" in str(err["error"]), err
    assert err["resolved_at"] == first["resolved_at"]
    assert err["resolved_by"] == key_id_of(key) and err["delivery_status"] == "dead_letter"
    assert (await row(db, delivery))["resolution_note"] == "first"
    for raw, expected in [(str(delivery + 1000), 404), ("0", 400), ("x", 400)]:
        status, err, _ = await api.call("POST", f"/api/deliveries/{raw}/resolve", key,
                                        json={})
        assert status == expected and "error" in err, raw
    status, _, _ = await api.call("POST", path, json={})
    assert status == 401


async def test_resolve_of_another_organizations_delivery_is_not_found(
        api: Api, db: asyncpg.Connection) -> None:
    alice, bob = await api.new_org("alice"), await api.new_org("bob")
    delivery = await dead(api, db, alice, await new_endpoint(api, alice))
    status, err, _ = await api.call("POST", f"/api/deliveries/{delivery}/resolve", bob,
                                    json={"note": "mine now"})
    assert status == 404 and err == {"error": "Delivery not found"}
    unchanged = await row(db, delivery)
    assert unchanged["resolved_at"] is None and unchanged["resolution_note"] is None
    _, body, _ = await api.call("GET", DLQ, bob)
    assert body["deliveries"] == []


async def test_dead_letter_queue_filters_and_pages(api: Api, db: asyncpg.Connection) -> None:
    key, other = await api.new_org("acme"), await api.new_org("other")
    a, b = await new_endpoint(api, key), await new_endpoint(api, key)
    made = []  # newest first: died 0, 10, 20, ... minutes ago
    for i in range(8):
        made.append(await dead(api, db, key, a if i % 2 else b, minutes_ago=10 * i,
                               type_="user.signup" if i < 3 else "order.created"))
    await insert_delivery(db, await new_event(api, key), a["id"], "failed")
    await dead(api, db, other, await new_endpoint(api, other))
    for delivery in made[1::3]:  # 1, 4, 7
        status, _, _ = await api.call("POST", f"/api/deliveries/{delivery}/resolve", key,
                                      json={})
        assert status == 200
    at = {i: (NOW - 10 * i * MINUTE).isoformat().replace("+00:00", "Z") for i in range(8)}
    cases: list[tuple[dict[str, str], list[int]]] = [
        ({}, made),
        ({"resolved": "true"}, [made[1], made[4], made[7]]),
        ({"resolved": "false"}, [made[i] for i in (0, 2, 3, 5, 6)]),
        ({"endpoint_id": a["id"]}, made[1::2]),
        ({"event_type": "user.signup"}, made[:3]),
        ({"since": at[5]}, made[:6]),           # dead at or after: inclusive
        ({"until": at[2]}, made[3:]),           # dead before: exclusive
        ({"since": at[6], "until": at[1]}, made[2:7]),
        ({"since": at[1], "until": at[6]}, []),  # an empty window is an empty page
        ({"endpoint_id": b["id"], "resolved": "false", "event_type": "order.created"},
         [made[6]]),
        ({"endpoint_id": a["id"], "since": at[5], "resolved": "false"}, [made[3], made[5]]),
        ({"endpoint_id": "00000000-0000-7000-8000-000000000000"}, []),  # unknown
    ]
    for params, expected in cases:
        for size in ("1", "2", "50"):
            assert await listed(api, key, limit=size, **params) == expected, (params, size)
    _, body, _ = await api.call("GET", DLQ, key, params={"resolved": "true"})
    first = body["deliveries"][0]
    assert first["resolved_by"] == key_id_of(key) and first["resolved_at"]
    assert first["resolution_note"] is None


async def test_dead_letter_queue_rejects_bad_parameters(api: Api) -> None:
    key = await api.new_org()
    for params, word in [({"resolved": "yes"}, "resolved"), ({"resolved": ""}, "resolved"),
                         ({"resolved": "True"}, "resolved"),
                         ({"endpoint_id": "nope"}, "endpoint_id"),
                         ({"event_type": "a\x00b"}, "event_type"),
                         ({"event_type": "t" * 256}, "event_type"),
                         ({"since": "yesterday"}, "since"),
                         ({"since": "2024-02-30T00:00:00Z"}, "since"),
                         ({"until": "1969-12-31T23:59:59Z"}, "until"),
                         ({"until": "2024-01-01T25:00:00Z"}, "until"),
                         ({"since": ""}, "since"), ({"limit": "0"}, "limit"),
                         ({"cursor": "AAAA"}, "cursor")]:
        status, err, resp = await api.call("GET", DLQ, key, params=params)
        assert status == 400 and resp.content_type == "application/json", (params, err)
        assert word in str(err["error"]), (params, err)


async def test_bulk_retry_requeues_what_the_filter_selects(
        api: Api, db: asyncpg.Connection) -> None:
    key, other = await api.new_org("acme"), await api.new_org("other")
    a, b = await new_endpoint(api, key), await new_endpoint(api, key)
    theirs = await dead(api, db, other, await new_endpoint(api, other))
    made = [await dead(api, db, key, a if i % 2 else b, minutes_ago=i,
                       type_="user.signup" if i < 4 else "order.created") for i in range(8)]
    failed = await insert_delivery(db, await new_event(api, key), a["id"], "failed",
                                   attempts=3)
    await api.call("POST", f"/api/deliveries/{made[1]}/resolve", key, json={"note": "n"})
    status, body, resp = await api.call("POST", BULK, key, json={"filter": {
        "endpoint_id": a["id"], "event_type": "user.signup"}})
    assert status == 202 and body == {"requeued": 2, "skipped": 0}, body
    assert "x-ratelimit-limit" in resp.headers
    for delivery in (made[1], made[3]):
        state = await row(db, delivery)
        assert (state["status"], state["attempts"], state["due"]) == ("pending", 0, True)
        assert (state["resolved_at"], state["resolved_by"], state["resolution_note"]) == (
            None, None, None)
    assert {(await row(db, d))["status"] for d in made[4:] + [made[0], made[2]]} == {
        "dead_letter"}
    assert (await row(db, failed))["status"] == "failed"
    # Repeating it finds nothing left; an empty filter takes all the rest, and no
    # other organization's.
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {
        "endpoint_id": a["id"], "event_type": "user.signup"}})
    assert body == {"requeued": 0, "skipped": 0}
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {}})
    assert body == {"requeued": 6, "skipped": 0}
    assert (await row(db, theirs))["status"] == "dead_letter"
    assert await listed(api, key) == []
    _, body, _ = await api.call("POST", BULK, other, json={"filter": {"resolved": True}})
    assert body == {"requeued": 0, "skipped": 0}
    _, body, _ = await api.call("POST", BULK, other, json={"filter": {"resolved": False}})
    assert body == {"requeued": 1, "skipped": 0}


async def test_bulk_retry_by_time_and_review(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    made = [await dead(api, db, key, ep, minutes_ago=10 * i) for i in range(5)]
    for delivery in made[:2]:
        await api.call("POST", f"/api/deliveries/{delivery}/resolve", key, json={})
    window = {"since": (NOW - 30 * MINUTE).isoformat(),       # made[3] and newer
              "until": (NOW - 10 * MINUTE).isoformat()}       # older than made[1]
    _, body, _ = await api.call("POST", BULK, key, json={"filter": window})
    assert body == {"requeued": 2, "skipped": 0}, body
    assert [(await row(db, d))["status"] for d in made] == [
        "dead_letter", "dead_letter", "pending", "pending", "dead_letter"]
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {"resolved": False}})
    assert body == {"requeued": 1, "skipped": 0}
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {
        "resolved": True, "since": None, "until": None, "endpoint_id": None,
        "event_type": None}})
    assert body == {"requeued": 2, "skipped": 0}


async def test_bulk_retry_in_batches_skips_disabled_and_deleted_endpoints(
        api: Api, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_deliveries, "RETRY_BATCH", 3)
    key = await api.new_org()
    live, off, gone = [await new_endpoint(api, key) for _ in range(3)]
    made: dict[str, list[int]] = {"live": [], "off": [], "gone": []}
    for i in range(21):  # interleaved, so every batch holds some of each
        name, ep = [("live", live), ("off", off), ("gone", gone)][i % 3]
        made[name].append(await dead(api, db, key, ep, minutes_ago=i // 2))
    await db.execute("UPDATE endpoints SET enabled = false, disabled_reason = 'manual' "
                     "WHERE id = $1", off["id"])
    status, _, _ = await api.call("DELETE", f"/api/endpoints/{gone['id']}", key)
    assert status == 200
    status, body, _ = await api.call("POST", BULK, key, json={"filter": {}})
    assert status == 202 and body == {"requeued": 7, "skipped": 14}, body
    states = {d: (await row(db, d))["status"] for ds in made.values() for d in ds}
    assert {states[d] for d in made["live"]} == {"pending"}
    assert {states[d] for d in made["off"] + made["gone"]} == {"dead_letter"}
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {}})
    assert body == {"requeued": 0, "skipped": 14}
    await api.call("POST", f"/api/endpoints/{off['id']}/enable", key)
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {}})
    assert body == {"requeued": 7, "skipped": 7}


async def test_bulk_retry_passes_over_a_row_locked_elsewhere(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    made = [await dead(api, db, key, ep, minutes_ago=i) for i in range(3)]
    async with db.transaction():
        # Another statement changing this dead letter right now: a retry re-queues it.
        await db.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", made[1])
        _, body, _ = await api.call("POST", BULK, key, json={"filter": {}})
        assert body == {"requeued": 2, "skipped": 0}, body
        await db.execute("UPDATE deliveries SET status = 'pending', attempts = 0 "
                         "WHERE id = $1", made[1])
    _, body, _ = await api.call("POST", BULK, key, json={"filter": {}})
    assert body == {"requeued": 0, "skipped": 0}
    assert [(await row(db, d))["attempts"] for d in made] == [0, 0, 0]


async def test_bulk_retry_rejects_bad_input(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    delivery = await dead(api, db, key, ep)
    for body, word in [([], "filter"), ({}, "filter"), ({"filter": None}, "filter"),
                       ({"filter": []}, "filter"), ({"filter": "all"}, "filter"),
                       ({"filter": {}, "dry_run": True}, "dry_run"),
                       ({"filter": {"status": "failed"}}, "status"),
                       ({"filter": {"endpoint_id": "nope"}}, "endpoint_id"),
                       ({"filter": {"endpoint_id": 7}}, "endpoint_id"),
                       ({"filter": {"event_type": ""}}, "event_type"),
                       ({"filter": {"event_type": "a\x00b"}}, "event_type"),
                       ({"filter": {"event_type": "t" * 256}}, "event_type"),
                       ({"filter": {"event_type": ["a"]}}, "event_type"),
                       ({"filter": {"since": "soon"}}, "since"),
                       ({"filter": {"since": 1714521600}}, "since"),
                       ({"filter": {"until": "2024-13-01T00:00:00Z"}}, "until"),
                       ({"filter": {"resolved": "true"}}, "resolved"),
                       ({"filter": {"resolved": 1}}, "resolved")]:
        status, err, resp = await api.call("POST", BULK, key, json=body)
        assert status == 400 and resp.content_type == "application/json", (body, err)
        assert word in str(err["error"]), (body, err)
    status, err, _ = await api.call("POST", BULK, key, data=b"{", headers={
        "Content-Type": "application/json"})
    assert status == 400 and "Invalid JSON" in str(err["error"])
    status, _, _ = await api.call("POST", BULK, key, data=b"{}")
    assert status == 415
    assert (await row(db, delivery))["status"] == "dead_letter"


async def test_resolve_rejects_bad_notes(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    delivery = await dead(api, db, key, await new_endpoint(api, key))
    path = f"/api/deliveries/{delivery}/resolve"
    for body, word in [({"note": "n" * (dead_letters.MAX_NOTE + 1)}, "note"),
                       ({"note": 5}, "note"), ({"note": ["a"]}, "note"),
                       ({"note": {"text": "a"}}, "note"), ({"note": "a\x00b"}, "note"),
                       ({"reason": "a"}, "reason"), ([], "body"), ("note", "body")]:
        status, err, resp = await api.call("POST", path, key, json=body)
        assert status == 400 and resp.content_type == "application/json", (body, err)
        assert word in str(err["error"]), (body, err)
    assert (await row(db, delivery))["resolved_at"] is None
    status, body, _ = await api.call("POST", path, key,
                                     json={"note": "é" * dead_letters.MAX_NOTE})
    assert status == 200 and len(body["resolution_note"]) == dead_letters.MAX_NOTE


@pytest.mark.parametrize("how", ["retry", "retry-failed", "recover"])
async def test_a_retry_clears_the_resolution(api: Api, db: asyncpg.Connection,
                                             how: str) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    delivery = await dead(api, db, key, ep, created_at=NOW - MINUTE)
    await api.call("POST", f"/api/deliveries/{delivery}/resolve", key, json={"note": "n"})
    assert (await row(db, delivery))["resolved_by"] == key_id_of(key)
    path, body = {
        "retry": (f"/api/deliveries/{delivery}/retry", None),
        "retry-failed": (f"/api/webhook-metrics/retry-failed/{delivery}", None),
        "recover": (f"/api/endpoints/{ep['id']}/recover",
                    {"since": (NOW - 2 * MINUTE).isoformat()})}[how]
    status, answer, _ = await api.call("POST", path, key, json=body)
    assert status == 202, answer
    state = await row(db, delivery)
    assert (state["status"], state["attempts"]) == ("pending", 0)
    assert (state["resolved_at"], state["resolved_by"], state["resolution_note"]) == (
        None, None, None)
    # Dead again later, it is a new dead letter to review.
    await db.execute("UPDATE deliveries SET status = 'dead_letter' WHERE id = $1", delivery)
    status, _, _ = await api.call("POST", f"/api/deliveries/{delivery}/resolve", key,
                                  json={})
    assert status == 200


_TYPES = "uuid, boolean, uuid, text, timestamptz, timestamptz, timestamptz, bigint, int"


async def _plans(db: asyncpg.Connection, sql: str, *args: Any) -> list[str]:
    """The plan for these values, and the generic plan (the one a prepared statement
    settles on after a few executions), with sequential scans priced out: what must hold
    is that an index path exists, which it keeps on a table of any size."""
    literals = ", ".join("NULL" if a is None else f"'{a}'" for a in args)
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        custom = await db.fetch("EXPLAIN " + sql, *args)
        await db.execute(f"PREPARE dead_letters_plan ({_TYPES}) AS {sql}")
        await db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        generic = await db.fetch(f"EXPLAIN EXECUTE dead_letters_plan ({literals})")
        await db.execute("DEALLOCATE dead_letters_plan")
    return ["\n".join(r[0] for r in rows) for rows in (custom, generic)]


def _index_conditions(plan: str) -> str:
    lines = plan.splitlines()
    at = next(i for i, line in enumerate(lines) if "using deliveries_dead" in line)
    return lines[at + 1]


async def test_queries_read_the_dead_letter_index(db: asyncpg.Connection) -> None:
    """Both read the organization's range of deliveries_dead, bounded by the time window
    and the position as index conditions, in a generic plan too; never the table (its
    long delivered history, other organizations' rows)."""
    await db.execute("""
        INSERT INTO organizations (id, name, tier) VALUES
            ('00000000-0000-7000-8000-000000000001', 'o', 'free');
        INSERT INTO endpoints (id, org_id, url, secret) VALUES
            ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001',
             'http://example.com/', 'whsec_eA==');
        INSERT INTO events (id, org_id, type, payload)
            SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000001', 't', '{}'
            FROM generate_series(1, 20000);
        INSERT INTO deliveries (event_id, endpoint_id, org_id, status, updated_at)
            SELECT id, '00000000-0000-7000-8000-000000000002', org_id,
                   CASE WHEN random() < 0.3 THEN 'dead_letter' ELSE 'delivered' END,
                   now() - random() * interval '30 days'
            FROM events;
        ANALYZE;
    """)
    org = "00000000-0000-7000-8000-000000000001"
    window = (False, None, "t", NOW - 24 * 60 * MINUTE, NOW)
    for sql, extra in [(q.DEAD_LETTERS, 51), (q.RETRY_DEAD_LETTERS, 1000)]:
        for filters, position in [((None,) * 5, (None, 0)), (window, (None, 0)),
                                  ((None,) * 5, (NOW - MINUTE, 123)),
                                  (window, (NOW - MINUTE, 123))]:
            for plan in await _plans(db, sql, org, *filters, *position, extra):
                assert "Seq Scan on deliveries" not in plan, plan
                conditions = _index_conditions(plan)
                assert "org_id = " in conditions and "updated_at >=" in conditions, plan
                assert "updated_at <" in conditions and "updated_at <=" in conditions, plan
                # Walked in order and stopped at the limit, not read whole and sorted.
                assert "Incremental Sort" in plan, plan
