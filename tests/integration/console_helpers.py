"""Helpers for the console tests: a node with an admin token, signing in from the
browser, and a plain HTTP client holding a console session cookie."""

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
from tests.browser import BrowserPage
from tests.conftest import Api
from tests.integration.test_delivery import delivery_config
from tests.receiver import Received

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
