"""Safe by default: a node that other machines can reach needs an admin token (or signup
declared open); with a token, organizations, tiers, /metrics and /dashboard need it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from supervisor.node.config import ConfigError, load
from supervisor.node.tree import Node
from tests.conftest import Api, node_config


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_a_node_reachable_from_elsewhere_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match="TRIGGERD_ADMIN_TOKEN") as caught:
        load(environ={"TRIGGERD_HOST": host})
    assert "TRIGGERD_OPEN_SIGNUP=true" in str(caught.value)
    load(environ={"TRIGGERD_HOST": host, "TRIGGERD_ADMIN_TOKEN": "t"})
    load(environ={"TRIGGERD_HOST": host, "TRIGGERD_OPEN_SIGNUP": "true"})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_nothing(host: str) -> None:
    load(environ={"TRIGGERD_HOST": host})


@pytest.mark.parametrize("raw", ["free=0", "gold=5", "pro=ten", "free=-1"])
def test_tier_limits_are_validated(raw: str) -> None:
    with pytest.raises(ConfigError, match="TRIGGERD_TIER_LIMITS"):
        load(environ={"TRIGGERD_TIER_LIMITS": raw})


@asynccontextmanager
async def _node(database_url: str, **changes: Any) -> AsyncIterator[tuple[Node, Api]]:
    node = Node(node_config(database_url, **changes))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield node, Api(f"http://127.0.0.1:{node.config.port}", session)
    finally:
        await node.root.stop(10)


async def _generate(api: Api, tier: str | None = None, token: str | None = None) -> int:
    body: dict[str, Any] = {"organization_name": "o"}
    if tier is not None:
        body["tier"] = tier
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, _ = await api.call("POST", "/api/keys/generate", json=body, headers=headers)
    return status


async def test_with_a_token_operators_only(database_url: str) -> None:
    async with _node(database_url, admin_token="s3cret") as (_, api):
        assert await _generate(api) == 401
        assert await _generate(api, "enterprise", "wrong") == 401
        assert await _generate(api, "enterprise", "s3cret") == 201
        for path in ("/metrics", "/dashboard"):
            async with api.request("GET", path) as resp:
                assert resp.status == 401
            async with api.request("GET", path,
                                   headers={"Authorization": "Bearer s3cret"}) as resp:
                assert resp.status == 200


async def test_open_signup_creates_free_organizations_only(database_url: str) -> None:
    async with _node(database_url, admin_token="s3cret", open_signup=True) as (_, api):
        assert await _generate(api) == 201
        assert await _generate(api, "free") == 201
        assert await _generate(api, "enterprise") == 403
        assert await _generate(api, "enterprise", "s3cret") == 201


async def test_metrics_can_be_opened_to_any_scraper(database_url: str) -> None:
    async with _node(database_url, admin_token="s3cret", metrics_public=True) as (_, api):
        async with api.request("GET", "/metrics") as resp:
            assert resp.status == 200
        async with api.request("GET", "/dashboard") as resp:
            assert resp.status == 401


async def test_tier_limits_come_from_the_configuration(database_url: str) -> None:
    async with _node(database_url, tier_limits="free=3") as (_, api):
        status, body, _ = await api.call("POST", "/api/keys/generate",
                                         json={"organization_name": "o"})
        assert status == 201 and body["rate_limit_per_minute"] == 3
        key = str(body["api_key"])
        for _ in range(3):
            status, _, _ = await api.call("GET", "/api/keys", key)
            assert status == 200
        status, body, resp = await api.call("GET", "/api/keys", key)
        assert status == 429 and resp.headers["x-ratelimit-limit"] == "3"


async def test_a_batch_larger_than_the_tier_allows_says_so(database_url: str) -> None:
    async with _node(database_url, tier_limits="free=5") as (_, api):
        _, body, _ = await api.call("POST", "/api/keys/generate",
                                    json={"organization_name": "o"})
        key = str(body["api_key"])
        events = [{"type": "t", "payload": {}} for _ in range(6)]
        status, body, resp = await api.call("POST", "/api/events/batch", key,
                                            json={"events": events})
        assert status == 413 and "free tier's limit of 5" in str(body["error"]), body
        assert "Retry-After" not in resp.headers
        status, body, _ = await api.call("POST", "/api/events/batch", key,
                                         json={"events": events[:5]})
        assert status == 202, body


async def test_tier_limits_reload_without_a_restart(database_url: str) -> None:
    from supervisor.node.reload import Reloader

    async with _node(database_url) as (node, api):
        key = await api.new_org(tier="pro")
        _, body, _ = await api.call("GET", "/api/keys", key)
        assert body["rate_limit_per_minute"] == 1000
        reloader = Reloader(node, node.config,
                            lambda: node.config.replace(tier_limits="pro=7"))
        assert await reloader.reload()
        await asyncio.sleep(node.config.key_cache_ttl + 0.1)
        _, body, resp = await api.call("GET", "/api/keys", key)
        assert body["rate_limit_per_minute"] == 7 and resp.headers["x-ratelimit-limit"] == "7"
