"""GET /docs on a real node: in headless Chromium the page renders every operation of the
node's own /openapi.json, with nothing requested from any other origin, no error and no
refusal by its Content-Security-Policy; the assets are the package's, with their types
and cache headers; an unknown asset is the node's JSON 404."""

from __future__ import annotations

from typing import Any

import aiohttp

from ingestor.openapi import document
from ingestor.routes_docs import ASSET_CACHE, ASSETS, CSP, load_assets
from tests.browser import BrowserPage
from tests.conftest import Api

METHODS = ("get", "put", "post", "delete", "patch")


def operations(doc: dict[str, Any]) -> dict[str, str]:
    """Swagger UI's element id of each operation -> its summary."""
    return {f"operations-{op['tags'][0]}-{op['operationId']}": op["summary"]
            for item in doc["paths"].values() for method, op in item.items()
            if method in METHODS}


async def test_the_page_renders_the_api_from_the_node_alone(browser_page: BrowserPage) -> None:
    response = await browser_page.goto("/docs")
    assert response.headers["content-security-policy"] == CSP
    await browser_page.wait_for("#operations-events-post_event")
    event = await browser_page.text("#operations-events-post_event")
    assert "POST" in event and "/api/events" in event
    assert "Accept one event, answered once committed." in event
    shown = await browser_page.page.eval_on_selector_all(".opblock", "els => els.map(e => e.id)")
    assert sorted(shown) == sorted(operations(document()))
    assert browser_page.foreign_requests() == []
    assert {browser_page.url(path) for path in ("/openapi.json", "/docs")} <= {
        url.split("?")[0] for url in browser_page.requests}
    assert browser_page.errors == []


async def test_assets_are_the_packages_with_types_and_cache_headers(api: Api) -> None:
    files = load_assets()
    async with api.request("GET", "/docs") as resp:
        page = await resp.text()
        assert resp.content_type == "text/html" and resp.charset == "utf-8"
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["Cache-Control"] == "no-cache"
    for name, content_type in ASSETS.items():
        assert f"docs/{name}?v={files[name].digest}" in page
        identity = {"Accept-Encoding": "identity"}
        async with api.request("GET", f"/docs/{name}", headers=identity) as resp:
            assert resp.status == 200 and await resp.read() == files[name].body
            assert (resp.content_type, resp.charset) == (content_type, "utf-8")
            assert resp.headers["Cache-Control"] == ASSET_CACHE
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            plain_tag = resp.headers["ETag"]
        async with api.request("GET", f"/docs/{name}") as resp:  # gzip, decoded here
            assert resp.headers["Content-Encoding"] == "gzip"
            assert await resp.read() == files[name].body
            assert resp.headers["ETag"] not in (plain_tag, None)
        revalidate = {**identity, "If-None-Match": plain_tag}
        async with api.request("GET", f"/docs/{name}", headers=revalidate) as resp:
            assert resp.status == 304 and await resp.read() == b""


async def test_an_unknown_asset_is_a_json_404(api: Api) -> None:
    for path in ("/docs/nope.js", "/docs/swagger-ui.css.map", "/docs/", "/docs/docs/docs.js"):
        async with api.request("GET", path) as resp:
            assert resp.status == 404, path
            assert await resp.json() == {"error": "Not found"}
    status, body, _ = await api.call("POST", "/docs/docs.js")
    assert (status, body) == (405, {"error": "Method not allowed"})
    async with aiohttp.ClientSession() as session:
        async with session.get(api.base + "/docs/docs.js", headers={
                "Accept-Encoding": "br;q=1, gzip;q=0"}) as resp:
            assert "Content-Encoding" not in resp.headers
