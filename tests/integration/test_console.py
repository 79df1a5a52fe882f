"""The console at /dashboard on a real node, a real PostgreSQL and real receivers: in
headless Chromium (sign-in, live data, a dead letter retried from the page, a tenant's
view, hostile receiver bodies shown as text) and over plain HTTP (sessions, cookies,
CSRF, the JSON reads and scoping)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from supervisor.node.tree import Node
from tests.browser import BrowserPage, Browsers
from tests.conftest import Api
from tests.integration.test_delivery import delivery_config, endpoint, post
from tests.receiver import Received, fail_first, receiver

TOKEN = "s3cret-operator-token"
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"


@asynccontextmanager
async def console_node(database_url: str, **changes: Any) -> AsyncIterator[tuple[Node, Api]]:
    node = Node(delivery_config(database_url, admin_token=TOKEN, **changes))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield node, Api(f"http://127.0.0.1:{node.config.port}", session)
    finally:
        await node.root.stop(10)


async def new_org(api: Api, name: str) -> str:
    status_, body, _ = await api.call("POST", "/api/keys/generate",
                                      headers={"Authorization": f"Bearer {TOKEN}"},
                                      json={"organization_name": name, "tier": "enterprise"})
    assert status_ == 201, body
    return str(body["api_key"])


async def sign_in(page: BrowserPage, token: str) -> None:
    await page.goto("/dashboard")  # no session yet: the sign-in page
    assert page.page.url.endswith("/dashboard/login")
    await page.fill("#token", token)
    await page.click("#login button")
    await page.page.wait_for_url("**/dashboard")
    page.page.on("dialog", lambda dialog: dialog.accept())


async def shows(page: BrowserPage, selector: str, text: str, timeout: float = 15.0) -> None:
    """Waits until the element shows `text` (the page's own script changes it)."""
    from playwright.async_api import expect
    await expect(page.page.locator(selector)).to_have_text(text, timeout=timeout * 1000)


class Client:
    """A plain HTTP client holding a console session cookie, as a script or an attacker
    with the cookie would."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.jar = aiohttp.CookieJar(unsafe=True)
        self.session = aiohttp.ClientSession(cookie_jar=self.jar)
        self.origin = api.base

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.session.close()

    async def login(self, token: str, **headers: str) -> aiohttp.ClientResponse:
        async with self.session.post(self.api.base + "/dashboard/login", data={"token": token},
                                     headers={"Origin": self.origin, **headers},
                                     allow_redirects=False) as resp:
            await resp.read()
            return resp

    async def get(self, path: str, **headers: str) -> tuple[int, Any]:
        async with self.session.get(self.api.base + path, headers=headers,
                                    allow_redirects=False) as resp:
            text = await resp.text()
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, text

    async def csrf(self) -> str:
        _, page = await self.get("/dashboard/endpoints", Accept="text/html")
        found = re.search(r'data-csrf="([^"]+)"', page)
        assert found, page
        return found.group(1)

    async def act(self, action: str, data: dict[str, Any], **headers: str) -> tuple[int, Any]:
        async with self.session.post(self.api.base + f"/dashboard/actions/{action}", json=data,
                                     headers={"Origin": self.origin, **headers},
                                     allow_redirects=False) as resp:
            return resp.status, await resp.json(content_type=None)


async def dead_letters(db: asyncpg.Connection, count: int = 1,
                       timeout: float = 20.0) -> list[int]:
    """The ids of the dead letters, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        ids = [r["id"] for r in await db.fetch(
            "SELECT id FROM deliveries WHERE status = 'dead_letter' ORDER BY id")]
        if len(ids) >= count:
            return ids
        assert time.monotonic() < deadline, "no dead letter in time"
        await asyncio.sleep(0.05)


def hostile(code: int) -> Any:
    async def behave(_: Received, __: int) -> web.StreamResponse:
        return web.Response(status=code, text=HOSTILE, content_type="text/html")
    return behave


async def test_operator_signs_in_and_watches_events_arrive(database_url: str,
                                                          browser: Browsers) -> None:
    async with console_node(database_url) as (_, api):
        key = await new_org(api, "acme")
        page = await browser.open(api.base)
        await sign_in(page, TOKEN)
        [cookie] = await page.context.cookies(page.url("/dashboard"))
        assert cookie["name"] == "triggerd_console" and "triggerd_console" not in (
            await page.cookies())  # Path=/dashboard: sent to the console only
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/dashboard" and not cookie["secure"]
        await shows(page, "#events-1h", "0")
        for n in range(3):
            await post(api, key, n=n)
        # The counter moves without a reload, from the polled JSON.
        await shows(page, "#events-1h", "3")
        assert await page.page.locator("#chart-ingest polyline").count() == 1
        assert await page.text("#who") == "operator"
        assert page.foreign_requests() == [] and page.errors == []


async def test_a_dead_letter_retried_from_the_page_is_delivered(
        database_url: str, db: asyncpg.Connection, browser: Browsers) -> None:
    async with receiver() as rx, console_node(database_url) as (_, api):
        key = await new_org(api, "acme")
        await endpoint(api, key, rx.url("/flaky", fail_first(4)))
        await post(api, key)
        [dead] = await dead_letters(db)
        page = await browser.open(api.base)
        await sign_in(page, TOKEN)
        await page.goto("/dashboard/dead-letters")
        row = f'#dead-letters tr[data-id="{dead}"]'
        assert "failure 4" in (await page.text(row)) or "500" in await page.text(row)
        await page.click(f"{row} .act-retry")
        await page.wait_for("#notice")
        assert f"Delivery {dead} re-queued" in await page.text("#notice")
        await rx.wait_for(lambda: len(rx.at("/flaky")) == 5)
        status_ = await db.fetchval("SELECT status FROM deliveries WHERE id = $1", dead)
        deadline = time.monotonic() + 10
        while status_ != "delivered":
            assert time.monotonic() < deadline, status_
            await asyncio.sleep(0.05)
            status_ = await db.fetchval("SELECT status FROM deliveries WHERE id = $1", dead)
        await page.goto("/dashboard/audit")
        audit = await page.text("#audit")
        assert "retry" in audit and "operator" in audit and str(dead) in audit
        assert page.errors == []


async def test_a_tenant_sees_only_its_own_organization(
        database_url: str, db: asyncpg.Connection, browser: Browsers) -> None:
    async with receiver() as rx, console_node(database_url) as (_, api):
        mine, theirs = await new_org(api, "mine"), await new_org(api, "theirs")
        own = await endpoint(api, mine, rx.url("/mine", fail_first(99)))
        other = await endpoint(api, theirs, rx.url("/theirs", fail_first(99)))
        await post(api, mine)
        await post(api, theirs)
        ids = await dead_letters(db, 2)
        other_dead = await db.fetchval(
            "SELECT id FROM deliveries WHERE endpoint_id = $1", other["id"])
        page = await browser.open(api.base)
        await sign_in(page, mine)
        await page.goto("/dashboard/endpoints")
        shown = await page.page.content()
        assert own["id"] in shown and other["id"] not in shown and "/theirs" not in shown
        await page.goto("/dashboard/dead-letters")
        shown = await page.page.content()
        assert f'data-id="{other_dead}"' not in shown
        assert any(f'data-id="{i}"' in shown for i in ids if i != other_dead)
        await page.goto(f"/dashboard/endpoints/{other['id']}", status=404)
        assert await page.page.locator("#nodes").count() == 0
        # The same session's JSON: the other organization's objects are not found.
        async with Client(api) as client:
            assert (await client.login(mine)).status == 303
            status_, _ = await client.get(f"/dashboard/api/endpoints/{other['id']}/attempts")
            assert status_ == 404
            status_, body = await client.get(f"/dashboard/api/endpoints/{own['id']}/attempts")
            assert status_ == 200 and body["attempts"]
            other_org = await db.fetchval("SELECT org_id FROM endpoints WHERE id = $1",
                                          other["id"])
            # A tenant's scope is its own, whatever `org` it asks for.
            status_, body = await client.get(f"/dashboard/api/dead-letters?org={other_org}")
            assert status_ == 200 and [d["id"] for d in body["items"]] == [
                i for i in ids if i != other_dead]
            token = await client.csrf()
            for action, data in (("retry", {"delivery_id": other_dead}),
                                 ("resolve", {"delivery_id": other_dead}),
                                 ("pause", {"endpoint_id": other["id"]})):
                status_, body = await client.act(action, {**data, "csrf": token})
                assert status_ == 404, body
            assert (await client.get("/dashboard/api/nodes"))[0] == 403
        assert await db.fetchval("SELECT paused_at FROM endpoints WHERE id = $1",
                                 other["id"]) is None


async def test_a_hostile_receiver_body_is_shown_as_text(
        database_url: str, db: asyncpg.Connection, browser: Browsers) -> None:
    async with receiver() as rx, console_node(database_url) as (_, api):
        key = await new_org(api, "acme")
        ep = await endpoint(api, key, rx.url("/evil", hostile(500)))
        await post(api, key)
        await dead_letters(db)
        page = await browser.open(api.base)
        await sign_in(page, key)
        await page.goto(f"/dashboard/endpoints/{ep['id']}")
        assert HOSTILE[:40] in await page.text("#attempts")
        assert await page.page.evaluate("window.pwned") is None
        assert await page.page.locator("#attempts script, #attempts img").count() == 0
        await page.goto("/dashboard/endpoints")
        await page.fill("#filter", "nothing-like-this")
        assert await page.page.locator("#endpoints tbody tr:visible").count() == 0
        await page.fill("#filter", "/evil")
        assert await page.page.locator("#endpoints tbody tr:visible").count() == 1
