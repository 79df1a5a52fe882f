"""The operations layer called directly, as a command line or the console will call it:
no HTTP, a connection or a pool, the caller's organization (or None for an operator
where an operation allows it), typed arguments; typed records back, typed refusals.
Every record returned renders to JSON that its own schema accepts."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker

from ingestor import ops_deliveries, ops_endpoints, ops_events, ops_metrics, ops_orgs
from ingestor.auth import TIER_LIMITS
from ingestor.endpoint_spec import EndpointChanges, EndpointSpec
from ingestor.errors import Conflict, Invalid, NotFound
from ingestor.ids import uuid7
from ingestor.ops_db import OPERATOR
from ingestor.records import Page
from ingestor.shapes import schema_of, to_json
from tests.integration.delivery_helpers import PUBLIC_URL, insert_attempt, insert_delivery


def strictly(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strictly(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strictly(v) for k, v in schema.items()}
    if "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def rendered(record: Any) -> Any:
    """The record as the API sends it, checked against the schema derived from it."""
    body = orjson.loads(orjson.dumps(to_json(record)))
    OAS31Validator(strictly(schema_of(type(record))),
                   format_checker=oas31_format_checker).validate(body)
    return body


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as made:
        yield made


async def _event(db: asyncpg.Connection, org_id: UUID, type_: str = "order.created") -> str:
    event_id = uuid7()
    await db.execute("INSERT INTO events (id, org_id, type, payload, routed_at) "
                     "VALUES ($1, $2, $3, '{\"n\": 1}', now())", event_id, org_id, type_)
    return str(event_id)


async def test_organizations_and_keys(db: asyncpg.Connection) -> None:
    first = await ops_orgs.create_organization(db, "acme", "pro", TIER_LIMITS)
    second = await ops_orgs.create_organization(db, "globex", "free", TIER_LIMITS)
    assert rendered(first)["rate_limit_per_minute"] == 1000
    org = await ops_orgs.get_organization(db, first.organization_id, TIER_LIMITS)
    assert (org.organization_name, org.tier, org.active_keys) == ("acme", "pro", 1)
    rendered(org)
    page = await ops_orgs.list_organizations(db, TIER_LIMITS, limit=1)
    assert [o.organization_name for o in page.items] == ["acme"] and page.next_cursor
    rest = await ops_orgs.list_organizations(db, TIER_LIMITS, cursor=page.next_cursor)
    assert [o.organization_name for o in rest.items] == ["globex"] and rest.next_cursor is None
    with pytest.raises(Invalid):
        await ops_orgs.list_organizations(db, TIER_LIMITS, cursor="nope")
    issued = await ops_orgs.create_key(db, first.organization_id)
    keys = await ops_orgs.list_keys(db, first.organization_id)
    assert issued.key_id in {k.key_id for k in keys} and len(keys) == 2
    rendered(issued)
    rendered(keys[0])
    with pytest.raises(NotFound):
        await ops_orgs.revoke_key(db, second.organization_id, issued.key_id)
    with pytest.raises(Invalid):
        await ops_orgs.revoke_key(db, first.organization_id, "key_XYZ")
    revoked = await ops_orgs.revoke_key(db, first.organization_id, issued.key_id)
    again = await ops_orgs.revoke_key(db, first.organization_id, issued.key_id)
    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    assert [k.key_id for k in await ops_orgs.list_keys(db, first.organization_id)] != [
        issued.key_id]
    rotated = await ops_orgs.rotate_keys(db, first.organization_id)
    assert rotated.api_key not in (first.api_key, issued.api_key)
    assert len(await ops_orgs.list_keys(db, first.organization_id)) == 1


async def test_endpoints(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    org = (await ops_orgs.create_organization(db, "acme", "pro", TIER_LIMITS)).organization_id
    other = (await ops_orgs.create_organization(db, "b", "pro", TIER_LIMITS)).organization_id
    made = await ops_endpoints.create_endpoint(
        db, org, EndpointSpec(PUBLIC_URL, event_types=("order.*",), priority=7), by=OPERATOR)
    body = rendered(made)
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["order.*"]
    target = made.endpoint.id
    assert (await ops_endpoints.get_endpoint(db, None, target)).priority == 7  # an operator
    with pytest.raises(NotFound):  # another organization's
        await ops_endpoints.pause_endpoint(db, other, target, by=OPERATOR)
    paused = await ops_endpoints.pause_endpoint(db, None, target, by=OPERATOR)
    assert paused.paused and paused.paused_by == OPERATOR
    changed = await ops_endpoints.update_endpoint(
        db, org, target, EndpointChanges(description="d", event_types=None, paused=False),
        by="key_0123456789abcdef")
    assert (changed.description, changed.event_types, changed.paused) == ("d", None, False)
    rendered(changed)
    disabled = await ops_endpoints.disable_endpoint(db, None, target, "maintenance")
    assert not disabled.enabled and disabled.disabled_reason == "maintenance"
    with pytest.raises(Conflict):
        await ops_endpoints.recover_endpoint(db, org, target, datetime.now(UTC) - timedelta(1))
    assert (await ops_endpoints.enable_endpoint(db, org, target)).enabled
    assert (await ops_endpoints.recover_endpoint(
        db, org, target, datetime.now(UTC) - timedelta(1))).requeued == 0
    rotated = await ops_endpoints.rotate_endpoint_secret(db, org, target)
    assert rotated.secret != made.secret and rendered(rotated)["previous_secret_until"]
    assert [e.id for e in await ops_endpoints.list_endpoints(db, org)] == [target]
    assert await ops_endpoints.list_endpoints(db, other) == ()
    assert (await ops_endpoints.delete_endpoint(pool, org, target)).deleted
    with pytest.raises(NotFound):
        await ops_endpoints.get_endpoint(pool, None, target)


async def test_deliveries_dead_letters_and_events(db: asyncpg.Connection) -> None:
    org = (await ops_orgs.create_organization(db, "acme", "pro", TIER_LIMITS)).organization_id
    other = (await ops_orgs.create_organization(db, "b", "pro", TIER_LIMITS)).organization_id
    endpoint = (await ops_endpoints.create_endpoint(db, org, EndpointSpec(PUBLIC_URL),
                                                    by=OPERATOR)).endpoint
    events = [await _event(db, org) for _ in range(3)]
    ids = [await insert_delivery(db, e, str(endpoint.id), "dead_letter", 2,
                                 last_error="HTTP 500") for e in events]
    await insert_attempt(db, ids[0], 1, 500, error="HTTP 500")
    health = await ops_metrics.queue_health(db, org)
    assert rendered(health)["metrics"]["dead_letter"] == 3
    assert health.stats.failure_rate == 1.0 and not health.healthy  # its one attempt failed
    stats = await ops_metrics.delivery_stats(db, org, "1h")
    assert rendered(stats)["summary"]["dead_letter"] == 3
    assert [t.event_type for t in stats.by_event_type] == ["order.created"]
    failures = await ops_metrics.recent_failures(db, org)
    assert [f.delivery_id for f in failures] == ids[:1] and rendered(failures[0])
    page = await ops_deliveries.list_deliveries(db, org, limit=2)
    assert [d.id for d in page.items] == ids[:0:-1] and page.next_cursor
    assert isinstance(page, Page)
    detail = await ops_deliveries.get_delivery(db, None, ids[0])
    assert rendered(detail)["attempts"][0]["response_status"] == 500
    with pytest.raises(NotFound):
        await ops_deliveries.get_delivery(db, other, ids[0])
    resolved = await ops_deliveries.resolve_dead_letter(db, None, ids[0], by=OPERATOR,
                                                        note="known")
    assert (resolved.resolved_by, resolved.resolution_note) == (OPERATOR, "known")
    with pytest.raises(Conflict) as refused:
        await ops_deliveries.resolve_dead_letter(db, org, ids[0], by=OPERATOR)
    assert refused.value.extra["resolved_by"] == OPERATOR
    dead = await ops_deliveries.list_dead_letters(
        db, org, ops_deliveries.DeadLetterFilter(resolved=False))
    assert sorted(d.id for d in dead.items) == sorted(ids[1:])
    assert rendered(await ops_deliveries.retry_delivery(db, org, ids[1]))["status"] == "pending"
    with pytest.raises(Conflict) as refused:
        await ops_deliveries.retry_delivery(db, org, ids[1])
    assert refused.value.extra["delivery_status"] == "pending"
    retried = await ops_deliveries.retry_dead_letters(db, org)
    assert dataclasses.astuple(retried) == (2, 0)
    shown = await ops_events.get_event(db, org, UUID(events[0]))
    assert rendered(shown)["deliveries"][0]["status"] == "pending"
    with pytest.raises(NotFound):
        await ops_events.get_event(db, other, UUID(events[0]))
    inbox = await ops_events.inbox(db, org, limit=2)
    assert [str(e.id) for e in inbox.items] == events[:0:-1] and inbox.next_cursor
    assert (await ops_events.ack_event(db, org, UUID(events[0]))).acknowledged
    acked = await ops_events.ack_events(db, org, [UUID(e) for e in events] + [uuid7()])
    assert acked.acknowledged == 3 and len(acked.not_found) == 1
    rendered(acked)
