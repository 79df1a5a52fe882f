"""The console at /dashboard on a real node, a real PostgreSQL and real receivers: in
headless Chromium (sign-in, live data, a dead letter retried from the page, a tenant's
view, hostile receiver bodies shown as text) and over plain HTTP (sessions, cookies,
CSRF, the JSON reads and scoping)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from ingestor import ops_console
from ingestor import queries_console as qc
from tests.browser import Browsers
from tests.integration.console_helpers import (
    HOSTILE,
    TOKEN,
    Client,
    console_node,
    dead_letters,
    hostile,
    new_org,
    shows,
    sign_in,
)
from tests.integration.test_delivery import endpoint, post
from tests.receiver import fail_first, receiver


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


async def test_session_lifecycle_and_cookie(database_url: str, db: asyncpg.Connection) -> None:
    async with console_node(database_url) as (_, api), Client(api) as client:
        key = await new_org(api, "acme")
        assert (await client.get("/dashboard/api/endpoints"))[0] == 401
        status_, _ = await client.get("/dashboard", Accept="text/html")
        assert status_ == 303  # a browser without a session: to the sign-in page
        assert (await client.login("wrong")).status == 401
        assert (await client.login(TOKEN, Origin="http://evil.example")).status == 403
        resp = await client.login(TOKEN)
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
        cookie = resp.headers["Set-Cookie"]
        for part in ("triggerd_console=", "HttpOnly", "SameSite=Strict", "Path=/dashboard"):
            assert part in cookie, cookie
        assert "Secure" not in cookie  # plain http here; set over https
        stored = await db.fetchrow("SELECT who, org_id, expires_at - now() AS idle, "
                                   "ends_at - now() AS life FROM console_sessions")
        assert stored["who"] == "operator" and stored["org_id"] is None
        assert 11.9 * 3600 < stored["idle"].total_seconds() <= 12 * 3600
        assert stored["life"].total_seconds() > 6.9 * 86400
        session_id = resp.cookies["triggerd_console"].value
        assert session_id not in str(await db.fetchval("SELECT id_hash FROM console_sessions"))
        assert (await client.get("/dashboard/api/endpoints"))[0] == 200
        status_, page = await client.get("/dashboard", Accept="text/html")
        assert status_ == 200 and 'id="live"' in page
        # Expired (idle): refused, on every node.
        await db.execute("UPDATE console_sessions SET expires_at = now() - interval '1 s'")
        assert (await client.get("/dashboard/api/endpoints"))[0] == 401
        # A tenant's session ends with its key.
        assert (await client.login(key)).status == 303
        assert (await client.get("/dashboard/api/endpoints"))[0] == 200
        await db.execute("UPDATE api_keys SET revoked_at = now()")
        assert (await client.get("/dashboard/api/endpoints"))[0] == 401


async def test_a_session_is_honoured_by_another_node_and_ends_at_logout(
        database_url: str) -> None:
    async with console_node(database_url) as (_, api), console_node(database_url) as (
            _, other), Client(api) as client:
        assert (await client.login(TOKEN)).status == 303
        token = await client.csrf()
        [cookie] = list(client.jar)
        async with aiohttp.ClientSession(cookies={cookie.key: cookie.value}) as elsewhere:
            async with elsewhere.get(other.base + "/dashboard/api/live") as resp:
                assert resp.status == 200
                live = await resp.json()
                assert len(live["minutes"]) == 61 and live["queue_depth"] == 0
            async with client.session.post(api.base + "/dashboard/logout",
                                           data={"csrf": token},
                                           headers={"Origin": api.base},
                                           allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/dashboard/login"
                assert "Max-Age=0" in resp.headers["Set-Cookie"]
            async with elsewhere.get(other.base + "/dashboard/api/live") as resp:
                assert resp.status == 401


async def test_actions_need_the_csrf_token_and_the_origin(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, console_node(database_url) as (_, api), Client(api) as client:
        key = await new_org(api, "acme")
        ep = await endpoint(api, key, rx.url("/hook"))
        assert (await client.login(key)).status == 303
        token = await client.csrf()
        pause = {"endpoint_id": ep["id"]}
        for data, headers in (
                (pause, {}),  # no token
                ({**pause, "csrf": "x" * len(token)}, {}),  # a wrong one
                ({**pause, "csrf": token}, {"Origin": "http://evil.example"}),
                ({**pause}, {"X-CSRF-Token": token, "Origin": "null"})):
            status_, body = await client.act("pause", data, **headers)
            assert status_ == 403, (data, headers, body)
            assert "error" in body
        # A plain form post (the page's), without the token: refused as well.
        async with client.session.post(api.base + "/dashboard/actions/pause", data=pause,
                                       headers={"Origin": api.base},
                                       allow_redirects=False) as resp:
            assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
        assert await db.fetchval("SELECT paused_at FROM endpoints") is None
        status_, body = await client.act("pause", pause, **{"X-CSRF-Token": token})
        assert status_ == 200 and body == {"action": "pause", "message": "Endpoint paused"}
        assert await db.fetchval("SELECT paused_by FROM endpoints") == "key_" + (
            hashlib.sha256(key.encode()).digest()[:8].hex())
        status_, body = await client.act("resume", {**pause, "csrf": token})
        assert status_ == 200
        # The Bearer admin token (no cookie, nothing ambient) needs no CSRF token.
        status_, body, _ = await api.call(
            "POST", "/dashboard/actions/pause", headers={"Authorization": f"Bearer {TOKEN}"},
            json=pause)
        assert status_ == 200, body
        _, body = await client.get("/dashboard/api/audit")
        assert [(a["action"], a["who"]) for a in body["audit"]] == [
            ("pause", "operator"), ("resume", body["audit"][1]["who"]),
            ("pause", body["audit"][1]["who"])]
        assert body["audit"][1]["who"].startswith("key_")


async def test_dead_letter_search_paging_and_bulk_actions(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, console_node(database_url) as (_, api), Client(api) as client:
        key = await new_org(api, "acme")
        ep = await endpoint(api, key, rx.url("/down", fail_first(4)))
        for n in range(3):
            await post(api, key, "order.created", n=n)
        await post(api, key, "order.paid")
        ids = await dead_letters(db, 4)
        assert (await client.login(TOKEN)).status == 303
        token = await client.csrf()
        status_, page = await client.get("/dashboard/api/dead-letters?error=http+500")
        assert status_ == 200 and len(page["items"]) == 4, page
        assert (await client.get("/dashboard/api/dead-letters?error=nothing-like"))[1][
            "items"] == []
        status_, first = await client.get("/dashboard/api/dead-letters?event_type=order.created")
        assert {d["id"] for d in first["items"]} == set(ids) - {ids[-1]}
        status_, page = await client.get(f"/dashboard/api/dead-letters?endpoint_id={ep['id']}")
        assert len(page["items"]) == 4 and page["next_before"] is None
        seen: list[int] = []
        path = "/dashboard/api/dead-letters?limit=3"
        while True:
            _, page = await client.get(path)
            seen += [d["id"] for d in page["items"]]
            if not page["next_before"]:
                break
            path = f"/dashboard/api/dead-letters?limit=3&before={page['next_before']}"
        assert sorted(seen) == sorted(ids) and len(seen) == 4
        # Bulk retry with no organization nor endpoint is refused for an operator.
        status_, body = await client.act("retry-filtered", {"csrf": token})
        assert status_ == 400, body
        status_, body = await client.act("resolve", {"csrf": token, "delivery_id": ids[-1],
                                                     "note": "<b>known</b>"})
        assert status_ == 200, body
        _, page = await client.get("/dashboard/dead-letters", Accept="text/html")
        assert "&lt;b&gt;known&lt;/b&gt;" in page and "<b>known" not in page
        status_, body = await client.act("retry-filtered", {
            "csrf": token, "endpoint_id": ep["id"], "event_type": "order.created"})
        assert status_ == 200 and body["message"].startswith("3 dead letters re-queued"), body
        await rx.wait_for(lambda: len(rx.at("/down")) >= 4 * 4 + 3)
        status_, body = await client.act("recover", {
            "csrf": token, "endpoint_id": ep["id"], "since": "2000-01-01T00:00:00"})
        assert status_ == 200 and "re-queued" in body["message"]
        status_, body = await client.act("retry", {"csrf": token, "delivery_id": 10**9})
        assert status_ == 404
        _, page = await client.get("/dashboard/audit", Accept="text/html")
        for action in ("resolve", "retry-filtered", "recover"):
            assert f"<td>{action}</td>" in page


async def test_json_reads_for_operators_and_scripts(database_url: str) -> None:
    async with receiver() as rx, console_node(database_url) as (node, api):
        key = await new_org(api, "acme")
        ep = await endpoint(api, key, rx.url("/ok"))
        await post(api, key)
        await rx.wait_for(lambda: len(rx.at("/ok")) == 1)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        status_, body, _ = await api.call("GET", "/dashboard/api/endpoints", headers=bearer)
        assert status_ == 200
        [row] = body["endpoints"]
        assert row["id"] == ep["id"] and row["state"] == "enabled" and row["due"] == 0
        assert row["org_name"] == "acme"
        status_, live, _ = await api.call("GET", "/dashboard/api/live", headers=bearer)
        assert status_ == 200 and live["events_1h"] == 1
        deadline = time.monotonic() + 10
        while live["delivered_1h"] != 1:
            assert time.monotonic() < deadline, live
            await asyncio.sleep(0.1)
            _, live, _ = await api.call("GET", "/dashboard/api/live", headers=bearer)
        minute = [m for m in live["minutes"] if m["delivered"]][0]
        assert minute["duration_p99_ms"] is not None and minute["latency_p50_ms"] is not None
        status_, body, _ = await api.call("GET", "/dashboard/api/nodes", headers=bearer)
        assert status_ == 200 and [n["alive"] for n in body["nodes"]] == [True]
        assert "deliver" in body["nodes"][0]["roles"]
        status_, body, _ = await api.call("GET", "/dashboard/api/live",
                                          headers={"Authorization": "Bearer wrong"})
        assert status_ == 401
        status_, body, _ = await api.call("GET", "/dashboard/api/live", key)
        assert status_ == 401  # an API key signs in at /dashboard/login; no key header here
        status_, body, _ = await api.call("GET", "/dashboard/api/live?org=nope", headers=bearer)
        assert status_ == 400


async def test_operator_pauses_and_resumes_from_the_page_and_sees_the_nodes(
        database_url: str, db: asyncpg.Connection, browser: Browsers) -> None:
    async with receiver() as rx, console_node(database_url) as (_, api):
        first, second = await new_org(api, "first"), await new_org(api, "second")
        one = await endpoint(api, first, rx.url("/one"))
        two = await endpoint(api, second, rx.url("/two"))
        page = await browser.open(api.base)
        await page.goto("/dashboard/login")
        await page.fill("#token", TOKEN)
        await page.click("#login button")
        await page.page.wait_for_url("**/dashboard")
        await page.goto("/dashboard/endpoints")
        assert await page.page.locator("#endpoints tbody tr").count() == 2
        await page.click("#endpoints th:nth-child(2)")  # by organization
        orgs = await page.page.locator("#endpoints tbody td:nth-child(2)").all_inner_texts()
        assert orgs == ["first", "second"]
        await page.click("#endpoints th:nth-child(2)")
        orgs = await page.page.locator("#endpoints tbody td:nth-child(2)").all_inner_texts()
        assert orgs == ["second", "first"]
        # One organization's view.
        await page.page.select_option("#org", label="first")
        await page.click("#org-picker button")
        await page.page.wait_for_url("**/dashboard/endpoints?org=*")
        assert await page.page.locator("#endpoints tbody tr").count() == 1
        await page.click(f'#endpoints tr[data-id="{one["id"]}"] a')
        await page.wait_for("#endpoint-state")
        # Dismissed: nothing happens.
        page.page.once("dialog", lambda dialog: dialog.dismiss())
        await page.click(".act-pause")
        assert await page.text("#endpoint-state") == "enabled"
        page.page.on("dialog", lambda dialog: dialog.accept())
        await page.click(".act-pause")
        await page.wait_for("#notice")
        assert await page.text("#endpoint-state") == "paused"
        assert await db.fetchval("SELECT paused_by FROM endpoints WHERE id = $1",
                                 one["id"]) == "operator"
        await page.click(".act-resume")
        await page.page.wait_for_url("**notice=Endpoint+resumed*")
        assert await page.text("#endpoint-state") == "enabled"
        assert await db.fetchval("SELECT paused_at FROM endpoints WHERE id = $1",
                                 two["id"]) is None
        await page.fill("input[name=reason]", "<i>maintenance</i>")
        await page.click(".act-disable")
        await page.page.wait_for_url("**notice=Endpoint+disabled**")
        assert await page.text("#endpoint-state") == "disabled"
        assert "(<i>maintenance</i>)" in await page.text("main p:nth-of-type(2)")
        await page.click(".act-enable")
        await page.page.wait_for_url("**notice=Endpoint+enabled**")
        assert await page.text("#endpoint-state") == "enabled"
        await page.click("#endpoint-dead-letters")
        await page.page.wait_for_url(f"**/dashboard/dead-letters?*endpoint_id={one['id']}*")
        assert await page.page.input_value("#dl-endpoint_id") == one["id"]
        await page.goto("/dashboard/nodes")
        assert "alive" in await page.text("#nodes")
        assert page.errors == [] and page.foreign_requests() == []


async def test_the_console_reads_walk_indexes(db: asyncpg.Connection) -> None:
    """At volume, every console read of the big tables walks an index range (the cap
    and the statement timeout bound the rest): no sequential scan of events, deliveries
    or attempts."""
    orgs = [uuid.uuid4(), uuid.uuid4()]
    for n, org in enumerate(orgs):
        await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, $2, 'free')",
                         org, f"o{n}")
        await db.execute("INSERT INTO endpoints (id, org_id, url, secret) VALUES "
                         "($1, $2, 'http://example.com/', 'whsec_eA==')", uuid.uuid4(), org)
    # UUIDv7 ids, as the node makes them: their first 48 bits are the time of acceptance.
    await db.execute(
        "INSERT INTO events (id, org_id, type, payload, routed_at, created_at) "
        "SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '70008' "
        "        || lpad(to_hex(i), 15, '0'))::uuid, "
        "       (ARRAY[$1, $2]::uuid[])[1 + i % 2], 't', '{}', now(), at "
        "FROM generate_series(1, 30000) i, "
        "     LATERAL (SELECT now() - make_interval(mins => i % 3000) AS at) t", *orgs)
    await db.execute(
        "INSERT INTO deliveries (event_id, endpoint_id, org_id, status, last_error) "
        "SELECT e.id, ep.id, e.org_id, CASE WHEN random() < 0.98 THEN 'delivered' "
        "ELSE 'dead_letter' END, 'HTTP 500' FROM events e JOIN endpoints ep USING (org_id) "
        "WHERE e.org_id = ep.org_id")
    await db.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempt, response_status, duration_ms, "
        "org_id, endpoint_id, event_type, latency_ms, created_at) "
        "SELECT d.id, 1, 200, 10, d.org_id, d.endpoint_id, 't', 20, e.created_at "
        "FROM deliveries d JOIN events e ON e.id = d.event_id")
    await db.execute("ANALYZE")
    since = datetime.now(UTC) - timedelta(hours=1)
    floor = ops_console._uuid7_floor(since)
    checks: list[tuple[str, tuple[Any, ...]]] = [
        (qc.INGEST_PER_MINUTE, (floor, 500_000, None)),
        (qc.INGEST_PER_MINUTE, (floor, 500_000, orgs[0])),
        (qc.ATTEMPTS_PER_MINUTE, (since, 200_000)),
        (qc.ORG_ATTEMPTS_PER_MINUTE, (since, 200_000, orgs[0])),
        (qc.DEAD_LETTERS, (orgs[0], None, None, None, None, None, None, None, 51)),
        (qc.DEAD_LETTERS, (None, None, "t", None, None, "500", None, None, 51)),
        (qc.ORG_ENDPOINTS, (orgs[0], 500, 10_000, 200_000)),
        (qc.ENDPOINTS, (None, 500, 10_000, 200_000)),
        (qc.ENDPOINT_ATTEMPTS, (uuid.uuid4(), orgs[0], 50, 300, 20_000)),
    ]
    for sql, args in checks:
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + sql, *args))
        for table in ("events", "deliveries", "delivery_attempts"):
            assert f"Seq Scan on {table} " not in plan + " ", (sql, plan)
