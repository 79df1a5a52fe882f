"""The ingest API on a real node and a real PostgreSQL: shapes and status codes."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from supervisor.node.tree import Node
from tests.conftest import Api, node_config


async def test_generate_key_shape(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/keys/generate",
                                     json={"organization_name": "acme", "tier": "pro"})
    assert status == 201
    assert body["organization_name"] == "acme" and body["tier"] == "pro"
    assert body["rate_limit_per_minute"] == 1000
    assert str(body["api_key"]).startswith("tgd_") and len(str(body["api_key"])) >= 43
    uuid.UUID(str(body["organization_id"]))


async def test_generate_key_rejects_bad_input(api: Api) -> None:
    cases = [
        ({"json": {}}, 400),
        ({"json": {"organization_name": ""}}, 400),
        ({"json": {"organization_name": "x", "tier": "gold"}}, 400),
        ({"json": {"organization_name": "x", "tier": ["pro"]}}, 400),
        ({"json": {"organization_name": ["x"]}}, 400),
        ({"json": ["not", "an", "object"]}, 400),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": b"organization_name=x", "headers": {"Content-Type": "text/plain"}}, 415),
    ]
    for kwargs, expected in cases:
        status, body, _ = await api.call("POST", "/api/keys/generate", **kwargs)
        assert status == expected, (kwargs, body)
        assert isinstance(body["error"], str) and body["error"]


async def test_keys_stored_as_digests_only(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    stored = await db.fetch("SELECT key_hash FROM api_keys")
    assert len(stored) == 1 and len(stored[0]["key_hash"]) == 32
    assert key.encode() not in stored[0]["key_hash"]


async def test_admin_token_guards_key_generation(database_url: str) -> None:
    node = Node(node_config(database_url, admin_token="s3cret"))
    await node.root.start()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            body = {"json": {"organization_name": "acme"}}
            status, _, _ = await api.call("POST", "/api/keys/generate", **body)
            assert status == 401
            status, _, _ = await api.call("POST", "/api/keys/generate",
                                          headers={"Authorization": "Bearer wrong"}, **body)
            assert status == 401
            status, _, _ = await api.call("POST", "/api/keys/generate",
                                          headers={"Authorization": "Bearer s3cret"}, **body)
            assert status == 201
    finally:
        await node.root.stop(10)


async def test_post_event_then_read_it_back(api: Api) -> None:
    key = await api.new_org()
    status, body, resp = await api.call("POST", "/api/events", key,
                                        json={"type": "order.created", "payload": {"n": 1}})
    assert status == 202 and body["status"] == "accepted" and body["message"]
    assert resp.headers["x-ratelimit-limit"] == "100000"
    event_id = str(body["id"])
    assert uuid.UUID(event_id).version == 7
    status, event, _ = await api.call("GET", f"/api/events/{event_id}", key)
    assert status == 200
    assert event["id"] == event_id and event["type"] == "order.created"
    assert event["payload"] == {"n": 1} and event["status"] == "pending"
    assert event["deliveries"] == []


async def test_bearer_auth_and_auth_failures(api: Api) -> None:
    key = await api.new_org()
    event = {"type": "t", "payload": {}}
    status, _, _ = await api.call("POST", "/api/events", json=event,
                                  headers={"Authorization": f"Bearer {key}"})
    assert status == 202
    status, body, _ = await api.call("POST", "/api/events", json=event)
    assert status == 401 and "API key" in str(body["error"])
    status, body, _ = await api.call("POST", "/api/events", "tgd_not-a-real-key", json=event)
    assert status == 401 and body["error"] == "Invalid API key"


async def test_event_bad_input(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    json_ct = {"Content-Type": "application/json"}
    cases = [
        ({"json": {"payload": {}}}, 400, "type"),
        ({"json": {"type": "", "payload": {}}}, 400, "type"),
        ({"json": {"type": 5, "payload": {}}}, 400, "type"),
        ({"json": {"type": "t"}}, 400, "payload"),
        ({"json": {"type": "t", "payload": "text"}}, 400, "payload"),
        ({"json": {"type": "t", "payload": {}, "dedup_id": 7}}, 400, "dedup_id"),
        ({"json": {"type": "t", "payload": {"s": "a\u0000b"}}}, 400, "NUL"),
        ({"json": [1, 2]}, 400, "object"),
        ({"data": b'{"type": "t", "payload": {', "headers": json_ct}, 400, "Invalid JSON"),
        ({"data": b"", "headers": json_ct}, 400, "Invalid JSON"),
        ({"data": b"type=t", "headers": {"Content-Type": "text/plain"}}, 415, "Content-Type"),
        ({"json": {"type": "t", "payload": {"big": "x" * (256 * 1024)}}}, 413, "larger than"),
        ({"json": {"type": "t", "payload": {"big": "x" * (512 * 1024)}}}, 413, "too large"),
    ]
    for kwargs, expected, word in cases:
        status, body, _ = await api.call("POST", "/api/events", key, **kwargs)
        assert status == expected, (kwargs if "data" in kwargs else expected, body)
        assert word in str(body["error"]), body
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    status, body, _ = await api.call("GET", "/api/nothing-here")
    assert status == 404 and body == {"error": "Not found"}
    status, body, resp = await api.call("DELETE", "/api/events")
    assert status == 405 and body["error"] == "Method not allowed"
    assert "POST" in resp.headers["Allow"]


async def test_event_ids_are_checked(api: Api) -> None:
    key = await api.new_org()
    status, _, _ = await api.call("GET", "/api/events/not-a-uuid", key)
    assert status == 400
    status, _, _ = await api.call("GET", f"/api/events/{uuid.uuid4()}", key)
    assert status == 404


async def test_organizations_are_isolated(api: Api) -> None:
    alice, bob = await api.new_org("alice"), await api.new_org("bob")
    _, body, _ = await api.call("POST", "/api/events", alice, json={"type": "t", "payload": {}})
    event_id = body["id"]
    status, _, _ = await api.call("GET", f"/api/events/{event_id}", bob)
    assert status == 404
    status, _, _ = await api.call("POST", f"/api/ack/{event_id}", bob)
    assert status == 404
    _, inbox, _ = await api.call("GET", "/api/inbox", bob)
    assert inbox["events"] == []
    status, body, _ = await api.call("POST", "/api/ack", bob, json={"event_ids": [event_id]})
    assert status == 200 and body["acknowledged"] == 0 and body["not_found"] == [event_id]
    _, inbox, _ = await api.call("GET", "/api/inbox", alice)
    assert [e["id"] for e in inbox["events"]] == [event_id]


async def test_keys_describe_and_rotate(api: Api) -> None:
    key = await api.new_org("acme", "business")
    status, body, _ = await api.call("GET", "/api/keys", key)
    assert status == 200 and body["organization_name"] == "acme" and body["tier"] == "business"
    assert body["rate_limit_per_minute"] == 10000 and body["active_keys"] == 1
    status, body, _ = await api.call("POST", "/api/keys/rotate", key)
    assert status == 200
    new_key = str(body["api_key"])
    assert new_key != key
    status, _, _ = await api.call("GET", "/api/keys", key)
    assert status == 401
    status, body, _ = await api.call("GET", "/api/keys", new_key)
    assert status == 200 and body["active_keys"] == 1


async def test_rotated_key_refused_on_another_node_within_a_second(
        api: Api, database_url: str) -> None:
    import aiohttp

    key = await api.new_org()
    other = Node(node_config(database_url))
    await other.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            remote = Api(f"http://127.0.0.1:{other.config.port}", session)
            status, _, _ = await remote.call("GET", "/api/keys", key)
            assert status == 200  # now cached on the other node
            await api.call("POST", "/api/keys/rotate", key)
            loop = asyncio.get_running_loop()
            rotated_at = loop.time()
            while True:
                status, _, _ = await remote.call("GET", "/api/keys", key)
                if status == 401:
                    break
                assert loop.time() - rotated_at < 1.0, "old key still accepted after 1 s"
                await asyncio.sleep(0.02)
    finally:
        await other.root.stop(10)


async def test_rate_limit_per_tier(api: Api) -> None:
    key = await api.new_org("small", "free")
    for i in range(100):
        status, _, resp = await api.call("GET", "/api/keys", key)
        assert status == 200
        assert resp.headers["x-ratelimit-remaining"] == str(99 - i)
    status, body, resp = await api.call("POST", "/api/events", key,
                                        json={"type": "t", "payload": {}})
    assert status == 429 and body["error"] == "Rate limit exceeded"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert resp.headers["x-ratelimit-limit"] == "100"
    assert resp.headers["x-ratelimit-remaining"] == "0"


async def test_health(api: Api) -> None:
    status, body, _ = await api.call("GET", "/health/live")
    assert status == 200 and body == {"status": "ok"}
    status, body, _ = await api.call("GET", "/health/ready")
    assert status == 200 and body["status"] == "ready"
