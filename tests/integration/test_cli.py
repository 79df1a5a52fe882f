"""The operator's command line against a real PostgreSQL: each command run as
`python -m supervisor.node.cli ...` with DATABASE_URL pointing at the test's database,
its `--json` parsed and checked against the tables, tables for people, exit codes (3 not
found, 4 conflict, 2 usage or configuration), secrets masked by `config check`, `tail`
stopping by itself, a replay received by a real receiver from a delivering node, and an
operator acting for one organization never touching another's rows."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import Api
from tests.integration.delivery_helpers import insert_delivery, new_endpoint, new_event
from tests.integration.test_delivery import endpoint, post, running, wait_statuses
from tests.receiver import receiver

ROOT = Path(__file__).resolve().parents[2]
ME = "cli:" + getpass.getuser()


def _environ(database_url: str | None, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "PORT", "POOL_SIZE") and not k.startswith("TRIGGERD_")}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return {**env, "TRIGGERD_LOG_FORMAT": "text", **settings}


async def cli(database_url: str | None, *args: str, **settings: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor.node.cli", *args, cwd=ROOT,
        env=_environ(database_url, **settings), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(database_url: str, *args: str) -> Any:
    """The JSON a command printed; it must have succeeded."""
    code, out, err = await cli(database_url, *args, "--json")
    assert code == 0, (args, out, err)
    return json.loads(out)


async def refused(database_url: str, code: int, *args: str) -> str:
    got, out, err = await cli(database_url, *args)
    assert got == code, (args, got, out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("triggerd: "), err
    return err


async def org_id(db: asyncpg.Connection, name: str = "acme") -> str:
    return str(await db.fetchval("SELECT id FROM organizations WHERE name = $1", name))


async def test_version_and_config_check(tmp_path: Path) -> None:
    code, out, _ = await cli(None, "--version")
    assert code == 0 and out.startswith("triggerd ")
    secrets = {"DATABASE_URL": "postgresql://app:hunter2@db.example:5432/triggerd"
                               "?password=hunter3",
               "TRIGGERD_ADMIN_TOKEN": "admintoken123",
               "TRIGGERD_ALERT_WEBHOOK_URL": "https://bot:pw9@hooks.example.com/T0/B0/tok?k=q1"}
    code, out, err = await cli(None, "config", "check", "--json", **secrets)
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["DATABASE_URL"] == ("postgresql://app:****@db.example:5432/triggerd"
                                        "?password=****")
    assert settings["TRIGGERD_ADMIN_TOKEN"] == "****"
    assert settings["TRIGGERD_ALERT_WEBHOOK_URL"] == "https://****@hooks.example.com/****"
    assert settings["PORT"] == 4000 and settings["TRIGGERD_ROLES"] == [
        "deliver", "ingest", "process"]
    for secret in ("hunter2", "hunter3", "admintoken123", "pw9", "tok", "q1"):
        assert secret not in out
    code, table, _ = await cli(None, "config", "check", **secrets)
    assert code == 0 and "admintoken123" not in table
    assert any(line.split() == ["TRIGGERD_ADMIN_TOKEN", "****"] for line in table.splitlines())
    config = tmp_path / "triggerd.toml"
    config.write_text('pool_size = 7\n')
    code, out, _ = await cli(None, "config", "check", "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["settings"]["POOL_SIZE"] == 7
    code, _, err = await cli(None, "config", "check", TRIGGERD_LOG_LEVEL="loud")
    assert code == 2 and "TRIGGERD_LOG_LEVEL" in err and len(err.splitlines()) == 1
    config.write_text('pool_size = "many"\n')
    code, _, err = await cli(None, "config", "check", "--config", str(config))
    assert code == 2 and "POOL_SIZE" in err
    code, _, err = await cli(None, "status", "--bogus")
    assert code == 2


async def test_orgs_and_keys(database_url: str, db: asyncpg.Connection) -> None:
    created = await ok(database_url, "keys", "create", "--org", "acme", "--tier", "pro")
    assert created["organization_name"] == "acme" and created["tier"] == "pro"
    assert created["api_key"] and created["organization_id"] == await org_id(db)
    other = await ok(database_url, "keys", "create", "--org", "globex")
    orgs = await ok(database_url, "orgs", "list")
    assert [o["organization_name"] for o in orgs["organizations"]] == ["acme", "globex"]
    assert orgs["organizations"][0]["active_keys"] == 1
    code, table, _ = await cli(database_url, "orgs", "list")
    lines = table.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ORGANIZATION_ID", "ORGANIZATION_NAME", "TIER"]
    assert lines[1].split()[1:3] == ["acme", "pro"] and len(lines) == 3
    acme = created["organization_id"]
    issued = await ok(database_url, "keys", "create", "--org-id", acme)
    assert issued["organization_id"] == acme and issued["key_id"].startswith("key_")
    keys = await ok(database_url, "keys", "list", "--org-id", acme)
    assert issued["key_id"] in {k["key_id"] for k in keys["keys"]} and len(keys["keys"]) == 2
    revoked = await ok(database_url, "keys", "revoke", "--org-id", acme,
                       "--key-id", issued["key_id"])
    assert revoked["revoked_at"] is not None
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE org_id = $1 AND "
                             "revoked_at IS NULL", other["organization_id"]) == 1
    # another organization's key is not found through this one
    globex_key = (await ok(database_url, "keys", "list", "--org-id",
                           other["organization_id"]))["keys"][0]["key_id"]
    await refused(database_url, 3, "keys", "revoke", "--org-id", acme,
                  "--key-id", globex_key)
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL") == 1
    unknown = "0190a000-0000-7000-8000-000000000000"
    await refused(database_url, 3, "keys", "create", "--org-id", unknown)
    await refused(database_url, 2, "keys", "create", "--org-id", acme, "--tier", "pro")
    await refused(database_url, 2, "keys", "revoke", "--org-id", acme, "--key-id", "nope")
    await refused(database_url, 2, "keys", "list", "--org-id", "not-a-uuid")


async def test_endpoints(database_url: str, db: asyncpg.Connection) -> None:
    acme = (await ok(database_url, "keys", "create", "--org", "acme"))["organization_id"]
    globex = (await ok(database_url, "keys", "create", "--org", "globex"))["organization_id"]
    url = "https://93.184.216.34/hook"
    created = await ok(database_url, "endpoints", "create", "--org-id", acme, "--url", url,
                       "--event-types", "order.created,order.paid", "--priority", "8",
                       "--filter", '{"data": {"total": {"$gt": 10}}}',
                       "--header", "X-Tenant: acme", "--success-statuses", "200,202")
    ep = created["id"]
    assert created["secret"].startswith("whsec_") and created["priority"] == 8
    assert created["headers"] == {"X-Tenant": "acme"}
    assert created["success_statuses"] == [200, 202]
    row = await db.fetchrow("SELECT org_id, url, event_types, priority FROM endpoints "
                            "WHERE id = $1", ep)
    assert str(row["org_id"]) == acme and row["url"] == url and row["priority"] == 8
    assert row["event_types"] == ["order.created", "order.paid"]
    theirs = (await ok(database_url, "endpoints", "create", "--org-id", globex,
                       "--url", url))["id"]
    listed = await ok(database_url, "endpoints", "list", "--org-id", acme)
    assert [e["id"] for e in listed["endpoints"]] == [ep]
    assert "secret" not in listed["endpoints"][0]
    paused = await ok(database_url, "endpoints", "pause", "--org-id", acme, ep)
    assert paused["paused"] and paused["paused_by"] == ME
    assert await db.fetchval("SELECT paused_by FROM endpoints WHERE id = $1", ep) == ME
    assert not (await ok(database_url, "endpoints", "resume", "--org-id", acme, ep))["paused"]
    disabled = await ok(database_url, "endpoints", "disable", "--org-id", acme, ep,
                        "--reason", "receiver moved")
    assert not disabled["enabled"] and disabled["disabled_reason"] == "receiver moved"
    assert (await ok(database_url, "endpoints", "enable", "--org-id", acme, ep))["enabled"]
    rotated = await ok(database_url, "endpoints", "rotate-secret", "--org-id", acme, ep)
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_until"]
    # acting for acme never reaches globex's endpoint
    for action in ("pause", "disable", "delete", "rotate-secret"):
        await refused(database_url, 3, "endpoints", action, "--org-id", acme, theirs)
    row = await db.fetchrow("SELECT enabled, paused_at, deleted_at, secret FROM endpoints "
                            "WHERE id = $1", theirs)
    assert row["enabled"] and row["paused_at"] is None and row["deleted_at"] is None
    assert (await ok(database_url, "endpoints", "delete", "--org-id", acme, ep))["deleted"]
    assert await db.fetchval("SELECT deleted_at FROM endpoints WHERE id = $1", ep) is not None
    await refused(database_url, 3, "endpoints", "pause", "--org-id", acme, ep)
    await refused(database_url, 2, "endpoints", "create", "--org-id", acme, "--url",
                  "ftp://example.com/x")
    await refused(database_url, 2, "endpoints", "create", "--org-id", acme, "--url", url,
                  "--filter", "{nope")
    await refused(database_url, 2, "endpoints", "pause", ep)  # --org-id is required
    code, table, _ = await cli(database_url, "endpoints", "list", "--org-id", globex)
    assert code == 0 and table.splitlines()[0].split()[:2] == ["ID", "URL"]
    assert theirs in table.splitlines()[1]


async def test_deliveries_and_dead_letters(database_url: str, api: Api,
                                           db: asyncpg.Connection) -> None:
    key_a, key_b = await api.new_org("acme"), await api.new_org("globex")
    acme, globex = await org_id(db, "acme"), await org_id(db, "globex")
    ep_a, ep_b = (await new_endpoint(api, key_a))["id"], (await new_endpoint(api, key_b))["id"]
    dead_a = await insert_delivery(db, await new_event(api, key_a), ep_a, "dead_letter", 5,
                                   last_error="HTTP 500")
    done_a = await insert_delivery(db, await new_event(api, key_a, "order.paid"), ep_a,
                                   "delivered", 1)
    dead_b = await insert_delivery(db, await new_event(api, key_b), ep_b, "dead_letter", 5)
    listed = await ok(database_url, "deliveries", "list", "--org-id", acme)
    assert [d["id"] for d in listed["deliveries"]] == [done_a, dead_a]
    assert listed["next_cursor"] is None
    first = await ok(database_url, "deliveries", "list", "--org-id", acme, "--limit", "1")
    rest = await ok(database_url, "deliveries", "list", "--org-id", acme, "--limit", "1",
                    "--cursor", first["next_cursor"])
    assert [d["id"] for d in first["deliveries"] + rest["deliveries"]] == [done_a, dead_a]
    only = await ok(database_url, "deliveries", "list", "--org-id", acme, "--status",
                    "dead_letter", "--event-type", "order.created")
    assert [d["id"] for d in only["deliveries"]] == [dead_a]
    shown = await ok(database_url, "deliveries", "show", str(dead_a), "--org-id", acme)
    assert shown["status"] == "dead_letter" and shown["attempts"] == []
    await refused(database_url, 3, "deliveries", "show", str(dead_b), "--org-id", acme)
    await refused(database_url, 3, "deliveries", "retry", str(dead_b), "--org-id", acme)
    err = await refused(database_url, 4, "deliveries", "retry", str(done_a))
    assert "delivered" in err
    await refused(database_url, 3, "deliveries", "show", "999999")
    dead = await ok(database_url, "dlq", "list", "--org-id", acme, "--unresolved",
                    "--endpoint-id", ep_a)
    assert [d["id"] for d in dead["deliveries"]] == [dead_a]
    resolved = await ok(database_url, "dlq", "resolve", str(dead_a), "--note", "known outage")
    assert resolved["resolved_by"] == ME and resolved["resolution_note"] == "known outage"
    row = await db.fetchrow("SELECT resolved_by, resolution_note FROM deliveries WHERE id = $1",
                            dead_a)
    assert (row["resolved_by"], row["resolution_note"]) == (ME, "known outage")
    await refused(database_url, 4, "dlq", "resolve", str(dead_a))
    await refused(database_url, 3, "dlq", "resolve", str(dead_b), "--org-id", acme)
    assert (await ok(database_url, "dlq", "list", "--org-id", acme, "--resolved"))[
        "deliveries"][0]["id"] == dead_a
    retried = await ok(database_url, "dlq", "retry", "--org-id", acme)
    assert retried == {"requeued": 1, "skipped": 0}
    states = dict(await db.fetch("SELECT id, status FROM deliveries"))
    assert states == {dead_a: "pending", done_a: "delivered", dead_b: "dead_letter"}
    await db.execute("UPDATE deliveries SET status = 'dead_letter' WHERE id = $1", dead_a)
    assert await ok(database_url, "dlq", "retry", str(dead_a)) == {"id": dead_a,
                                                                    "status": "pending"}
    await refused(database_url, 2, "dlq", "retry")  # a bulk retry names the organization
    await db.execute("UPDATE deliveries SET status = 'failed' WHERE id = $1", dead_a)
    recovered = await ok(database_url, "dlq", "recover", "--org-id", acme, "--endpoint-id",
                         ep_a, "--since", "2020-01-01T00:00:00Z")
    assert recovered == {"requeued": 1}
    await refused(database_url, 3, "dlq", "recover", "--org-id", acme, "--endpoint-id", ep_b,
                  "--since", "2020-01-01T00:00:00Z")
    await refused(database_url, 2, "dlq", "recover", "--org-id", acme, "--endpoint-id", ep_a,
                  "--since", "yesterday")
    assert await db.fetchval("SELECT status FROM deliveries WHERE id = $1",
                             dead_b) == "dead_letter"
    # a replay of an event whose delivery is still under way is a conflict
    event_a = str(await db.fetchval("SELECT event_id FROM deliveries WHERE id = $1", dead_a))
    await refused(database_url, 4, "events", "replay", event_a, "--org-id", acme, "--all")
    await refused(database_url, 3, "events", "replay", event_a, "--org-id", globex, "--all")
    code, table, _ = await cli(database_url, "deliveries", "show", str(dead_a))
    assert code == 0 and any(line.split()[:2] == ["status", "pending"]
                             for line in table.splitlines())


async def test_status(database_url: str, node: Any, api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = (await new_endpoint(api, key))["id"]
    await insert_delivery(db, await new_event(api, key), ep, "pending")
    await insert_delivery(db, await new_event(api, key), ep, "dead_letter")
    await db.execute("UPDATE endpoints SET paused_at = now(), paused_by = 'x' WHERE id = $1", ep)
    status = await ok(database_url, "status")
    assert len(status["nodes"]) == 1
    assert status["nodes"][0]["alive"] and status["nodes"][0]["roles"] == ["ingest"]
    queue = status["queue"]
    assert (queue["pending"], queue["dead_letter"], queue["endpoints_paused"]) == (1, 1, 1)
    assert queue["oldest_pending_age_s"] >= 0
    code, table, _ = await cli(database_url, "status")
    assert code == 0 and "alive" in table and "endpoints_paused" in table
    await db.execute("UPDATE nodes SET seen_at = now() - interval '1 hour'")
    assert not (await ok(database_url, "status"))["nodes"][0]["alive"]


async def test_replay_reaches_the_receiver_and_tail_follows(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        acme = await org_id(db)
        ep = (await endpoint(api, key, rx.url("/hook"), paused=True))["id"]
        other = (await endpoint(api, key, rx.url("/other")))["id"]
        code, out, _ = await cli(database_url, "tail", "--seconds", "0.6")
        assert code == 0 and out == ""
        tail = asyncio.ensure_future(cli(database_url, "tail", "--json", "--count", "2",
                                         "--endpoint-id", ep, "--seconds", "20"))
        settled = asyncio.ensure_future(cli(database_url, "tail", "--status", "delivered",
                                            "--count", "1", "--org-id", acme,
                                            "--endpoint-id", ep, "--seconds", "20"))
        await asyncio.sleep(1.5)  # its first poll has found where the deliveries end
        event_id = await post(api, key, n=1)
        await wait_statuses(db, {"pending", "delivered"}, 2)
        await asyncio.sleep(1.0)  # seen pending by the tail
        await ok(database_url, "endpoints", "resume", "--org-id", acme, ep)
        await wait_statuses(db, {"delivered"}, 2)
        code, out, err = await tail
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [d["endpoint_id"] for d in lines] == [ep, ep]
        assert lines[0]["status"] == "pending" and lines[0]["event_id"] == event_id
        assert lines[1]["status"] in ("in_flight", "delivered")
        code, out, err = await settled
        assert code == 0 and len(out.splitlines()) == 1, err
        assert out.split()[1:3] == [str(lines[0]["id"]), "delivered"]  # a line for people
        shown = await ok(database_url, "events", "show", event_id, "--org-id", acme)
        assert {d["endpoint_id"] for d in shown["deliveries"]} == {ep, other}
        replayed = await ok(database_url, "events", "replay", event_id, "--org-id", acme,
                            "--endpoint-id", ep)
        assert replayed["replayed"] == 1 and replayed["deliveries"][0]["status"] == "delivered"
        await rx.wait_for(lambda: len(rx.at("/hook")) == 2)
        assert {r.headers["webhook-id"] for r in rx.at("/hook")} == {event_id}
        assert rx.at("/hook")[1].headers["x-delivery-attempt"] == "1"
        await wait_statuses(db, {"delivered"}, 2)
        assert len(rx.at("/other")) == 1
        code, table, _ = await cli(database_url, "events", "show", event_id, "--org-id", acme)
        assert code == 0 and any(line.split()[0] == "payload" and '"n": 1' in line
                                 for line in table.splitlines())
        assert "deliveries:" in table and ep in table and other in table
        delivery = await db.fetchval("SELECT id FROM deliveries WHERE endpoint_id = $1", ep)
        code, table, _ = await cli(database_url, "deliveries", "show", str(delivery))
        assert code == 0 and "attempts:" in table
        assert [line.split()[0] for line in table.split("attempts:")[1].strip().splitlines()
                ] == ["ATTEMPT", "1", "1"]
        everything = await ok(database_url, "events", "replay", event_id, "--org-id", acme,
                              "--all")
        assert everything["replayed"] == 2
        await rx.wait_for(lambda: len(rx.at("/hook")) == 3 and len(rx.at("/other")) == 2)
        await wait_statuses(db, {"delivered"}, 2)  # never a second row
        for _ in range(200):  # the outcomes are written in batches
            if await db.fetchval("SELECT count(*) FROM delivery_attempts") == 5:
                break
            await asyncio.sleep(0.05)
        assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 5
        await refused(database_url, 3, "events", "replay", event_id, "--org-id", acme,
                      "--endpoint-id", "0190a000-0000-7000-8000-000000000000")
        await refused(database_url, 3, "events", "show", "0190a000-0000-7000-8000-000000000000",
                      "--org-id", acme)


async def test_tail_exits_0_on_ctrl_c(database_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor.node.cli", "tail", cwd=ROOT,
        env=_environ(database_url), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(2.0)  # polling by now
    assert proc.returncode is None
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0 and out == b"" and b"Traceback" not in err, err


async def test_tail_polls_read_only_the_new_rows(db: asyncpg.Connection) -> None:
    """A tail's poll is a range of an index from the last id seen, for every
    organization or for one, never a walk of the whole history."""
    from ingestor.queries_delivery import DELIVERIES_AFTER, DELIVERIES_BY_IDS
    from tests.integration.test_query_plans import _fill

    await _fill(db, 20_000)
    org = await db.fetchval("SELECT id FROM organizations")
    last = await db.fetchval("SELECT max(id) - 10 FROM deliveries")
    for args in ((last, None, None, 500), (last, org, None, 500)):
        rows = await db.fetch("EXPLAIN (ANALYZE) " + DELIVERIES_AFTER, *args)
        plan = "\n".join(r[0] for r in rows)
        assert "Index" in plan and "Seq Scan on deliveries" not in plan, plan
    rows = await db.fetch("EXPLAIN (ANALYZE) " + DELIVERIES_BY_IDS, [last, last + 1], None)
    plan = "\n".join(r[0] for r in rows)
    assert "Seq Scan on deliveries" not in plan, plan


async def test_an_unreachable_database_is_a_failure() -> None:
    from tests.conftest import free_port

    code, out, err = await cli(f"postgresql://triggerd@127.0.0.1:{free_port()}/x", "status",
                               TRIGGERD_DB_CONNECT_TIMEOUT="1s")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
