"""The endpoint API on a real node and a real PostgreSQL: shapes, validation, the SSRF
guard, secret rotation, enable, recover and isolation between organizations."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from supervisor.node.tree import Node
from tests.conftest import Api, node_config
from tests.integration.delivery_helpers import PUBLIC_URL, insert_delivery, new_endpoint, new_event

FIELDS = {"id", "url", "event_types", "description", "rate_limit_per_second", "ordered",
          "is_default", "enabled", "disabled_reason", "disabled_at", "last_success_at",
          "breaker", "breaker_open_until", "created_at", "updated_at", "filter", "priority",
          "timeout_s", "headers", "success_statuses", "paused", "paused_at", "paused_by"}
PRIVATE_URLS = ["http://127.0.0.1:8080/hook", "http://localhost/hook", "https://10.0.0.1/x",
                "http://169.254.169.254/latest/meta-data", "http://[::1]:9000/",
                "http://224.0.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
                "http://192.168.1.5/", "http://127.1/"]


def assert_secret(secret: object) -> None:
    assert isinstance(secret, str) and secret.startswith("whsec_")
    assert len(base64.b64decode(secret[len("whsec_"):], validate=True)) == 32


async def test_create_endpoint_shape(api: Api) -> None:
    key = await api.new_org()
    status, body, resp = await api.call("POST", "/api/endpoints", key, json={
        "url": PUBLIC_URL, "event_types": ["order.created", "invoice.*"],
        "description": "orders", "rate_limit_per_second": 10, "ordered": True})
    assert status == 201, body
    assert set(body) == FIELDS | {"secret"}
    assert_secret(body["secret"])
    assert uuid.UUID(str(body["id"])).version == 7
    assert body["url"] == PUBLIC_URL and body["event_types"] == ["order.created", "invoice.*"]
    assert body["description"] == "orders" and body["rate_limit_per_second"] == 10
    assert body["ordered"] is True and body["is_default"] is False and body["enabled"] is True
    assert body["breaker"] == "closed" and body["breaker_open_until"] is None
    assert resp.headers["x-ratelimit-limit"] == "100000"


async def test_defaults_list_and_get_hide_the_secret(api: Api) -> None:
    key = await api.new_org()
    created = await new_endpoint(api, key)
    assert created["event_types"] is None and created["ordered"] is False
    assert created["rate_limit_per_second"] is None and created["description"] is None
    second = await new_endpoint(api, key, event_types=["*"])
    assert second["event_types"] is None
    status, body, resp = await api.call("GET", "/api/endpoints", key)
    assert status == 200 and "x-ratelimit-remaining" in resp.headers
    assert [e["id"] for e in body["endpoints"]] == [created["id"], second["id"]]
    assert all(set(e) == FIELDS for e in body["endpoints"])
    status, one, _ = await api.call("GET", f"/api/endpoints/{created['id']}", key)
    assert status == 200 and set(one) == FIELDS and one["id"] == created["id"]


async def test_patch_changes_given_fields_and_null_clears(api: Api) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key, event_types=["a.b"], description="d",
                            rate_limit_per_second=5)
    path = f"/api/endpoints/{ep['id']}"
    status, body, _ = await api.call("PATCH", path, key, json={
        "url": "https://93.184.216.35/other", "ordered": True, "event_types": ["x.*", "x.*"]})
    assert status == 200, body
    assert body["url"] == "https://93.184.216.35/other" and body["ordered"] is True
    assert body["event_types"] == ["x.*"]
    assert body["description"] == "d" and body["rate_limit_per_second"] == 5
    assert "secret" not in body
    status, body, _ = await api.call("PATCH", path, key, json={
        "description": None, "rate_limit_per_second": None, "event_types": None})
    assert status == 200
    assert body["description"] is None and body["rate_limit_per_second"] is None
    assert body["event_types"] is None and body["ordered"] is True
    assert body["updated_at"] > body["created_at"]


async def test_delete_endpoint(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    event_id = await new_event(api, key)
    await insert_delivery(db, event_id, ep["id"], "failed")
    status, body, _ = await api.call("DELETE", f"/api/endpoints/{ep['id']}", key)
    assert status == 200 and body == {"id": ep["id"], "deleted": True}
    # The delivery stays, visibly cancelled, and its event is settled.
    row = await db.fetchrow("SELECT status, last_error FROM deliveries")
    assert (row["status"], row["last_error"]) == ("cancelled", "endpoint deleted")
    status, event, _ = await api.call("GET", f"/api/events/{event_id}", key)
    assert event["status"] == "cancelled"
    assert event["deliveries"][0]["status"] == "cancelled"
    assert await db.fetchval("SELECT secret FROM endpoints") == ""
    status, body, _ = await api.call("GET", "/api/endpoints", key)
    assert body == {"endpoints": []}
    status, _, _ = await api.call("DELETE", f"/api/endpoints/{ep['id']}", key)
    assert status == 404
    status, _, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
    assert status == 404


async def test_rotate_secret_keeps_the_old_one_for_a_day(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    status, body, _ = await api.call("POST", f"/api/endpoints/{ep['id']}/rotate-secret", key)
    assert status == 200, body
    assert_secret(body["secret"])
    assert body["secret"] != ep["secret"]
    row = await db.fetchrow("SELECT secret, previous_secret, previous_secret_until - now() AS"
                            " left FROM endpoints WHERE id = $1", uuid.UUID(ep["id"]))
    assert row["secret"] == body["secret"] and row["previous_secret"] == ep["secret"]
    assert timedelta(hours=23, minutes=59) < row["left"] <= timedelta(hours=24)
    until = datetime.fromisoformat(str(body["previous_secret_until"]))
    assert until > datetime.now(UTC) + timedelta(hours=23)


async def test_enable_resets_the_failure_state(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    await db.execute(
        "UPDATE endpoints SET enabled = false, disabled_reason = 'no success for 5 days',"
        " disabled_at = now(), consecutive_failures = 40, breaker_cooldown_s = 60,"
        " breaker_open_until = now() + interval '1 minute', last_success_at = NULL"
        " WHERE id = $1", uuid.UUID(ep["id"]))
    _, body, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
    assert body["enabled"] is False and body["disabled_reason"] == "no success for 5 days"
    assert body["breaker"] == "open" and body["breaker_open_until"] is not None
    await db.execute("UPDATE endpoints SET breaker_open_until = now() - interval '1 second'")
    _, body, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
    assert body["breaker"] == "half_open"
    status, body, _ = await api.call("POST", f"/api/endpoints/{ep['id']}/enable", key)
    assert status == 200, body
    assert body["enabled"] is True and body["disabled_reason"] is None
    assert body["disabled_at"] is None and body["breaker"] == "closed"
    assert body["last_success_at"] is not None
    row = await db.fetchrow("SELECT consecutive_failures, breaker_cooldown_s FROM endpoints"
                            " WHERE id = $1", uuid.UUID(ep["id"]))
    assert row["consecutive_failures"] == 0 and row["breaker_cooldown_s"] is None


async def test_webhook_config_creates_then_updates_the_default(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    status, body, resp = await api.call("POST", "/api/webhook/config", key,
                                        json={"webhook_url": PUBLIC_URL})
    assert status == 201, body
    assert body["is_default"] is True and body["event_types"] is None
    assert_secret(body["secret"])
    assert "x-ratelimit-limit" in resp.headers
    status, again, _ = await api.call("POST", "/api/webhook/config", key,
                                      json={"webhook_url": "https://93.184.216.35/v2"})
    assert status == 200 and again["id"] == body["id"] and "secret" not in again
    assert again["url"] == "https://93.184.216.35/v2"
    assert await db.fetchval("SELECT count(*) FROM endpoints") == 1
    for bad in ({}, {"webhook_url": 5}, {"webhook_url": "ftp://93.184.216.34/"}):
        status, err, _ = await api.call("POST", "/api/webhook/config", key, json=bad)
        assert status == 400 and "webhook_url" in str(err["error"]), (bad, err)


async def test_create_rejects_bad_input(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    cases = [
        ({}, "url"), ({"url": 5}, "url"), ({"url": "93.184.216.34/x"}, "http"),
        ({"url": "ftp://93.184.216.34/"}, "http"), ({"url": "https:///path"}, "host"),
        ({"url": "https://93.184.216.34/" + "a" * 2048}, "2048"),
        ({"url": "https://93.184.216.34:99999/"}, "url"),
        ({"url": "https://93.184.216.34/a b"}, "spaces"),
        ({"url": PUBLIC_URL, "event_types": []}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": "order.created"}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": ["ok", 5]}, "event_types[1]"),
        ({"url": PUBLIC_URL, "event_types": ["has space"]}, "event_types[0]"),
        ({"url": PUBLIC_URL, "event_types": [""]}, "event_types[0]"),
        ({"url": PUBLIC_URL, "event_types": ["x" * 256]}, "event_types[0]"),
        ({"url": PUBLIC_URL, "event_types": ["or*der"]}, "'*'"),
        ({"url": PUBLIC_URL, "event_types": ["order*"]}, "'*'"),
        ({"url": PUBLIC_URL, "event_types": [".*"]}, "'*'"),
        ({"url": PUBLIC_URL, "event_types": ["a.*.*"]}, "'*'"),
        ({"url": PUBLIC_URL, "rate_limit_per_second": 0}, "rate_limit_per_second"),
        ({"url": PUBLIC_URL, "rate_limit_per_second": 100_001}, "rate_limit_per_second"),
        ({"url": PUBLIC_URL, "rate_limit_per_second": 1.5}, "rate_limit_per_second"),
        ({"url": PUBLIC_URL, "rate_limit_per_second": True}, "rate_limit_per_second"),
        ({"url": PUBLIC_URL, "ordered": "yes"}, "ordered"),
        ({"url": PUBLIC_URL, "ordered": None}, "ordered"),
        ({"url": PUBLIC_URL, "description": "x" * 1001}, "description"),
        ({"url": PUBLIC_URL, "description": 5}, "description"),
        ({"url": PUBLIC_URL, "colour": "red"}, "colour"),
        ([PUBLIC_URL], "object"),
    ]
    for body, word in cases:
        status, err, _ = await api.call("POST", "/api/endpoints", key, json=body)
        assert status == 400, (body, err)
        assert word in str(err["error"]), (body, err)
    status, _, _ = await api.call("POST", "/api/endpoints", key, data=b"url=x",
                                  headers={"Content-Type": "text/plain"})
    assert status == 415
    assert await db.fetchval("SELECT count(*) FROM endpoints") == 0


async def test_patch_and_ids_reject_bad_input(api: Api) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    path = f"/api/endpoints/{ep['id']}"
    for body, word in [({}, "nothing to change"), ({"url": None}, "url"),
                       ({"ordered": None}, "ordered"), ({"secret": "mine"}, "secret"),
                       ({"event_types": []}, "event_types")]:
        status, err, _ = await api.call("PATCH", path, key, json=body)
        assert status == 400 and word in str(err["error"]), (body, err)
    for method, suffix, body in [("GET", "", None), ("PATCH", "", {"url": PUBLIC_URL}),
                                 ("DELETE", "", None), ("POST", "/rotate-secret", None),
                                 ("POST", "/enable", None),
                                 ("POST", "/recover", {"since": "2024-01-01T00:00:00Z"})]:
        status, _, _ = await api.call(method, f"/api/endpoints/not-a-uuid{suffix}", key,
                                      json=body)
        assert status == 400, (method, suffix)
        status, _, _ = await api.call(method, f"/api/endpoints/{uuid.uuid4()}{suffix}", key,
                                      json=body)
        assert status == 404, (method, suffix)


async def test_ssrf_guard_refuses_internal_targets(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    for url in PRIVATE_URLS:
        for method, path, body in [("POST", "/api/endpoints", {"url": url}),
                                   ("PATCH", f"/api/endpoints/{ep['id']}", {"url": url}),
                                   ("POST", "/api/webhook/config", {"webhook_url": url})]:
            status, err, _ = await api.call(method, path, key, json=body)
            assert status == 400, (url, path, err)
            assert "private or loopback" in str(err["error"]), err
            assert "TRIGGERD_ALLOW_PRIVATE_TARGETS=true" in str(err["error"]), err
    assert await db.fetchval("SELECT count(*) FROM endpoints") == 1
    assert await db.fetchval("SELECT url FROM endpoints") == PUBLIC_URL
    # Not resolvable now: accepted, since every delivery checks the resolved address.
    status, err, _ = await api.call("POST", "/api/endpoints", key,
                                    json={"url": "https://no-such-host.invalid/hook"})
    assert status == 201, err


async def test_private_targets_allowed_by_the_flag(database_url: str) -> None:
    node = Node(node_config(database_url, allow_private_targets=True))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            key = await api.new_org()
            for url in PRIVATE_URLS:
                status, body, _ = await api.call("POST", "/api/endpoints", key,
                                                 json={"url": url})
                assert status == 201, (url, body)
                assert body["url"] == url
            status, _, _ = await api.call("POST", "/api/webhook/config", key,
                                          json={"webhook_url": "http://localhost:9/x"})
            assert status == 201
    finally:
        await node.root.stop(10)


async def test_recover_requeues_failed_and_dead_in_the_window(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    other = await new_endpoint(api, key)
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    cases = [("failed", now - 2 * hour, True), ("dead_letter", now - 3 * hour, True),
             ("dead_letter", now - 10 * hour, False), ("delivered", now - 2 * hour, False),
             ("pending", now - 2 * hour, False), ("in_flight", now - 2 * hour, False)]
    ids = {}
    for state, created, expected in cases:
        event_id = await new_event(api, key)
        ids[await insert_delivery(db, event_id, ep["id"], state, attempts=8,
                                  created_at=created, last_error="HTTP 500",
                                  next_attempt_at=now + hour)] = (state, expected)
    outside = await insert_delivery(db, await new_event(api, key), other["id"], "dead_letter",
                                    attempts=8, created_at=now - 2 * hour)
    path = f"/api/endpoints/{ep['id']}/recover"
    since = (now - 5 * hour).isoformat()
    status, body, resp = await api.call("POST", path, key, json={"since": since})
    assert status == 202 and body == {"requeued": 2}, body
    assert "x-ratelimit-limit" in resp.headers
    rows = {r["id"]: r for r in await db.fetch(
        "SELECT id, status, attempts, last_error, next_attempt_at <= now() AS due"
        " FROM deliveries")}
    for delivery, (before, expected) in ids.items():
        row = rows[delivery]
        if expected:
            assert (row["status"], row["attempts"], row["last_error"], row["due"]) == \
                ("pending", 0, None, True)
        else:
            assert row["status"] == before and row["attempts"] == 8
    assert rows[outside]["status"] == "dead_letter"
    status, body, _ = await api.call("POST", path, key, json={
        "since": (now - 11 * hour).isoformat(), "until": (now - 9 * hour).isoformat()})
    assert status == 202 and body == {"requeued": 1}


async def test_recover_refuses_a_disabled_endpoint_and_bad_windows(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    path = f"/api/endpoints/{ep['id']}/recover"
    now = datetime.now(UTC)
    for body, word in [({}, "since"), ({"since": "yesterday"}, "since"),
                       ({"since": 5}, "since"),
                       ({"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
                        "before"),
                       ({"since": (now + timedelta(hours=1)).isoformat()}, "before"),
                       ({"since": now.isoformat(), "until": "soon"}, "until")]:
        status, err, _ = await api.call("POST", path, key, json=body)
        assert status == 400 and word in str(err["error"]), (body, err)
    event_id = await new_event(api, key)
    await insert_delivery(db, event_id, ep["id"], "dead_letter", attempts=3)
    await db.execute("UPDATE endpoints SET enabled = false, disabled_at = now()")
    since = {"since": "2000-01-01T00:00:00"}
    status, err, _ = await api.call("POST", path, key, json=since)
    assert status == 409 and "enable it first" in str(err["error"])
    assert await db.fetchval("SELECT status FROM deliveries") == "dead_letter"
    await api.call("POST", f"/api/endpoints/{ep['id']}/enable", key)
    status, body, _ = await api.call("POST", path, key, json=since)
    assert status == 202 and body == {"requeued": 1}


async def test_endpoints_are_isolated_between_organizations(
        api: Api, db: asyncpg.Connection) -> None:
    alice, bob = await api.new_org("alice"), await api.new_org("bob")
    ep = await new_endpoint(api, alice)
    await insert_delivery(db, await new_event(api, alice), ep["id"], "dead_letter")
    _, listed, _ = await api.call("GET", "/api/endpoints", bob)
    assert listed["endpoints"] == []
    base = f"/api/endpoints/{ep['id']}"
    for method, path, body in [
            ("GET", base, None), ("PATCH", base, {"description": "mine"}),
            ("DELETE", base, None), ("POST", base + "/rotate-secret", None),
            ("POST", base + "/enable", None),
            ("POST", base + "/recover", {"since": "2000-01-01T00:00:00Z"})]:
        status, _, _ = await api.call(method, path, bob, json=body)
        assert status == 404, (method, path)
    status, mine, _ = await api.call("GET", base, alice)
    assert status == 200 and mine["description"] is None and mine["url"] == PUBLIC_URL
    assert await db.fetchval("SELECT secret FROM endpoints") == ep["secret"]
    assert await db.fetchval("SELECT status FROM deliveries") == "dead_letter"
    status, default, _ = await api.call("POST", "/api/webhook/config", bob,
                                        json={"webhook_url": PUBLIC_URL})
    assert status == 201 and default["id"] != ep["id"]
