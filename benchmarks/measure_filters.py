"""Routing with payload filters: the `routing` measure's queue (events inserted unrouted,
a process-only node that sends nothing), but one organization with ten endpoints, each
with a different filter, created through `POST /api/endpoints` on an ingest-only node
first, so the stored `filter_path` is what the product compiles.

The events are varied (types, amounts, some as strings or null, currencies, countries,
customers with tiers, tags and e-mail addresses, fields present in only some payloads)
from a seeded generator. Each filter has a plain Python twin written from the
documented semantics (ingestor/filters.py), not from the compiler; the twins give the
deliveries expected for every endpoint, event by event. After routing, the deliveries
the node created are compared with them, per endpoint: any event missing or extra is
an error of the measure.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import orjson

from benchmarks.measure_ingest import Say, new_keys
from benchmarks.measure_queue import Missing, watch
from benchmarks.procs import Children, Postgres
from benchmarks.profiles import Profile

SEED = 20261130
Payload = dict[str, Any]
Twin = Callable[[str, Payload], bool]


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _customer(data: Payload) -> Payload:
    customer = data.get("customer")
    return customer if isinstance(customer, dict) else {}


def _is_str(value: Any, test: Callable[[str], bool]) -> bool:
    return isinstance(value, str) and test(value)


# name -> (filter document, its twin on (type, payload)).
FILTERS: dict[str, tuple[dict[str, Any], Twin]] = {
    "orders_created": ({"type": "order.created"},
                       lambda t, d: t == "order.created"),
    "amount_range": ({"data": {"amount": {"$gte": 5000, "$lt": 9000}}},
                     lambda t, d: _num(d.get("amount")) and 5000 <= d["amount"] < 9000),
    "big_usd_eur": ({"data": {"currency": {"$in": ["usd", "eur"]}, "amount": {"$gt": 1000}}},
                    lambda t, d: d.get("currency") in ("usd", "eur")
                    and _num(d.get("amount")) and d["amount"] > 1000),
    "invoices": ({"type": {"$startsWith": "invoice."}},
                 lambda t, d: t.startswith("invoice.")),
    "gift_skus": ({"data": {"sku": {"$startsWith": "GIFT-"}}},
                  lambda t, d: _is_str(d.get("sku"), lambda s: s.startswith("GIFT-"))),
    "vip_or_gold_abroad": (
        {"$or": [{"data": {"customer": {"tags": {"$in": ["vip"]}}}},
                 {"$and": [{"data": {"customer": {"tier": "gold"}}},
                           {"$not": {"data": {"country": {"$in": ["us", "ca"]}}}}]}]},
        lambda t, d: "vip" in (_customer(d).get("tags") or [])
        or (_customer(d).get("tier") == "gold" and d.get("country") not in ("us", "ca"))),
    "live_orders": ({"type": {"$startsWith": "order."}, "data": {"test": {"$neq": True}}},
                    lambda t, d: t.startswith("order.") and d.get("test") is not True),
    "with_coupon": ({"data": {"coupon": {"$exist": True}}},  # present, even as null
                    lambda t, d: "coupon" in d),
    "small_untracked": (
        {"data": {"metadata": {"$exist": False}, "country": {"$nin": ["us", "de"]},
                  "amount": {"$lte": 2000}}},
        lambda t, d: "metadata" not in d and d.get("country") not in ("us", "de")
        and _num(d.get("amount")) and d["amount"] <= 2000),
    "example_customers": (
        {"data": {"customer": {"email": {"$endsWith": "@example.com"},
                               "tier": {"$neq": "bronze"}}}},
        lambda t, d: _is_str(_customer(d).get("email"), lambda s: s.endswith("@example.com"))
        and _customer(d).get("tier") != "bronze"),
}

TYPES = (("order.created", 30), ("order.paid", 20), ("order.refunded", 5),
         ("invoice.paid", 15), ("invoice.created", 10), ("customer.updated", 10),
         ("payment.failed", 10))
CURRENCIES = (("usd", 40), ("eur", 25), ("gbp", 15), ("jpy", 10), ("chf", 10))
COUNTRIES = (("us", 35), ("ca", 10), ("de", 15), ("fr", 10), ("gb", 10), ("jp", 10),
             ("br", 7), (None, 3))
TIERS = (("bronze", 60), ("silver", 30), ("gold", 10))
DOMAINS = ("example.com", "shop.example.com", "mail.example.org", "example.com.br")
TAGS = ("vip", "beta", "new", "churn-risk")


def _pick(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def _payload(rng: random.Random, i: int) -> Payload:
    roll = rng.random()
    amount: Any = rng.randint(1, 10_000)
    if roll < 0.02:
        amount = str(amount)  # a string matches no numeric comparison
    elif roll < 0.03:
        amount = None
    data: Payload = {"id": f"obj_{i}", "amount": amount,
                     "currency": _pick(rng, CURRENCIES),
                     "sku": rng.choice(("SKU-A-", "SKU-B-", "GIFT-", "gift-")) + str(i % 997)}
    country = _pick(rng, COUNTRIES)
    if country is not None:
        data["country"] = country
    if rng.random() < 0.95:
        data["customer"] = {
            "id": f"cus_{rng.randrange(10_000)}", "tier": _pick(rng, TIERS),
            "tags": rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2))),
            "email": f"user{i}@{rng.choice(DOMAINS)}"}
    test = rng.random()
    if test < 0.05:
        data["test"] = True
    elif test < 0.25:
        data["test"] = False
    coupon = rng.random()
    if coupon < 0.02:
        data["coupon"] = None
    elif coupon < 0.12:
        data["coupon"] = rng.choice(("SPRING", "WELCOME10"))
    if rng.random() < 0.2:
        data["metadata"] = {"source": rng.choice(("import", "api"))}
    return data


def generate(n: int, seed: int = SEED) -> list[tuple[uuid.UUID, str, Payload]]:
    """`n` events (UUIDv7-shaped ascending ids, type, payload), the same for a seed."""
    rng = random.Random(seed)
    start_ms = int(time.time() * 1000) - n
    return [(_uuid7(start_ms + i, rng), _pick(rng, TYPES), _payload(rng, i)) for i in range(n)]


def _uuid7(ms: int, rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
                     | (0b10 << 62) | rng.getrandbits(62))


def expected(events: list[tuple[uuid.UUID, str, Payload]]) -> dict[str, set[uuid.UUID]]:
    """Per filter, the events its twin matches."""
    return {name: {event_id for event_id, type_, data in events if twin(type_, data)}
            for name, (_, twin) in FILTERS.items()}


# The stored routing rules of the organization's endpoints, to report them. $1 org.
STORED = "SELECT id, priority, filter_path::text AS path FROM endpoints WHERE org_id = $1"
# Deliveries created, one row per (endpoint, event); no parameters.
CREATED = "SELECT endpoint_id, event_id FROM deliveries"
# Events not routed yet (events_unrouted): the first seq left, how many; no parameters.
UNROUTED_HEAD = "SELECT min(seq) FROM events WHERE routed_at IS NULL"
UNROUTED = "SELECT count(*) FROM events WHERE routed_at IS NULL"


async def _endpoints(url: str, key: str) -> dict[str, uuid.UUID]:
    """One endpoint per filter through the API; refuses to go on if one is refused."""
    made: dict[str, uuid.UUID] = {}
    headers = {"X-API-Key": key}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for name, (document, _) in FILTERS.items():
            body = {"url": f"http://127.0.0.1:9/unused/{name}", "filter": document}
            async with session.post(url + "/api/endpoints", json=body,
                                    headers=headers) as resp:
                answer = await resp.json(content_type=None)
                if resp.status != 201:
                    raise RuntimeError(f"POST /api/endpoints ({name}) answered {resp.status}: "
                                       f"{str(answer)[:300]}")
                if answer.get("filter") != document:
                    raise RuntimeError(f"endpoint {name}'s filter came back as "
                                       f"{answer.get('filter')!r}")
                made[name] = uuid.UUID(answer["id"])
    return made


async def _setup(pg: Postgres, children: Children, name: str,
                 events: list[tuple[uuid.UUID, str, Payload]]) -> tuple[dict[str, uuid.UUID],
                                                                        uuid.UUID]:
    """The endpoints through an ingest node (stopped again), then the events by COPY."""
    dsn = await pg.database(name)
    node = await children.node("triggerd-filters-api", dsn, "ingest",
                               TRIGGERD_ALLOW_PRIVATE_TARGETS="true")
    try:
        key = (await new_keys(node.url, 1))[0]
        endpoints = await _endpoints(node.url, key)
    finally:
        await children.stop(node)
    conn = await asyncpg.connect(dsn)
    try:
        org = await conn.fetchval("SELECT org_id FROM endpoints WHERE id = $1",
                                  next(iter(endpoints.values())))
        await conn.copy_records_to_table(
            "events", columns=["id", "org_id", "type", "payload"],
            records=[(i, org, t, orjson.dumps(d).decode()) for i, t, d in events])
        await conn.execute("VACUUM ANALYZE events")
    finally:
        await conn.close()
    return endpoints, org


async def routing_filters(pg: Postgres, children: Children, profile: Profile, say: Say,
                          plain_events_per_s: float | None) -> dict[str, Any]:
    n, name = profile.routing_events, "bench_routing_filters"
    events = generate(n)
    want = expected(events)
    endpoints, org = await _setup(pg, children, name, events)
    conn = await asyncpg.connect(pg.dsn_of(name))
    try:
        first = int(await conn.fetchval("SELECT min(seq) FROM events"))
        node = await children.node("triggerd-routing-filters", pg.dsn_of(name), "process",
                                   DISABLE_WEBHOOK_DELIVERY="true")

        async def progress() -> int:
            head = await conn.fetchval(UNROUTED_HEAD)
            return n if head is None else int(head) - first

        try:
            watched = await watch(progress, n, profile.routing_timeout_s, profile.stall_s)
        finally:
            await children.stop(node)
        unrouted = int(await conn.fetchval(UNROUTED))
        created = await conn.fetch(CREATED)
        stored = {r["id"]: r for r in await conn.fetch(STORED, org)}
    finally:
        await conn.close()
    if watched["count"] == 0:
        raise Missing(f"no event routed within {profile.stall_s:.0f} s of the node's start")
    return _result(n, watched, unrouted, want, endpoints, created, stored,
                   plain_events_per_s, say)


def _result(n: int, watched: dict[str, Any], unrouted: int, want: dict[str, set[uuid.UUID]],
            endpoints: dict[str, uuid.UUID], created: list[asyncpg.Record],
            stored: dict[uuid.UUID, asyncpg.Record], plain: float | None,
            say: Say) -> dict[str, Any]:
    got: dict[uuid.UUID, set[uuid.UUID]] = {endpoint: set() for endpoint in endpoints.values()}
    for row in created:
        got.setdefault(row["endpoint_id"], set()).add(row["event_id"])
    per_endpoint, wrong = {}, []
    for name, endpoint in endpoints.items():
        missing, extra = want[name] - got[endpoint], got[endpoint] - want[name]
        per_endpoint[name] = {"expected": len(want[name]), "created": len(got[endpoint]),
                              "missing": len(missing), "extra": len(extra),
                              "share": round(len(want[name]) / n, 4),
                              "filter_path": stored[endpoint]["path"]}
        if missing or extra:
            wrong.append(f"{name}: {len(got[endpoint])} created, {len(want[name])} expected "
                         f"({len(missing)} missing, {len(extra)} extra)")
    total_expected = sum(len(ids) for ids in want.values())
    rate = watched["rate"]
    out: dict[str, Any] = {
        "events": n, "endpoints": len(endpoints), "events_per_s": rate,
        "seconds": watched["seconds"], "first_after_s": watched["first_after_s"],
        "expected_deliveries": total_expected, "deliveries": len(created),
        "wrong_deliveries": sum(e["missing"] + e["extra"] for e in per_endpoint.values()),
        "deliveries_per_event": round(len(created) / n, 3),
        # the events are mixed evenly, so deliveries are made at the events' pace times this
        "deliveries_per_s": None if rate is None else rate * len(created) / n,
        "unrouted_left": unrouted,
        "plain_events_per_s": plain,
        "vs_plain": rate / plain if rate is not None and plain else None,
        "per_endpoint": per_endpoint}
    if not watched["done"]:
        out["note"] = (f"stopped at {watched['count']} of {n} events routed after "
                       f"{watched['seconds']:.1f} s; the rate is over that part")
    if wrong or unrouted:
        out["error"] = (f"{unrouted} events left unrouted; " if unrouted else "") + (
            "deliveries differ from the filters' expected matches: " + "; ".join(wrong)
            if wrong else "")
    beside = f"plain routing {plain:.0f} events/s" if plain else "plain routing not measured"
    say(f"routing with filters: {rate or 0:.0f} events/s over {len(endpoints)} filtered "
        f"endpoints ({len(created)} deliveries, {total_expected} expected"
        f"{'' if not wrong else ', MISMATCH'}); {beside}")
    return out
