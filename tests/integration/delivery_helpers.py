"""Helpers for the endpoint and delivery API tests: events through the API, deliveries
and attempts straight into the tables (the poller and deliverer are not running)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from tests.conftest import Api

# A public address, so the SSRF guard accepts it without a DNS look-up.
PUBLIC_URL = "https://93.184.216.34/hook"


async def new_endpoint(api: Api, key: str, **fields: Any) -> dict[str, Any]:
    status, body, _ = await api.call("POST", "/api/endpoints", key,
                                     json={"url": PUBLIC_URL, **fields})
    assert status == 201, body
    return body


async def new_event(api: Api, key: str, type_: str = "order.created") -> str:
    status, body, _ = await api.call("POST", "/api/events", key,
                                     json={"type": type_, "payload": {"n": 1}})
    assert status == 202, body
    return str(body["id"])


async def insert_delivery(db: asyncpg.Connection, event_id: str, endpoint_id: str,
                          status: str = "pending", attempts: int = 0,
                          created_at: datetime | None = None, **columns: Any) -> int:
    """A delivery row; `next_attempt_at`, `last_error` etc. may be given as columns."""
    values: dict[str, Any] = {"status": status, "attempts": attempts, **columns}
    if created_at is not None:
        values["created_at"] = created_at
        values.setdefault("updated_at", created_at)
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(4, 4 + len(values)))
    return int(await db.fetchval(
        f"INSERT INTO deliveries (event_id, endpoint_id, org_id, {names}) "
        f"SELECT $1, $2, org_id, {params} FROM endpoints WHERE id = $3 RETURNING id",
        event_id, endpoint_id, endpoint_id, *values.values()))


async def insert_attempt(db: asyncpg.Connection, delivery_id: int, attempt: int,
                         response_status: int | None, duration_ms: float = 10.0,
                         error: str | None = None, response_body: str | None = None,
                         created_at: datetime | None = None) -> None:
    await db.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempt, response_status, duration_ms,"
        " error, response_body, created_at) VALUES ($1, $2, $3, $4, $5, $6,"
        " coalesce($7, now()))",
        delivery_id, attempt, response_status, duration_ms, error, response_body, created_at)
