"""Dedup, batches, the inbox and concurrency, on a real node and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg

from supervisor.node.tree import Node
from tests.conftest import Api, node_config


async def test_duplicate_dedup_id_answers_409_with_original_id(api: Api) -> None:
    key = await api.new_org()
    event = {"type": "t", "payload": {"a": 1}, "dedup_id": "order-1"}
    status, first, _ = await api.call("POST", "/api/events", key, json=event)
    assert status == 202
    status, body, _ = await api.call("POST", "/api/events", key, json=event)
    assert status == 409
    assert body == {"error": "Duplicate event detected", "id": first["id"], "dedup_id": "order-1"}


async def test_idempotency_key_header_works_like_dedup_id(api: Api) -> None:
    key = await api.new_org()
    headers = {"Idempotency-Key": "pay-9"}
    event = {"type": "t", "payload": {}}
    status, first, _ = await api.call("POST", "/api/events", key, json=event, headers=headers)
    assert status == 202
    status, body, _ = await api.call("POST", "/api/events", key,
                                     json={**event, "dedup_id": "pay-9"})
    assert status == 409 and body["id"] == first["id"]
    status, body, _ = await api.call("POST", "/api/events", key,
                                     json={**event, "dedup_id": "other"}, headers=headers)
    assert status == 400


async def test_dedup_is_per_organization(api: Api) -> None:
    alice, bob = await api.new_org("alice"), await api.new_org("bob")
    event = {"type": "t", "payload": {}, "dedup_id": "same"}
    assert (await api.call("POST", "/api/events", alice, json=event))[0] == 202
    assert (await api.call("POST", "/api/events", bob, json=event))[0] == 202


async def test_dedup_survives_a_restart(api: Api, database_url: str) -> None:
    key = await api.new_org()
    event = {"type": "t", "payload": {}, "dedup_id": "persisted"}
    _, first, _ = await api.call("POST", "/api/events", key, json=event)
    fresh = Node(node_config(database_url))  # a new node: empty dedup cache
    await fresh.root.start()
    try:
        other = Api(f"http://127.0.0.1:{fresh.config.port}", api.session)
        status, body, _ = await other.call("POST", "/api/events", key, json=event)
        assert status == 409 and body["id"] == first["id"]
    finally:
        await fresh.root.stop(10)


async def test_fifty_concurrent_posts_of_one_dedup_id(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    event = {"type": "t", "payload": {}, "dedup_id": "race"}
    answers = await asyncio.gather(*(api.call("POST", "/api/events", key, json=event)
                                     for _ in range(50)))
    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {202: 1, 409: 49}
    ids = {body["id"] for _, body, _ in answers}
    assert len(ids) == 1
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_two_thousand_concurrent_posts_committed_exactly_once(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    sem = asyncio.Semaphore(200)

    async def post(i: int) -> tuple[int, str]:
        async with sem:
            status, body, _ = await api.call("POST", "/api/events", key,
                                             json={"type": "load", "payload": {"i": i}})
            return status, str(body["id"])

    answers = await asyncio.gather(*(post(i) for i in range(2000)))
    assert {status for status, _ in answers} == {202}
    ids = [uuid.UUID(event_id) for _, event_id in answers]
    assert len(set(ids)) == 2000
    rows = await db.fetch("SELECT id, payload->>'i' AS i FROM events")
    assert len(rows) == 2000
    assert {r["id"] for r in rows} == set(ids)
    assert sorted(int(r["i"]) for r in rows) == list(range(2000))


async def test_batch_accepts_and_reports_duplicates(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    _, first, _ = await api.call("POST", "/api/events", key,
                                 json={"type": "t", "payload": {}, "dedup_id": "seen"})
    events = [{"type": "b", "payload": {"i": i}} for i in range(5)]
    events += [{"type": "b", "payload": {}, "dedup_id": "seen"},
               {"type": "b", "payload": {}, "dedup_id": "twice"},
               {"type": "b", "payload": {}, "dedup_id": "twice"}]
    status, body, _ = await api.call("POST", "/api/events/batch", key, json={"events": events})
    assert status == 202
    assert body["accepted"] == 6 and body["duplicates"] == 2
    results = body["results"]
    assert [r["status"] for r in results] == ["accepted"] * 5 + ["duplicate", "accepted",
                                                                  "duplicate"]
    assert results[5]["id"] == first["id"] and results[5]["dedup_id"] == "seen"
    assert results[7]["id"] == results[6]["id"]
    assert await db.fetchval("SELECT count(*) FROM events") == 7


async def test_batch_with_a_bad_item_stores_nothing(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    events = [{"type": "b", "payload": {}}, {"type": "b", "payload": {}}, {"payload": {}}]
    status, body, _ = await api.call("POST", "/api/events/batch", key, json={"events": events})
    assert status == 400 and body["index"] == 2 and "events[2]" in str(body["error"])
    for bad in ({"events": []}, {"events": {}}, {}, [],
                {"events": [{"type": "t", "payload": {}}] * 1001}):
        status, body, _ = await api.call("POST", "/api/events/batch", key, json=bad)
        assert status == 400, bad
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_batch_body_limit_is_five_mib(api: Api) -> None:
    key = await api.new_org()
    item = {"type": "t", "payload": {"x": "y" * (200 * 1024)}}
    status, body, _ = await api.call("POST", "/api/events/batch", key,
                                     json={"events": [item] * 27})
    assert status == 413 and "too large" in str(body["error"])


async def test_inbox_newest_first_with_cursor(api: Api) -> None:
    key = await api.new_org()
    ids = []
    for i in range(7):
        _, body, _ = await api.call("POST", "/api/events", key,
                                    json={"type": "even" if i % 2 == 0 else "odd",
                                          "payload": {"i": i}})
        ids.append(body["id"])
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        status, page, _ = await api.call("GET", "/api/inbox", key, params=query)
        assert status == 200 and len(page["events"]) <= 3
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    _, page, _ = await api.call("GET", "/api/inbox", key, params={"type": "odd"})
    assert [e["payload"]["i"] for e in page["events"]] == [5, 3, 1]
    _, page, _ = await api.call("GET", "/api/inbox", key, params={"status": "pending"})
    assert len(page["events"]) == 7 and page["next_cursor"] is None


async def test_inbox_rejects_bad_parameters(api: Api) -> None:
    key = await api.new_org()
    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"cursor": "%%%"},
                   {"cursor": "abc"}, {"status": "bogus"}, {"type": "a\x00b"},
                   {"type": "t" * 256}):
        status, body, _ = await api.call("GET", "/api/inbox", key, params=params)
        assert status == 400, (params, body)
    status, _, _ = await api.call("GET", "/api/inbox", key, params={"limit": "1000"})
    assert status == 200


async def test_ack_single_and_bulk(api: Api) -> None:
    key = await api.new_org()
    ids = []
    for _ in range(4):
        _, body, _ = await api.call("POST", "/api/events", key, json={"type": "t", "payload": {}})
        ids.append(body["id"])
    status, body, _ = await api.call("POST", f"/api/ack/{ids[0]}", key)
    assert status == 200 and body == {"id": ids[0], "acknowledged": True}
    status, _, _ = await api.call("POST", f"/api/ack/{ids[0]}", key)
    assert status == 200  # idempotent
    status, _, _ = await api.call("POST", f"/api/ack/{uuid.uuid4()}", key)
    assert status == 404
    status, _, _ = await api.call("POST", "/api/ack/nope", key)
    assert status == 400
    unknown = str(uuid.uuid4())
    status, body, _ = await api.call("POST", "/api/ack", key,
                                     json={"event_ids": [ids[1], ids[2], unknown]})
    assert status == 200 and body == {"acknowledged": 2, "not_found": [unknown]}
    _, page, _ = await api.call("GET", "/api/inbox", key)
    assert [e["id"] for e in page["events"]] == [ids[3]]
    _, event, _ = await api.call("GET", f"/api/events/{ids[0]}", key)
    assert event["status"] == "acknowledged" and event["acknowledged_at"]
    for bad in ({"event_ids": []}, {"event_ids": ["x"]}, {"event_ids": "x"}, {},
                {"event_ids": [ids[3]] * 1001}):
        status, _, _ = await api.call("POST", "/api/ack", key, json=bad)
        assert status == 400, bad
